package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/sim"
)

func TestPluralAndHumanDuration(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{plural(0, "viewer"), "0 viewers"},
		{plural(1, "viewer"), "1 viewer"},
		{plural(2, "viewer"), "2 viewers"},
		{plural(int64(1), "watch session"), "1 watch session"},
		{plural(int64(3), "watch session"), "3 watch sessions"},
		{plural(2, "match"), "2 matches"},
		{humanDuration(2*time.Hour + 50*time.Minute + 10*time.Second), "2h50m"},
		{humanDuration(2*time.Hour + 5*time.Minute), "2h05m"},
		{humanDuration(45 * time.Minute), "45m"},
		{humanDuration(20 * time.Second), "<1m"},
		{humanDuration(-time.Minute), "<1m"},
		{humanDuration(27 * time.Hour), "1d3h"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// The live world starts (speed-1) × window in the past, runs at speed
// times real time and reaches the clock after window, then follows it.
func TestLiveScheduleCatchesUpAtTheReport(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	s := newLiveSchedule(now, 180, 20*time.Second)
	if lag := now.Sub(s.simFrom); lag != 59*time.Minute+40*time.Second {
		t.Fatalf("lag %s, want 179 × 20 s", lag)
	}
	for _, c := range []struct{ ts, due time.Time }{
		{s.simFrom.Add(-time.Hour), now.Add(-20 * time.Second)}, // announcements: at once
		{s.simFrom, now},
		{s.simFrom.Add(30 * time.Minute), now.Add(10 * time.Second)},
		{now.Add(20 * time.Second), now.Add(20 * time.Second)}, // the catch-up
		{now.Add(time.Hour), now.Add(time.Hour)},               // real time after it
	} {
		if got := s.due(c.ts); !got.Equal(c.due) {
			t.Errorf("due(%s) = %s, want %s", c.ts, got, c.due)
		}
	}
	if r := newLiveSchedule(now, 1, time.Minute); !r.simFrom.Equal(now) || !r.due(now.Add(time.Second)).Equal(now.Add(time.Second)) {
		t.Fatalf("speed 1 is real time: %+v", r)
	}

	// Paced from the wall clock: the events before the catch-up go out
	// within the window; caughtUp comes once, before the first event after.
	s = newLiveSchedule(time.Now(), 1000, 200*time.Millisecond)
	var order []string
	emit := s.pace(context.Background(), func(e lr.Event) error { order = append(order, e.ID); return nil },
		func() error { return nil }, func() { order = append(order, "caught up") })
	began := time.Now()
	for i, ts := range []time.Time{s.simFrom.Add(-time.Hour), s.simFrom.Add(time.Minute), s.catchUp.Add(-time.Millisecond), s.catchUp} {
		if err := emit(lr.Event{ID: string(rune('a' + i)), TS: ts}); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(order, ","); got != "a,b,c,caught up,d" || time.Since(began) < 150*time.Millisecond {
		t.Fatalf("order %s after %s", got, time.Since(began))
	}
}

func TestQualityLineGivesIntervals(t *testing.T) {
	e := sim.NewEvaluator(10)
	isLive := func(lr.StreamerID) bool { return true }
	for i := 0; i < 263; i++ {
		ranked := []lr.StreamerID{2}
		if i < 81 {
			ranked = []lr.StreamerID{1}
		}
		e.Add(sim.Choice{Streamer: 1, LiveCount: 5, IsLive: isLive}, ranked)
	}
	got := qualityLine(e.Result(), 1)
	if !strings.Contains(got, "HR@10 0.308 (95% Wilson interval 0.255–0.366)") || !strings.Contains(got, "over 263 decisions") ||
		!strings.Contains(got, "0 not-live recommendations, 1 failed request)") {
		t.Fatalf("%s", got)
	}
}

// README.md lists every flag of `liverecall dev`.
func TestReadmeListsEveryDevFlag(t *testing.T) {
	var usage bytes.Buffer
	app := &App{Stdout: &usage, Stderr: &usage, Getenv: func(string) string { return "" }}
	if code := Run(context.Background(), app, []string{"dev", "-h"}); code != 0 {
		t.Fatalf("dev -h: %d\n%s", code, usage.String())
	}
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(usage.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("parsed %d flags from\n%s", len(flags), usage.String())
	}
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "### `liverecall dev` flags")
	if i < 0 {
		t.Fatal("README.md has no `liverecall dev` flags section")
	}
	section := readme[i:]
	if j := strings.Index(section[1:], "\n#"); j >= 0 {
		section = section[:j+1]
	}
	for _, f := range flags {
		if !strings.Contains(section, "`--"+f[1]+"`") {
			t.Errorf("README.md's dev flags do not list --%s", f[1])
		}
	}
}

// With dev's defaults the report's quality line covers at least 500
// decisions whatever the hour: the accelerated window (--live-speed ×
// --report-after of simulated time) of the default world holds that many
// in its quietest hour of the day.
func TestDevDefaultsCoverFiveHundredDecisions(t *testing.T) {
	atoi := func(s setting) int {
		n, err := strconv.Atoi(s.Default)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	w, err := sim.New(sim.Config{Seed: uint64(atoi(sSimSeed)), Users: atoi(sSimUsers), Streamers: atoi(sSimStreamers), Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	window := time.Duration(devLiveSpeed * float64(devReportAfter))
	from := w.Config().Start.Add(2 * 24 * time.Hour) // habits settled
	var times []time.Time
	if _, err := w.Run(context.Background(), from, from.Add(24*time.Hour+window), ignoreEvent, func(c sim.Choice) error {
		times = append(times, c.TS)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for h := 0; h < 24; h++ {
		lo := from.Add(time.Duration(h) * time.Hour)
		n := 0
		for _, ts := range times {
			if !ts.Before(lo) && ts.Before(lo.Add(window)) {
				n++
			}
		}
		if n < 500 {
			t.Errorf("a report window starting at %02d:00 UTC covers %d decisions, want at least 500", h, n)
		}
	}
}

func ignoreEvent(lr.Event) error { return nil }

// The demo report's reason for an item keeps the debug response's order
// of contributions (positive ones first, largest first, whichever model
// made them), leaves out effects under 0.05 and shows at most three.
func TestDevWhyKeepsPositiveContributionsFirst(t *testing.T) {
	it := api.RecallItem{Debug: &api.ItemDebug{
		Why: []lr.Contribution{
			{Feature: "repeat_top", Effect: 0.41}, {Feature: "log_viewers", Effect: 0.04}, {Feature: "followed", Effect: 0.12},
			{Feature: "mf_score", Effect: -0.6}, {Feature: "has_ncf", Effect: -0.2},
		},
		Live: api.LiveFeatures{Viewers: 12, Category: "music", AgeS: 5400},
	}}
	if got, want := why(it), "(repeat_top +0.41, followed +0.12, mf_score -0.60; 12 viewers, music, live 1h30m)"; got != want {
		t.Fatalf("why %q, want %q", got, want)
	}
	if got := why(api.RecallItem{}); got != "" {
		t.Fatalf("why of an item without debug: %q", got)
	}
}
