// Package foldin keeps users' MF vectors current within a session: when a
// user's watch events are applied to the live state, it folds the user's
// vector in from their watches of the last hours against the serving MF
// version's fixed streamer factors (embed.FoldIn: the implicit-ALS user
// solve with the nightly vector as the prior), off the request path, and
// serves the result to the MF channel in place of the nightly vector.
//
// Work is bounded: a user's events within Debounce of the first are folded
// once (debounced per user), one worker goroutine folds, a token bucket caps
// the fold-ins per second (a fold-in over the cap is skipped and counted,
// and the user's next event schedules it again), and at most MaxPending
// users wait. Folded vectors are kept in memory, at most MaxUsers of them
// (least recently folded out first), for one MF version at a time (a new
// version drops them), each until its newest watch leaves the window (the
// longer NewUserWindow for a user the version has no vector of).
package foldin

import (
	"container/list"
	"context"
	"io"
	"iter"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/userstore"
)

// Index is what fold-in needs of the serving MF index (index.Manager): the
// serving version, a streamer's vector under a version, and every streamer
// vector of a version (for its Gramian).
type Index interface {
	Model(kind lr.ModelKind) lr.ModelVersion
	StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool)
	StreamerVectors(kind lr.ModelKind, model int64) (lr.ModelVersion, iter.Seq[[]float32], error)
}

// History gives a user's recent watches (live.State), in any order; the
// slice is the caller's.
type History interface {
	History(u lr.UserID) []live.Watch
}

// Nightly gives a user's stored vectors (userstore.Store).
type Nightly interface {
	Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error)
}

// Defaults of Config's zero fields.
const (
	DefaultWindow        = 6 * time.Hour
	DefaultNewUserWindow = 24 * time.Hour
	DefaultDebounce      = time.Second
	DefaultRate          = 200
	DefaultMaxUsers      = 100_000
	DefaultMaxPending    = 65_536
	DefaultFetchTimeout  = 2 * time.Second
)

// Config configures a Folder. Index, History, Nightly and Ordinals are
// required.
type Config struct {
	Index    Index
	History  History
	Nightly  Nightly
	Ordinals *lr.Ordinals
	// Window: the watches started within it before now are folded in, and
	// a folded vector is served until its newest watch leaves it. A
	// user the version knows has only the watches started after the
	// version was created folded in (the nightly vector has the earlier
	// ones). Default 6 h.
	Window time.Duration
	// NewUserWindow is Window for a user the serving version has no
	// vector of (new since it was trained): no nightly vector stands
	// behind their folded one, and the next version (a day later with
	// the nightly job) is the first to know them, so the watches of
	// their earlier visits that day still count and their folded vector
	// serves until the newest leaves this window. Never shorter than
	// Window. Default 24 h.
	NewUserWindow time.Duration
	// Debounce: a user's watch events within it of the first are folded in
	// once, at its end. Default 1 s.
	Debounce time.Duration
	// Rate caps the fold-ins per second (a token bucket holding one
	// second's worth); over it a fold-in is skipped and counted. Default
	// 200.
	Rate float64
	// MaxUsers bounds the folded vectors kept (at most 200 bytes plus 4
	// per dimension each, 442 measured at 64 dimensions: 44 MB at the
	// default 100,000). Default 100,000.
	MaxUsers int
	// MaxPending bounds the users waiting for a fold-in; a user's events
	// beyond it are skipped and counted. Default 65,536.
	MaxPending int
	// FetchTimeout bounds the read of a user's nightly vector. Default 2 s.
	FetchTimeout time.Duration
	// Clock gives the time of the window and of the vectors' expiry (the
	// replay clock in replays). Default time.Now. Debounce and Rate are
	// always in wall time: they bound CPU.
	Clock      func() time.Time
	Registerer prometheus.Registerer
	Log        *slog.Logger
}

// Outcomes of a fold-in (the label outcome of liverecall_foldin_total).
const (
	OutcomeDone    = "done"     // a folded vector is served
	OutcomeEmpty   = "empty"    // no watch of a streamer with a vector in the window: the nightly vector serves
	OutcomeFailed  = "failed"   // the solve failed (not finite, singular): the nightly vector serves
	OutcomeError   = "error"    // the nightly vector or the Gramian could not be read: tried again at the next event
	OutcomeNoModel = "no_model" // no MF version serves
)

// Folder schedules, computes and serves folded MF user vectors. Safe for
// concurrent use.
type Folder struct {
	cfg Config
	m   *metrics

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to 0
	pending  map[lr.UserID]struct{}
	queue    []task // FIFO: due times ascending (Debounce is constant)
	inflight int
	wake     chan struct{}
	tokens   float64
	refilled time.Time

	gramMu sync.Mutex
	gram   *embed.Gramian
	gramID int64

	cache cache
}

