// Package postgres is the only package that talks to PostgreSQL. It owns
// every SQL statement of liverecall, the migration runner (over the SQL in
// migrations/), bulk loads with COPY and streaming reads of large tables.
// Every statement takes its values as parameters; no SQL is built from input.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	lr "github.com/liverecall/liverecall"
)

// DefaultURL is used when neither a flag nor DATABASE_URL names a database.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/liverecall?sslmode=disable"

// StartHint tells a developer how to start the local server of this kind of machine.
const StartHint = "start the local server with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start (or set DATABASE_URL)"

// DB is a pool of connections to one database. It is safe for concurrent use.
type DB struct {
	Pool *pgxpool.Pool
	url  string
}

// Open parses url, connects and pings within ctx. The error names the host
// and what went wrong, never the password. opts (WithTracer) adjust the pool.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, &lr.Error{Code: lr.EINVALID, Op: "postgres.Open", Message: "invalid database URL (" + redactParseError(err) + ")"}
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	for _, o := range opts {
		o(cfg)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.Open", Message: "cannot create pool", Err: err}
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, unreachable(cfg.ConnConfig, err)
	}
	return &DB{Pool: pool, url: url}, nil
}

// Close releases all connections.
func (db *DB) Close() { db.Pool.Close() }

// URL returns the connection string the pool was opened with (it may hold a
// password: never log it).
func (db *DB) URL() string { return db.url }

func unreachable(cfg *pgx.ConnConfig, err error) error {
	where := fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.Open",
			Message: fmt.Sprintf("database %s refused the connection: %s (SQLSTATE %s)", where, pgErr.Message, pgErr.Code)}
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, context.DeadlineExceeded) {
		return &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.Open",
			Message: fmt.Sprintf("database %s is not reachable; %s", where, StartHint)}
	}
	return &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.Open",
		Message: fmt.Sprintf("database %s is not reachable (%v); %s", where, err, StartHint)}
}

// redactParseError keeps pgx's parse error from echoing the URL (and its password).
func redactParseError(err error) string {
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if pe.Unwrap() != nil {
			return pe.Unwrap().Error()
		}
		return "cannot parse"
	}
	return "cannot parse"
}

// CreateDatabaseIfMissing creates the database that url names when the
// server does not have it yet, connecting to the server's "postgres"
// maintenance database to do so. It reports whether it created one.
func CreateDatabaseIfMissing(ctx context.Context, url string) (bool, error) {
	const op = "postgres.CreateDatabaseIfMissing"
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false, &lr.Error{Code: lr.EINVALID, Op: op, Message: "invalid database URL (" + redactParseError(err) + ")"}
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return false, nil
	}
	cfg.Database = "postgres"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, unreachable(cfg, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, lr.E(op, lr.EINTERNAL, err)
	}
	if exists {
		return false, nil
	}
	_, err = conn.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created meanwhile by someone else
		return false, nil
	}
	if err != nil {
		return false, &lr.Error{Code: lr.EUNAVAILABLE, Op: op, Message: fmt.Sprintf("cannot create database %s", name), Err: err}
	}
	return true, nil
}

// Ping checks within ctx that the database answers. A failure is
// lr.EUNAVAILABLE with a client-safe message naming the database (host,
// port and database name, never the password).
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Pool.Ping(ctx); err != nil {
		return &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.Ping", Message: db.unreachableMessage(), Err: err}
	}
	return nil
}

func (db *DB) unreachableMessage() string {
	c := db.Pool.Config().ConnConfig
	return fmt.Sprintf("the database %s:%d/%s is not reachable", c.Host, c.Port, c.Database)
}

// wrap is lr.E for the errors of one statement: a lost or refused
// connection (the server is down, restarting or failing over) is
// lr.EUNAVAILABLE with a message naming the database, so callers can tell
// "try again when it is back" from a bug; anything else is lr.EINTERNAL.
func (db *DB) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if connectionLost(err) {
		return &lr.Error{Code: lr.EUNAVAILABLE, Op: op, Message: db.unreachableMessage(), Err: err}
	}
	return lr.E(op, lr.EINTERNAL, err)
}

// connectionLost reports whether err means the server could not be reached
// or went away, rather than that a statement failed.
func connectionLost(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exception; 57P01-57P03: admin shutdown, crash
		// shutdown, cannot connect now (starting up or shutting down).
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connErr) || errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		pgconn.SafeToRetry(err)
}
