// Package userstore serves the user side of the models — each user's MF
// vector, NCF vector and NeuMF MLP embedding under the serving versions —
// from a shared store (PostgreSQL) through an in-process cache of active
// users, so that a replica's memory does not grow with the user base.
//
// The cache is bounded in bytes and admits by frequency (W-TinyLFU, from
// github.com/maypok86/otter/v2, which only this package imports): a user
// seen once does not push out users seen often. It holds the rows of one
// generation, the Versions it was started for; a request with other
// Versions starts the next generation and the previous one's entries are
// dropped, so a reload frees the memory of the version it replaced and a
// request never combines rows of two versions.
//
// Misses are deduplicated (one lookup per user in flight, however many
// requests wait for it) and batched: the users missed within BatchWait, up
// to MaxBatch, are read with one Source query for both model ids, under a
// timeout of its own. A caller's context bounds only its own wait: a row
// that arrives after the caller gave up is still cached for the next
// request.
package userstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
)

// Versions are the model versions a request is served with, by their
// embedding_models ids; 0 means no version of that kind serves.
type Versions struct{ MF, NCF int64 }

// Row is what the store holds of one user under Versions. A nil slice means
// the version has no such vector for the user (an unknown user has a Row
// with every slice nil). A Row handed out by the Store is shared with its
// cache: callers must not modify its slices.
type Row struct {
	Versions Versions
	MF       []float32 // the MF version's user vector
	NCF      []float32 // the NCF version's user (retrieval) vector
	MLP      []float32 // the NCF version's NeuMF user MLP embedding, if stored
}

// Known says whether the row holds any vector.
func (r Row) Known() bool { return r.MF != nil || r.NCF != nil }

// Vector returns the row's vector of kind (nil when none).
func (r Row) Vector(kind lr.ModelKind) []float32 {
	switch kind {
	case lr.ModelMF:
		return r.MF
	case lr.ModelNCF:
		return r.NCF
	}
	return nil
}

// Source is the shared store (postgres.DB).
type Source interface {
	// UserRows calls fn for each stored user row of users under any of
	// models (embedding_models ids). mlp is nil when the row has none. fn
	// keeps vec and mlp: the Source must not reuse them.
	UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error
}

// Defaults of Config's zero fields.
const (
	DefaultMaxBytes     = 256 << 20
	DefaultBatchWait    = 200 * time.Microsecond
	DefaultMaxBatch     = 256
	DefaultQueryTimeout = 2 * time.Second
	DefaultMaxInflight  = 4
	DefaultSwapGrace    = 10 * time.Second
)

// Config configures a Store. Zero fields take the defaults above.
type Config struct {
	// Source is where misses are read. Required.
	Source Source
	// MaxBytes bounds the cache: the sum of its entries' weights (see
	// EntryOverhead) stays at or below it, give or take what a pending
	// maintenance pass has not evicted yet.
	MaxBytes int64
	// BatchWait is how long the first miss of a batch waits for others to
	// join it before the batch is read; a batch of MaxBatch users is read at
	// once.
	BatchWait time.Duration
	MaxBatch  int
	// QueryTimeout bounds one batch query, its wait for a free slot
	// included, whoever waits for it.
	QueryTimeout time.Duration
	// MaxInflight bounds the batch queries running at once (and so the
	// connections the store holds); further batches wait for a slot.
	MaxInflight int
	// SwapGrace is how long after a generation was replaced a request with
	// its Versions still counts as one that started before the swap: it is
	// answered from the Source without the cache. After SwapGrace those
	// Versions are taken as a rollback and start a generation of their own.
	SwapGrace time.Duration
	// Registerer, if set, receives the store's metrics.
	Registerer prometheus.Registerer
	// Log, if set, receives the first failed batch query (a timeout, a
	// store error, no free slot) and then at most one a minute, with the
	// count of failures since the last one logged.
	Log *slog.Logger
}

