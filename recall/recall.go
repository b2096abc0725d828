package recall

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/spans"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/userstore"
)

// Channel names, as reported in responses and metrics.
const (
	ChanMF       = "mf"
	ChanNCF      = "ncf"
	ChanSession  = "session"
	ChanFollow   = "follow"
	ChanTrending = "trending"
	ChanFresh    = "fresh"
)

// Channels lists every channel in merge-priority order.
var Channels = []string{ChanMF, ChanNCF, ChanSession, ChanFollow, ChanTrending, ChanFresh}

// Hit is one index result: a streamer ordinal and its score.
type Hit = index.Hit

// Allowed is the filter an index search applies during traversal. The
// channels pass the request's *live.Snapshot, which is also an
// index.LiveSet: the index knows it, by its type and version, for the live
// set its live matrices mirror (live/ gives every version to the index
// before a request can read it).
type Allowed = index.Allowed

// Index is what recall needs from the index layer (index.Manager), per
// model kind. A request reads the serving versions once (Model) and pins
// every other call to them (model, an embedding_models id; 0 takes
// whatever serves), so a swap during the request never pairs the user's
// vector of one version with streamer vectors of another. All methods are
// safe for concurrent use and must honour ctx.
type Index interface {
	// Model returns kind's serving model version (ID 0 when none).
	Model(kind lr.ModelKind) lr.ModelVersion
	// StreamerVector returns the vector of the streamer with ordinal ord
	// under version model (the caller's to keep: index.Manager copies it),
	// or false (also when model no longer serves).
	StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool)
	// HasStreamer reports whether StreamerVector would find a vector,
	// without copying it.
	HasStreamer(kind lr.ModelKind, model int64, ord uint32) bool
	// Search returns up to k allowed streamers with the highest dot product
	// with q under version model, best first; EUNAVAILABLE when model no
	// longer serves. allowed is the request's live snapshot (or nil for
	// every streamer); an index with a live matrix recognises it as an
	// index.LiveSet.
	Search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed Allowed) ([]Hit, error)
	// Dots writes q's dot product with the vector of each of ords under
	// version model to out, in one call (ok[i] false and out[i] 0 for an
	// ordinal with no vector, or every one when model does not serve).
	Dots(kind lr.ModelKind, model int64, q []float32, ords []uint32, out []float32, ok []bool)
}

// UserVectors is where the user side of the models comes from
// (userstore.Store): a cached row without I/O, or one read from the store
// within ctx. Safe for concurrent use.
type UserVectors interface {
	Cached(u lr.UserID, v userstore.Versions) (userstore.Row, bool)
	Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error)
}

// Integrity answers the integrity questions that come from Postgres
// (bans and blocks); implementations cache.
type Integrity interface {
	Banned(id lr.StreamerID) bool
	Blocked(u lr.UserID) []lr.StreamerID
}

// Config sets budgets, quotas and filters. Zero values take the defaults.
type Config struct {
	// Budget bounds the whole recall stage of a request. Default 8 ms.
	Budget time.Duration
	// ChannelBudget bounds each channel (never beyond Budget). Default
	// three quarters of Budget (6 ms of the default 8 ms), leaving the
	// merge its share. It bounds a channel that waits for data not there
	// at the request's start (the user's vectors, a cache miss; their
	// stored history and follows, a load): such a channel is dropped (late
	// or timeout) when its data has not come in time. Every channel
	// computes in the request's goroutine (a waiting one once its data
	// has come), and its answer is kept even if the budget ran out
	// meanwhile.
	ChannelBudget map[string]time.Duration
	// PerChannel is how many candidates each channel is asked for.
	// Default 40 for mf/ncf, 20 for the others (about 100 candidates
	// after duplicates for a page of 20).
	PerChannel map[string]int
	// Quota caps how many merged candidates come from a channel before the
	// others have had their share. Default: PerChannel.
	Quota map[string]int
	// ShownWindow: streamers shown to a user within it (by this replica,
	// MarkShown, or by any, RecordShown) are demoted: they are candidates
	// only when the streamers not shown cannot fill the page (k), the least
	// recently shown first, and flagged Candidate.Shown. Default 10 min.
	// Zero disables it only when ShownDisabled is true.
	ShownWindow   time.Duration
	ShownDisabled bool
	// UnknownShare caps the candidates (and so the page) that streamers
	// unknown to the serving models (no vector in any loaded model, as a
	// new streamer or an id the platform never registered) may take: at
	// most UnknownShare*k of them, rounded down but at least 1, the first
	// in merge order (the fresh channel puts the newest first). Zero takes
	// the default 0.2; a negative share admits none; 1 or more disables
	// the cap. With no model loaded every streamer is unknown and the cap
	// does not apply.
	UnknownShare float64
	// Registerer, if set, receives the engine's metrics.
	Registerer prometheus.Registerer
	// FreshAge: streams younger than this are "fresh". Default 15 min.
	FreshAge time.Duration
	// Disabled channels are skipped (reported as "skipped"): for
	// experiments and the quality benchmark's ablations.
	Disabled map[string]bool
	// Now gives the time. Default time.Now.
	Now func() time.Time
	// Tracer, if set, traces each Recall ("recall") and each channel it
	// runs ("recall.<channel>"); nil: tracing off, at no cost.
	Tracer trace.Tracer
}

