package live_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// TestOnWatchNamesUsersWhoseHistoryChanged: OnWatch hears, once per chunk,
// each user whose join or leave counted, and not a viewer event that was
// ignored (a stream not live, a repeated join) nor other event types.
func TestOnWatchNamesUsersWhoseHistoryChanged(t *testing.T) {
	var got [][]lr.UserID
	s := live.New(live.Config{Ordinals: lr.NewOrdinals(), OnWatch: func(us []lr.UserID) { got = append(got, slices.Clone(us)) }})
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	n := 0
	ev := func(typ lr.EventType, user int64, at time.Duration) lr.Event {
		n++
		return lr.Event{ID: fmt.Sprint(n), Type: typ, TS: t0.Add(at), StreamerID: 7, StreamID: 70, UserID: lr.UserID(user), V: 1}
	}
	s.Apply([]lr.Event{ev(lr.EventViewerJoined, 1, 0)}) // stream not live yet: ignored
	s.Apply([]lr.Event{ev(lr.EventStreamStarted, 0, time.Second), ev(lr.EventFollowCreated, 5, time.Second)})
	s.Apply([]lr.Event{
		ev(lr.EventViewerJoined, 1, 2*time.Second),
		ev(lr.EventViewerJoined, 2, 2*time.Second),
		ev(lr.EventViewerJoined, 1, 3*time.Second), // repeated join: ignored
		ev(lr.EventViewerLeft, 1, 4*time.Second),
		ev(lr.EventGiftSent, 3, 4*time.Second),
	})
	want := [][]lr.UserID{{1, 2}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("OnWatch calls %v, want %v", got, want)
	}
}

// TestOnWatchHearsLoadedWatches: a user whose stored watches a load
// (Ensure) brings in is named to OnWatch too, so a replica that started
// after those watches learns of them; a user with nothing stored is not.
func TestOnWatchHearsLoadedWatches(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	evs := []lr.Event{w.ev(lr.EventStreamStarted, 0, 1, 0)}
	evs = append(evs, w.watch(10, 20, 1, 7)...)
	if _, err := db.WriteEventsExpiring(ctx, evs, 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []lr.UserID
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: pgLoader{db}, LoadWait: time.Minute, Clock: newClock(w.t0.Add(time.Hour)).now,
		OnWatch: func(us []lr.UserID) { mu.Lock(); got = append(got, us...); mu.Unlock() }})
	if out := st.Ensure(ctx, 7); out != live.LoadOK {
		t.Fatalf("load of user 7: %s", out)
	}
	if out := st.Ensure(ctx, 8); out != live.LoadOK {
		t.Fatalf("load of user 8: %s", out)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[7]" {
		t.Fatalf("OnWatch heard %v, want [7]", got)
	}
}