// EntryOverhead is the weight of a cache entry beyond its vectors' bytes
// (4 bytes per float32 of each slice's capacity): the cache's node (key,
// Row with its three slice headers, list links, weight and state), its slot
// in the hash table and its share of the frequency sketch. Measured as the
// Go heap growth per entry of a filled cache (go1.26, amd64): 151 bytes at
// 100,000 entries, 162 at 1,000,000 (the table grows in steps), the same
// with three 64-float vectors on top (exactly their 768 bytes). Rounded up,
// so MaxBytes bounds the cache's heap; the allocator rounds a vector of
// other sizes up to its size class (at most 1/8 more than 4 bytes a float),
// which the weight does not count. An unknown user weighs EntryOverhead.
const EntryOverhead = 192

func weigh(_ lr.UserID, r Row) uint32 {
	return uint32(EntryOverhead + 4*(cap(r.MF)+cap(r.NCF)+cap(r.MLP)))
}

// Store is the cache in front of Source. Safe for concurrent use.
type Store struct {
	cfg Config
	now func() time.Time
	sem chan struct{}
	m   *metrics

	cur atomic.Pointer[generation]
	mu  sync.Mutex // serialises generation changes
	// prev is the generation cur replaced, at replacedAt; its requests are
	// answered without a cache until SwapGrace has passed.
	prev       *generation
	replacedAt time.Time

	hits, negHits, misses atomic.Uint64

	logMu    sync.Mutex
	loggedAt time.Time // when a failure was last logged (zero: never)
	unlogged int       // failures since then, not logged
}

// generation is the store for one Versions: its cache, its reads in flight
// and the batch being collected.
type generation struct {
	v      Versions
	models []int64
	// cache is nil once the generation is replaced (its entries dropped),
	// and for one started without a cache.
	cache atomic.Pointer[otter.Cache[lr.UserID, Row]]
	// prefetched holds the users whose row a Prefetch started reading
	// because the cache did not hold it, until their request's lookup:
	// that lookup counts as a miss (prefetched_miss) even when the row
	// has arrived by then, so the hit rate stays that of the cache.
	prefetched sync.Map

	mu      sync.Mutex
	pending *batch
	// inflight is the batch each user missed is read in (collected or
	// running), until it ends: one read per user at a time, however many
	// requests wait for it. Guarded by mu.
	inflight map[lr.UserID]*batch
}

// batch is the users of one Source query. rows and err are set before done
// is closed.
type batch struct {
	users []int64
	timer *time.Timer
	done  chan struct{}
	rows  map[lr.UserID]Row
	err   error
}