func (c *Config) defaults() {
	if c.Budget <= 0 {
		c.Budget = 8 * time.Millisecond
	}
	if c.ChannelBudget == nil {
		c.ChannelBudget = map[string]time.Duration{}
	}
	if c.PerChannel == nil {
		c.PerChannel = map[string]int{}
	}
	if c.Quota == nil {
		c.Quota = map[string]int{}
	}
	for _, ch := range Channels {
		if c.ChannelBudget[ch] <= 0 {
			c.ChannelBudget[ch] = c.Budget * 3 / 4
		}
		if c.ChannelBudget[ch] > c.Budget {
			c.ChannelBudget[ch] = c.Budget
		}
		if c.PerChannel[ch] <= 0 {
			c.PerChannel[ch] = 20
			if ch == ChanMF || ch == ChanNCF {
				c.PerChannel[ch] = 40
			}
		}
		if c.Quota[ch] <= 0 {
			c.Quota[ch] = c.PerChannel[ch]
		}
	}
	if c.ShownWindow <= 0 {
		c.ShownWindow = 10 * time.Minute
	}
	if c.FreshAge <= 0 {
		c.FreshAge = 15 * time.Minute
	}
	if c.UnknownShare == 0 {
		c.UnknownShare = DefaultUnknownShare
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// DefaultUnknownShare is the default Config.UnknownShare.
const DefaultUnknownShare = 0.2

// unknownLimit is how many streamers unknown to the models k candidates
// may hold (see Config.UnknownShare); -1 is no limit.
func (c *Config) unknownLimit(k int) int {
	switch {
	case c.UnknownShare < 0:
		return 0
	case c.UnknownShare >= 1:
		return -1
	}
	return max(1, int(c.UnknownShare*float64(k)))
}

// Request is one recall request.
type Request struct {
	User    lr.UserID
	K       int // how many candidates the caller will keep after rerank
	Exclude []lr.StreamerID
	// FullNCF, if set, says whether the caller will score every candidate
	// with the full NeuMF model given the user's row recall served with
	// (it can only when the row holds what the model needs): the NCF dot
	// products of candidates other channels proposed are then not computed
	// (the NCF channel's own scores still are).
	FullNCF func(userstore.Row) bool
	// Override, if not nil, replaces parts of the engine's Config for
	// this request: an experiment arm's pinned model versions, channel
	// switches, candidate counts, quotas and budgets. It is read, never
	// modified: one Override may serve many requests at once. nil: the
	// Config and the serving versions (the default path costs nothing
	// more than this nil).
	Override *Override
	// UserLoad, if set, is the load of the user's stored history and
	// follows that the caller began (live.State.Begin) and that the
	// channels reading them (session, follow) and the merge wait for; the
	// others run meanwhile. nil: nothing to wait for.
	UserLoad *live.Load
}

// Pin names one model version: its embedding_models id and its label.
type Pin struct {
	ID      int64
	Version string
}

// Override is a request's configuration where it differs from the
// engine's Config. A channel a map does not name keeps the Config's
// value. MaxPerChannel bounds the candidate counts and quotas.
type Override struct {
	// MF and NCF, when their ID is set, pin the request to that model
	// version of the kind instead of the one serving at its start: the
	// user's row is fetched for the pinned versions and every search and
	// dot product uses them, so user and streamer vectors never mix
	// versions. The index must serve the version (index.Manager: the
	// active one or one loaded for an experiment); when it does not, that
	// kind's channel fails as unavailable, as after a swap. Zero: the
	// serving version.
	MF, NCF Pin
	// Disabled channels are skipped (reported as "skipped"); Enabled
	// channels run even when Config.Disabled skips them. A channel in
	// both is enabled.
	Disabled, Enabled map[string]bool
	// PerChannel is how many candidates a channel is asked for; Quota
	// caps what it contributes to the merge before the others had their
	// share (a channel with a PerChannel here but no Quota takes its
	// PerChannel as quota, as Config does); ChannelBudget bounds its time
	// (never beyond Config.Budget).
	PerChannel    map[string]int
	Quota         map[string]int
	ChannelBudget map[string]time.Duration
}

// MaxPerChannel is the most candidates an Override may ask of one
// channel: the trending and fresh lists are kept at least this long.
const MaxPerChannel = 1000

// disabled says whether channel name is skipped for q's request.
func (e *Engine) disabled(q *query, name string) bool {
	if o := q.req.Override; o != nil {
		if o.Enabled[name] {
			return false
		}
		if o.Disabled[name] {
			return true
		}
	}
	return e.cfg.Disabled[name]
}

// perChannel is how many candidates channel name is asked for in q.
func (e *Engine) perChannel(q *query, name string) int {
	if o := q.req.Override; o != nil {
		if n := o.PerChannel[name]; n > 0 {
			return min(n, MaxPerChannel)
		}
	}
	return e.cfg.PerChannel[name]
}

// quota caps what channel name contributes to q's merge.
func (e *Engine) quota(q *query, name string) int {
	if o := q.req.Override; o != nil {
		if n := o.Quota[name]; n > 0 {
			return min(n, MaxPerChannel)
		}
		if n := o.PerChannel[name]; n > 0 {
			return min(n, MaxPerChannel)
		}
	}
	return e.cfg.Quota[name]
}

// channelBudget bounds channel name's time in q (at most Config.Budget).
func (e *Engine) channelBudget(q *query, name string) time.Duration {
	if o := q.req.Override; o != nil {
		if d := o.ChannelBudget[name]; d > 0 {
			return min(d, e.cfg.Budget)
		}
	}
	return e.cfg.ChannelBudget[name]
}

// Candidate is one live streamer proposed by one or more channels.
type Candidate struct {
	Ord        uint32
	StreamerID lr.StreamerID
	Features   live.Features
	Channels   []string // every channel that proposed it, in Channels order
	MFScore    float32  // dot product under the MF model (HasMF false if unknown)
	NCFScore   float32  // GMF dot product under the NCF model
	HasMF      bool
	HasNCF     bool
	ChanScore  float32 // the best within-channel rank score, for the recall order
	// Shown says the streamer was shown to the user within the shown
	// window: it fills a page the others could not, after them in the
	// recall order, and rerank keeps it after them.
	Shown bool
}

// Outcome reports what one channel did for a request.
type Outcome struct {
	Channel    string        `json:"channel"`
	Status     string        `json:"status"` // ok, timeout, late, error, skipped
	Candidates int           `json:"candidates"`
	Took       time.Duration `json:"took_ns"`
	Error      string        `json:"error,omitempty"`
}

// Outcome statuses. StatusLate is an mf or ncf channel whose user vectors
// (a miss of the user store's cache) did not arrive within its budget: the
// page is served without it, never failed.
const (
	StatusOK      = "ok"
	StatusTimeout = "timeout"
	StatusLate    = "late"
	StatusError   = "error"
	StatusSkipped = "skipped"
)

// Result is the merged, filtered candidate list in recall order.
type Result struct {
	Candidates []Candidate
	Outcomes   []Outcome
	Versions   map[string]string // model kind -> version used
	// Filtered counts the candidates each filter removed: unknown, ended,
	// excluded, banned, shown (demoted and not needed to fill the page),
	// unknown_cap (over Config.UnknownShare). The live state of a demoted
	// streamer is read only when the page needs it: one not needed counts
	// as shown even if its stream ended since the channels' search.
	Filtered map[string]int
	// User is the user's row the request was served with, under the
	// versions it pinned (User.Versions); no vectors when the user store
	// has none for the user or they did not arrive before the merge.
	User      userstore.Row
	UserKnown bool // User holds a vector of some model
}

// Engine runs the channels. It is safe for concurrent use.
type Engine struct {
	cfg       Config
	state     *live.State
	ords      *lr.Ordinals
	index     Index
	users     UserVectors
	integrity Integrity
	shown     *shownLog
	chans     []namedChannel
	singles   [][]string // for chans[i], the channel list of its name alone (len and cap 1; read-only)
	ranks     rankCache
	observe   func(channel, status string, took time.Duration)
	// unknownAdmitted and unknownCapped count the candidates unknown to
	// the models that were kept and that Config.UnknownShare removed.
	unknownAdmitted, unknownCapped prometheus.Counter
}

// New returns an engine over the live state, the index, the user store
// and the integrity source. index, users and integrity may be nil (their
// channels and filters are then skipped: without users the mf and ncf
// channels have no user vector). observe, if not nil, is told every
// channel outcome.
func New(cfg Config, state *live.State, ords *lr.Ordinals, index Index, users UserVectors, integrity Integrity, observe func(channel, status string, took time.Duration)) *Engine {
	cfg.defaults()
	e := &Engine{cfg: cfg, state: state, ords: ords, index: index, users: users, integrity: integrity, shown: newShownLog(), observe: observe}
	e.chans = e.channels()
	for _, ch := range e.chans {
		e.singles = append(e.singles, []string{ch.name}[:1:1])
	}
	unknown := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_recall_unknown_streamers_total",
		Help: "Candidates unknown to the serving models (no vector in any loaded model), by outcome: admitted, or capped by the unknown-share limit."},
		[]string{"outcome"})
	e.unknownAdmitted, e.unknownCapped = unknown.WithLabelValues("admitted"), unknown.WithLabelValues("capped")
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(unknown)
	}
	return e
}