type task struct {
	user lr.UserID
	at   time.Time // the first event's arrival (wall clock)
	due  time.Time
}

// New returns a Folder; call Run to start its worker (or Flush to fold
// in on the caller's goroutine). It panics if a required part of cfg is
// missing.
func New(cfg Config) *Folder {
	if cfg.Index == nil || cfg.History == nil || cfg.Nightly == nil || cfg.Ordinals == nil {
		panic("foldin.New: Config.Index, History, Nightly and Ordinals are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.NewUserWindow <= 0 {
		cfg.NewUserWindow = DefaultNewUserWindow
	}
	cfg.NewUserWindow = max(cfg.NewUserWindow, cfg.Window)
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = DefaultMaxUsers
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultMaxPending
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	f := &Folder{cfg: cfg, pending: map[lr.UserID]struct{}{}, wake: make(chan struct{}, 1),
		tokens: max(cfg.Rate, 1), refilled: time.Now()}
	f.idle = sync.NewCond(&f.mu)
	f.cache = cache{max: cfg.MaxUsers, byUser: map[lr.UserID]*list.Element{}, lru: list.New()}
	f.m = newMetrics(cfg.Registerer, f)
	return f
}

// Schedule asks for a fold-in of each of users (live.Config.OnWatch): one
// Debounce after the first event of a user not already waiting. It never
// blocks on a fold-in.
func (f *Folder) Schedule(users []lr.UserID) {
	now := time.Now()
	f.mu.Lock()
	for _, u := range users {
		if _, ok := f.pending[u]; ok {
			f.m.coalesced.Inc()
			continue
		}
		if len(f.pending) >= f.cfg.MaxPending {
			f.m.skippedQueue.Inc()
			continue
		}
		f.pending[u] = struct{}{}
		f.queue = append(f.queue, task{user: u, at: now, due: now.Add(f.cfg.Debounce)})
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Pending returns how many users wait for a fold-in.
func (f *Folder) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pending)
}

// pop takes the first task if it is due (or any when force), marking it in
// flight; otherwise it returns how long until the first is due (-1: none).
func (f *Folder) pop(now time.Time, force bool) (task, bool, time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.queue) == 0 {
		return task{}, false, -1
	}
	t := f.queue[0]
	if !force && t.due.After(now) {
		return task{}, false, t.due.Sub(now)
	}
	f.queue[0] = task{}
	f.queue = f.queue[1:]
	delete(f.pending, t.user)
	f.inflight++
	return t, true, 0
}

func (f *Folder) finished() {
	f.mu.Lock()
	f.inflight--
	if f.inflight == 0 {
		f.idle.Broadcast()
	}
	f.mu.Unlock()
}

// take takes a token from the bucket (refilled at Rate per second, holding
// at most one second's worth); false when it is empty.
func (f *Folder) take(now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	burst := max(f.cfg.Rate, 1)
	f.tokens = min(burst, f.tokens+now.Sub(f.refilled).Seconds()*f.cfg.Rate)
	f.refilled = now
	if f.tokens < 1 {
		return false
	}
	f.tokens--
	return true
}

// Run folds in the scheduled users as they fall due, under the rate cap,
// until ctx ends. Call it once (it is the one worker).
func (f *Folder) Run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		now := time.Now()
		t, ok, wait := f.pop(now, false)
		if ok {
			if f.take(now) {
				f.fold(ctx, t)
			} else {
				f.m.skippedRate.Inc()
			}
			f.finished()
			continue
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-f.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// Flush folds in every user waiting now, without waiting for their
// debounce and outside the rate cap, on the caller's goroutine, and then
// waits for a fold-in the worker has in flight: when it returns, every
// watch applied before the call is reflected in what Lookup and the
// overlay serve (the quality benchmark calls it before each decision). It
// returns ctx's error if ctx ends first. Safe to call beside Run.
func (f *Folder) Flush(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		t, ok, _ := f.pop(time.Now(), true)
		if !ok {
			break
		}
		f.fold(ctx, t)
		f.finished()
	}
	// A context that ends wakes the wait below.
	stop := context.AfterFunc(ctx, func() {
		f.mu.Lock()
		f.idle.Broadcast()
		f.mu.Unlock()
	})
	defer stop()
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.inflight > 0 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.idle.Wait()
	}
	return nil
}

