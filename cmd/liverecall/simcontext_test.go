package main

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/sim"
)

// dev's request for a decision carries the decision's context as a client
// sends it (device, locale, UTC offset), the offset shifted by the live
// world's lead so that the service's local time is the simulated one; a
// world without context sends none.
func TestChoiceRequestCarriesTheDecisionsContext(t *testing.T) {
	ts := time.Date(2026, 3, 7, 21, 30, 0, 0, time.UTC) // the decision, in the world's time
	now := ts.Add(50 * time.Minute)                     // the wall clock, the world 50 minutes behind
	offset := -3 * time.Hour                            // the user's (Brasília)
	rc := lr.RequestContext{Device: lr.DeviceTV, Language: "pt", Country: "BR"}.AtLocalTime(ts.Add(offset))
	var body struct {
		UserID  int64 `json:"user_id"`
		K       int   `json:"k"`
		Context *struct {
			Device string `json:"device"`
			Locale string `json:"locale"`
			Offset *int   `json:"utc_offset_minutes"`
		} `json:"context"`
	}
	if err := json.Unmarshal([]byte(choiceRequest(sim.Choice{TS: ts, User: 42, Context: rc}, offset, now)), &body); err != nil {
		t.Fatal(err)
	}
	if body.UserID != 42 || body.K != 10 || body.Context == nil || body.Context.Device != "tv" || body.Context.Locale != "pt-BR" || body.Context.Offset == nil {
		t.Fatalf("%+v", body)
	}
	// The service reads now + offset: the simulated local time.
	local := now.Add(time.Duration(*body.Context.Offset) * time.Minute)
	if local.Hour() != rc.Hour || local.Weekday() != rc.Weekday {
		t.Fatalf("offset %d minutes: the service reads %s, the world's local time is %02d:xx on %s", *body.Context.Offset, local, rc.Hour, rc.Weekday)
	}
	// A lead beyond the offsets a clock can have: the user's own.
	if err := json.Unmarshal([]byte(choiceRequest(sim.Choice{TS: ts, User: 42, Context: rc}, offset, ts.Add(20*time.Hour))), &body); err != nil {
		t.Fatal(err)
	}
	if *body.Context.Offset != -180 {
		t.Fatalf("offset %d, want the user's -180", *body.Context.Offset)
	}
	body.Context = nil
	if err := json.Unmarshal([]byte(choiceRequest(sim.Choice{TS: ts, User: 42}, 0, now)), &body); err != nil || body.Context != nil {
		t.Fatalf("no context: %+v %v", body, err)
	}
}

// simulate --context simulates the world with request context and records
// it: a run without --context does not take that world's start for its
// own.
func TestSimulateWithContextIsRecorded(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	app, _, errb := testApp(map[string]string{"DATABASE_URL": url})
	if code := Run(ctx, app, []string{"simulate", "--days", "1", "--streamers", "30", "--users", "300", "--seed", "4", "--start", "2026-02-01", "--to-postgres", "--context"}); code != 0 {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, ok, err := db.SimWorldRecorded(ctx)
	if err != nil || !ok || !w.Context || w.Seed != 4 {
		t.Fatalf("recorded %+v %v %v, want the world with context", w, ok, err)
	}
	if _, ok := recordedWorldFor(ctx, app, simConfig{databaseURL: url, seed: 4, streamers: 30, users: 300}); ok {
		t.Fatal("a run without --context went on with the world with context")
	}
	if rec, ok := recordedWorldFor(ctx, app, simConfig{databaseURL: url, seed: 4, streamers: 30, users: 300, context: true}); !ok || !rec.Start.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("a run with --context: %+v %v, want the recorded world", rec, ok)
	}
}