// channelFunc proposes candidates (ordinals with a within-channel score,
// best first) for a request.
type channelFunc func(ctx context.Context, q *query) ([]Hit, error)

// query is the per-request state shared by channels (read-only once built).
type query struct {
	req  Request
	snap *live.Snapshot
	now  time.Time
	vers userstore.Versions // the model versions pinned at the start
	user *userRow           // the user's row under vers, arrived or coming
	// fresh, if set (tests), is the live set merge takes as now's
	// instead of the newest snapshot.
	fresh *live.Snapshot
}

// model returns the pinned version id of kind (0: none serves).
func (q *query) model(kind lr.ModelKind) int64 {
	if kind == lr.ModelMF {
		return q.vers.MF
	}
	return q.vers.NCF
}

// userRow is the user's row, there at the start (a cache hit), or read
// by the user store (a miss). A miss is waited for in one of two ways:
// with a store that can Lookup (userstore.Store), done is the read's own
// channel and the first reader to find it closed takes row and err from
// pending (under once); with any other store, one goroutine per request
// Fetches it, sets row and err, then closes done. Either way row and err
// are read only once ready says the row is there.
type userRow struct {
	done    <-chan struct{}
	pending *userstore.Pending
	once    sync.Once
	row     userstore.Row
	err     error
}

var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// ready says, without waiting, whether the row has arrived or its read
// failed (err then set).
func (u *userRow) ready() bool {
	select {
	case <-u.done:
		if u.pending != nil {
			u.once.Do(func() { u.row, u.err = u.pending.Row() })
		}
		return true
	default:
		return false
	}
}

// arrived returns the row if it has arrived without error.
func (u *userRow) arrived() (userstore.Row, bool) {
	if !u.ready() {
		return userstore.Row{}, false
	}
	return u.row, u.err == nil
}

// abandon tells the user store that the request gave up waiting for the
// row (counted late), when it has not arrived.
func (u *userRow) abandon() {
	if u.pending != nil && !u.ready() {
		u.pending.Late()
	}
}

// errLate says the user's row did not arrive within a channel's budget.
var errLate = errors.New("the user's vectors did not arrive in time")

// errNoUserVector says the user has no vector of the model.
var errNoUserVector = errors.New("the user has no vector of the model")

// wait returns the row once it arrives, errLate when ctx ends first (or
// the store gave up for the request's deadline), or the store's error.
func (u *userRow) wait(ctx context.Context) (userstore.Row, error) {
	if !u.ready() {
		select {
		case <-u.done:
		case <-ctx.Done():
			return userstore.Row{}, errLate
		}
		u.ready()
	}
	if errors.Is(u.err, context.DeadlineExceeded) || errors.Is(u.err, context.Canceled) {
		return userstore.Row{}, errLate
	}
	return u.row, u.err
}

// userLookup is a UserVectors whose misses can be waited for without a
// goroutine (userstore.Store, and the fold-in overlay over it).
type userLookup interface {
	Lookup(u lr.UserID, v userstore.Versions) (userstore.Row, *userstore.Pending)
}

