package live

import (
	"fmt"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

// A long stream with many passing viewers keeps the leave marks of the
// last leftMarkTTL only, and a join older than a remembered leave is still
// ignored.
func TestLeaveMarksArePruned(t *testing.T) {
	ords := lr.NewOrdinals()
	st := New(Config{Ordinals: ords})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st.Apply([]lr.Event{{ID: "s", Type: lr.EventStreamStarted, TS: t0, StreamerID: 1, StreamID: 1, V: 1}})
	const users, gap = 10_000, 200 * time.Millisecond // 2,000 s of event time
	var evs []lr.Event
	for i := 0; i < users; i++ {
		at := t0.Add(time.Duration(i) * gap)
		evs = append(evs,
			lr.Event{ID: fmt.Sprint("j", i), Type: lr.EventViewerJoined, TS: at, StreamerID: 1, StreamID: 1, UserID: lr.UserID(i + 1), V: 1},
			lr.Event{ID: fmt.Sprint("l", i), Type: lr.EventViewerLeft, TS: at.Add(gap / 2), StreamerID: 1, StreamID: 1, UserID: lr.UserID(i + 1), V: 1})
	}
	st.Apply(evs)
	ord, _ := ords.Lookup(1)
	c := st.streamers[ord].cur
	recent := int(leftMarkTTL / gap) // leaves within the TTL of the newest
	if n := len(c.viewers); n > 2*recent+64 {
		t.Fatalf("%d marks kept for %d passing viewers, want at most %d (the last %v's leaves, twice over)", n, users, 2*recent+64, leftMarkTTL)
	}
	if c.nViewers != 0 {
		t.Fatalf("%d viewers present, want 0", c.nViewers)
	}
	// The last user's leave is remembered: a join from before it is late
	// and ignored.
	last := t0.Add(time.Duration(users-1) * gap)
	st.Apply([]lr.Event{{ID: "late", Type: lr.EventViewerJoined, TS: last.Add(-time.Second), StreamerID: 1, StreamID: 1, UserID: users, V: 1}})
	if f, _ := st.FeaturesAt(ord, last.Add(time.Second)); f.Viewers != 0 {
		t.Fatalf("a join older than the remembered leave counted: %d viewers", f.Viewers)
	}
}
