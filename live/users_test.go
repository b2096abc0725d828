package live_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// pgLoader is the live.Loader the service builds over postgres.DB.UserState.
type pgLoader struct{ db *postgres.DB }

func (l pgLoader) LoadUser(ctx context.Context, u lr.UserID, since time.Time, n int) (live.UserRecord, error) {
	st, err := l.db.UserState(ctx, u, since, n)
	if err != nil {
		return live.UserRecord{}, err
	}
	var rec live.UserRecord
	for _, f := range st.Follows {
		rec.Follows = append(rec.Follows, live.Follow{StreamerID: f.StreamerID, Active: f.Active, At: f.UpdatedAt})
	}
	for _, w := range st.Watches {
		rec.Watches = append(rec.Watches, live.Watch{StreamerID: w.StreamerID, StreamID: w.StreamID, JoinedAt: w.StartedAt, LeftAt: w.EndedAt})
	}
	return rec, nil
}

// pgBatchLoader is the live.BatchLoader the service builds over
// postgres.DB.UserStates (and UserState for one user).
type pgBatchLoader struct {
	pgLoader
	batches atomic.Int64
	users   atomic.Int64
}

func (l *pgBatchLoader) LoadUsers(ctx context.Context, users []lr.UserID, since time.Time, n int) (map[lr.UserID]live.UserRecord, error) {
	l.batches.Add(1)
	l.users.Add(int64(len(users)))
	sts, err := l.db.UserStates(ctx, users, since, n)
	if err != nil {
		return nil, err
	}
	recs := map[lr.UserID]live.UserRecord{}
	for u, st := range sts {
		var rec live.UserRecord
		for _, f := range st.Follows {
			rec.Follows = append(rec.Follows, live.Follow{StreamerID: f.StreamerID, Active: f.Active, At: f.UpdatedAt})
		}
		for _, w := range st.Watches {
			rec.Watches = append(rec.Watches, live.Watch{StreamerID: w.StreamerID, StreamID: w.StreamID, JoinedAt: w.StartedAt, LeftAt: w.EndedAt})
		}
		recs[u] = rec
	}
	return recs, nil
}

// loaderKinds are the loaders the tests of loading run with: one user per
// load (a Loader), and batches (a BatchLoader).
var loaderKinds = []string{"single", "batch"}

func newLoader(kind string, db *postgres.DB) live.Loader {
	if kind == "batch" {
		return &pgBatchLoader{pgLoader: pgLoader{db}}
	}
	return pgLoader{db}
}

// clock is a settable Config.Clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func newClock(t time.Time) *clock    { c := &clock{}; c.set(t); return c }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

// userWorld writes a user's past into Postgres through the sink's path, and
// gives the events to apply to a State.
type userWorld struct {
	t0 time.Time
	n  int
}

func (w *userWorld) ev(typ lr.EventType, min int, streamer, user int64) lr.Event {
	w.n++
	return lr.Event{ID: fmt.Sprintf("w%03d", w.n), Type: typ, TS: w.t0.Add(time.Duration(min) * time.Minute),
		StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(100 + streamer), UserID: lr.UserID(user), V: 1}
}

func (w *userWorld) watch(min, until int, streamer, user int64) []lr.Event {
	return []lr.Event{w.ev(lr.EventViewerJoined, min, streamer, user), w.ev(lr.EventViewerLeft, until, streamer, user)}
}