// lookupUser pins the serving versions (or the request's pins) and starts
// the user's row: from the cache, or (a miss) the store's read, that
// nothing waits for here. With a store that cannot Lookup, the miss is one
// Fetch bounded by ctx, the request's budget, in a goroutine that writes
// only to the returned userRow and ends when Fetch returns (when ctx ends
// at the latest), so nothing outlives the request except a Fetch winding
// down.
func (e *Engine) lookupUser(ctx context.Context, q *query, res *Result) {
	q.user = &userRow{done: closedDone}
	if e.index == nil {
		return
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		var pin Pin
		if o := q.req.Override; o != nil {
			pin = o.MF
			if kind == lr.ModelNCF {
				pin = o.NCF
			}
		}
		if pin.ID == 0 {
			mv := e.index.Model(kind)
			pin = Pin{ID: mv.ID, Version: mv.Version}
		}
		if pin.ID == 0 {
			continue
		}
		res.Versions[string(kind)] = pin.Version
		if kind == lr.ModelMF {
			q.vers.MF = pin.ID
		} else {
			q.vers.NCF = pin.ID
		}
	}
	q.user.row.Versions = q.vers
	if e.users == nil || q.vers == (userstore.Versions{}) {
		return
	}
	if l, ok := e.users.(userLookup); ok {
		row, p := l.Lookup(q.req.User, q.vers)
		if p == nil {
			q.user.row = row
			return
		}
		q.user = &userRow{done: p.Done(), pending: p}
		return
	}
	if row, ok := e.users.Cached(q.req.User, q.vers); ok {
		q.user.row = row
		return
	}
	done := make(chan struct{})
	u := &userRow{done: done}
	q.user = u
	users, user, vers := e.users, q.req.User, q.vers
	go func() {
		defer close(done)
		u.row, u.err = users.Fetch(ctx, user, vers)
	}()
}

// prefetcher is a UserVectors that can start a read ahead of the lookup
// (userstore.Store).
type prefetcher interface {
	Prefetch(u lr.UserID, v userstore.Versions)
}

// Prefetch starts reading req's user's row under the versions Recall would
// use (the serving ones, or req.Override's pins) when the user store can
// read ahead and does not hold it, and returns at once: the caller's work
// before Recall (its user's live state load) then overlaps the read, which
// Recall joins. It does nothing when the store cannot read ahead.
func (e *Engine) Prefetch(req Request) {
	p, ok := e.users.(prefetcher)
	if !ok || e.index == nil {
		return
	}
	var v userstore.Versions
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		var pin Pin
		if o := req.Override; o != nil {
			pin = o.MF
			if kind == lr.ModelNCF {
				pin = o.NCF
			}
		}
		if pin.ID == 0 {
			pin.ID = e.index.Model(kind).ID
		}
		if kind == lr.ModelMF {
			v.MF = pin.ID
		} else {
			v.NCF = pin.ID
		}
	}
	p.Prefetch(req.User, v)
}

// userVector returns the row's vector of kind if the row has arrived and
// is of the pinned versions.
func (q *query) userVector(kind lr.ModelKind) []float32 {
	row, ok := q.user.arrived()
	if !ok || row.Versions != q.vers {
		return nil
	}
	return row.Vector(kind)
}

// Recall runs every channel under its budget, merges their candidates with
// quotas and provenance, and removes what the integrity filters forbid. A
// channel that fails or misses its deadline is reported in Outcomes and its
// candidates are not waited for.
func (e *Engine) Recall(ctx context.Context, req Request) (*Result, error) {
	if req.K <= 0 {
		return nil, lr.Errorf(lr.EINVALID, "k must be positive")
	}
	ctx, span := spans.Start(ctx, e.cfg.Tracer, "recall")
	defer span.End()
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Budget)
	defer cancel()
	q := &query{req: req, snap: e.state.Snapshot(), now: e.cfg.Now()}
	res := &Result{Versions: map[string]string{}, Filtered: map[string]int{}}
	e.lookupUser(ctx, q, res)

	type out struct {
		i    int
		hits []Hit
		err  error
		took time.Duration
	}
	funcs := e.chans
	outcomes := make([]Outcome, len(funcs))
	launched, finished := make([]bool, len(funcs)), make([]bool, len(funcs))
	// Channels with the same budget share one deadline context (by
	// default all of them): the same deadline each, one timer in all.
	type chanDeadline struct {
		budget time.Duration
		ctx    context.Context
		cancel context.CancelFunc
	}
	deadlines := make([]chanDeadline, 0, len(funcs))
	defer func() {
		for _, d := range deadlines {
			d.cancel()
		}
	}()
	channelCtx := func(budget time.Duration) context.Context {
		for _, d := range deadlines {
			if d.budget == budget {
				return d.ctx
			}
		}
		cctx, ccancel := context.WithTimeout(ctx, budget)
		deadlines = append(deadlines, chanDeadline{budget, cctx, ccancel})
		return cctx
	}
	run := func(cctx context.Context, ch *namedChannel) out {
		start := time.Now()
		sctx, span := spans.Start(cctx, e.cfg.Tracer, ch.spanName)
		hits, err := ch.fn(sctx, q)
		if err == nil && cctx.Err() != nil {
			err = cctx.Err()
		}
		if span.IsRecording() {
			span.SetAttributes(attribute.String("liverecall.channel", ch.name), attribute.Int("liverecall.candidates", len(hits)))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
		}
		span.End()
		return out{hits: hits, err: err, took: time.Since(start)}
	}
	got := make([][]Hit, len(funcs))
	record := func(o out) {
		finished[o.i] = true
		oc := &outcomes[o.i]
		oc.Took = o.took
		switch {
		case errors.Is(o.err, errLate):
			oc.Status = StatusLate
		case errors.Is(o.err, errNoUserVector):
			oc.Status = StatusSkipped
		case errors.Is(o.err, context.DeadlineExceeded):
			oc.Status = StatusTimeout
		case o.err != nil:
			oc.Status, oc.Error = StatusError, o.err.Error()
		default:
			oc.Status, oc.Candidates = StatusOK, len(o.hits)
			got[o.i] = o.hits
		}
	}
	// Every channel computes here, in the request's goroutine, one after
	// the other: those with all they need at hand at once, those waiting
	// for data not there yet (the user's vectors for mf and ncf, their
	// stored history and follows for session and follow) as it arrives,
	// each until its budget runs out. No goroutine, wake-up or timer per
	// channel: a request wakes once per arrival, and no answer is lost
	// because a goroutine was not scheduled within its budget on a busy
	// machine. An answer computed past its budget (this goroutine was not
	// running) is kept: dropping it would save no time.
	compute := func(i int) {
		ch := &funcs[i]
		o := run(channelCtx(e.channelBudget(q, ch.name)), ch)
		o.i = i
		if errors.Is(o.err, context.DeadlineExceeded) && o.hits != nil {
			o.err = nil
		}
		record(o)
	}
	var inline, waiting []int
	for i, ch := range funcs {
		outcomes[i] = Outcome{Channel: ch.name, Status: StatusSkipped}
		if ch.fn == nil || !ch.applies(q) || e.disabled(q, ch.name) {
			continue
		}
		launched[i] = true
		// Its deadline runs from here, whenever it computes.
		channelCtx(e.channelBudget(q, ch.name))
		if e.mayWait(q, &funcs[i]) {
			waiting = append(waiting, i)
		} else {
			inline = append(inline, i)
		}
	}
	for _, i := range inline {
		compute(i)
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
wait:
	for len(waiting) > 0 {
		// Compute the channels whose data has arrived, give up on those
		// whose deadline has passed, and sleep until the next arrival or
		// deadline of the others.
		var userDone, loadEnded <-chan struct{}
		var wake time.Time
		now := time.Now()
		rest := waiting[:0]
		for _, i := range waiting {
			ch := &funcs[i]
			budget := e.channelBudget(q, ch.name)
			dl, _ := channelCtx(budget).Deadline()
			switch {
			case !e.mayWait(q, ch):
				compute(i)
				continue
			case !now.Before(dl):
				o := out{i: i, err: context.DeadlineExceeded, took: budget}
				if ch.needsUser {
					o.err = errLate
				}
				record(o)
				continue
			}
			rest = append(rest, i)
			if wake.IsZero() || dl.Before(wake) {
				wake = dl
			}
			if ch.needsUser {
				userDone = q.user.done
			}
			if ch.needsUserState {
				ended, ldl := q.req.UserLoad.Ready()
				loadEnded = ended
				if !ldl.IsZero() && ldl.Before(wake) {
					wake = ldl
				}
			}
		}
		waiting = rest
		if len(waiting) == 0 {
			break
		}
		if timer == nil {
			timer = time.NewTimer(time.Until(wake))
		} else {
			timer.Reset(time.Until(wake))
		}
		select {
		case <-userDone:
		case <-loadEnded:
		case <-timer.C:
		case <-ctx.Done():
			break wait
		}
	}
	_, userArrived := q.user.arrived()
	for i := range outcomes {
		if launched[i] && !finished[i] {
			// Still running at the request deadline: late when it was
			// still waiting for the user's vectors.
			outcomes[i].Status = StatusTimeout
			if funcs[i].needsUser && !userArrived {
				outcomes[i].Status = StatusLate
			}
			outcomes[i].Took = e.cfg.Budget
		}
		if e.observe != nil {
			e.observe(outcomes[i].Channel, outcomes[i].Status, outcomes[i].Took)
		}
	}
	res.Outcomes = outcomes
	// The row the request is served with, taken once: the merge scores
	// the candidates with it and the caller binds NeuMF to it (a row that
	// arrives after this is for the next request).
	if row, ok := q.user.arrived(); ok && row.Versions == q.vers {
		res.User = row
	} else {
		res.User = userstore.Row{Versions: q.vers}
		q.user.abandon()
	}
	res.UserKnown = res.User.Known()
	// The merge reads the user's history (the shown filter): with what the
	// load brings by its deadline, as the session and follow channels.
	req.UserLoad.Wait(ctx)
	res.Candidates = e.merge(q, funcs, got, res)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("liverecall.k", req.K), attribute.Int("liverecall.candidates", len(res.Candidates)))
	}
	return res, nil
}

