package main

import (
	"bytes"
	"context"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/liverecall/liverecall/postgres/pgtest"
)

func testApp(env map[string]string) (*App, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &App{Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }}, &out, &errb
}

func TestVersionAndUsage(t *testing.T) {
	app, out, _ := testApp(nil)
	if code := Run(context.Background(), app, []string{"version"}); code != 0 || !strings.HasPrefix(out.String(), "liverecall ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
	app, _, errb := testApp(nil)
	if code := Run(context.Background(), app, []string{"nope"}); code != 2 || !strings.Contains(errb.String(), `unknown command "nope"`) {
		t.Fatalf("unknown command: code %d, err %q", code, errb)
	}
}

func TestMigrateCommand(t *testing.T) {
	url := pgtest.NewEmpty(t)
	env := map[string]string{"DATABASE_URL": url}
	app, out, errb := testApp(env)
	if code := Run(context.Background(), app, []string{"migrate", "status"}); code != 0 || !strings.Contains(out.String(), "schema at version 0") || !strings.Contains(out.String(), "pending: 001_schema") {
		t.Fatalf("status before: code %d out %q err %q", code, out, errb)
	}
	for i := 0; i < 2; i++ { // the second run is a no-op
		app, out, errb = testApp(env)
		if code := Run(context.Background(), app, []string{"migrate", "up"}); code != 0 {
			t.Fatalf("up #%d: code %d err %q", i, code, errb)
		}
		if applied := strings.Count(errb.String(), "applying migration"); (i == 0) != (applied > 0) {
			t.Fatalf("up #%d applied %d migrations; log %q", i, applied, errb)
		}
	}
	app, out, _ = testApp(env)
	if code := Run(context.Background(), app, []string{"migrate", "status"}); code != 0 || strings.Contains(out.String(), "pending") {
		t.Fatalf("status after: code %d out %q", code, out)
	}
}

func TestMigrateCreatesTheDatabase(t *testing.T) {
	base := pgtest.NewEmpty(t) // a unique name on the test server, dropped at the end
	name := base[strings.LastIndex(base, "/")+1:]
	if i := strings.Index(name, "?"); i >= 0 {
		name = name[:i]
	}
	url := strings.Replace(base, "/"+name, "/"+name+"_made", 1)
	t.Cleanup(func() { dropDatabase(t, name+"_made") })
	app, out, errb := testApp(map[string]string{"DATABASE_URL": url})
	if code := Run(context.Background(), app, []string{"migrate", "up", "--create-database"}); code != 0 || !strings.Contains(out.String(), "schema at version") {
		t.Fatalf("code %d out %q err %q", code, out, errb)
	}
}

func TestBadDatabaseURLIsOneLineAndNonZero(t *testing.T) {
	for _, url := range []string{"postgres://u:pw@[::1", "postgres://u:pw@127.0.0.1:1/x?connect_timeout=2"} {
		for _, args := range [][]string{{"migrate", "up"}, {"serve", "--http-addr", "127.0.0.1:0"}} {
			app, _, errb := testApp(map[string]string{"DATABASE_URL": url})
			code := Run(context.Background(), app, args)
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			last := lines[len(lines)-1]
			if code != 1 || !strings.HasPrefix(last, "liverecall "+args[0]+": ") || strings.Contains(errb.String(), "pw@") {
				t.Errorf("%v with %q: code %d, stderr %q", args, url, code, errb)
			}
		}
	}
}

func TestBadEnvironmentValueIsAUsageError(t *testing.T) {
	app, _, errb := testApp(map[string]string{"LIVERECALL_SHUTDOWN_TIMEOUT": "soon"})
	if code := Run(context.Background(), app, []string{"serve"}); code != 2 || !strings.Contains(errb.String(), "LIVERECALL_SHUTDOWN_TIMEOUT") {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
}

// serve starts, answers its health routes, and stops cleanly when its
// context ends (which is what SIGINT/SIGTERM do through main).
func TestServeStartsAndShutsDown(t *testing.T) {
	url := pgtest.New(t)
	app, _, _ := testApp(nil)
	app.Log = newLogger(&bytes.Buffer{}, "info", "json")
	addr, stop := serveForTest(t, app, "--database-url", url, "--http-addr", "127.0.0.1:0", "--shutdown-timeout", "5s")
	for path, want := range map[string]int{"/healthz": 200, "/metrics": 200, "/openapi.json": 200, "/readyz": 503} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s: %d, want %d (no model, no Kafka: not ready)", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Get("http://" + addr + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("unknown route: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	stop()
}

// serveForTest runs serve with args (app's environment and logger) on a
// goroutine of its own and returns the API's address once it listens,
// failing t if serve ends before, and stop, which ends serve and fails t
// unless it returns nil within 5 s (the tests' --shutdown-timeout).
func serveForTest(t *testing.T, app *App, args ...string) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		cfg, err := parseServiceFlags(app, "serve", args)
		if err != nil {
			done <- err
			return
		}
		svc, err := newService(ctx, app, cfg)
		if err != nil {
			done <- err
			return
		}
		done <- svc.run(ctx, addrc)
	}()
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	}
	return addr, func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("serve returned %v after shutdown", err)
			}
		case <-time.After(stopWithin(5 * time.Second)):
			t.Fatal("serve did not stop")
		}
	}
}

func dropDatabase(t *testing.T, name string) {
	conn, err := pgx.Connect(context.Background(), pgtest.ServerURL())
	if err != nil {
		t.Error(err)
		return
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Error(err)
	}
}

// `liverecall version` never prints a bare "dev" (it read as the dev
// command): a release version, the module version or "unreleased", and the
// commit when the build stamped one.
func TestVersionLine(t *testing.T) {
	gov := runtime.Version()
	for _, c := range []struct {
		release string
		b       buildInfo
		want    string
	}{
		{"dev", buildInfo{module: "(devel)", commit: "8f3cd98e0123456789", modified: false}, "liverecall version unreleased, commit 8f3cd98e0123, built with " + gov},
		{"dev", buildInfo{module: "(devel)", commit: "8f3cd98e0123456789", modified: true}, "liverecall version unreleased, commit 8f3cd98e0123 with uncommitted changes, built with " + gov},
		{"dev", buildInfo{module: "v1.4.0"}, "liverecall version v1.4.0, built with " + gov},
		{"v2.0.1", buildInfo{module: "(devel)", commit: "abc"}, "liverecall version v2.0.1, commit abc, built with " + gov},
		{"", buildInfo{}, "liverecall version unreleased, built with " + gov},
	} {
		if got := versionLine(c.release, c.b); got != c.want {
			t.Errorf("versionLine(%q, %+v) = %q, want %q", c.release, c.b, got, c.want)
		}
	}
	app, out, _ := testApp(nil)
	if code := Run(context.Background(), app, []string{"version"}); code != 0 || strings.Contains(out.String(), " dev ") || !strings.HasPrefix(out.String(), "liverecall version ") {
		t.Fatalf("version: code %d, out %q", code, out)
	}
}
