package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
)

// The running service's console: GET /v1/admin/traffic fills from the
// service's own metrics as it serves (sampled every --console-sample-every),
// GET /v1/admin/experiments answers an empty list, and the
// page at /debug draws the traffic charts and lists the serving model
// version in headless Chromium.
func TestConsoleOfTheRunningService(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: install Debian's chromium package (make tools does)")
	}
	e := startE2E(t, "--console-sample-every", "50ms")
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3, 4, 5)
	e.waitFor("5 live streamers", eventually, func() bool { return e.liveCount() == 5 })

	// Traffic until three sampled intervals have requests with a p99 and
	// the MF channel's outcomes are counted.
	var tr api.TrafficResponse
	e.waitFor("traffic sampled", eventually, func() bool {
		e.recall(1)
		code, b := e.get("/v1/admin/traffic", true)
		if code != 200 {
			t.Fatalf("traffic: %d %s", code, b)
		}
		tr = api.TrafficResponse{}
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatal(err)
		}
		busy := 0
		for _, p := range tr.Points {
			if p.Requests > 0 && p.P99MS != nil {
				busy++
			}
		}
		mf := false
		for _, c := range tr.Channels {
			mf = mf || (c.Channel == "mf" && len(c.Outcomes) > 0)
		}
		return busy >= 3 && mf
	})
	if tr.EveryS != 0.05 {
		t.Errorf("every_s %v, want 0.05", tr.EveryS)
	}
	if code, b := e.get("/v1/admin/traffic", false); code != 401 {
		t.Errorf("traffic without the token: %d %s", code, b)
	}
	// No experiment runs here: an empty list (with a note while no
	// report source is connected), once the reports are computed.
	e.waitFor("experiment reports", eventually, func() bool {
		code, b := e.get("/v1/admin/experiments", true)
		if code != 200 && code != 503 {
			t.Fatalf("experiments: %d %s", code, b)
		}
		if code == 200 && !strings.Contains(string(b), `"experiments":[]`) {
			t.Fatalf("experiments: %s, want an empty list", b)
		}
		return code == 200
	})

	// Traffic goes on while the page loads, so that the channel outcomes'
	// window (the sampled ring's 6 s here) holds some however long the
	// browser takes to start.
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	load := make(chan struct{})
	go func() {
		defer close(load)
		tick := time.NewTicker(20 * time.Millisecond) // pacing the load, not waiting for anything
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if resp, err := http.Post("http://"+e.addr+"/v1/recall", "application/json", strings.NewReader(`{"user_id":1,"k":5}`)); err == nil {
					resp.Body.Close()
				}
			}
		}
	}()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--enable-logging=stderr", "--v=0", "--user-data-dir="+dir, "--virtual-time-budget=5000", "--dump-dom",
		"http://"+e.addr+"/debug#token="+e2eToken)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	cancel()
	<-load
	dom := string(out)
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, ":CONSOLE") {
			t.Errorf("the page's console: %s", l)
		}
	}
	rps := regexp.MustCompile(`(?s)<svg id="chart-rps".*?</svg>`).FindString(dom)
	m := regexp.MustCompile(`<path d="M[^"]+" stroke="[^"]+" class="series" data-points="(\d+)">`).FindStringSubmatch(rps)
	if m == nil || m[1] == "0" || m[1] == "1" {
		t.Errorf("requests chart has no drawn series of several points:\n%s", rps)
	}
	if !strings.Contains(dom, `<tr data-kind="mf" data-version="v1" data-role="active"><td>mf</td><td>v1</td><td>active</td>`) {
		t.Errorf("models section does not list the serving MF version v1:\n%s", regexp.MustCompile(`(?s)<section id="models".*?</section>`).FindString(dom))
	}
	if !regexp.MustCompile(`<rect [^>]*class="seg" data-channel="mf"`).MatchString(dom) {
		t.Errorf("channel chart has no MF bar:\n%s", regexp.MustCompile(`(?s)<svg id="chart-channels".*?</svg>`).FindString(dom))
	}
	if !strings.Contains(dom, `<p id="experiments-status" class="status">`) {
		t.Errorf("experiments section reports an error:\n%s", regexp.MustCompile(`(?s)<section id="experiments".*?</section>`).FindString(dom))
	}
}