// mayWait says whether ch may wait in q for data not there yet: the user's
// vectors (mf, ncf) or their stored history and follows (session, follow).
func (e *Engine) mayWait(q *query, ch *namedChannel) bool {
	switch {
	case ch.needsUser:
		return !q.user.ready()
	case ch.needsUserState:
		return !q.req.UserLoad.Done()
	}
	return false
}

type namedChannel struct {
	name      string
	spanName  string // "recall." + name, made once
	fn        channelFunc
	applies   func(*query) bool
	needsUser bool // waits for the user's vectors (mf, ncf)
	// needsUserState: waits for the user's stored state (Request.UserLoad).
	needsUserState bool
}

func always(*query) bool { return true }

func (e *Engine) channels() []namedChannel {
	// A channel of a model applies when a version of it serves and the
	// user's row is still coming or holds a vector of it.
	has := func(kind lr.ModelKind) func(*query) bool {
		return func(q *query) bool {
			if q.model(kind) == 0 {
				return false
			}
			if !q.user.ready() {
				return true
			}
			return q.userVector(kind) != nil || q.user.err != nil
		}
	}
	var mf, ncf, sess channelFunc
	if e.index != nil {
		mf, ncf, sess = e.annChannel(lr.ModelMF), e.annChannel(lr.ModelNCF), e.sessionChannel
	}
	chans := []namedChannel{
		{ChanMF, "", mf, has(lr.ModelMF), true, false},
		{ChanNCF, "", ncf, has(lr.ModelNCF), true, false},
		{ChanSession, "", sess, always, false, true},
		{ChanFollow, "", e.followChannel, always, false, true},
		{ChanTrending, "", e.trendingChannel, always, false, false},
		{ChanFresh, "", e.freshChannel, always, false, false},
	}
	for i := range chans {
		chans[i].spanName = "recall." + chans[i].name
	}
	return chans
}

