package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// localCluster runs pg_ctlcluster on the machine's PostgreSQL cluster
// (the one `make postgres` starts).
func localCluster(t *testing.T, action string, extra ...string) {
	t.Helper()
	vers, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(vers) != 1 {
		t.Fatalf("no single local PostgreSQL cluster under /etc/postgresql (%v): this test restarts the local server", err)
	}
	args := append([]string{"--skip-systemctl-redirect", vers[0].Name(), "main", action}, extra...)
	out, err := exec.Command("pg_ctlcluster", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("pg_ctlcluster %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func pgReady() bool {
	return exec.Command("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432").Run() == nil
}

// The PostgreSQL server itself stops (fast shutdown: every connection cut)
// while an index reload is reading embeddings, and starts again: the old
// index keeps serving throughout, the reload and an admin reload during the
// outage fail cleanly and show in status, and the periodic check retries
// until the new version serves. It stops the machine's server, so `make
// test` runs it alone after the other packages (LIVERECALL_PG_RESTART=1).
func TestPostgresRestartDuringReload(t *testing.T) {
	if os.Getenv("LIVERECALL_PG_RESTART") == "" {
		t.Skip("restarts the local PostgreSQL server: runs alone, from make test, with LIVERECALL_PG_RESTART=1")
	}
	e, lock, _, admin := startReloadCaughtMidRead(t)
	// Registered last, so it runs first: the server is back before the
	// harness drops the test database.
	t.Cleanup(func() {
		if !pgReady() {
			localCluster(t, "start")
		}
	})
	ctx := context.Background()
	admin.Close(ctx)

	localCluster(t, "stop", "-m", "fast")
	if pgReady() {
		t.Fatal("the server still answers after stop")
	}
	lock.Rollback(ctx)
	for i := 0; i < 20; i++ {
		if r := e.recall(1); r.ModelVersions["mf"] != "v1" || len(r.Items) == 0 {
			t.Fatalf("recall while PostgreSQL is down: %+v", r)
		}
	}
	// Serving needs only memory: the replica stays ready, with a warning.
	if code, body := e.get("/readyz", false); code != 200 || !strings.Contains(string(body), "database") {
		t.Fatalf("/readyz while PostgreSQL is down: %d %s, want 200 with a warning naming the database", code, body)
	}
	if code, body := e.post("/v1/admin/reload", "", true); code != 503 || !strings.Contains(string(body), "not reachable") {
		t.Fatalf("an admin reload while PostgreSQL is down: %d %s, want 503 naming the database", code, body)
	}
	e.waitFor("status to show the failed reload", eventually, func() bool {
		st := e.indexStatus()
		return st["version"] == "v1" && st["last_error"] != nil
	})
	time.Sleep(2 * time.Second) // several periodic retries fail meanwhile
	if r := e.recall(1); r.ModelVersions["mf"] != "v1" || len(r.Items) == 0 {
		t.Fatalf("recall after failed retries: %+v", r)
	}

	localCluster(t, "start")
	e.waitFor("PostgreSQL back", eventually, pgReady)
	e.waitFor("v2 to serve after PostgreSQL is back", eventually, func() bool { return e.recall(1).ModelVersions["mf"] == "v2" })
	if st := e.indexStatus(); st["version"] != "v2" || st["last_error"] != nil {
		t.Fatalf("status after recovery: %v", st)
	}
	if code, body := e.post("/v1/admin/reload", "", true); code != 200 {
		t.Fatalf("an admin reload after PostgreSQL is back: %d %s", code, body)
	}
}
