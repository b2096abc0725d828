package live_test

import (
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/live/livetest"
)

// TestEndBeforeStart: a stream whose stream.ended arrives before its
// stream.started (stamped earlier) is never made live, by the start or by
// any later-arriving event of that stream, and the outcome is the one the
// events give in the order of their time stamps.
func TestEndBeforeStart(t *testing.T) {
	t0 := livetest.T0
	ev := func(id string, typ lr.EventType, at time.Duration, streamer lr.StreamerID, stream lr.StreamID) lr.Event {
		e := lr.Event{ID: id, Type: typ, TS: t0.Add(at), StreamerID: streamer, StreamID: stream, V: 1}
		if typ == lr.EventViewerJoined {
			e.UserID = 5
		}
		return e
	}
	end := 10 * time.Minute
	arrived := []lr.Event{
		// Streamer 7: the end of stream 70, then its start 60 s earlier,
		// then its heartbeats (before and after the end).
		ev("7-end", lr.EventStreamEnded, end, 7, 70),
		ev("7-start", lr.EventStreamStarted, end-time.Minute, 7, 70),
		ev("7-hb1", lr.EventStreamHeartbeat, end-30*time.Second, 7, 70),
		ev("7-hb2", lr.EventStreamHeartbeat, end+10*time.Second, 7, 70),
		// Streamer 8 is live with stream 80; stream 81 ends, then its
		// start arrives: 81 began after 80, so 80 is over, and 81 too.
		ev("8-start80", lr.EventStreamStarted, 0, 8, 80),
		ev("8-end81", lr.EventStreamEnded, end, 8, 81),
		ev("8-start81", lr.EventStreamStarted, end-time.Minute, 8, 81),
		ev("8-hb81", lr.EventStreamHeartbeat, end-time.Second, 8, 81),
		// Streamer 9 is a control: its start, then its end, in order.
		ev("9-start", lr.EventStreamStarted, end-time.Minute, 9, 90),
		ev("9-end", lr.EventStreamEnded, end, 9, 90),
	}
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	for i := range arrived {
		st.Apply(arrived[i : i+1])
		if ids := liveIDs(t, ords, st.Snapshot()); i < 4 && len(ids) != 0 {
			t.Fatalf("after %s: live %v, want none", arrived[i].ID, ids)
		}
	}
	if ids := liveIDs(t, ords, st.Snapshot()); len(ids) != 0 {
		t.Errorf("live %v, want none: every stream has ended", ids)
	}
	for _, id := range []lr.StreamerID{7, 8, 9} {
		if f, ok := st.FeaturesOf(id); ok {
			t.Errorf("streamer %d has features of stream %d although it ended", id, f.StreamID)
		}
	}
	// The same events in time order give the same state.
	ordered := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	sorted := append([]lr.Event(nil), arrived...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j].TS.Before(sorted[j-1].TS); j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	ordered.Apply(sorted)
	if a, b := st.Dump(livetest.Now), ordered.Dump(livetest.Now); a != b {
		t.Errorf("out of order:\n%s\n--- in time order:\n%s", a, b)
	}
	// A join to the stream that ended is not a watch.
	st.Apply([]lr.Event{ev("7-join", lr.EventViewerJoined, end-20*time.Second, 7, 70)})
	if h := st.History(5); h != nil {
		t.Errorf("a join to an ended stream made history: %+v", h)
	}
}

// TestEndedWindowBounded: only the last EndedWindow ends are remembered.
func TestEndedWindowBounded(t *testing.T) {
	t0 := livetest.T0
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords, EndedWindow: 2})
	for i, s := range []lr.StreamerID{1, 2, 3} {
		st.Apply([]lr.Event{{ID: "end" + itoa(int64(i)), Type: lr.EventStreamEnded, TS: t0, StreamerID: s, StreamID: lr.StreamID(s * 10), V: 1}})
	}
	for _, s := range []lr.StreamerID{1, 2, 3} {
		st.Apply([]lr.Event{{ID: "start" + itoa(int64(s)), Type: lr.EventStreamStarted, TS: t0.Add(-time.Minute), StreamerID: s, StreamID: lr.StreamID(s * 10), V: 1}})
	}
	// Streamer 1's end fell out of the window of 2; 2 and 3 are remembered.
	if ids := liveIDs(t, ords, st.Snapshot()); len(ids) != 1 || ids[0] != 1 {
		t.Errorf("live %v, want [1]", ids)
	}
}
