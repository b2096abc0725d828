package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/tern/v2/migrate"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/migrations"
)

// VersionTable records the schema version (tern's format: one row, one int).
const VersionTable = "public.schema_version"

// MigrationStatus is where a database stands against the embedded migrations.
type MigrationStatus struct {
	Current int32    // version applied to the database
	Latest  int32    // highest version embedded in this binary
	Pending []string // names of migrations not yet applied, in order
}

// Migrate brings the database at url up to the latest embedded version.
// It holds a Postgres advisory lock while it works, so replicas starting
// together apply each migration once; each migration runs in its own
// transaction, so a failing one leaves the schema at the last complete
// version. It is a no-op when the schema is current. logf, if not nil, is
// told about each migration applied.
func Migrate(ctx context.Context, url string, logf func(seq int32, name string)) (MigrationStatus, error) {
	return migrateFS(ctx, url, migrations.FS, logf)
}

func migrateFS(ctx context.Context, url string, fsys fs.FS, logf func(int32, string)) (MigrationStatus, error) {
	conn, m, err := migrator(ctx, url, fsys)
	if err != nil {
		return MigrationStatus{}, err
	}
	defer conn.Close(context.Background())
	if logf != nil {
		m.OnStart = func(seq int32, name, direction, _ string) {
			if direction == "up" {
				logf(seq, name)
			}
		}
	}
	if err := m.Migrate(ctx); err != nil {
		return MigrationStatus{}, migrationError(err)
	}
	return status(ctx, m)
}

// Status reports the applied and pending migrations without changing anything.
func Status(ctx context.Context, url string) (MigrationStatus, error) {
	conn, m, err := migrator(ctx, url, migrations.FS)
	if err != nil {
		return MigrationStatus{}, err
	}
	defer conn.Close(context.Background())
	return status(ctx, m)
}

func migrator(ctx context.Context, url string, fsys fs.FS) (*pgx.Conn, *migrate.Migrator, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, &lr.Error{Code: lr.EINVALID, Op: "postgres.Migrate", Message: "invalid database URL (" + redactParseError(err) + ")"}
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, nil, unreachable(cfg, err)
	}
	m, err := migrate.NewMigrator(ctx, conn, VersionTable)
	if err != nil {
		conn.Close(context.Background())
		return nil, nil, &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Migrate", Message: "cannot prepare the version table", Err: err}
	}
	if err := m.LoadMigrations(fsys); err != nil {
		conn.Close(context.Background())
		return nil, nil, &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Migrate", Message: "cannot load the embedded migrations", Err: err}
	}
	return conn, m, nil
}

func status(ctx context.Context, m *migrate.Migrator) (MigrationStatus, error) {
	v, err := m.GetCurrentVersion(ctx)
	if err != nil {
		return MigrationStatus{}, &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Status", Message: "cannot read the schema version", Err: err}
	}
	st := MigrationStatus{Current: v, Latest: int32(len(m.Migrations))}
	for _, mg := range m.Migrations {
		if mg.Sequence > v {
			st.Pending = append(st.Pending, mg.Name)
		}
	}
	if v > st.Latest {
		return st, &lr.Error{Code: lr.ECONFLICT, Op: "postgres.Status",
			Message: fmt.Sprintf("database schema is at version %d, newer than this binary's %d: upgrade the binary", v, st.Latest)}
	}
	return st, nil
}

// migrationError turns tern's error into one line naming the migration, the
// SQL line and the server's message.
func migrationError(err error) error {
	var me migrate.MigrationPgError
	if errors.As(err, &me) {
		msg := fmt.Sprintf("migration %s failed", me.MigrationName)
		if me.PgError != nil {
			msg += ": " + me.PgError.Message
			if me.Position > 0 {
				if ex, err := migrate.ExtractErrorLine(me.Sql, int(me.Position)); err == nil {
					msg += fmt.Sprintf(" (line %d: %s)", ex.LineNum, strings.TrimSpace(ex.Text))
				}
			}
		}
		return &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Migrate", Message: msg + "; the schema stays at the last complete version"}
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Migrate", Message: "migration failed: " + pgErr.Message}
	}
	return &lr.Error{Code: lr.EINTERNAL, Op: "postgres.Migrate", Message: "migration failed", Err: err}
}
