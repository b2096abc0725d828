package postgres_test

import (
	"context"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestImpressionsIdempotentAndLabeled(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	if made, err := db.EnsureImpressionPartitions(ctx, 3); err != nil || made != 3 {
		t.Fatalf("partitions made %d, err %v", made, err)
	}
	if made, _ := db.EnsureImpressionPartitions(ctx, 3); made != 0 {
		t.Fatalf("second call made %d partitions, want 0", made)
	}
	imps := []lr.Impression{
		{RequestID: "r1", UserID: 1, StreamerID: 10, StreamID: 100, Position: 0, Score: 0.9, Channels: []string{"mf"}, ModelVersions: "mf=a", ShownAt: now, Features: []float32{1, 2.5}},
		{RequestID: "r1", UserID: 1, StreamerID: 11, StreamID: 110, Position: 1, Score: 0.5, Channels: []string{"trending", "fresh"}, ShownAt: now},
		{RequestID: "r2", UserID: 2, StreamerID: 10, StreamID: 100, Position: 0, Score: 0.7, ShownAt: now.Add(-48 * time.Hour)}, // default partition
	}
	for i := 0; i < 2; i++ { // the replay changes nothing
		if err := db.WriteImpressions(ctx, imps); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	db.Pool.QueryRow(ctx, `SELECT count(*) FROM impressions`).Scan(&n)
	if n != 3 {
		t.Fatalf("%d impressions stored, want 3", n)
	}
	// User 1 watched streamer 10 for 120 s starting a minute after the
	// impression; streamer 11 only for 5 s.
	_, err := db.WriteEvents(ctx, []lr.Event{
		{ID: "j1", Type: lr.EventViewerJoined, TS: now.Add(time.Minute), StreamerID: 10, StreamID: 100, UserID: 1, V: 1},
		{ID: "l1", Type: lr.EventViewerLeft, TS: now.Add(3 * time.Minute), StreamerID: 10, StreamID: 100, UserID: 1, V: 1},
		{ID: "j2", Type: lr.EventViewerJoined, TS: now.Add(time.Minute), StreamerID: 11, StreamID: 110, UserID: 1, V: 1},
		{ID: "l2", Type: lr.EventViewerLeft, TS: now.Add(time.Minute + 5*time.Second), StreamerID: 11, StreamID: 110, UserID: 1, V: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[lr.StreamerID]bool{}
	err = db.LabeledImpressions(ctx, now.Add(-time.Hour), 10*time.Minute, 30, func(li postgres.LabeledImpression) error {
		got[li.StreamerID] = li.Watched
		if li.StreamerID == 10 && (len(li.Features) != 2 || li.Features[1] != 2.5) {
			t.Errorf("features %v", li.Features)
		}
		if li.StreamerID == 11 && len(li.Channels) != 2 {
			t.Errorf("channels %v", li.Channels)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !got[10] || got[11] {
		t.Fatalf("labels %v, want 10 watched and 11 not", got)
	}
}

// An impression's context is stored in the ctx_* columns (NULL for what
// it does not know) and LabeledImpressions gives it back; an impression
// without one reads back without one.
func TestImpressionsStoreTheContext(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	full := &lr.RequestContext{LocalTime: true, Hour: 23, Weekday: time.Saturday, Device: lr.DeviceTablet, Language: "pt", Country: "BR"}
	part := &lr.RequestContext{Language: "es", Country: "419"}
	imps := []lr.Impression{
		{RequestID: "r1", UserID: 1, StreamerID: 10, Position: 0, ShownAt: now, Context: full},
		{RequestID: "r1", UserID: 1, StreamerID: 11, Position: 1, ShownAt: now, Context: full},
		{RequestID: "r2", UserID: 2, StreamerID: 10, Position: 0, ShownAt: now, Context: part},
		{RequestID: "r3", UserID: 3, StreamerID: 10, Position: 0, ShownAt: now},
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM impressions WHERE request_id = 'r2' AND ctx_hour IS NULL AND ctx_weekday IS NULL AND ctx_device IS NULL AND ctx_language = 'es'`).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("r2's unknown context fields stored as NULL: %d rows, %v", nulls, err)
	}
	got := map[string]*lr.RequestContext{}
	err := db.LabeledImpressions(ctx, now.Add(-time.Hour), time.Minute, 30, func(li postgres.LabeledImpression) error {
		got[li.RequestID+"/"+string(rune('0'+li.Position))] = li.Context
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]*lr.RequestContext{"r1/0": full, "r1/1": full, "r2/0": part, "r3/0": nil} {
		g := got[key]
		if (g == nil) != (want == nil) || (g != nil && *g != *want) {
			t.Errorf("%s: context %+v, want %+v", key, g, want)
		}
	}
	// The database refuses an hour out of range (the writer never sends one).
	bad := []lr.Impression{{RequestID: "r4", UserID: 1, StreamerID: 1, ShownAt: now, Context: &lr.RequestContext{LocalTime: true, Hour: 24}}}
	if err := db.WriteImpressions(ctx, bad); err == nil {
		t.Fatal("hour 24 stored")
	}
}

// The labels of every objective: the longest watch begun within the window
// (seconds), a gift during such a watch, a follow within the window; a
// gift outside the watch, a watch begun after the window or a follow from
// before the impression do not count.
func TestLabeledImpressionsObjectives(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	var imps []lr.Impression
	for s := lr.StreamerID(1); s <= 4; s++ {
		imps = append(imps, lr.Impression{RequestID: "r", UserID: 1, StreamerID: s, StreamID: lr.StreamID(s), Position: int(s), ShownAt: now})
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	ev := func(id string, typ lr.EventType, at time.Duration, s lr.StreamerID) lr.Event {
		return lr.Event{ID: id, Type: typ, TS: now.Add(at), StreamerID: s, StreamID: lr.StreamID(s), UserID: 1, V: 1, Amount: 1}
	}
	_, err := db.WriteEvents(ctx, []lr.Event{
		// Streamer 1: watches of 60 s and 200 s begun in the window, a
		// gift during the second, a follow in the window.
		ev("j1", lr.EventViewerJoined, time.Minute, 1), ev("l1", lr.EventViewerLeft, 2*time.Minute, 1),
		ev("j2", lr.EventViewerJoined, 3*time.Minute, 1), ev("l2", lr.EventViewerLeft, 3*time.Minute+200*time.Second, 1),
		ev("g1", lr.EventGiftSent, 4*time.Minute, 1),
		ev("f1", lr.EventFollowCreated, 5*time.Minute, 1),
		// Streamer 2: a 20 s watch, a gift after it ended, a follow
		// after the window.
		ev("j3", lr.EventViewerJoined, time.Minute, 2), ev("l3", lr.EventViewerLeft, time.Minute+20*time.Second, 2),
		ev("g2", lr.EventGiftSent, 5*time.Minute, 2),
		ev("f2", lr.EventFollowCreated, 20*time.Minute, 2),
		// Streamer 3: a watch begun after the window, with a gift; a
		// follow from before the impression.
		ev("j4", lr.EventViewerJoined, 11*time.Minute, 3), ev("l4", lr.EventViewerLeft, 15*time.Minute, 3),
		ev("g3", lr.EventGiftSent, 12*time.Minute, 3),
		ev("f3", lr.EventFollowCreated, -time.Minute, 3),
	})
	if err != nil {
		t.Fatal(err)
	}
	type labels struct {
		watched      bool
		secs         float64
		gift, follow bool
	}
	got := map[lr.StreamerID]labels{}
	err = db.LabeledImpressions(ctx, now.Add(-time.Hour), 10*time.Minute, 30, func(li postgres.LabeledImpression) error {
		got[li.StreamerID] = labels{li.Watched, li.WatchSeconds, li.Gift, li.Follow}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[lr.StreamerID]labels{1: {true, 200, true, true}, 2: {false, 20, false, false}, 3: {}, 4: {}}
	for s, w := range want {
		if got[s] != w {
			t.Errorf("streamer %d: labels %+v, want %+v", s, got[s], w)
		}
	}
}
