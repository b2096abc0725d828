package pgtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestNewGivesAFreshMigratedDatabase(t *testing.T) {
	ctx := context.Background()
	a, b := pgtest.New(t), pgtest.New(t)
	if a == b {
		t.Fatal("two calls returned the same database")
	}
	st, err := postgres.Status(ctx, a)
	if err != nil || st.Current != st.Latest {
		t.Fatalf("status %+v, err %v", st, err)
	}
	db, err := postgres.Open(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO users (id) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	db2, err := postgres.Open(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	var n int
	db2.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	if n != 0 {
		t.Fatalf("databases are not isolated: %d users in the second", n)
	}
}

// Without a reachable server the harness fails (not skips) with one line
// saying how to start one.
func TestUnreachableServerFailsWithHint(t *testing.T) {
	if os.Getenv("LIVERECALL_PGTEST_CHILD") != "" {
		pgtest.New(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestUnreachableServerFailsWithHint$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "LIVERECALL_PGTEST_CHILD=1", "DATABASE_URL=postgres://postgres@127.0.0.1:1/postgres?sslmode=disable&connect_timeout=2")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("child passed without a database:\n%s", out)
	}
	s := string(out)
	if !strings.Contains(s, "--- FAIL") || strings.Contains(s, "SKIP") || !strings.Contains(s, "pg_ctlcluster") {
		t.Fatalf("child output lacks a failure with the start hint:\n%s", s)
	}
}