// merge interleaves channel results round-robin in channel order, each
// channel limited by its quota, so every channel that answered contributes
// its best candidates first; then it applies the integrity filters. A
// streamer already shown to the user is set aside, and only if the others
// cannot fill the page (q.req.K) is it appended, the least recently shown
// first (Config.ShownWindow); streamers unknown to the models are capped
// (Config.UnknownShare).
func (e *Engine) merge(q *query, funcs []namedChannel, got [][]Hit, res *Result) []Candidate {
	exclude := make(map[lr.StreamerID]bool, len(q.req.Exclude))
	for _, id := range q.req.Exclude {
		exclude[id] = true
	}
	if e.integrity != nil {
		for _, id := range e.integrity.Blocked(q.req.User) {
			exclude[id] = true
		}
	}
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	shown := sc.shown
	if !e.cfg.ShownDisabled {
		e.shown.recentInto(q.req.User, q.now.Add(-e.cfg.ShownWindow), shown)
		e.forgetWatched(q.req.User, shown)
	}
	// Liveness now, not only in the snapshot the channels searched: the
	// newest snapshot (published with every change of the live set).
	fresh := q.fresh
	if fresh == nil {
		fresh = e.state.Snapshot()
	}
	n := 0
	for ci := range funcs {
		n += len(got[ci])
	}
	// Every hit's streamer id, in one pass (their cache misses overlap):
	// hit j of channel ci is at off[ci]+j.
	off := zeroed(&sc.off, len(funcs))
	hitOrds := sc.hitOrds[:0]
	for ci := range funcs {
		off[ci] = len(hitOrds)
		for _, h := range got[ci] {
			hitOrds = append(hitOrds, h.Ord)
		}
	}
	sc.hitOrds = hitOrds
	ids, known := zeroed(&sc.ids, n), zeroed(&sc.known, n)
	e.ords.IDs(hitOrds, ids, known)
	// pos holds i for cands[i], ^j for demoted[j], and rejectedPos for a
	// streamer a filter removed (one lookup a hit).
	pos := sc.pos
	cands := candsFor(n)
	// The already shown, set aside (they take no quota) without their
	// features: only those that fill the page become candidates. order
	// holds, for demoted[j], when it was shown (its rank) << 32 | j.
	demoted, order := sc.demoted[:0], sc.order[:0]
	// Cleared: they hold channel lists the pool would keep alive.
	defer func() { clear(demoted); sc.demoted, sc.order = demoted[:0], order[:0] }()
	// Each candidate's channel list starts as its channel's own list of one
	// (e.singles, shared and read-only: capacity 1, so a second channel's
	// append copies it out).
	taken, next, quota := zeroed(&sc.taken, len(funcs)), zeroed(&sc.next, len(funcs)), zeroed(&sc.quota, len(funcs))
	for ci := range funcs {
		quota[ci] = e.quota(q, funcs[ci].name)
	}
	for progress := true; progress; {
		progress = false
		for ci := range funcs {
			hits := got[ci]
			name := funcs[ci].name
			for next[ci] < len(hits) && taken[ci] < quota[ci] {
				h, hi := hits[next[ci]], off[ci]+next[ci]
				next[ci]++
				if i, ok := pos[h.Ord]; ok {
					var chans *[]string
					switch {
					case i == rejectedPos:
						continue
					case i >= 0:
						chans = &cands[i].Channels
					default:
						chans = &demoted[^i].channels
					}
					if !slices.Contains(*chans, name) {
						*chans = append(*chans, name)
					}
					continue
				}
				why, rank := e.admit(ids[hi], known[hi], fresh.Contains(h.Ord), exclude, shown)
				if why != "" && why != "shown" {
					pos[h.Ord] = rejectedPos
					res.Filtered[why]++
					continue
				}
				chans := e.singles[ci]
				// The ANN channels already scored it under their model.
				var mf, ncf float32
				hasMF, hasNCF := name == ChanMF, name == ChanNCF
				if hasMF {
					mf = h.Score
				}
				if hasNCF {
					ncf = h.Score
				}
				if why == "shown" {
					pos[h.Ord] = ^len(demoted)
					order = append(order, uint64(rank)<<32|uint64(len(demoted)))
					demoted = append(demoted, setAside{ord: h.Ord, id: ids[hi], channels: chans,
						chanScore: h.Score, mf: mf, ncf: ncf, hasMF: hasMF, hasNCF: hasNCF})
					continue
				}
				pos[h.Ord] = len(cands)
				cands = cands[:len(cands)+1] // within the capacity candsFor gave: n
				cands[len(cands)-1] = Candidate{Ord: h.Ord, StreamerID: ids[hi], Channels: chans, ChanScore: h.Score,
					MFScore: mf, HasMF: hasMF, NCFScore: ncf, HasNCF: hasNCF}
				taken[ci]++
				progress = true
				break
			}
		}
	}
	cands = e.keepLive(q, cands, sc, res)
	// Streamers unknown to the models (when one is loaded) up to the limit.
	limit, unknown, capped := e.cfg.unknownLimit(q.req.K), 0, 0
	capOn := limit >= 0 && len(res.Versions) > 0
	admitUnknown := func(c *Candidate) bool {
		if !capOn || e.knownToModels(q, c) {
			return true
		}
		if unknown >= limit {
			capped++
			return false
		}
		unknown++
		return true
	}
	keep := 0
	for i := range cands {
		if admitUnknown(&cands[i]) {
			if keep != i {
				cands[keep] = cands[i]
			}
			keep++
		}
	}
	cands = cands[:keep]
	// A page the streamers not shown cannot fill takes the already shown,
	// the least recently shown first (merge order among equals), sorted
	// by their keys in order. Their features are read as they are needed:
	// first as many as the page lacks, then, for those dropped (ended, or
	// over the unknown cap), as many again. The rest are counted shown.
	if len(cands) < q.req.K && len(demoted) > 0 {
		slices.Sort(order)
		used := 0
		for used < len(demoted) && len(cands) < q.req.K {
			from := len(cands)
			for _, o := range order[used:min(used+q.req.K-len(cands), len(order))] {
				d := &demoted[uint32(o)]
				cands = append(cands, Candidate{Ord: d.ord, StreamerID: d.id, Channels: d.channels, ChanScore: d.chanScore,
					MFScore: d.mf, HasMF: d.hasMF, NCFScore: d.ncf, HasNCF: d.hasNCF, Shown: true})
			}
			used += len(cands) - from
			keep := from + len(e.keepLive(q, cands[from:], sc, res))
			for i := from; i < keep; i++ {
				if admitUnknown(&cands[i]) {
					if from != i {
						cands[from] = cands[i]
					}
					from++
				}
			}
			clear(cands[from:])
			cands = cands[:from]
		}
		res.Filtered["shown"] += len(demoted) - used
	} else if len(demoted) > 0 {
		res.Filtered["shown"] += len(demoted)
	}
	if capped > 0 {
		res.Filtered["unknown_cap"] += capped
		e.unknownCapped.Add(float64(capped))
	}
	if unknown > 0 {
		e.unknownAdmitted.Add(float64(unknown))
	}
	e.scoreCandidates(q, res.User, cands, sc)
	return cands
}

