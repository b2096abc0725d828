package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// A short dev run on a small world: it simulates, trains both models,
// serves, reaches ready, answers recall requests with live streamers only,
// prints its report and exits cleanly when its context ends (as on Ctrl-C).
func TestDevRunsTheWholeSystem(t *testing.T) {
	url := pgtest.NewEmpty(t)
	out := &syncBuffer{}
	app := &App{Stdout: out, Stderr: io.Discard, Getenv: func(string) string { return "" }, Log: newLogger(io.Discard, "error", "text")}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, app, []string{"dev", "--database-url", url, "--http-addr", "127.0.0.1:0", "--days", "3", "--streamers", "300",
			"--users", "3000", "--ncf-epochs", "2", "--report-after", "3s", "--requests", "100"})
	}()
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
	report := out.String()
	live := regexp.MustCompile(`live streamers now: (\d+)`).FindStringSubmatch(report)
	if live == nil || live[1] == "0" {
		t.Fatalf("no live streamers in the report:\n%s", report)
	}
	for _, want := range []string{"training mf", "training ncf", "recommendations (top 5)", "latency over 100 recall requests", "0 errors", "debug page: http://"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, m := range regexp.MustCompile(`(\d+) not-live recommendations`).FindAllStringSubmatch(report, -1) {
		if n, _ := strconv.Atoi(m[1]); n != 0 {
			t.Errorf("%d recommended streamers were not live:\n%s", n, report)
		}
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
