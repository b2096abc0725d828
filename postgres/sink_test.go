package postgres_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
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
		ev(lr.EventViewerLeft, 44, 1, 10, 102, 0),   // no join: waits for one
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
	want1 := postgres.SinkResult{New: 10, Streams: 1, Sessions: 1, Gifts: 1, Follows: 2, PendingLeaves: 1}
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

// pairingScript is a sequence of viewer events that pairs only if joins and
// leaves are paired by (user, stream) whatever order they arrive in:
// same-second leave and join (at another stream, and at the same stream with
// the join first), a leave before its join, a duplicate join, a leave that
// never gets a join, a zero-length session and a session closed by the end
// of its stream. want are the sessions it must write, each exactly once.
func pairingScript(t0 time.Time) (evs []lr.Event, want []string) {
	n := 0
	ev := func(typ lr.EventType, sec int, stream, user int64) lr.Event {
		n++
		return lr.Event{ID: fmt.Sprintf("p%02d", n), Type: typ, TS: t0.Add(time.Duration(sec) * time.Second),
			StreamerID: lr.StreamerID(stream / 10), StreamID: lr.StreamID(stream), UserID: lr.UserID(user), V: 1}
	}
	const a, b, c = 10, 20, 30 // streams of streamers 1, 2, 3
	evs = []lr.Event{
		ev(lr.EventStreamStarted, 0, a, 0),
		ev(lr.EventStreamStarted, 0, b, 0),
		ev(lr.EventStreamStarted, 0, c, 0),
		// User 1 leaves a and joins b in the same second; the join at b
		// arrives first (another partition).
		ev(lr.EventViewerJoined, 1, a, 1),
		ev(lr.EventViewerJoined, 60, b, 1),
		ev(lr.EventViewerLeft, 60, a, 1),
		ev(lr.EventViewerLeft, 120, b, 1),
		// User 1 at c: leaves and joins again in the same second, the join
		// written first.
		ev(lr.EventViewerJoined, 2, c, 1),
		ev(lr.EventViewerJoined, 30, c, 1),
		ev(lr.EventViewerLeft, 30, c, 1),
		ev(lr.EventViewerLeft, 90, c, 1),
		// User 2: the leave arrives before its join.
		ev(lr.EventViewerLeft, 50, a, 2),
		ev(lr.EventViewerJoined, 10, a, 2),
		// User 3: a duplicate join while in the stream.
		ev(lr.EventViewerJoined, 5, a, 3),
		ev(lr.EventViewerJoined, 20, a, 3),
		ev(lr.EventViewerLeft, 40, a, 3),
		// User 4: a leave whose join never comes (unpaired).
		ev(lr.EventViewerLeft, 30, b, 4),
		// User 5: joined and left in the same second.
		ev(lr.EventViewerJoined, 70, b, 5),
		ev(lr.EventViewerLeft, 70, b, 5),
		// User 6: still watching when a ends.
		ev(lr.EventViewerJoined, 15, a, 6),
		ev(lr.EventStreamEnded, 100, a, 0),
		// Much later: the watermark passes user 4's leave by the expiry.
		ev(lr.EventStreamHeartbeat, 1800, b, 0),
	}
	want = []string{
		"u1 s10 1-60", "u1 s20 60-120", "u1 s30 2-30", "u1 s30 30-90",
		"u2 s10 10-50", "u3 s10 5-40", "u5 s20 70-70", "u6 s10 15-100",
	}
	return evs, want
}

// sessionsOf lists watch_sessions as "u<user> s<stream> <start>-<end>" in
// seconds after t0, sorted.
func sessionsOf(t *testing.T, db *postgres.DB, t0 time.Time) []string {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT user_id, stream_id, started_at, ended_at, seconds FROM watch_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var u, s int64
		var a, b time.Time
		var secs int32
		if err := rows.Scan(&u, &s, &a, &b, &secs); err != nil {
			t.Fatal(err)
		}
		if int(secs) != int(b.Sub(a)/time.Second) {
			t.Errorf("session of user %d at %d: %d seconds from %v to %v", u, s, secs, a, b)
		}
		got = append(got, fmt.Sprintf("u%d s%d %d-%d", u, s, int(a.Sub(t0)/time.Second), int(b.Sub(t0)/time.Second)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	return got
}

// TestWriteEventsPairsByUserAndStream writes pairingScript cut into batches
// at every place (and one event per batch), on a fresh database each time:
// every session is written exactly once, and the leave without a join and
// the duplicate join are counted.
func TestWriteEventsPairsByUserAndStream(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	evs, want := pairingScript(t0)
	var cuts [][]int
	for i := 0; i < len(evs); i++ {
		cuts = append(cuts, []int{0, i}) // i == 0: one batch
	}
	every := make([]int, len(evs))
	for i := range every {
		every[i] = i
	}
	cuts = append(cuts, every)
	db := pgtest.Open(t)
	for _, cut := range cuts {
		if _, err := db.Pool.Exec(ctx, `TRUNCATE sink_events, streams, watch_sessions, pending_joins, pending_leaves`); err != nil {
			t.Fatal(err)
		}
		var total postgres.SinkResult
		for j, from := range cut {
			to := len(evs)
			if j+1 < len(cut) {
				to = cut[j+1]
			}
			if from == to {
				continue
			}
			r, err := db.WriteEvents(ctx, evs[from:to])
			if err != nil {
				t.Fatal(err)
			}
			total.Sessions += r.Sessions
			total.Unpaired += r.Unpaired
			total.DuplicateJoins += r.DuplicateJoins
		}
		name := fmt.Sprintf("batches starting at %v", cut)
		if got := sessionsOf(t, db, t0); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: sessions\n%q\nwant\n%q", name, got, want)
		}
		if total.Sessions != len(want) || total.Unpaired != 1 || total.DuplicateJoins != 1 {
			t.Errorf("%s: %d sessions, %d unpaired leaves, %d duplicate joins; want %d, 1, 1", name, total.Sessions, total.Unpaired, total.DuplicateJoins, len(want))
		}
		var pj, pl int
		if err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pending_joins), (SELECT count(*) FROM pending_leaves)`).Scan(&pj, &pl); err != nil {
			t.Fatal(err)
		}
		if pj != 0 || pl != 0 {
			t.Errorf("%s: %d joins and %d leaves still pending, want none", name, pj, pl)
		}
	}
}
