// Package pgtest gives tests a fresh, migrated PostgreSQL database of their
// own. The first call in a test binary migrates a template database (named
// after a hash of the embedded migrations, so it is rebuilt when they
// change); every call then clones it with CREATE DATABASE ... TEMPLATE,
// which takes a fraction of a second, and drops the clone when the test ends.
//
// The server is the one DATABASE_URL names, or the local one at
// 127.0.0.1:5432. When none answers, the test fails with one line saying how
// to start it: tests that need a database never skip silently.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverecall/liverecall/migrations"
	"github.com/liverecall/liverecall/postgres"
)

// LocalURL is the server used when DATABASE_URL is not set.
const LocalURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	once     sync.Once
	template string
	initErr  error
	counter  atomic.Int64
)

// ServerURL returns the URL of the server tests use, pointing at its
// maintenance database.
func ServerURL() string {
	if u := os.Getenv("DATABASE_URL"); u != "" {
		return u
	}
	return LocalURL
}

// WithDatabase returns base with its database name replaced by name.
func WithDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("DATABASE_URL must be a postgres:// URL for tests")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func admin(ctx context.Context) (*pgx.Conn, error) {
	u, err := WithDatabase(ServerURL(), "postgres")
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return nil, err
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable at %s:%d (%v); %s", cfg.Host, cfg.Port, err, postgres.StartHint)
	}
	return conn, nil
}

// migrationsHash names the template after the schema it holds.
func migrationsHash() string {
	h := sha256.New()
	names, _ := fs.Glob(migrations.FS, "*.sql")
	sort.Strings(names)
	for _, n := range names {
		b, _ := fs.ReadFile(migrations.FS, n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

func setup() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := admin(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Test binaries of several packages run at once: one builds the template.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('liverecall.pgtest'))`); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtext('liverecall.pgtest'))`)
	dropStale(ctx, conn)
	name := "lrtest_tmpl_" + migrationsHash()
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Build under a temporary name and rename when complete, so a crash
	// half-way never leaves a half-migrated template behind.
	tmp := name + "_build"
	if _, err := conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{tmp}.Sanitize()+` WITH (FORCE)`); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{tmp}.Sanitize()); err != nil {
		return "", err
	}
	u, _ := WithDatabase(ServerURL(), tmp)
	if _, err := postgres.Migrate(ctx, u, nil); err != nil {
		return "", fmt.Errorf("migrating the test template: %w", err)
	}
	if _, err := conn.Exec(ctx, `ALTER DATABASE `+pgx.Identifier{tmp}.Sanitize()+` RENAME TO `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	return name, nil
}

// dropStale drops test databases left behind by test processes that died
// before their cleanup ran (their pid no longer exists on this machine).
func dropStale(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname ~ '^lrtest_[0-9]+_'`)
	if err != nil {
		return
	}
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		var pid int
		if _, err := fmt.Sscanf(n, "lrtest_%d_", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			continue
		}
		conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{n}.Sanitize()+` WITH (FORCE)`)
	}
}

// New creates a fresh, migrated database for tb and returns its URL. The
// database is dropped when tb ends.
func New(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { template, initErr = setup() })
	if initErr != nil {
		tb.Fatalf("pgtest: %v", initErr)
	}
	return create(tb, template)
}

// NewEmpty creates a fresh database with no schema (for migration tests).
func NewEmpty(tb testing.TB) string {
	tb.Helper()
	return create(tb, "template0")
}

func create(tb testing.TB, tmpl string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := admin(ctx)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	defer conn.Close(ctx)
	name := fmt.Sprintf("lrtest_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, counter.Add(1))
	// Clones of one template are serialised: PostgreSQL refuses to copy a
	// template that another session is copying on some versions.
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext('liverecall.pgtest'))`); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	_, err = conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()+` TEMPLATE `+pgx.Identifier{tmpl}.Sanitize())
	conn.Exec(ctx, `SELECT pg_advisory_unlock(hashtext('liverecall.pgtest'))`)
	if err != nil {
		tb.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := admin(ctx)
		if err != nil {
			tb.Errorf("pgtest: dropping %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`); err != nil {
			tb.Errorf("pgtest: dropping %s: %v", name, err)
		}
	})
	u, err := WithDatabase(ServerURL(), name)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return u
}

// Open returns a pool on a fresh database (see New), closed when tb ends.
func Open(tb testing.TB) *postgres.DB {
	tb.Helper()
	db, _ := OpenURL(tb)
	return db
}

// OpenURL is Open that also returns the database's URL, for tests that
// hand it to a command or a second process.
func OpenURL(tb testing.TB) (*postgres.DB, string) {
	tb.Helper()
	u := New(tb)
	db, err := postgres.Open(context.Background(), u)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(db.Close)
	return db, u
}