// rejectedPos marks, in merge's positions, a streamer a filter removed.
const rejectedPos = math.MinInt

// setAside is a candidate merge set aside as already shown: the fields of
// its Candidate but the features (read only if it fills the page).
type setAside struct {
	ord       uint32
	id        lr.StreamerID
	channels  []string
	chanScore float32
	mf, ncf   float32
	hasMF     bool
	hasNCF    bool
}

// forgetWatched removes from shown the streamers u joined at or after they
// were last shown: the filter demotes what the user passed over, not what
// they went on to watch (repeat viewing is most of live streaming).
func (e *Engine) forgetWatched(u lr.UserID, shown map[lr.StreamerID]lastShown) {
	if len(shown) == 0 {
		return
	}
	for _, w := range e.state.History(u) {
		if s, ok := shown[w.StreamerID]; ok && w.JoinedAt.UnixNano() >= s.at {
			delete(shown, w.StreamerID)
		}
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// keepLive reads the live features of cands under one lock straight into
// them and returns those still live (in place); a stream that ended since
// the snapshot is dropped and counted.
func (e *Engine) keepLive(q *query, cands []Candidate, sc *scratch, res *Result) []Candidate {
	ords, ptrs, isLive := zeroed(&sc.ords, len(cands)), zeroed(&sc.ptrs, len(cands)), zeroed(&sc.isLive, len(cands))
	defer clear(ptrs) // they point into cands, which the caller may release
	for i := range cands {
		ords[i], ptrs[i] = cands[i].Ord, &cands[i].Features
	}
	e.state.FeaturesAtMany(ords, q.now, ptrs, isLive)
	keep := 0
	for i := range cands {
		switch {
		case !isLive[i]:
			res.Filtered["ended"]++
		case keep != i:
			cands[keep] = cands[i]
			fallthrough
		default:
			keep++
		}
	}
	return cands[:keep]
}

// knownToModels reports whether c's streamer has a vector in a loaded model.
func (e *Engine) knownToModels(q *query, c *Candidate) bool {
	if c.HasMF || c.HasNCF {
		return true
	}
	if e.index == nil {
		return false
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		// The pinned version, else (it was replaced during the request)
		// the serving one: known is about the streamer, not the request.
		if e.index.HasStreamer(kind, q.model(kind), c.Ord) || e.index.HasStreamer(kind, 0, c.Ord) {
			return true
		}
	}
	return false
}

// scratch is the working memory of one merge, reused across requests:
// building the already-shown set (up to maxPerUser entries) and the
// position and rejection maps anew cost more than the rest of the filter.
type scratch struct {
	shown            map[lr.StreamerID]lastShown
	demoted          []setAside
	order            []uint64
	pos              map[uint32]int
	taken, next, idx []int
	quota            []int
	off              []int
	hitOrds, ords    []uint32
	ids              []lr.StreamerID
	known            []bool
	ptrs             []*live.Features
	isLive, ok       []bool
	out              []float32
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{shown: map[lr.StreamerID]lastShown{}, pos: map[uint32]int{}}
}}

// put empties the maps (keeping their room) and returns sc to the pool.
func (sc *scratch) put() {
	clear(sc.shown)
	clear(sc.pos)
	scratchPool.Put(sc)
}

// zeroed returns (*s)[:n] with every element zero, growing *s when needed.
func zeroed[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	*s = (*s)[:n]
	clear(*s)
	return *s
}

// admit says which filter removes the hit of streamer id (known false
// if its ordinal was never given; live says whether it is live now), if
// any: "shown" for a streamer shown within the window, with the rank of
// when it was last shown (merge sets it aside).
func (e *Engine) admit(id lr.StreamerID, known, live bool, exclude map[lr.StreamerID]bool, shown map[lr.StreamerID]lastShown) (string, uint32) {
	if !known {
		return "unknown", 0
	}
	// Just ended: the stream must still be live now, not only in the
	// snapshot the channels searched.
	if !live {
		return "ended", 0
	}
	switch {
	case exclude[id]:
		return "excluded", 0
	case e.integrity != nil && e.integrity.Banned(id):
		return "banned", 0
	}
	if s, ok := shown[id]; ok {
		return "shown", s.rank
	}
	return "", 0
}

// scoreCandidates fills the MF and NCF dot products of every candidate, so
// the reranker sees them whichever channel proposed it, under the pinned
// versions, with the row the request is served with (Result.User; without
// the user's vectors they stay unscored except for what the ANN channels
// scored).
func (e *Engine) scoreCandidates(q *query, row userstore.Row, cands []Candidate, sc *scratch) {
	if e.index == nil {
		return
	}
	idx, ords, out, ok := sc.idx[:0], sc.ords[:0], sc.out[:0], sc.ok[:0]
	defer func() { sc.idx, sc.ords, sc.out, sc.ok = idx[:0], ords[:0], out[:0], ok[:0] }()
	fullNCF := q.req.FullNCF != nil && row.Known() && q.req.FullNCF(row)
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		uv := row.Vector(kind)
		if uv == nil {
			continue
		}
		idx, ords = idx[:0], ords[:0]
		for i := range cands {
			c := &cands[i]
			if (kind == lr.ModelMF && c.HasMF) || (kind == lr.ModelNCF && (c.HasNCF || fullNCF)) {
				continue
			}
			idx, ords = append(idx, i), append(ords, c.Ord)
		}
		if len(idx) == 0 {
			continue
		}
		out, ok = slices.Grow(out[:0], len(idx))[:len(idx)], slices.Grow(ok[:0], len(idx))[:len(idx)]
		e.index.Dots(kind, q.model(kind), uv, ords, out, ok)
		for j, i := range idx {
			if !ok[j] {
				continue
			}
			c := &cands[i]
			if kind == lr.ModelMF {
				c.MFScore, c.HasMF = out[j], true
			} else {
				c.NCFScore, c.HasNCF = out[j], true
			}
		}
	}
}