// counter returns the value of the counter name (with label outcome, when
// given) in reg, 0 when it has none yet.
func counter(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if outcome == "" || len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestEvictedIdleUserComesBackWithSameHistory: a user whose history is in
// Postgres (written by the sink), part of which the State also replayed
// from the topics, is loaded at their first request with every watch once
// and their follows; idle for the idle window, they are evicted however
// many streamers they follow; events that arrive for them meanwhile (one
// of them also written by the sink) are merged with what their next
// request loads: the same history and follows plus the new watch, once.
func TestEvictedIdleUserComesBackWithSameHistory(t *testing.T) {
	for _, kind := range loaderKinds {
		t.Run(kind, func(t *testing.T) { testEvictedIdleUserComesBackWithSameHistory(t, kind) })
	}
}

func testEvictedIdleUserComesBackWithSameHistory(t *testing.T, kind string) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	var past []lr.Event
	for s := int64(1); s <= 4; s++ {
		past = append(past, w.ev(lr.EventStreamStarted, 0, s, 0))
	}
	past = append(past, w.watch(10, 20, 1, 7)...)
	past = append(past, w.watch(30, 40, 2, 7)...)
	past = append(past, w.watch(50, 55, 1, 7)...)
	past = append(past, w.ev(lr.EventFollowCreated, 5, 1, 7), w.ev(lr.EventFollowCreated, 6, 3, 7),
		w.ev(lr.EventFollowCreated, 7, 4, 7), w.ev(lr.EventFollowDeleted, 8, 4, 7))
	recent := w.watch(70, 80, 3, 7) // also replayed from the topics below
	if _, err := db.WriteEventsExpiring(ctx, append(append([]lr.Event{}, past...), recent...), 0); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	clk := newClock(w.t0.Add(2 * time.Hour))
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: newLoader(kind, db), UserIdle: 30 * time.Minute,
		LoadWait: time.Minute, Clock: clk.now, Registerer: reg})
	// The replay of the lookback: the streams and the recent watch only.
	var starts []lr.Event
	for _, e := range past {
		if e.Type == lr.EventStreamStarted {
			starts = append(starts, e)
		}
	}
	st.Apply(starts)
	st.Apply(recent)
	if st.Loaded(7) {
		t.Fatal("user 7 counts as loaded from events alone")
	}

	at := func(min int) time.Time { return w.t0.Add(time.Duration(min) * time.Minute) }
	wantHist := []live.Watch{
		{StreamerID: 3, StreamID: 103, JoinedAt: at(70), LeftAt: at(80)},
		{StreamerID: 1, StreamID: 101, JoinedAt: at(50), LeftAt: at(55)},
		{StreamerID: 2, StreamID: 102, JoinedAt: at(30), LeftAt: at(40)},
		{StreamerID: 1, StreamID: 101, JoinedAt: at(10), LeftAt: at(20)},
	}
	wantFollows := []lr.StreamerID{1, 3}
	check := func(when string, wantHist []live.Watch) {
		t.Helper()
		h := st.History(7)
		for i := range h { // the database gives UTC instants in the local zone
			h[i].JoinedAt, h[i].LeftAt = h[i].JoinedAt.UTC(), h[i].LeftAt.UTC()
		}
		if !reflect.DeepEqual(h, wantHist) {
			t.Errorf("%s: history\n%+v\nwant\n%+v", when, h, wantHist)
		}
		if f := st.Follows(7); !reflect.DeepEqual(f, wantFollows) {
			t.Errorf("%s: follows %v, want %v", when, f, wantFollows)
		}
	}
	if out := st.Ensure(ctx, 7); out != live.LoadOK {
		t.Fatalf("first request: %s, want ok", out)
	}
	check("loaded", wantHist)
	if out := st.Ensure(ctx, 7); out != live.LoadCached {
		t.Fatalf("second request: %s, want cached", out)
	}

	// Idle just under the window: kept.
	clk.add(29 * time.Minute)
	st.Expire(clk.now())
	if !st.Loaded(7) {
		t.Fatal("evicted before the idle window passed")
	}
	// Idle past it: evicted, follows notwithstanding.
	clk.add(2 * time.Minute)
	st.Expire(clk.now())
	if st.Users() != 0 || st.Loaded(7) || st.Follows(7) != nil {
		t.Fatalf("after the idle window: %d users, follows %v; want user 7 evicted", st.Users(), st.Follows(7))
	}
	if got := counter(t, reg, "liverecall_live_users_evicted_total", ""); got != 1 {
		t.Errorf("evictions counted %v, want 1", got)
	}

	// Meanwhile a new stream of streamer 2, watched: the events arrive, and
	// the sink writes the session too.
	now := int(clk.now().Sub(w.t0) / time.Minute)
	more := []lr.Event{w.ev(lr.EventStreamStarted, now-5, 2, 0)}
	more[0].StreamID = 202
	for _, e := range w.watch(now-4, now-2, 2, 7) {
		e.StreamID = 202
		more = append(more, e)
	}
	if _, err := db.WriteEventsExpiring(ctx, more, 0); err != nil {
		t.Fatal(err)
	}
	st.Apply(more)
	if st.Loaded(7) {
		t.Fatal("user 7 counts as loaded from the events after the eviction")
	}
	if out := st.Ensure(ctx, 7); out != live.LoadOK {
		t.Fatalf("request after the eviction: %s, want ok", out)
	}
	check("loaded again", append([]live.Watch{{StreamerID: 2, StreamID: 202, JoinedAt: at(now - 4), LeftAt: at(now - 2)}}, wantHist...))
	if got := counter(t, reg, "liverecall_live_user_loads_total", "ok"); got != 2 {
		t.Errorf("loads counted ok: %v, want 2", got)
	}
}

