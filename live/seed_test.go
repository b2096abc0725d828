package live_test

import (
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/live/livetest"
)

// TestSeededWatchReplayedShowsOnce: a watch seeded from the store and then
// replayed from the topics (the start of a replica whose lookback overlaps
// the seeded history) is held once, and closed by the replayed leave; a
// join of another stream at the same time is a watch of its own.
func TestSeededWatchReplayedShowsOnce(t *testing.T) {
	st := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	t0 := livetest.T0
	ev := func(id string, typ lr.EventType, at time.Duration, streamer lr.StreamerID) lr.Event {
		return lr.Event{ID: id, Type: typ, TS: t0.Add(at), StreamerID: streamer, StreamID: lr.StreamID(streamer * 10), UserID: 5, V: 1}
	}
	st.SeedWatch(5, 1, 10, t0.Add(-time.Hour), t0.Add(-30*time.Minute)) // older than the replay
	st.SeedWatch(5, 2, 20, t0.Add(time.Minute), time.Time{})            // open, replayed below
	st.Apply([]lr.Event{
		ev("a", lr.EventStreamStarted, 0, 2), ev("b", lr.EventStreamStarted, 0, 3),
		ev("c", lr.EventViewerJoined, time.Minute, 2), ev("d", lr.EventViewerJoined, time.Minute, 3),
		ev("e", lr.EventViewerLeft, 2*time.Minute, 2),
	})
	h := st.History(5)
	want := []live.Watch{
		{StreamerID: 3, StreamID: 30, JoinedAt: t0.Add(time.Minute)},
		{StreamerID: 2, StreamID: 20, JoinedAt: t0.Add(time.Minute), LeftAt: t0.Add(2 * time.Minute)},
		{StreamerID: 1, StreamID: 10, JoinedAt: t0.Add(-time.Hour), LeftAt: t0.Add(-30 * time.Minute)},
	}
	if len(h) != len(want) {
		t.Fatalf("history %+v, want %+v", h, want)
	}
	for i := range want {
		if h[i].StreamerID != want[i].StreamerID || h[i].StreamID != want[i].StreamID ||
			!h[i].JoinedAt.Equal(want[i].JoinedAt) || !h[i].LeftAt.Equal(want[i].LeftAt) {
			t.Errorf("history[%d] = %+v, want %+v", i, h[i], want[i])
		}
	}
}

// PostgreSQL keeps microseconds and events carry nanoseconds: a watch
// seeded from the store and replayed from the topics is the same watch
// although the two times differ by under a microsecond, either way.
func TestSeededWatchReplayedWithNanosecondsShowsOnce(t *testing.T) {
	for _, ns := range []time.Duration{123, 789} { // rounded down, rounded up by the store
		st := live.New(live.Config{Ordinals: lr.NewOrdinals()})
		joined := livetest.T0.Add(time.Minute + ns)
		st.SeedWatch(5, 2, 20, joined.Round(time.Microsecond), time.Time{})
		st.Apply([]lr.Event{
			{ID: "a", Type: lr.EventStreamStarted, TS: livetest.T0, StreamerID: 2, StreamID: 20, V: 1},
			{ID: "b", Type: lr.EventViewerJoined, TS: joined, StreamerID: 2, StreamID: 20, UserID: 5, V: 1},
		})
		if h := st.History(5); len(h) != 1 {
			t.Errorf("join %v after the minute: history %+v, want the one watch", ns, h)
		}
	}
}