// MarkShown records that these streamers were shown to u now, for the
// already-shown filter of later requests.
func (e *Engine) MarkShown(u lr.UserID, ids []lr.StreamerID) {
	if e.cfg.ShownDisabled || len(ids) == 0 {
		return
	}
	now := e.cfg.Now()
	e.shown.add(u, ids, now, now, e.cfg.ShownWindow)
}

// ShownWindow returns the already-shown window in force (0 when the filter
// is disabled).
func (e *Engine) ShownWindow() time.Duration {
	if e.cfg.ShownDisabled {
		return 0
	}
	return e.cfg.ShownWindow
}

// RecordShown records that these streamers were shown to u at at, by
// another replica (the service feeds it the impressions topic), so the
// already-shown filter covers what any replica showed. A time older than
// the window is ignored; a time ahead of this replica's clock counts as
// now. It is safe for concurrent use.
func (e *Engine) RecordShown(u lr.UserID, ids []lr.StreamerID, at time.Time) {
	if e.cfg.ShownDisabled || len(ids) == 0 {
		return
	}
	now := e.cfg.Now()
	if !at.After(now.Add(-e.cfg.ShownWindow)) {
		return
	}
	if at.After(now) {
		at = now
	}
	e.shown.add(u, ids, at, now, e.cfg.ShownWindow)
}

// shownLog remembers, per user, which streamers were shown and when, in
// the order of their times. It is bounded: entries older than the window
// are dropped when a user is written, and at most maxPerUser entries (the
// newest) are kept per user. Users are spread over
// shownShards shards, each with its own lock, so concurrent requests
// rarely wait for each other, and the sweep of forgotten users covers one
// shard at a time.
type shownLog struct {
	shards [shownShards]shownShard
}

const shownShards = 64

type shownShard struct {
	mu    sync.Mutex
	users map[lr.UserID][]shownAt
	adds  int
	_     [40]byte // 64 bytes a shard, one cache line: no false sharing of the locks
}

// shownAt holds no pointers (unix nanoseconds, not a time.Time), so the
// collector does not scan the log's entries: at 2,000 req/s it holds
// millions of them.
type shownAt struct {
	id lr.StreamerID
	at int64
}

const maxPerUser = 400

func newShownLog() *shownLog {
	l := &shownLog{}
	for i := range l.shards {
		l.shards[i].users = map[lr.UserID][]shownAt{}
	}
	return l
}

func (l *shownLog) shard(u lr.UserID) *shownShard { return &l.shards[uint64(u)%shownShards] }

// add records ids as shown to u at at (not after now), dropping what is
// older than now - window.
func (l *shownLog) add(u lr.UserID, ids []lr.StreamerID, at, now time.Time, window time.Duration) {
	sh := l.shard(u)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cut := now.Add(-window).UnixNano()
	old := sh.users[u]
	keep := old[:0]
	for _, s := range old {
		if s.at > cut {
			keep = append(keep, s)
		}
	}
	// Entries stay in time order: a page from another replica may be older
	// than the newest here; it goes before the newer entries.
	t := at.UnixNano()
	i := len(keep)
	for i > 0 && keep[i-1].at > t {
		i--
	}
	tail := len(keep) - i
	for _, id := range ids {
		keep = append(keep, shownAt{id, t})
	}
	if tail > 0 {
		// Rotate the new entries in front of the newer tail.
		slices.Reverse(keep[i : len(keep)-len(ids)])
		slices.Reverse(keep[len(keep)-len(ids):])
		slices.Reverse(keep[i:])
	}
	if len(keep) > maxPerUser {
		// Moved to the front of the same array, not resliced: reslicing
		// shrinks the capacity until append reallocates, so every user's
		// array kept cycling through new, larger ones.
		keep = keep[:copy(keep, keep[len(keep)-maxPerUser:])]
	}
	sh.users[u] = keep
	// Users who stopped coming back are forgotten once their window passed.
	if sh.adds++; sh.adds%64 == 0 {
		for id, s := range sh.users {
			if len(s) == 0 || s[len(s)-1].at <= cut {
				delete(sh.users, id)
			}
		}
	}
}

// lastShown is when a streamer was last shown to a user: at, in unix
// nanoseconds, and its rank among the distinct times of the user's
// entries recentInto read (0 the oldest), which orders them as at does.
type lastShown struct {
	at   int64
	rank uint32
}

// recentInto puts in out, which must be empty, the streamers shown to u
// after since, each with the last time it was shown.
func (l *shownLog) recentInto(u lr.UserID, since time.Time, out map[lr.StreamerID]lastShown) {
	sh := l.shard(u)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cut := since.UnixNano()
	entries := sh.users[u]
	// In time order: the entries within the window are a suffix, and a
	// streamer's last entry is its last time.
	i, _ := slices.BinarySearchFunc(entries, cut, func(s shownAt, cut int64) int { return cmpInt64(s.at, cut+1) })
	rank, prev := uint32(0), int64(0)
	for j, s := range entries[i:] {
		if j > 0 && s.at != prev {
			rank++
		}
		prev = s.at
		out[s.id] = lastShown{s.at, rank}
	}
}

// candsPool recycles candidate slices handed back by Release: a request's
// candidates (a few hundred bytes each, about a hundred of them) were most
// of what a request allocated.
var candsPool = sync.Pool{New: func() any { return new([]Candidate) }}

func candsFor(n int) []Candidate {
	p := candsPool.Get().(*[]Candidate)
	c := slices.Grow((*p)[:0], n)
	*p = nil
	candsPool.Put(p)
	return c
}

// Release hands res's candidates back for reuse by later requests. Call it
// once nothing reads res.Candidates any more (rerank.Items hold copies);
// res.Candidates is nil afterwards.
func (e *Engine) Release(res *Result) {
	if res == nil || cap(res.Candidates) == 0 {
		return
	}
	c := res.Candidates[:cap(res.Candidates)]
	clear(c) // drop the references (channel lists) they hold
	res.Candidates = nil
	p := candsPool.Get().(*[]Candidate)
	*p = c[:0]
	candsPool.Put(p)
}

// String renders an outcome for logs.
func (o Outcome) String() string {
	return fmt.Sprintf("%s:%s(%d,%s)", o.Channel, o.Status, o.Candidates, o.Took)
}
