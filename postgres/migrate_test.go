package postgres_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestMigrateFromZeroThenNoOp(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmpty(t)

	st, err := postgres.Status(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 0 || len(st.Pending) != int(st.Latest) || st.Latest < 1 {
		t.Fatalf("fresh database status = %+v", st)
	}

	var applied []string
	st, err = postgres.Migrate(ctx, url, func(seq int32, name string) { applied = append(applied, name) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Latest || len(st.Pending) != 0 || len(applied) != int(st.Latest) {
		t.Fatalf("after up: status %+v, applied %v", st, applied)
	}

	db := open(t, url)
	for _, tbl := range []string{"users", "streamers", "streams", "watch_sessions", "gifts", "follows",
		"user_blocks", "embedding_models", "user_embeddings", "streamer_embeddings", "rerank_models", "impressions"} {
		var ok bool
		if err := db.Pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tbl).Scan(&ok); err != nil || !ok {
			t.Errorf("table %s missing after migrate (err %v)", tbl, err)
		}
	}

	applied = nil
	st2, err := postgres.Migrate(ctx, url, func(seq int32, name string) { applied = append(applied, name) })
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 || st2.Current != st.Current {
		t.Fatalf("second up was not a no-op: applied %v, status %+v", applied, st2)
	}
}

// TestMigrateConcurrentProcesses starts two processes (this test binary,
// re-executed) that migrate the same empty database at once.
func TestMigrateConcurrentProcesses(t *testing.T) {
	if url := os.Getenv("LIVERECALL_TEST_MIGRATE_CHILD"); url != "" {
		if _, err := postgres.Migrate(context.Background(), url, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	url := pgtest.NewEmpty(t)
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestMigrateConcurrentProcesses$", "-test.count=1")
			cmd.Env = append(os.Environ(), "LIVERECALL_TEST_MIGRATE_CHILD="+url)
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("process %d failed: %v\n%s", i, errs[i], outs[i])
		}
	}
	st, err := postgres.Status(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != st.Latest {
		t.Fatalf("after two concurrent migrations: %+v", st)
	}
}

// A migration that fails half-way leaves the schema at the last complete
// version and none of the failed migration's statements applied.
func TestMigrateFailureLeavesLastCompleteVersion(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmpty(t)
	fsys := fstest.MapFS{
		"001_one.sql": {Data: []byte("CREATE TABLE one (id int);")},
		"002_two.sql": {Data: []byte("CREATE TABLE two (id int);\nINSERT INTO two VALUES (1);\nSELECT no_such_function();\n")},
	}
	_, err := postgres.MigrateFS(ctx, url, fsys, nil)
	if err == nil {
		t.Fatal("expected the failing migration to fail")
	}
	msg := err.Error()
	for _, want := range []string{"002_two", "no_such_function", "line 3", "last complete version"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	db := open(t, url)
	var one, two bool
	db.Pool.QueryRow(ctx, `SELECT to_regclass('one') IS NOT NULL, to_regclass('two') IS NOT NULL`).Scan(&one, &two)
	if !one || two {
		t.Fatalf("table one exists=%v (want true), table two exists=%v (want false)", one, two)
	}
	var v int32
	if err := db.Pool.QueryRow(ctx, `SELECT version FROM `+postgres.VersionTable).Scan(&v); err != nil || v != 1 {
		t.Fatalf("schema version = %d (err %v), want 1", v, err)
	}
}

func TestOpenErrorsAreOneClearLine(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name, url, want string
	}{
		{"unparsable", "postgres://user:s3cret@[::1", "invalid database URL"},
		{"nothing listening", "postgres://postgres:s3cret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", "not reachable"},
		{"no such database", strings.Replace(pgtest.ServerURL(), "/postgres", "/lr_no_such_db", 1), "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := postgres.Open(ctx, c.url)
			if err == nil {
				t.Fatal("expected an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "s3cret") {
				t.Fatalf("error %q: want one line containing %q and no password", msg, c.want)
			}
		})
	}
}

func open(t *testing.T, url string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}
