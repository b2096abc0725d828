package postgres_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestWriteEventsPairsAndIsIdempotent(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	n := 0
	ev := func(typ lr.EventType, sec int, streamer, stream, user int64, amount float64) lr.Event {
		n++
		return lr.Event{ID: "e" + string(rune('a'+n/26)) + string(rune('a'+n%26)), Type: typ, TS: t0.Add(time.Duration(sec) * time.Second),
			StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(stream), UserID: lr.UserID(user), Amount: amount, V: 1}
	}
	b1 := []lr.Event{
		ev(lr.EventStreamStarted, 0, 1, 10, 0, 0),
		ev(lr.EventViewerJoined, 5, 1, 10, 100, 0),
		ev(lr.EventViewerJoined, 6, 1, 10, 101, 0),
		ev(lr.EventViewerLeft, 36, 1, 10, 101, 0), // 30 s, paired within the batch
		ev(lr.EventGiftSent, 40, 1, 10, 100, 2.5),
		ev(lr.EventFollowCreated, 41, 1, 0, 100, 0),
		ev(lr.EventFollowCreated, 42, 1, 0, 101, 0),
		ev(lr.EventFollowDeleted, 43, 1, 0, 101, 0), // same pair twice in one batch: the newest wins
		ev(lr.EventViewerLeft, 44, 1, 10, 102, 0),   // no join: unpaired
		ev(lr.EventStreamHeartbeat, 45, 1, 10, 0, 0),
	}
	b2 := []lr.Event{
		ev(lr.EventViewerLeft, 65, 1, 10, 100, 0), // 60 s, paired with a join of batch 1
		ev(lr.EventViewerJoined, 70, 1, 10, 100, 0),
		ev(lr.EventGiftSent, 71, 1, 10, 101, 1),
		ev(lr.EventStreamEnded, 100, 1, 10, 0, 0), // closes the rejoin of 100: 30 s
		ev(lr.EventStreamEnded, -5, 2, 20, 0, 0),  // end of a stream never started: nothing
	}
	r1, err := db.WriteEvents(ctx, b1)
	if err != nil {
		t.Fatal(err)
	}
	want1 := postgres.SinkResult{New: 10, Streams: 1, Sessions: 1, Gifts: 1, Follows: 2, Unpaired: 1}
	if r1 != want1 {
		t.Errorf("batch 1: %+v, want %+v", r1, want1)
	}
	// Batch 2 is written together with a replay of part of batch 1, as after
	// a crash before the offset commit.
	r2, err := db.WriteEvents(ctx, append(append([]lr.Event{}, b1[3:]...), b2...))
	if err != nil {
		t.Fatal(err)
	}
	if r2.New != len(b2) || r2.Replayed != len(b1)-3 || r2.Sessions != 2 || r2.Ended != 1 || r2.Gifts != 1 {
		t.Errorf("batch 2 with replay: %+v", r2)
	}
	c1, err := db.CountSinkRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := struct{ events, streams, ended, sessions, pending, gifts, follows, secs int64 }{15, 1, 1, 3, 0, 2, 1, 120}
	got := struct{ events, streams, ended, sessions, pending, gifts, follows, secs int64 }{c1.Events, c1.Streams, c1.Ended, c1.Sessions, c1.Pending, c1.Gifts, c1.Follows, c1.Seconds}
	if got != want || c1.GiftValue != 3.5 {
		t.Errorf("rows %+v (gift value %v), want %+v (3.5)", got, c1.GiftValue, want)
	}
	// Everything again: nothing changes.
	r3, err := db.WriteEvents(ctx, append(append([]lr.Event{}, b1...), b2...))
	if err != nil {
		t.Fatal(err)
	}
	if r3.New != 0 || r3.Replayed != len(b1)+len(b2) {
		t.Errorf("full replay: %+v", r3)
	}
	if c2, _ := db.CountSinkRows(ctx); c2 != c1 {
		t.Errorf("replay changed rows: %+v, was %+v", c2, c1)
	}
	var follows []lr.StreamerID
	err = db.StreamFollows(ctx, func(u lr.UserID, s lr.StreamerID, at time.Time) error {
		if u != 100 || !at.Equal(t0.Add(41*time.Second)) {
			t.Errorf("follow of %d at %v", u, at)
		}
		follows = append(follows, s)
		return nil
	})
	if err != nil || !reflect.DeepEqual(follows, []lr.StreamerID{1}) {
		t.Errorf("StreamFollows: %v, %v", follows, err)
	}
	var secs []int
	err = db.RecentWatches(ctx, t0, func(u lr.UserID, s lr.StreamerID, st lr.StreamID, a, b time.Time) error {
		secs = append(secs, int(b.Sub(a)/time.Second))
		return nil
	})
	if err != nil || !reflect.DeepEqual(secs, []int{60, 30, 30}) {
		t.Errorf("RecentWatches: %v, %v", secs, err)
	}
	var closer string
	if err := db.Pool.QueryRow(ctx, `SELECT event_id FROM watch_sessions WHERE user_id = 100 ORDER BY started_at DESC LIMIT 1`).Scan(&closer); err != nil ||
		closer != b2[3].ID+"/"+b2[1].ID {
		t.Errorf("session closed by the stream's end has event_id %q (%v), want %q", closer, err, b2[3].ID+"/"+b2[1].ID)
	}
}

func TestWriteEventsExpiry(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	ev := func(id string, typ lr.EventType, min int, streamer int64) lr.Event {
		return lr.Event{ID: id, Type: typ, TS: t0.Add(time.Duration(min) * time.Minute), StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(streamer * 10), V: 1}
	}
	end := func() (string, time.Time) {
		var reason *string
		var at *time.Time
		if err := db.Pool.QueryRow(ctx, `SELECT end_reason, ended_at FROM streams WHERE id = 30`).Scan(&reason, &at); err != nil {
			t.Fatal(err)
		}
		if reason == nil {
			return "open", time.Time{}
		}
		return *reason, *at
	}
	steps := []struct {
		evs        []lr.Event
		wantReason string
		wantAt     time.Time
	}{
		{[]lr.Event{ev("a", lr.EventStreamStarted, 0, 3), ev("b", lr.EventStreamHeartbeat, 1, 3)}, "open", time.Time{}},
		{[]lr.Event{ev("c", lr.EventStreamStarted, 20, 4)}, "expired", t0.Add(time.Minute)},
		{[]lr.Event{ev("d", lr.EventStreamHeartbeat, 21, 3)}, "open", time.Time{}},
		{[]lr.Event{ev("e", lr.EventStreamHeartbeat, 40, 4)}, "expired", t0.Add(21 * time.Minute)},
		{[]lr.Event{ev("f", lr.EventStreamEnded, 22, 3)}, "ended", t0.Add(22 * time.Minute)},
	}
	for i, s := range steps {
		if _, err := db.WriteEventsExpiring(ctx, s.evs, 10*time.Minute); err != nil {
			t.Fatal(err)
		}
		if r, at := end(); r != s.wantReason || !at.Equal(s.wantAt) {
			t.Errorf("step %d: stream 30 %s at %v, want %s at %v", i, r, at, s.wantReason, s.wantAt)
		}
	}
}