// FoldNow folds u in now, synchronously, outside the debounce and the rate
// cap, and returns the outcome (one of the Outcome constants) and the
// vector it serves for u from then on, if any.
func (f *Folder) FoldNow(ctx context.Context, u lr.UserID) (string, *lr.FoldedVector) {
	out := f.fold(ctx, task{user: u, at: time.Now()})
	v, ok := f.Lookup(u, f.cfg.Index.Model(lr.ModelMF).ID)
	if !ok {
		return out, nil
	}
	return out, &v
}

// fold computes u's folded vector under the serving MF version and stores
// it, or drops u's folded vector when the nightly one is to serve.
func (f *Folder) fold(ctx context.Context, t task) string {
	out := f.foldUser(ctx, t)
	f.m.outcomes.WithLabelValues(out).Inc()
	return out
}

func (f *Folder) foldUser(ctx context.Context, t task) string {
	mv := f.cfg.Index.Model(lr.ModelMF)
	if mv.ID == 0 {
		return OutcomeNoModel
	}
	f.cache.setModel(mv.ID)
	g, err := f.gramian(mv.ID)
	if err != nil {
		f.cfg.Log.Warn("fold-in: the MF version's Gramian could not be computed; serving nightly vectors", "version", mv.Version, "err", err)
		return OutcomeError
	}
	fctx, cancel := context.WithTimeout(ctx, f.cfg.FetchTimeout)
	row, err := f.cfg.Nightly.Fetch(fctx, t.user, userstore.Versions{MF: mv.ID, NCF: f.cfg.Index.Model(lr.ModelNCF).ID})
	cancel()
	if err != nil {
		return OutcomeError
	}
	prior := row.MF
	if prior != nil && len(prior) != g.Dim {
		prior = nil
	}
	now := f.cfg.Clock()
	window := f.cfg.Window
	if prior == nil {
		window = f.cfg.NewUserWindow
	}
	from := now.Add(-window)
	if prior != nil && !mv.CreatedAt.IsZero() && mv.CreatedAt.After(from) {
		// The nightly vector has the watches before its version.
		from = mv.CreatedAt
	}
	byStreamer := map[lr.StreamerID]int{}
	var items []embed.FoldInItem
	var newest time.Time
	watches := 0
	for _, w := range f.cfg.History.History(t.user) {
		if w.JoinedAt.Before(from) || w.JoinedAt.After(now) {
			continue
		}
		ord, ok := f.cfg.Ordinals.Lookup(w.StreamerID)
		if !ok {
			continue
		}
		vec, ok := f.cfg.Index.StreamerVector(lr.ModelMF, mv.ID, ord)
		if !ok {
			continue
		}
		end := w.LeftAt
		if end.IsZero() || end.After(now) {
			end = now
		}
		secs := max(end.Sub(w.JoinedAt).Seconds(), 1) // as training counts a session
		watches++
		newest = maxTime(newest, w.JoinedAt)
		if i, ok := byStreamer[w.StreamerID]; ok {
			items[i].Value += secs
			continue
		}
		byStreamer[w.StreamerID] = len(items)
		items = append(items, embed.FoldInItem{Vec: vec, Value: secs})
	}
	if len(items) == 0 {
		f.cache.remove(t.user)
		return OutcomeEmpty
	}
	t0 := time.Now()
	x, err := embed.FoldIn(g, embed.FoldInParamsOf(mv.Params), prior, items)
	f.m.solve.Observe(time.Since(t0).Seconds())
	if err != nil {
		f.cache.remove(t.user)
		f.cfg.Log.Debug("fold-in failed; the nightly vector serves", "user", t.user, "version", mv.Version, "err", err)
		return OutcomeFailed
	}
	f.cache.put(t.user, lr.FoldedVector{Model: mv.ID, Vec: x, At: now, Streams: len(items), Watches: watches, Expires: newest.Add(window)})
	f.m.delay.Observe(time.Since(t.at).Seconds())
	return OutcomeDone
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// gramian returns YᵀY of MF version model, computing it on its first use
// (one at a time; the previous version's is dropped).
func (f *Folder) gramian(model int64) (*embed.Gramian, error) {
	f.gramMu.Lock()
	defer f.gramMu.Unlock()
	if f.gram != nil && f.gramID == model {
		return f.gram, nil
	}
	mv, vecs, err := f.cfg.Index.StreamerVectors(lr.ModelMF, model)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	g, err := embed.NewGramian(mv.Dim, vecs)
	if err != nil {
		return nil, err
	}
	f.gram, f.gramID = g, model
	f.cfg.Log.Info("fold-in: Gramian of the MF version computed", "version", mv.Version, "dim", mv.Dim, "seconds", time.Since(t0).Seconds())
	return g, nil
}

// Lookup returns u's folded vector under MF version model, if one is held
// and has not expired (by Config.Clock). The vector is shared: do not
// modify it.
func (f *Folder) Lookup(u lr.UserID, model int64) (lr.FoldedVector, bool) {
	if model == 0 {
		return lr.FoldedVector{}, false
	}
	return f.cache.get(u, model, f.cfg.Clock())
}

// Folded is Lookup for recommend's debug endpoint (recommend.FoldedVectors).
func (f *Folder) Folded(u lr.UserID, model int64) (lr.FoldedVector, bool) { return f.Lookup(u, model) }

// Len returns how many folded vectors are held (expired ones included
// until they are looked up or pushed out).
func (f *Folder) Len() int { return f.cache.len() }

// UserVectors is what recall reads users' vectors from (recall.UserVectors,
// userstore.Store).
type UserVectors interface {
	Cached(u lr.UserID, v userstore.Versions) (userstore.Row, bool)
	Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error)
}

