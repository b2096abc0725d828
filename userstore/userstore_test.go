package userstore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
)

// fakeSource holds rows in a map; it records each call's users, can hold
// calls at a gate and can fail.
type fakeSource struct {
	mu    sync.Mutex
	rows  map[[2]int64][2][]float32 // (model, user) -> vec, mlp
	calls [][]int64
	err   error         // returned by the next call, then cleared
	gate  chan struct{} // if set, a call waits until it is closed
	began chan struct{} // if set, receives a value as each call begins
}

func newFake() *fakeSource { return &fakeSource{rows: map[[2]int64][2][]float32{}} }

func (f *fakeSource) put(model, user int64, vec, mlp []float32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rows[[2]int64{model, user}] = [2][]float32{vec, mlp}
}

func (f *fakeSource) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	f.mu.Lock()
	f.calls = append(f.calls, slices.Clone(users))
	gate, began, err := f.gate, f.began, f.err
	f.err = nil
	f.mu.Unlock()
	if began != nil {
		began <- struct{}{}
	}
	if gate != nil {
		<-gate
	}
	if err != nil {
		return err
	}
	for _, m := range models {
		for _, u := range users {
			f.mu.Lock()
			r, ok := f.rows[[2]int64{m, u}]
			f.mu.Unlock()
			if ok {
				if err := fn(m, u, exact(r[0]), exact(r[1])); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// exact copies xs into a slice of its length's capacity (nil stays nil),
// as the postgres Source hands them.
func exact(xs []float32) []float32 {
	if xs == nil {
		return nil
	}
	out := make([]float32, len(xs))
	copy(out, xs)
	return out
}

func (f *fakeSource) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

func newStore(t *testing.T, cfg Config) (*Store, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, reg
}

func vec(xs ...float32) []float32 { return xs }

// waitCtx bounds a wait that a regression could make endless (a batch that
// never fills, a query that never ends), so the test fails instead of hanging.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestFetchMissThenHitAndNegativeCaching(t *testing.T) {
	f := newFake()
	f.put(1, 7, vec(1, 2), nil)
	f.put(2, 7, vec(3, 4), vec(5, 6, 7))
	s, _ := newStore(t, Config{Source: f})
	v := Versions{MF: 1, NCF: 2}
	ctx := context.Background()

	if _, ok := s.Cached(7, v); ok {
		t.Fatal("Cached holds a row before any Fetch")
	}
	r, err := s.Fetch(ctx, 7, v)
	if err != nil {
		t.Fatal(err)
	}
	want := Row{Versions: v, MF: vec(1, 2), NCF: vec(3, 4), MLP: vec(5, 6, 7)}
	if r.Versions != want.Versions || !slices.Equal(r.MF, want.MF) || !slices.Equal(r.NCF, want.NCF) || !slices.Equal(r.MLP, want.MLP) || !r.Known() {
		t.Fatalf("Fetch = %+v, want %+v", r, want)
	}
	if r2, err := s.Fetch(ctx, 7, v); err != nil || !slices.Equal(r2.NCF, want.NCF) {
		t.Fatalf("second Fetch = %+v, %v", r2, err)
	}
	if r3, ok := s.Cached(7, v); !ok || !slices.Equal(r3.MF, want.MF) {
		t.Fatalf("Cached after Fetch = %+v, %v", r3, ok)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("%d Source calls for one user fetched twice, want 1", n)
	}

	// An unknown user: a negative row, cached, weighing EntryOverhead.
	r, err = s.Fetch(ctx, 8, v)
	if err != nil || r.Known() || r.MF != nil || r.NCF != nil || r.MLP != nil || r.Versions != v {
		t.Fatalf("unknown user: %+v, %v; want the empty row of %v", r, err, v)
	}
	if r, ok := s.Cached(8, v); !ok || r.Known() {
		t.Fatalf("unknown user not cached: %+v, %v", r, ok)
	}
	if _, err := s.Fetch(ctx, 8, v); err != nil {
		t.Fatal(err)
	}
	if n := f.callCount(); n != 2 {
		t.Fatalf("%d Source calls after an unknown user fetched twice, want 2", n)
	}
	s.cur.Load().cache.Load().CleanUp()
	st := s.Stats()
	wantBytes := int64(2*EntryOverhead + 4*(2+2+3))
	if st.Hits != 4 || st.NegativeHits != 2 || st.Misses != 2 || st.Entries != 2 || st.Bytes != wantBytes {
		t.Fatalf("Stats = %+v, want 4 hits (2 negative), 2 misses, 2 entries, %d bytes", st, wantBytes)
	}

	// No version serves: nothing to read.
	if r, err := s.Fetch(ctx, 7, Versions{}); err != nil || r.Known() {
		t.Fatalf("Fetch with no versions = %+v, %v", r, err)
	}
	if f.callCount() != 2 {
		t.Fatal("Fetch with no versions read the Source")
	}
}

// Fetches of the same and of different users at once are one query: the
// batch is read when its MaxBatch-th distinct user joins (BatchWait is too
// long to matter), and repeated users join their flight.
func TestConcurrentFetchesShareOneBatchedQuery(t *testing.T) {
	f := newFake()
	for u := int64(1); u <= 5; u++ {
		f.put(1, u, vec(float32(u)), nil)
	}
	s, reg := newStore(t, Config{Source: f, MaxBatch: 5, BatchWait: time.Hour})
	v := Versions{MF: 1}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		u := lr.UserID(i%5 + 1)
		wg.Go(func() {
			r, err := s.Fetch(waitCtx(t), u, v)
			if err == nil && (len(r.MF) != 1 || r.MF[0] != float32(u)) {
				err = errors.New("wrong row")
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(f.calls) != 1 || len(f.calls[0]) != 5 {
		t.Fatalf("Source calls %v, want one call with the 5 users", f.calls)
	}
	if n := testutil.CollectAndCount(reg, "liverecall_userstore_batch_users"); n != 1 {
		t.Fatalf("batch size histogram: %d series", n)
	}
	if got := testutil.ToFloat64(s.m.fetches.ok); got != 20 {
		t.Fatalf("ok fetches = %v, want 20", got)
	}
}

// A batch smaller than MaxBatch is read once BatchWait has passed.
func TestAPartialBatchIsReadAfterBatchWait(t *testing.T) {
	f := newFake()
	f.put(1, 1, vec(1), nil)
	s, _ := newStore(t, Config{Source: f, MaxBatch: 100, BatchWait: time.Millisecond})
	if r, err := s.Fetch(waitCtx(t), 1, Versions{MF: 1}); err != nil || !r.Known() {
		t.Fatalf("Fetch = %+v, %v", r, err)
	}
}

// clock is a settable time for SwapGrace.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time         { return time.Unix(0, c.t.Load()) }
func (c *clock) add(d time.Duration)    { c.t.Add(int64(d)) }
func newClock() *clock                  { c := &clock{}; c.t.Store(time.Now().UnixNano()); return c }
func (s *Store) useClock(c *clock)      { s.now = c.now }
func rowOf(t *testing.T, r Row) float32 { t.Helper(); return r.MF[0] }

func TestNewVersionsNeverReturnRowsOfTheOld(t *testing.T) {
	f := newFake()
	f.put(1, 7, vec(1), nil) // user 7 under MF version 1
	f.put(3, 7, vec(3), nil) // and under MF version 3
	s, _ := newStore(t, Config{Source: f, SwapGrace: time.Minute})
	clk := newClock()
	s.useClock(clk)
	ctx := context.Background()
	v1, v3 := Versions{MF: 1}, Versions{MF: 3}

	r, err := s.Fetch(ctx, 7, v1)
	if err != nil || rowOf(t, r) != 1 {
		t.Fatalf("v1: %+v, %v", r, err)
	}
	g1 := s.cur.Load()
	r, err = s.Fetch(ctx, 7, v3)
	if err != nil || rowOf(t, r) != 3 || r.Versions != v3 {
		t.Fatalf("v3 after v1: %+v, %v; want v3's row", r, err)
	}
	if g1.cache.Load() != nil {
		t.Fatal("the replaced generation still has its cache")
	}
	if st := s.Stats(); st.Entries != 1 {
		t.Fatalf("%d entries after the swap, want v3's one", st.Entries)
	}

	// A request begun before the swap: v1's row, from the Source, and the
	// cache of v3 neither read nor written.
	calls := f.callCount()
	for range 2 {
		r, err = s.Fetch(ctx, 7, v1)
		if err != nil || rowOf(t, r) != 1 || r.Versions != v1 {
			t.Fatalf("v1 within the grace: %+v, %v; want v1's row", r, err)
		}
	}
	if f.callCount() != calls+2 {
		t.Fatalf("v1 within the grace made %d Source calls, want 2 (no cache)", f.callCount()-calls)
	}
	if _, ok := s.Cached(7, v1); ok {
		t.Fatal("Cached answers for the replaced versions")
	}
	if r, ok := s.Cached(7, v3); !ok || rowOf(t, r) != 3 {
		t.Fatalf("v3's entry after v1's bypass: %+v, %v", r, ok)
	}
	if s.cur.Load().v != v3 {
		t.Fatal("a bypass changed the generation")
	}

	// After the grace, v1 again is a rollback: a generation of its own.
	clk.add(time.Minute)
	r, err = s.Fetch(ctx, 7, v1)
	if err != nil || rowOf(t, r) != 1 {
		t.Fatalf("v1 after the grace: %+v, %v", r, err)
	}
	if g := s.cur.Load(); g.v != v1 || g == g1 {
		t.Fatal("the rollback did not start a generation")
	}
	if r, ok := s.Cached(7, v1); !ok || rowOf(t, r) != 1 {
		t.Fatalf("v1's row is not cached after the rollback: %+v, %v", r, ok)
	}
	if st := s.Stats(); st.Entries != 1 {
		t.Fatalf("%d entries after the rollback, want 1", st.Entries)
	}
	if got := testutil.ToFloat64(s.m.generations); got != 2 {
		t.Fatalf("generations replaced = %v, want 2", got)
	}
}

// A caller whose deadline passes gets ctx's error at once; the row still
// lands in the cache.
func TestLateFetchStillCachesTheRow(t *testing.T) {
	f := newFake()
	f.put(1, 7, vec(1), nil)
	f.gate = make(chan struct{})
	s, _ := newStore(t, Config{Source: f})
	v := Versions{MF: 1}
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	if _, err := s.Fetch(ctx, 7, v); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Fetch with the Source held: %v, want the deadline", err)
	}
	if got := testutil.ToFloat64(s.m.fetches.late); got != 1 {
		t.Fatalf("late fetches = %v, want 1", got)
	}
	close(f.gate)
	// The next request joins the flight still running or hits the row it
	// cached: either way no second query.
	r, err := s.Fetch(context.Background(), 7, v)
	if err != nil || rowOf(t, r) != 1 {
		t.Fatalf("Fetch after the late one: %+v, %v", r, err)
	}
	if _, ok := s.Cached(7, v); !ok {
		t.Fatal("the late row is not cached")
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("%d Source calls, want 1", n)
	}
}

func TestSourceErrorIsReturnedAndNotCached(t *testing.T) {
	f := newFake()
	f.put(1, 7, vec(1), nil)
	down := lr.Errorf(lr.EUNAVAILABLE, "the database is not reachable")
	f.err = down
	s, _ := newStore(t, Config{Source: f})
	v := Versions{MF: 1}
	if _, err := s.Fetch(context.Background(), 7, v); err != down {
		t.Fatalf("Fetch with the Source failing: %v, want its error", err)
	}
	if _, ok := s.Cached(7, v); ok {
		t.Fatal("a failed lookup was cached")
	}
	if r, err := s.Fetch(context.Background(), 7, v); err != nil || rowOf(t, r) != 1 {
		t.Fatalf("Fetch once the Source is back: %+v, %v", r, err)
	}
	if n := f.callCount(); n != 2 {
		t.Fatalf("%d Source calls, want 2", n)
	}
	if got := testutil.ToFloat64(s.m.fetches.err); got != 1 {
		t.Fatalf("error fetches = %v, want 1", got)
	}
}

// With MaxInflight 1, a batch finds the only slot taken by a query that
// does not end and gives up after QueryTimeout.
func TestQueriesInFlightAreBounded(t *testing.T) {
	f := newFake()
	f.put(1, 1, vec(1), nil)
	f.gate, f.began = make(chan struct{}), make(chan struct{}, 2)
	s, _ := newStore(t, Config{Source: f, MaxBatch: 1, MaxInflight: 1, QueryTimeout: 20 * time.Millisecond})
	v := Versions{MF: 1}
	first := make(chan error, 1)
	go func() { _, err := s.Fetch(context.Background(), 1, v); first <- err }()
	<-f.began // the first query holds the slot
	_, err := s.Fetch(waitCtx(t), 2, v)
	if !errors.Is(err, errSlots) || lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("second batch with the slot taken: %v, want unavailable (no slot)", err)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("%d Source calls with one slot, want 1", n)
	}
	close(f.gate)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
}

// The cache stays within MaxBytes however many users pass through it.
func TestCacheBytesStayWithinMaxBytes(t *testing.T) {
	const dim, users, maxBytes = 64, 5000, 64 << 10
	f := newFake()
	for u := int64(1); u <= users; u++ {
		f.put(1, u, make([]float32, dim), nil)
		f.put(2, u, make([]float32, dim), make([]float32, dim))
	}
	s, _ := newStore(t, Config{Source: f, MaxBytes: maxBytes, MaxBatch: 100, BatchWait: time.Hour})
	v := Versions{MF: 1, NCF: 2}
	for start := int64(1); start <= users; start += 100 {
		var wg sync.WaitGroup
		for u := start; u < start+100; u++ {
			wg.Go(func() {
				if _, err := s.Fetch(waitCtx(t), lr.UserID(u), v); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
	}
	s.cur.Load().cache.Load().CleanUp()
	st := s.Stats()
	perEntry := int64(EntryOverhead + 4*3*dim)
	if st.Bytes > maxBytes || st.Bytes < maxBytes/2 || st.Bytes != int64(st.Entries)*perEntry {
		t.Fatalf("after %d users of %d bytes: %+v, want at most %d bytes (and at least half of it)", users, perEntry, st, maxBytes)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	if _, err := New(Config{}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("no Source: %v", err)
	}
	if _, err := New(Config{Source: newFake(), MaxBytes: -1}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("negative MaxBytes: %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(Config{Source: newFake(), Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Source: newFake(), Registerer: reg}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("second store on one registry: %v", err)
	}
}

// A stored empty array is no vector: the user is not known by it.
func TestEmptyStoredVectorIsNoVector(t *testing.T) {
	f := newFake()
	f.put(1, 5, []float32{}, []float32{})
	s, _ := newStore(t, Config{Source: f})
	r, err := s.Fetch(context.Background(), 5, Versions{MF: 1})
	if err != nil || r.Known() || r.MF != nil || r.MLP != nil {
		t.Fatalf("user with an empty stored vector: %+v, %v; want an unknown user's row", r, err)
	}
}

// TestQueryFailuresToldApartAndLogged: the queries' metric tells a query
// that ran out of QueryTimeout (timeout) from one the store failed
// (error) and from a batch that found no slot (no_slot); the first failure
// is logged with its outcome, later ones at most once a minute with the
// count of those not logged.
func TestQueryFailuresToldApartAndLogged(t *testing.T) {
	f := newFake()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil))
	s, _ := newStore(t, Config{Source: f, MaxBatch: 1, MaxInflight: 1, QueryTimeout: 50 * time.Millisecond, Log: log})
	clk := newClock()
	s.useClock(clk)
	v := Versions{MF: 1}
	logged := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }

	f.err = lr.Errorf(lr.EINTERNAL, "relation user_embeddings does not exist")
	if _, err := s.Fetch(waitCtx(t), 1, v); err == nil {
		t.Fatal("Fetch with the Source failing: no error")
	}
	if got := testutil.ToFloat64(s.m.queries.err); got != 1 {
		t.Fatalf("error queries = %v, want 1", got)
	}
	if l := logged(); !strings.Contains(l, "outcome=error") || !strings.Contains(l, "user_embeddings does not exist") {
		t.Fatalf("first failure not logged with its outcome and cause: %q", l)
	}

	// A query that does not answer: a timeout (the fake waits for its gate,
	// the store's context ends first), not logged within the minute.
	f.gate, f.began = make(chan struct{}), make(chan struct{}, 2)
	blocking := &ctxSource{inner: f}
	s.cfg.Source = blocking
	if _, err := s.Fetch(waitCtx(t), 2, v); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("Fetch of a query that does not answer: %v, want unavailable", err)
	}
	if got := testutil.ToFloat64(s.m.queries.timeout); got != 1 {
		t.Fatalf("timeout queries = %v, want 1", got)
	}
	if got := testutil.ToFloat64(s.m.queries.err); got != 1 {
		t.Fatalf("error queries = %v after a timeout, want still 1", got)
	}
	if n := strings.Count(logged(), "batch query failed"); n != 1 {
		t.Fatalf("%d failures logged within a minute, want 1", n)
	}
	clk.add(time.Minute)
	f.mu.Lock() // the timed-out call still reads them
	f.err = lr.Errorf(lr.EUNAVAILABLE, "connection refused")
	close(f.gate)
	f.gate = nil
	f.mu.Unlock()
	if _, err := s.Fetch(waitCtx(t), 3, v); err == nil {
		t.Fatal("Fetch with the Source failing: no error")
	}
	if l := logged(); strings.Count(l, "batch query failed") != 2 || !strings.Contains(l, "failures_not_logged=1") {
		t.Fatalf("a minute later: %q, want the second failure logged with the one not logged before it", l)
	}
}

// ctxSource is inner, but a call ends with the context's error when the
// context ends first (as pgx does).
type ctxSource struct{ inner *fakeSource }

func (c *ctxSource) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	done := make(chan error, 1)
	go func() { done <- c.inner.UserRows(ctx, models, users, fn) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Lookup waits for nothing: a miss returns the read it started, which a
// second miss of the same user joins (one Source call, one batch) and
// whose Done closes once the row is cached; a hit returns the row.
func TestLookupReturnsTheReadInFlight(t *testing.T) {
	f := newFake()
	f.put(1, 7, vec(1, 2), nil)
	f.gate, f.began = make(chan struct{}), make(chan struct{}, 2)
	s, _ := newStore(t, Config{Source: f, MaxBatch: 1})
	v := Versions{MF: 1}
	r, p := s.Lookup(7, v)
	if p == nil || r.Known() {
		t.Fatalf("Lookup of an uncached user = %+v, %v; want a pending read", r, p)
	}
	<-f.began
	_, p2 := s.Lookup(7, v)
	if p2 == nil || p2.b != p.b {
		t.Fatal("a second Lookup of a user being read did not join that read")
	}
	select {
	case <-p.Done():
		t.Fatal("Done closed while the Source call is held")
	default:
	}
	doubled := p2.Then(func(_ lr.UserID, r Row) Row {
		r.MF = []float32{r.MF[0] * 2, r.MF[1] * 2}
		return r
	})
	close(f.gate)
	select {
	case <-p.Done():
	case <-waitCtx(t).Done():
		t.Fatal("Done not closed after the read")
	}
	if r, err := p.Row(); err != nil || !slices.Equal(r.MF, vec(1, 2)) || r.Versions != v {
		t.Fatalf("Row = %+v, %v", r, err)
	}
	if r, err := doubled.Row(); err != nil || !slices.Equal(r.MF, vec(2, 4)) {
		t.Fatalf("Row through Then = %+v, %v", r, err)
	}
	p2.Late()
	if r, p := s.Lookup(7, v); p != nil || !slices.Equal(r.MF, vec(1, 2)) {
		t.Fatalf("Lookup after the read = %+v, %v; want the cached row", r, p)
	}
	if n := f.callCount(); n != 1 {
		t.Fatalf("%d Source calls, want 1", n)
	}
	if ok, late, miss, hit := testutil.ToFloat64(s.m.fetches.ok), testutil.ToFloat64(s.m.fetches.late), testutil.ToFloat64(s.m.lookups.miss), testutil.ToFloat64(s.m.lookups.hit); ok != 3 || late != 1 || miss != 2 || hit != 1 {
		t.Fatalf("fetches ok %v late %v, lookups miss %v hit %v; want 3, 1, 2, 1", ok, late, miss, hit)
	}
	if len(s.cur.Load().inflight) != 0 {
		t.Fatal("the ended read is still in flight")
	}
}