// New returns a Store over cfg.Source. It fails with lr.EINVALID on a
// missing Source or a negative setting, and when cfg.Registerer refuses its
// metrics.
func New(cfg Config) (*Store, error) {
	if cfg.Source == nil {
		return nil, lr.Errorf(lr.EINVALID, "userstore: no Source")
	}
	if cfg.MaxBytes < 0 || cfg.BatchWait < 0 || cfg.MaxBatch < 0 || cfg.QueryTimeout < 0 || cfg.MaxInflight < 0 || cfg.SwapGrace < 0 {
		return nil, lr.Errorf(lr.EINVALID, "userstore: negative setting in %+v", cfg)
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.BatchWait == 0 {
		cfg.BatchWait = DefaultBatchWait
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = DefaultQueryTimeout
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.SwapGrace == 0 {
		cfg.SwapGrace = DefaultSwapGrace
	}
	s := &Store{cfg: cfg, now: time.Now, sem: make(chan struct{}, cfg.MaxInflight)}
	s.m = newMetrics(s)
	if cfg.Registerer != nil {
		for _, c := range s.m.collectors() {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, lr.Errorf(lr.EINVALID, "userstore: registering metrics: %v", err)
			}
		}
	}
	return s, nil
}

// Cached returns u's row under v if the cache holds it (a negative row for
// a user the store does not know counts as held); it never does I/O. With
// no version in v it returns the empty row. v other than the current
// generation's starts the next generation (see Fetch), after which the
// cache holds nothing yet. A hit is counted as a lookup; a miss is not (the
// Fetch that follows it counts it).
func (s *Store) Cached(u lr.UserID, v Versions) (Row, bool) {
	if v == (Versions{}) {
		return Row{}, true
	}
	g := s.generation(v)
	if c := g.cache.Load(); c != nil {
		if r, ok := c.GetIfPresent(u); ok {
			s.countHit(g, u, r)
			return r, true
		}
	}
	return Row{Versions: v}, false
}

// Fetch returns u's row under v, from the cache or the Source; the row of a
// user the Source does not know has every slice nil. ctx bounds only the
// caller's wait: when it ends first Fetch returns ctx.Err() (the caller
// serves without the user's vectors and reports them late), and the lookup
// goes on and caches its row. A Source error is returned (and not cached).
//
// v other than the current generation's starts the next generation, which
// drops the current one's entries, unless v is the generation replaced
// less than SwapGrace ago: such a request, begun before the swap, is
// answered from the Source without reading or writing the cache.
func (s *Store) Fetch(ctx context.Context, u lr.UserID, v Versions) (Row, error) {
	row, p := s.Lookup(u, v)
	if p == nil {
		return row, nil
	}
	select {
	case <-p.Done():
		return p.Row()
	case <-ctx.Done():
		p.Late()
		return Row{Versions: v}, ctx.Err()
	}
}

// Lookup is Fetch without the wait: it returns u's row under v when the
// cache holds it (p nil), and otherwise joins or starts the read of it and
// returns that read as p, which the caller waits for (p.Done) with no
// goroutine of its own, then takes the row from (p.Row) or gives up on
// (p.Late). It counts the lookup as Fetch does, and a hit as a fetch.
func (s *Store) Lookup(u lr.UserID, v Versions) (row Row, p *Pending) {
	if v == (Versions{}) {
		return Row{}, nil
	}
	g := s.generation(v)
	c := g.cache.Load()
	if c != nil {
		if r, ok := c.GetIfPresent(u); ok {
			s.countHit(g, u, r)
			s.m.fetches.ok.Inc()
			return r, nil
		}
		s.misses.Add(1)
		if _, pre := g.prefetched.LoadAndDelete(u); pre {
			s.m.lookups.prefetched.Inc()
		} else {
			s.m.lookups.miss.Inc()
		}
	} else {
		s.misses.Add(1)
		s.m.lookups.bypass.Inc()
	}
	b, r, ok := s.enqueue(g, u)
	if ok {
		// Cached by a read that ended since the lookup above.
		s.m.fetches.ok.Inc()
		return r, nil
	}
	return Row{Versions: v}, &Pending{s: s, b: b, u: u, v: v}
}

// Pending is the read of one user's row that a Lookup missed.
type Pending struct {
	s     *Store
	b     *batch
	u     lr.UserID
	v     Versions
	apply func(lr.UserID, Row) Row
}

// Done is closed once the read has ended (its row cached, or failed).
func (p *Pending) Done() <-chan struct{} { return p.b.done }

// Row returns the row read, or the store's error; call it once, after
// Done is closed. It counts the fetch (ok or error).
func (p *Pending) Row() (Row, error) {
	if err := p.b.err; err != nil {
		p.s.m.fetches.err.Inc()
		return Row{Versions: p.v}, err
	}
	p.s.m.fetches.ok.Inc()
	r := p.b.rows[p.u]
	if p.apply != nil {
		r = p.apply(p.u, r)
	}
	return r, nil
}

// Late counts the fetch as given up by its caller (late); the read goes
// on and caches its row. Call it instead of Row.
func (p *Pending) Late() { p.s.m.fetches.late.Inc() }

// Then returns p whose Row passes the row read through f (the fold-in
// overlay's vectors): f is not called on an error.
func (p *Pending) Then(f func(lr.UserID, Row) Row) *Pending {
	q := *p
	if q.apply != nil {
		inner := q.apply
		q.apply = func(u lr.UserID, r Row) Row { return f(u, inner(u, r)) }
	} else {
		q.apply = f
	}
	return &q
}

// Prefetch starts reading u's row under v when the cache does not hold it,
// and returns at once: a request that has other work before it needs the
// row (loading its user's live state) Fetches it later and finds it cached
// or joins the read in flight. It counts no lookup: the request's later
// Fetch or Cached counts a miss (result prefetched_miss), also when the
// row has arrived by then. It does nothing for a replaced generation's
// versions.
func (s *Store) Prefetch(u lr.UserID, v Versions) {
	if v == (Versions{}) {
		return
	}
	g := s.generation(v)
	c := g.cache.Load()
	if c == nil {
		return
	}
	if _, ok := c.GetEntryQuietly(u); ok {
		return
	}
	s.m.prefetches.Inc()
	g.prefetched.Store(u, struct{}{})
	s.enqueue(g, u)
}

// countHit counts a lookup that found r in g's cache: a hit, or a miss when
// a Prefetch of the same request brought r in.
func (s *Store) countHit(g *generation, u lr.UserID, r Row) {
	if _, pre := g.prefetched.LoadAndDelete(u); pre {
		s.misses.Add(1)
		s.m.lookups.prefetched.Inc()
		return
	}
	s.hits.Add(1)
	if r.Known() {
		s.m.lookups.hit.Inc()
	} else {
		s.negHits.Add(1)
		s.m.lookups.negHit.Inc()
	}
}

// generation returns the generation that serves v, starting one if v is
// neither the current nor (within SwapGrace) the replaced one.
func (s *Store) generation(v Versions) *generation {
	if g := s.cur.Load(); g != nil && g.v == v {
		return g
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if g := s.cur.Load(); g != nil && g.v == v {
		return g
	}
	now := s.now()
	if s.prev != nil && s.prev.v == v && now.Sub(s.replacedAt) < s.cfg.SwapGrace {
		return s.prev
	}
	g := &generation{v: v}
	for _, id := range []int64{v.MF, v.NCF} {
		if id != 0 {
			g.models = append(g.models, id)
		}
	}
	c, err := otter.New(&otter.Options[lr.UserID, Row]{MaximumWeight: uint64(s.cfg.MaxBytes), Weigher: weigh})
	if err != nil { // only for invalid options, which New has ruled out
		panic(fmt.Sprintf("userstore: %v", err))
	}
	g.cache.Store(c)
	old := s.cur.Swap(g)
	if old != nil {
		if oc := old.cache.Swap(nil); oc != nil {
			// Emptying it entry by entry is not the request's work; once
			// unreferenced it is garbage anyway, this frees it sooner.
			go oc.InvalidateAll()
		}
		s.prev, s.replacedAt = old, now
		s.m.generations.Inc()
	}
	return g
}

// enqueue returns the batch u's row is read in: the one in flight for u,
// or else the batch being collected, which it joins, starting one (read
// after BatchWait) if none is; a batch of MaxBatch users is read at once.
// When the cache holds u's row by then (a read ended since the caller's
// lookup), it returns that row and ok instead.
func (s *Store) enqueue(g *generation, u lr.UserID) (b *batch, row Row, ok bool) {
	g.mu.Lock()
	if b := g.inflight[u]; b != nil {
		g.mu.Unlock()
		return b, Row{}, false
	}
	if c := g.cache.Load(); c != nil {
		// Under mu: a batch caches its rows before it leaves inflight.
		if e, ok := c.GetEntryQuietly(u); ok {
			g.mu.Unlock()
			return nil, e.Value, true
		}
	}
	b = g.pending
	if b == nil {
		b = &batch{done: make(chan struct{}), users: make([]int64, 0, min(s.cfg.MaxBatch, 64))}
		g.pending = b
		b.timer = time.AfterFunc(s.cfg.BatchWait, func() {
			g.mu.Lock()
			due := g.pending == b
			if due {
				g.pending = nil
			}
			g.mu.Unlock()
			if due {
				s.run(g, b)
			}
		})
	}
	if g.inflight == nil {
		g.inflight = map[lr.UserID]*batch{}
	}
	g.inflight[u] = b
	b.users = append(b.users, int64(u))
	full := len(b.users) >= s.cfg.MaxBatch
	if full {
		g.pending = nil
		b.timer.Stop()
	}
	g.mu.Unlock()
	if full {
		go s.run(g, b)
	}
	return b, Row{}, false
}

// errSlots is the cause of a batch that found no free query slot in time.
var errSlots = errors.New("every query slot stayed busy")

// run reads b with one Source query, caches its rows (unless g was
// replaced meanwhile) and releases its waiters.
func (s *Store) run(g *generation, b *batch) {
	defer func() {
		g.mu.Lock()
		for _, id := range b.users {
			if g.inflight[lr.UserID(id)] == b {
				delete(g.inflight, lr.UserID(id))
			}
		}
		g.mu.Unlock()
		close(b.done)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.QueryTimeout)
	defer cancel()
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	case <-ctx.Done():
		b.err = &lr.Error{Code: lr.EUNAVAILABLE, Op: "userstore.Fetch",
			Message: fmt.Sprintf("the user store did not answer within %v", s.cfg.QueryTimeout), Err: errSlots}
		s.m.queries.slots.Inc()
		s.logFailure("no_slot", len(b.users), s.cfg.QueryTimeout, b.err)
		return
	}
	s.m.batchSize.Observe(float64(len(b.users)))
	rows := make(map[lr.UserID]Row, len(b.users))
	start := time.Now()
	err := s.cfg.Source.UserRows(ctx, g.models, b.users, func(model, user int64, vec, mlp []float32) error {
		r := rows[lr.UserID(user)]
		if len(vec) == 0 {
			vec = nil // an empty array is no vector (Row.Known false)
		}
		if len(mlp) == 0 {
			mlp = nil
		}
		if model == g.v.MF {
			r.MF = vec
		}
		if model == g.v.NCF {
			r.NCF, r.MLP = vec, mlp
		}
		rows[lr.UserID(user)] = r
		return nil
	})
	took := time.Since(start)
	s.m.querySeconds.Observe(took.Seconds())
	if err != nil {
		outcome := "error"
		if ctx.Err() != nil {
			outcome = "timeout"
			if lr.ErrorCode(err) != lr.EUNAVAILABLE {
				err = &lr.Error{Code: lr.EUNAVAILABLE, Op: "userstore.Fetch",
					Message: fmt.Sprintf("the user store did not answer within %v", s.cfg.QueryTimeout), Err: err}
			}
			s.m.queries.timeout.Inc()
		} else {
			s.m.queries.err.Inc()
		}
		b.err = err
		s.logFailure(outcome, len(b.users), took, err)
		return
	}
	s.m.queries.ok.Inc()
	c := g.cache.Load()
	for _, id := range b.users {
		u := lr.UserID(id)
		r := rows[u]
		r.Versions = g.v
		rows[u] = r
		if c != nil {
			c.Set(u, r)
		}
	}
	b.rows = rows
}

// logFailure logs a failed batch query: the first one, then at most one a
// minute with the number of failures since the last one logged.
func (s *Store) logFailure(outcome string, users int, took time.Duration, err error) {
	if s.cfg.Log == nil {
		return
	}
	s.logMu.Lock()
	now := s.now()
	if !s.loggedAt.IsZero() && now.Sub(s.loggedAt) < time.Minute {
		s.unlogged++
		s.logMu.Unlock()
		return
	}
	since := s.unlogged
	s.loggedAt, s.unlogged = now, 0
	s.logMu.Unlock()
	s.cfg.Log.Warn("user store: batch query failed; its users are served without their vectors",
		"outcome", outcome, "users", users, "took", took, "failures_not_logged", since, "err", err)
}

// Stats is a snapshot of the store's counters, for benchmarks and logs.
type Stats struct {
	Hits         uint64 // lookups answered by the cache, negative hits included
	NegativeHits uint64 // hits on the row of a user the Source does not know
	Misses       uint64 // Fetches the cache did not answer, each waiter of a shared lookup counted (bypasses of a replaced generation included)
	Bytes        int64  // the current generation's cache weight (see EntryOverhead)
	Entries      int    // the current generation's cached users
	MaxBytes     int64  // the cache's bound (Config.MaxBytes or its default)
}

// Stats returns the store's counters since New and the current cache size.
func (s *Store) Stats() Stats {
	st := Stats{Hits: s.hits.Load(), NegativeHits: s.negHits.Load(), Misses: s.misses.Load(), MaxBytes: s.cfg.MaxBytes}
	st.Bytes, st.Entries = s.size()
	return st
}

func (s *Store) size() (int64, int) {
	if g := s.cur.Load(); g != nil {
		if c := g.cache.Load(); c != nil {
			return int64(c.WeightedSize()), c.EstimatedSize()
		}
	}
	return 0, 0
}
