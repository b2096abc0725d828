package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runDevUntilReport runs a short dev on a small world (3 days, 300
// streamers, 3000 users, the live world at 1000x) with extra flags, waits
// for its report, stops it as Ctrl-C would, checks that it exits cleanly and
// returns what it printed. url is its database's.
func runDevUntilReport(t *testing.T, url string, extra ...string) string {
	t.Helper()
	out := &syncBuffer{}
	app := &App{Stdout: out, Stderr: out, Getenv: func(string) string { return "" }, Log: newLogger(out, "error", "text")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	args := append([]string{"dev", "--database-url", url, "--http-addr", "127.0.0.1:0", "--days", "3", "--streamers", "300",
		"--users", "3000", "--ncf-epochs", "2", "--report-after", "5s", "--live-speed", "1000", "--requests", "100"}, extra...)
	go func() { done <- Run(ctx, app, args) }()
	// Generous: dev trains both models under -race, perhaps beside other
	// test packages on two cores; the condition ends the wait, not the clock.
	deadline := time.After(10 * time.Minute)
	for !strings.Contains(out.String(), "Running. Press Ctrl-C to stop.") {
		select {
		case code := <-done:
			t.Fatalf("dev exited with %d before its report:\n%s", code, out)
		case <-deadline:
			t.Fatalf("no report after 10 minutes:\n%s", out)
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("dev exited with %d after the signal:\n%s", code, out)
		}
	case <-time.After(stopWithin(defaultShutdownTimeout(t))):
		t.Fatal("dev did not stop after the signal")
	}
	return out.String()
}

// A short dev run on a small world: it simulates, trains both models,
// serves, reaches ready, answers recall requests with live streamers only,
// prints its report and exits cleanly when its context ends (as on Ctrl-C).
// The streams already live are announced with their audiences (the
// recommendations show viewers), the live world runs accelerated until the
// report so that the quality line covers many decisions, with its
// intervals, and the logs go to the file named, not into the report.
func TestDevRunsTheWholeSystem(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "dev.log")
	report := runDevUntilReport(t, pgtest.NewEmpty(t), "--log-file", logFile)
	live := regexp.MustCompile(`live streamers now: (\d+)`).FindStringSubmatch(report)
	if live == nil || live[1] == "0" {
		t.Fatalf("no live streamers in the report:\n%s", report)
	}
	for _, want := range []string{"training mf", "training ncf", "recommendations (top 5)", "latency over 100 recall requests", "0 errors", "operator console: http://",
		"==> logs: " + logFile, "ran at 1000x real time"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, m := range regexp.MustCompile(`(\d+) not-live recommendations?`).FindAllStringSubmatch(report, -1) {
		if n, _ := strconv.Atoi(m[1]); n != 0 {
			t.Errorf("%d recommended streamers were not live:\n%s", n, report)
		}
	}
	// 1.4 simulated hours of a world of 3,000 users: about 90 decisions at
	// the quietest hour of the day, several hundred at the busiest.
	q := regexp.MustCompile(`quality against the simulator's ground truth so far: HR@10 ([0-9.]+) \(95% Wilson interval ([0-9.]+)–([0-9.]+)\), NDCG@10 [0-9.]+ \(95% interval [0-9.]+–[0-9.]+\) over (\d+) decisions`).FindStringSubmatch(report)
	if q == nil {
		t.Fatalf("no quality line with intervals:\n%s", report)
	}
	hr, _ := strconv.ParseFloat(q[1], 64)
	lo, _ := strconv.ParseFloat(q[2], 64)
	hi, _ := strconv.ParseFloat(q[3], 64)
	if n, _ := strconv.Atoi(q[4]); n < 50 || lo > hr || hr > hi || hi-lo > 0.3 {
		t.Errorf("quality over %d decisions: HR %v in [%v, %v]:\n%s", n, hr, lo, hi, report)
	}
	// Streams live before the run are announced with their viewers: some
	// recommended stream has an audience, and durations and counts read well.
	items := regexp.MustCompile(`; (\d+) viewers?, [a-z_-]+, live (<1m|\d+m|\d+h\d\dm|\d+d\d+h)\)`).FindAllStringSubmatch(report, -1)
	watched := 0
	for _, m := range items {
		if n, _ := strconv.Atoi(m[1]); n > 0 {
			watched++
		}
		if strings.Contains(m[0], " 1 viewers") {
			t.Errorf("plural of one: %q", m[0])
		}
	}
	if len(items) == 0 || watched == 0 {
		t.Errorf("no recommended stream with viewers (%d items):\n%s", len(items), report)
	}
	// The logs are JSON lines in the file, none of them in the report.
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var first map[string]any
	if len(lines) < 3 || json.Unmarshal([]byte(lines[0]), &first) != nil || first["msg"] == nil {
		t.Fatalf("log file holds %d lines, first %q", len(lines), lines[0])
	}
	if strings.Contains(report, `"level":`) || strings.Contains(report, "level=") {
		t.Errorf("log lines in the report:\n%s", report)
	}
}

// defaultShutdownTimeout is --shutdown-timeout's default, which dev uses.
func defaultShutdownTimeout(t *testing.T) time.Duration {
	d, err := time.ParseDuration(sShutdownTimeout.Default)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// dev --context runs the world with request context and sends each
// decision's context with its request; the service accepts every one.
func TestDevWithContext(t *testing.T) {
	url := pgtest.NewEmpty(t)
	report := runDevUntilReport(t, url, "--context", "--log-file", filepath.Join(t.TempDir(), "dev.log"))
	q := regexp.MustCompile(`over (\d+) decisions \(mean \d+ live streamers each, [^,]+, 0 failed requests\)`).FindStringSubmatch(report)
	if q == nil {
		t.Fatalf("no quality line with 0 failed requests:\n%s", report)
	}
	if n, _ := strconv.Atoi(q[1]); n < 50 {
		t.Errorf("quality over %d decisions:\n%s", n, report)
	}
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if w, ok, err := db.SimWorldRecorded(context.Background()); err != nil || !ok || !w.Context {
		t.Fatalf("recorded world %+v %v %v, want one with context", w, ok, err)
	}
}