// TestUserLoadLateThenRetried: while the database does not answer (a
// transaction holds the follows table locked), concurrent requests for a
// user wait at most LoadWait, are answered without the stored state and
// counted late, and share one load; that load fails at LoadTimeout and is
// counted; the next request after the database is back loads the user.
func TestUserLoadLateThenRetried(t *testing.T) {
	for _, kind := range loaderKinds {
		t.Run(kind, func(t *testing.T) { testUserLoadLateThenRetried(t, kind) })
	}
}

func testUserLoadLateThenRetried(t *testing.T, kind string) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	evs := []lr.Event{w.ev(lr.EventStreamStarted, 0, 1, 0)}
	evs = append(evs, w.watch(10, 20, 1, 9)...)
	evs = append(evs, w.ev(lr.EventFollowCreated, 5, 1, 9))
	if _, err := db.WriteEventsExpiring(ctx, evs, 0); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	const wait, timeout = time.Second, 2 * time.Second
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: newLoader(kind, db), LoadWait: wait, LoadTimeout: timeout, Registerer: reg})

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE follows IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outs := make([]live.LoadOutcome, 8)
	for i := range outs {
		wg.Add(1)
		go func() { defer wg.Done(); outs[i] = st.Ensure(ctx, 9) }()
	}
	wg.Wait()
	for i, out := range outs {
		if out != live.LoadLate {
			t.Errorf("request %d while the database hangs: %s, want late", i, out)
		}
	}
	if st.History(9) != nil || st.Follows(9) != nil {
		t.Errorf("served %v %v before the load finished", st.History(9), st.Follows(9))
	}
	// The one load ends at its timeout.
	deadline := time.Now().Add(10 * timeout)
	for counter(t, reg, "liverecall_live_user_load_failures_total", "") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the load did not fail within %s of its timeout", 10*timeout)
		}
		time.Sleep(timeout / 20)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, "liverecall_live_user_load_failures_total", ""); got != 1 {
		t.Errorf("%v loads failed, want 1 (one load for the concurrent requests)", got)
	}
	if got := counter(t, reg, "liverecall_live_user_loads_total", "late"); got != 8 {
		t.Errorf("late loads counted %v, want 8", got)
	}
	if st.Loaded(9) {
		t.Fatal("loaded after a failed load")
	}
	// Back: the next request loads (LoadWait is ample for a point read).
	if out := st.Ensure(ctx, 9); out != live.LoadOK {
		t.Fatalf("request after the database is back: %s, want ok", out)
	}
	if len(st.History(9)) != 1 || !reflect.DeepEqual(st.Follows(9), []lr.StreamerID{1}) {
		t.Errorf("after the retry: history %v follows %v", st.History(9), st.Follows(9))
	}
}

// countingLoader counts the LoadUser calls of its Loader running at once.
type countingLoader struct {
	live.Loader
	cur, max atomic.Int64
}

func (c *countingLoader) LoadUser(ctx context.Context, u lr.UserID, since time.Time, n int) (live.UserRecord, error) {
	n1 := c.cur.Add(1)
	defer c.cur.Add(-1)
	for m := c.max.Load(); n1 > m && !c.max.CompareAndSwap(m, n1); m = c.max.Load() {
	}
	return c.Loader.LoadUser(ctx, u, since, n)
}

// TestUserLoadsBounded: no more than MaxLoads loads hold a database
// connection at once, however many users arrive for the first time
// together; the others wait for a slot within their LoadTimeout (here the
// database hangs, so they all end at it).
func TestUserLoadsBounded(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	reg := prometheus.NewRegistry()
	const timeout = 2 * time.Second
	loader := &countingLoader{Loader: pgLoader{db}}
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: loader, MaxLoads: 2, LoadWait: time.Millisecond, LoadTimeout: timeout, Registerer: reg})
	lockFollows(t, ctx, db) // held until the test ends
	const users = 6
	for u := range users {
		if out := st.Ensure(ctx, lr.UserID(u+1)); out != live.LoadLate {
			t.Fatalf("user %d while the database hangs: %s, want late", u+1, out)
		}
	}
	deadline := time.Now().Add(10 * timeout)
	for counter(t, reg, "liverecall_live_user_load_failures_total", "") < users {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d loads failed within %s of their timeout", counter(t, reg, "liverecall_live_user_load_failures_total", ""), users, 10*timeout)
		}
		time.Sleep(timeout / 20)
	}
	if m := loader.max.Load(); m != 2 {
		t.Fatalf("%d loads ran at once, want MaxLoads (2)", m)
	}
}

