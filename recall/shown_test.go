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
		at := t0.Add(time.Duration(i) * time.Second)
		l.add(7, page(i), at, at, 10*time.Minute)
		caps = append(caps, cap(l.shard(7).users[7]))
	}
	got := map[lr.StreamerID]lastShown{}
	l.recentInto(7, t0.Add(-time.Second), got)
	if len(got) != maxPerUser {
		t.Fatalf("%d remembered, want %d", len(got), maxPerUser)
	}
	_, newest := got[lr.StreamerID(100*20-1)]
	_, older := got[lr.StreamerID(100*20-maxPerUser-1)]
	if !newest || older {
		t.Fatal("not the newest streamers")
	}
	if last := caps[len(caps)-1]; caps[40] != last {
		t.Fatalf("the full log's array changed capacity from %d to %d", caps[40], last)
	}
	// Outside the window nothing is remembered.
	late := map[lr.StreamerID]lastShown{}
	if l.recentInto(7, t0.Add(time.Hour), late); len(late) != 0 {
		t.Fatalf("%d remembered after the window", len(late))
	}
}

// A user whose window has passed is forgotten by the sweep of their shard,
// which runs as other users of the shard are written.
func TestShownLogForgetsIdleUsers(t *testing.T) {
	l := newShownLog()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.add(5, []lr.StreamerID{1, 2}, t0, t0, time.Minute)
	for i := 1; i <= 64; i++ {
		at := t0.Add(2 * time.Minute)
		l.add(lr.UserID(5+i*shownShards), []lr.StreamerID{3}, at, at, time.Minute)
	}
	sh := l.shard(5)
	if _, ok := sh.users[5]; ok {
		t.Fatal("user 5 is still remembered after the window and a sweep of its shard")
	}
	if len(sh.users) != 64 {
		t.Fatalf("%d users in the shard, want the 64 active ones", len(sh.users))
	}
}
