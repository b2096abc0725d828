package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/postgres/pgtest"
)

// --pprof-addr serves Go's profiles on a listener of its own, and the API
// listener does not serve them.
func TestServePprofListener(t *testing.T) {
	url := pgtest.New(t)
	app, _, _ := testApp(nil)
	logs := &syncBuffer{}
	app.Log = newLogger(logs, "info", "json")
	addr, stop := serveForTest(t, app, "--database-url", url, "--http-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0", "--shutdown-timeout", "5s")
	// The profiling listener's address is logged before the API's is sent.
	var paddr string
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving Go profiles" {
			paddr = line.Addr
		}
	}
	if paddr == "" {
		t.Fatalf("no \"serving Go profiles\" line in the log:\n%s", logs)
	}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, body := get("http://" + paddr + "/debug/pprof/heap?debug=1"); st != 200 || !strings.Contains(body, "heap profile") {
		t.Fatalf("GET /debug/pprof/heap on --pprof-addr: %d %.200s", st, body)
	}
	if st, body := get("http://" + paddr + "/debug/pprof/profile?seconds=1"); st != 200 || len(body) == 0 {
		t.Fatalf("GET /debug/pprof/profile on --pprof-addr: %d, %d bytes", st, len(body))
	}
	if st, _ := get("http://" + addr + "/debug/pprof/heap"); st != 404 {
		t.Fatalf("the API listener answered /debug/pprof/heap with %d, want 404", st)
	}
	stop()
}