// TestUserLoadErrorRetried: a load that fails at once (the statement is
// refused: here the table is missing) is an error for the request, which
// is answered with what the State holds; the next request tries again.
func TestUserLoadErrorRetried(t *testing.T) {
	for _, kind := range loaderKinds {
		t.Run(kind, func(t *testing.T) { testUserLoadErrorRetried(t, kind) })
	}
}

func testUserLoadErrorRetried(t *testing.T, kind string) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	if _, err := db.WriteEventsExpiring(ctx, []lr.Event{w.ev(lr.EventFollowCreated, 5, 1, 9)}, 0); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: newLoader(kind, db), LoadWait: time.Minute, Registerer: reg})
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE follows RENAME TO follows_away`); err != nil {
		t.Fatal(err)
	}
	if out := st.Ensure(ctx, 9); out != live.LoadError {
		t.Fatalf("request while the statement fails: %s, want error", out)
	}
	if st.Loaded(9) || st.Follows(9) != nil || counter(t, reg, "liverecall_live_user_loads_total", "error") != 1 {
		t.Fatalf("after a failed load: loaded %v, follows %v, %v errors counted", st.Loaded(9), st.Follows(9), counter(t, reg, "liverecall_live_user_loads_total", "error"))
	}
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE follows_away RENAME TO follows`); err != nil {
		t.Fatal(err)
	}
	if out := st.Ensure(ctx, 9); out != live.LoadOK || !reflect.DeepEqual(st.Follows(9), []lr.StreamerID{1}) {
		t.Fatalf("retry: %s, follows %v", out, st.Follows(9))
	}
}

// TestWithoutLoaderUsersKeptByTTL: without a Loader, Ensure loads nothing
// and users are still kept by their follows and the user TTL.
func TestWithoutLoaderUsersKeptByTTL(t *testing.T) {
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), UserTTL: time.Hour})
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	st.SetFollow(3, 5, true, t0)
	if out := st.Ensure(context.Background(), 3); out != live.LoadNone {
		t.Fatalf("Ensure without a Loader: %s", out)
	}
	st.Expire(t0.Add(48 * time.Hour))
	if st.Follows(3) == nil {
		t.Error("a following user was forgotten without a Loader")
	}
}

