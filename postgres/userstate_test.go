package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// TestUserState: one user's follows (active, and unfollows since the cut)
// and watches (sessions and open joins since the cut, oldest first, the
// newest perUser), nothing of other users; a user with nothing stored is
// empty; a closed pool fails, a cancelled context returns its error.
func TestUserState(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)
	n := 0
	ev := func(typ lr.EventType, min int, streamer, user int64) lr.Event {
		n++
		return lr.Event{ID: fmt.Sprintf("u%02d", n), Type: typ, TS: t0.Add(time.Duration(min) * time.Minute),
			StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(100 + streamer), UserID: lr.UserID(user), V: 1}
	}
	evs := []lr.Event{ev(lr.EventStreamStarted, 0, 1, 0), ev(lr.EventStreamStarted, 0, 2, 0), ev(lr.EventStreamStarted, 0, 3, 0)}
	for i, s := range []int64{1, 2, 3, 1} { // user 7: four sessions, at minutes 1, 3, 5, 7
		evs = append(evs, ev(lr.EventViewerJoined, 1+2*i, s, 7), ev(lr.EventViewerLeft, 2+2*i, s, 7))
	}
	evs = append(evs, ev(lr.EventViewerJoined, 9, 2, 7)) // and still watching
	evs = append(evs, ev(lr.EventViewerJoined, 4, 3, 8)) // user 8: still watching
	evs = append(evs,
		ev(lr.EventFollowCreated, 1, 1, 7), ev(lr.EventFollowCreated, 1, 2, 7), ev(lr.EventFollowCreated, 1, 3, 7),
		ev(lr.EventFollowDeleted, 2, 2, 7), // before the cut: not read
		ev(lr.EventFollowDeleted, 6, 3, 7), // after the cut: read, inactive
		ev(lr.EventFollowCreated, 1, 9, 8)) // another user's
	if _, err := db.WriteEventsExpiring(ctx, evs, 0); err != nil {
		t.Fatal(err)
	}
	st, err := db.UserState(ctx, 7, t0.Add(3*time.Minute), 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range st.Follows {
		got = append(got, fmt.Sprintf("f%d %v %d", f.StreamerID, f.Active, int(f.UpdatedAt.Sub(t0)/time.Minute)))
	}
	slices.Sort(got)
	for _, r := range st.Watches {
		end := -1
		if !r.EndedAt.IsZero() {
			end = int(r.EndedAt.Sub(t0) / time.Minute)
		}
		if r.UserID != 7 {
			t.Errorf("watch of user %d", r.UserID)
		}
		got = append(got, fmt.Sprintf("s%d/%d %d-%d", r.StreamerID, r.StreamID, int(r.StartedAt.Sub(t0)/time.Minute), end))
	}
	want := []string{"f1 true 1", "f3 false 6", "s3/103 5-6", "s1/101 7-8", "s2/102 9--1"}
	if !slices.Equal(got, want) {
		t.Errorf("UserState(7): %q; want %q", got, want)
	}

	// UserStates reads the same for a batch of users (duplicates, unknown
	// users included), at several cuts and lengths.
	for _, c := range []struct {
		since time.Time
		n     int
	}{{t0.Add(3 * time.Minute), 3}, {t0, 20}, {t0, 2}, {t0.Add(8 * time.Minute), 1}} {
		batch, err := db.UserStates(ctx, []lr.UserID{7, 8, 12345, 7}, c.since, c.n)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) != 3 {
			t.Errorf("UserStates since %v n %d: %d users, want 3", c.since, c.n, len(batch))
		}
		for _, u := range []lr.UserID{7, 8, 12345} {
			one, err := db.UserState(ctx, u, c.since, c.n)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := batch[u]
			slices.SortFunc(got.Follows, func(a, b postgres.FollowRow) int { return int(a.StreamerID - b.StreamerID) })
			slices.SortFunc(one.Follows, func(a, b postgres.FollowRow) int { return int(a.StreamerID - b.StreamerID) })
			if !ok || fmt.Sprint(got) != fmt.Sprint(one) {
				t.Errorf("UserStates since %v n %d, user %d:\n%+v\nUserState:\n%+v", c.since, c.n, u, got, one)
			}
		}
	}
	if got, err := db.UserStates(ctx, nil, t0, 20); err != nil || len(got) != 0 {
		t.Errorf("UserStates of no users: %v, %v", got, err)
	}

	if st, err := db.UserState(ctx, 12345, t0, 20); err != nil || len(st.Follows)+len(st.Watches) != 0 {
		t.Errorf("UserState of a user with nothing stored: %+v, %v", st, err)
	}

	// The server goes away (here: the pool is closed).
	down, err := postgres.Open(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	down.Close()
	if _, err := down.UserState(ctx, 7, t0, 20); err == nil {
		t.Error("UserState on a closed pool: no error")
	}
	if _, err := down.UserStates(ctx, []lr.UserID{7}, t0, 20); err == nil {
		t.Error("UserStates on a closed pool: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.UserState(cctx, 7, t0, 20); !errors.Is(err, context.Canceled) {
		t.Errorf("UserState with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := db.UserStates(cctx, []lr.UserID{7}, t0, 20); !errors.Is(err, context.Canceled) {
		t.Errorf("UserStates with a cancelled context: %v, want context.Canceled", err)
	}
}