// Overlay returns inner with the folded vectors in: a row whose MF version
// has a folded vector for its user carries that vector as its MF vector
// (the row's slice replaced, never modified), so the MF channel and the
// candidates' MF scores use it; every other row is inner's. A folded
// vector of another version than the row's is never used.
// When inner can look a row up without waiting (userstore.Store's
// Lookup), so can the overlay.
func (f *Folder) Overlay(inner UserVectors) UserVectors {
	o := overlay{f: f, inner: inner}
	if l, ok := inner.(lookuper); ok {
		return lookupOverlay{o, l}
	}
	return o
}

// lookuper is a UserVectors whose misses can be waited for without a
// goroutine (userstore.Store).
type lookuper interface {
	Lookup(u lr.UserID, v userstore.Versions) (userstore.Row, *userstore.Pending)
}

type lookupOverlay struct {
	overlay
	l lookuper
}

// Lookup is the inner store's Lookup with the folded vectors applied to
// the row, now or once it has been read.
func (o lookupOverlay) Lookup(u lr.UserID, v userstore.Versions) (userstore.Row, *userstore.Pending) {
	row, p := o.l.Lookup(u, v)
	if p == nil {
		return o.apply(u, row), nil
	}
	return row, p.Then(o.apply)
}

type overlay struct {
	f     *Folder
	inner UserVectors
}

func (o overlay) Cached(u lr.UserID, v userstore.Versions) (userstore.Row, bool) {
	row, ok := o.inner.Cached(u, v)
	if !ok {
		return row, false
	}
	return o.apply(u, row), true
}

func (o overlay) Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error) {
	row, err := o.inner.Fetch(ctx, u, v)
	if err != nil {
		return row, err
	}
	return o.apply(u, row), nil
}

// Prefetch passes a read ahead on to the inner store when it can (the
// overlay's vectors are applied when the row is looked up).
func (o overlay) Prefetch(u lr.UserID, v userstore.Versions) {
	if p, ok := o.inner.(interface {
		Prefetch(lr.UserID, userstore.Versions)
	}); ok {
		p.Prefetch(u, v)
	}
}

func (o overlay) apply(u lr.UserID, row userstore.Row) userstore.Row {
	if fv, ok := o.f.Lookup(u, row.Versions.MF); ok {
		row.MF = fv.Vec
	}
	return row
}

// cache holds the folded vectors of one MF version, at most max users,
// least recently folded out first.
type cache struct {
	mu     sync.Mutex
	max    int
	model  int64
	byUser map[lr.UserID]*list.Element // of *entry
	lru    *list.List                  // front: most recently folded
}

type entry struct {
	user lr.UserID
	v    lr.FoldedVector
}

// setModel drops every vector of another version than model.
func (c *cache) setModel(model int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.model == model {
		return
	}
	c.model = model
	clear(c.byUser)
	c.lru.Init()
}

func (c *cache) put(u lr.UserID, v lr.FoldedVector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v.Model != c.model {
		return // the version changed while folding
	}
	if el, ok := c.byUser[u]; ok {
		el.Value.(*entry).v = v
		c.lru.MoveToFront(el)
		return
	}
	c.byUser[u] = c.lru.PushFront(&entry{user: u, v: v})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.byUser, old.Value.(*entry).user)
	}
}

func (c *cache) get(u lr.UserID, model int64, now time.Time) (lr.FoldedVector, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byUser[u]
	if !ok {
		return lr.FoldedVector{}, false
	}
	e := el.Value.(*entry)
	if e.v.Model != model {
		return lr.FoldedVector{}, false
	}
	if !now.Before(e.v.Expires) {
		c.lru.Remove(el)
		delete(c.byUser, u)
		return lr.FoldedVector{}, false
	}
	return e.v, true
}

func (c *cache) remove(u lr.UserID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byUser[u]; ok {
		c.lru.Remove(el)
		delete(c.byUser, u)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