// TestUserLoadsBatched: with a BatchLoader, the users whose loads wait for
// a slot are read together: while the one slot's load hangs (the database
// is locked), eight more users arrive and are read by one LoadUsers once
// it frees, each with their own follows and watches (and the others with
// none).
func TestUserLoadsBatched(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	evs := []lr.Event{w.ev(lr.EventStreamStarted, 0, 1, 0), w.ev(lr.EventStreamStarted, 0, 2, 0)}
	for u := int64(1); u <= 9; u += 2 { // odd users follow streamer 1 and watched streamer 2
		evs = append(evs, w.ev(lr.EventFollowCreated, 5, 1, u))
		evs = append(evs, w.watch(10, 20+int(u), 2, u)...)
	}
	if _, err := db.WriteEventsExpiring(ctx, evs, 0); err != nil {
		t.Fatal(err)
	}
	const timeout = 30 * time.Second
	loader := &pgBatchLoader{pgLoader: pgLoader{db}}
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: loader, MaxLoads: 1, LoadWait: time.Millisecond, LoadTimeout: timeout})
	tx := lockFollows(t, ctx, db)
	for u := lr.UserID(1); u <= 9; u++ {
		if out := st.Ensure(ctx, u); out != live.LoadLate {
			t.Fatalf("user %d while the database hangs: %s, want late", u, out)
		}
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for u := lr.UserID(1); u <= 9; u++ {
		for !st.Loaded(u) {
			if time.Now().After(deadline) {
				t.Fatalf("user %d not loaded within the load timeout", u)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if b, n := loader.batches.Load(), loader.users.Load(); b != 2 || n != 9 {
		t.Errorf("%d batches of %d users in all, want 2 (the first user's, then the other eight's) of 9", b, n)
	}
	for u := lr.UserID(1); u <= 9; u++ {
		f, h := st.Follows(u), st.History(u)
		if u%2 == 1 {
			if !reflect.DeepEqual(f, []lr.StreamerID{1}) || len(h) != 1 || h[0].StreamerID != 2 || !h[0].LeftAt.Equal(w.t0.Add(time.Duration(20+u)*time.Minute)) {
				t.Errorf("user %d: follows %v, history %+v", u, f, h)
			}
		} else if f != nil || h != nil {
			t.Errorf("user %d has nothing stored: follows %v, history %+v", u, f, h)
		}
	}
}

// Begin starts a user's load and returns at once; every Wait of the load
// (concurrent ones included) gets its one outcome, counted once, and a
// Wait whose context ends first returns late without settling it.
func TestBeginThenWait(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	if _, err := db.WriteEventsExpiring(ctx, []lr.Event{w.ev(lr.EventStreamStarted, 0, 1, 0), w.ev(lr.EventFollowCreated, 5, 1, 3)}, 0); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: pgLoader{db}, LoadWait: time.Minute, Registerer: reg})
	tx := lockFollows(t, ctx, db)
	l := st.Begin(3) // the load hangs on the lock: Begin does not wait for it
	if l.Done() {
		t.Fatal("Done while the load hangs")
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if out := l.Wait(gone); out != live.LoadLate {
		t.Fatalf("Wait with an ended context: %s, want late", out)
	}
	outs := make(chan live.LoadOutcome, 2)
	for range 2 {
		go func() { outs <- l.Wait(ctx) }()
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if out := <-outs; out != live.LoadOK {
			t.Fatalf("a concurrent Wait: %s, want ok", out)
		}
	}
	if out := l.Wait(gone); out != live.LoadOK || !l.Done() {
		t.Fatalf("a Wait after the load: %s (done %v), want ok", out, l.Done())
	}
	if ok, late := counter(t, reg, "liverecall_live_user_loads_total", "ok"), counter(t, reg, "liverecall_live_user_loads_total", "late"); ok != 1 || late != 0 {
		t.Fatalf("loads counted: %v ok, %v late; want 1 ok", ok, late)
	}
	if f := st.Follows(3); !reflect.DeepEqual(f, []lr.StreamerID{1}) {
		t.Fatalf("follows after the load: %v", f)
	}
	if out := st.Begin(3).Wait(ctx); out != live.LoadCached {
		t.Fatalf("the next request's load: %s, want cached", out)
	}
}

// Ready's channel, which a caller selects on with other things, closes
// when the load ends; two requests of one user share one load (one
// channel, one batch of one user); Ready's deadline is Begin's plus
// LoadWait.
func TestBeginReadyClosesWhenTheLoadEnds(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	w := &userWorld{t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	if _, err := db.WriteEventsExpiring(ctx, []lr.Event{w.ev(lr.EventStreamStarted, 0, 1, 0), w.ev(lr.EventFollowCreated, 5, 1, 4)}, 0); err != nil {
		t.Fatal(err)
	}
	loader := &pgBatchLoader{pgLoader: pgLoader{db}}
	const wait = time.Minute
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Loader: loader, LoadWait: wait})
	tx := lockFollows(t, ctx, db)
	before := time.Now()
	l1, l2 := st.Begin(4), st.Begin(4)
	after := time.Now()
	e1, d1 := l1.Ready()
	e2, _ := l2.Ready()
	if e1 == nil || e1 != e2 {
		t.Fatal("two requests of one user do not share one load")
	}
	if d1.Before(before.Add(wait)) || d1.After(after.Add(wait)) {
		t.Fatalf("deadline %v, want Begin + %v (between %v and %v)", d1, wait, before.Add(wait), after.Add(wait))
	}
	select {
	case <-e1:
		t.Fatal("Ready's channel closed while the load hangs")
	default:
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e1:
	case <-time.After(wait):
		t.Fatal("Ready's channel not closed after the load")
	}
	if !l1.Done() || l1.Wait(ctx) != live.LoadOK || l2.Wait(ctx) != live.LoadOK {
		t.Fatalf("after the load: done %v, outcomes %s, %s; want ok", l1.Done(), l1.Wait(ctx), l2.Wait(ctx))
	}
	if b, n := loader.batches.Load(), loader.users.Load(); b != 1 || n != 1 {
		t.Fatalf("%d batches of %d users, want 1 of 1", b, n)
	}
	if f := st.Follows(4); !reflect.DeepEqual(f, []lr.StreamerID{1}) {
		t.Fatalf("follows after the load: %v", f)
	}
	if ended, deadline := st.Begin(4).Ready(); ended != nil || !deadline.IsZero() {
		t.Fatal("a loaded user's next request has a load to wait for")
	}
}

// lockFollows locks the follows table in a transaction of its own until
// the caller rolls it back (or the test ends): users' loads hang on it.
func lockFollows(t *testing.T, ctx context.Context, db *postgres.DB) pgx.Tx {
	t.Helper()
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, `LOCK TABLE follows IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	return tx
}
