package recall

import (
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

// The already-shown log keeps a user's newest maxPerUser streamers within
// the window, and once full it reuses its array instead of reallocating.
func TestShownLogBounded(t *testing.T) {
	l := newShownLog()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	page := func(i int) []lr.StreamerID {
		ids := make([]lr.StreamerID, 20)
		for j := range ids {
			ids[j] = lr.StreamerID(i*20 + j)
		}
		return ids
	}
	var caps []int
	for i := 0; i < 100; i++ {
		l.add(7, page(i), t0.Add(time.Duration(i)*time.Second), 10*time.Minute)
		caps = append(caps, cap(l.users[7]))
	}
	got := l.recent(7, t0.Add(-time.Second))
	if len(got) != maxPerUser {
		t.Fatalf("%d remembered, want %d", len(got), maxPerUser)
	}
	if !got[lr.StreamerID(100*20-1)] || got[lr.StreamerID(100*20-maxPerUser-1)] {
		t.Fatal("not the newest streamers")
	}
	if last := caps[len(caps)-1]; caps[40] != last {
		t.Fatalf("the full log's array changed capacity from %d to %d", caps[40], last)
	}
	// Outside the window nothing is remembered.
	if n := len(l.recent(7, t0.Add(time.Hour))); n != 0 {
		t.Fatalf("%d remembered after the window", n)
	}
}
