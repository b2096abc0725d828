package index

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// Store is what the manager reads from Postgres; *postgres.DB satisfies it.
type Store interface {
	// ActiveModel returns the active version of kind, or an ENOTFOUND error.
	ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error)
	// CountEmbeddings returns how many vectors of side version modelID holds.
	CountEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide) (int64, error)
	// StreamEmbeddings calls fn for each vector of side in id order.
	StreamEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide, fn func(id int64, vec []float32) error) error
	// SampleUserEmbeddings returns up to n user vectors of version modelID
	// picked at random (seeded by modelID, so a version's self-check is
	// repeatable) without reading the whole table; none when it has no users.
	SampleUserEmbeddings(ctx context.Context, modelID int64, n int) ([][]float32, error)
}

// Config configures a Manager. Zero values take the defaults.
type Config struct {
	Store    Store        // required
	Ordinals *lr.Ordinals // required; shared with live/
	// Kinds are the model kinds to serve. Default mf and ncf.
	Kinds  []lr.ModelKind
	Params Params
	// ExactThreshold: without a measured plan (Params.RecallTarget
	// negative, or an index from a format-2 snapshot), allowed sets up to
	// this size are scanned exactly. Default DefaultExactThreshold.
	ExactThreshold int
	// RecallFloor: a rebuilt index whose self-check recall@10 is below it is
	// refused. Default 0.9.
	RecallFloor float64
	// SelfCheckQueries is the sample size of the self-check. Default 200.
	SelfCheckQueries int
	// SnapshotDir, if set, holds one snapshot per kind, written after each
	// build and loaded at start when it matches the active version.
	SnapshotDir string
	// CheckEvery is Run's periodic check of the active versions. Default 1m.
	CheckEvery time.Duration
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Manager serves one Index per model kind and replaces it when the active
// model version changes: the new index is loaded, validated, built and
// self-checked beside the serving one, then swapped in with an atomic
// pointer; the previous one is kept for Rollback. All methods are safe for
// concurrent use; searches never wait for a rebuild.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	slots   map[lr.ModelKind]*slot // fixed at NewManager

	// liveMu orders the versions of the live set given to the serving
	// indexes and every swap's live-matrix fill; live is the last version
	// given (nil before the first: the empty version 0).
	liveMu sync.Mutex
	live   atomic.Pointer[liveBox]
}

// liveBox holds a LiveSet in an atomic pointer.
type liveBox struct{ LiveSet }

type slot struct {
	kind     lr.ModelKind
	cur      atomic.Pointer[Index]
	prev     atomic.Pointer[Index]
	reloadMu sync.Mutex // one rebuild of a kind at a time (active or extra)

	// extras are the versions served beside the active one (Serve);
	// nil until the first Serve. serveMu makes Serve one at a time.
	extras  atomic.Pointer[extraSet]
	serveMu sync.Mutex

	searches map[Strategy]prometheus.Counter // fixed at NewManager

	stMu       sync.Mutex
	lastErr    string
	lastReload time.Time
}

// NewManager returns a Manager with no index loaded; call Load (at start)
// and Run (in the background).
func NewManager(cfg Config) (*Manager, error) {
	if cfg.Store == nil || cfg.Ordinals == nil {
		return nil, errors.New("index.NewManager: Store and Ordinals are required")
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []lr.ModelKind{lr.ModelMF, lr.ModelNCF}
	}
	if cfg.RecallFloor == 0 {
		cfg.RecallFloor = 0.9
	}
	if cfg.SelfCheckQueries <= 0 {
		cfg.SelfCheckQueries = 200
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = time.Minute
	}
	if cfg.ExactThreshold <= 0 {
		cfg.ExactThreshold = DefaultExactThreshold
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{cfg: cfg, log: log.With("component", "index"), metrics: newMetrics(cfg.Registerer), slots: map[lr.ModelKind]*slot{}}
	for _, k := range cfg.Kinds {
		if _, err := lr.ParseModelKind(string(k)); err != nil {
			return nil, err
		}
		m.slots[k] = &slot{kind: k, searches: map[Strategy]prometheus.Counter{
			StrategyHNSW:     m.metrics.searches.WithLabelValues(string(k), string(StrategyHNSW)),
			StrategyExact:    m.metrics.searches.WithLabelValues(string(k), string(StrategyExact)),
			StrategyLiveInt8: m.metrics.searches.WithLabelValues(string(k), string(StrategyLiveInt8)),
		}}
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(newPlanCollector(m)) // plan_status.go
	}
	return m, nil
}

// ReloadResult says what a reload of one kind did.
type ReloadResult struct {
	Kind    lr.ModelKind `json:"kind"`
	ModelID int64        `json:"model_id,omitempty"`
	Version string       `json:"version,omitempty"`
	Outcome string       `json:"outcome"` // "swapped", "snapshot", "unchanged", "no active model", "refused", "failed", "cancelled"
	Vectors int          `json:"vectors,omitempty"`
	// Users is how many user vectors the store holds for the version
	// (counted at load; the index holds none of them).
	Users        int64   `json:"users,omitempty"`
	Seconds      float64 `json:"seconds,omitempty"`
	SelfCheck    float64 `json:"self_check_recall,omitempty"`
	Error        string  `json:"error,omitempty"`
	ServingModel string  `json:"serving,omitempty"` // version serving afterwards
}

// Load is the start-up load: for each kind with an active version it loads
// the snapshot when one matches (or rebuilds, warning why the snapshot was
// not used). Errors of one kind do not stop the others; they are joined.
func (m *Manager) Load(ctx context.Context) ([]ReloadResult, error) {
	return m.reloadAll(ctx, false, true)
}

// Reload rebuilds every kind from its active version now (the admin call),
// even when that version is already serving. It blocks until done or ctx
// ends and returns what it did per kind.
func (m *Manager) Reload(ctx context.Context) ([]ReloadResult, error) {
	return m.reloadAll(ctx, true, false)
}

// Check rebuilds the kinds whose active version differs from the serving
// one (the NOTIFY and periodic trigger).
func (m *Manager) Check(ctx context.Context) ([]ReloadResult, error) {
	return m.reloadAll(ctx, false, false)
}

func (m *Manager) reloadAll(ctx context.Context, force, snapshot bool) ([]ReloadResult, error) {
	var out []ReloadResult
	var errs []error
	for _, k := range m.cfg.Kinds {
		r, err := m.ReloadKind(ctx, k, force, snapshot)
		out = append(out, r)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// ReloadKind brings kind to its active version: nothing when that version
// is serving (unless force), else from the snapshot (if useSnapshot and it
// matches) or a rebuild from the store. On any error the serving index is
// untouched and the error says which version and, for bad data, which row.
func (m *Manager) ReloadKind(ctx context.Context, kind lr.ModelKind, force, useSnapshot bool) (res ReloadResult, err error) {
	s, ok := m.slots[kind]
	if !ok {
		return ReloadResult{Kind: kind, Outcome: "failed"}, lr.Errorf(lr.EINVALID, "model kind %s is not served", kind)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	res = ReloadResult{Kind: kind}
	defer func() { res.ServingModel = m.Version(kind) }()
	mv, err := m.cfg.Store.ActiveModel(ctx, kind)
	if lr.ErrorCode(err) == lr.ENOTFOUND {
		res.Outcome = "no active model"
		return res, nil
	}
	if err != nil && ctx.Err() != nil {
		res.Outcome, res.Error = "cancelled", context.Cause(ctx).Error()
		return res, lr.E("index.Reload", lr.EUNAVAILABLE, context.Cause(ctx))
	}
	if err != nil {
		// The store is unreachable or failing: the reload failed like a
		// build that could not read its rows, and the status says so.
		res.Outcome, res.Error = "failed", err.Error()
		m.metrics.failures.WithLabelValues(string(kind)).Inc()
		s.stMu.Lock()
		s.lastErr = err.Error()
		s.stMu.Unlock()
		m.log.Error("index reload failed reading the active version; serving index kept", "kind", kind, "err", err)
		return res, err
	}
	res.ModelID, res.Version = mv.ID, mv.Version
	if cur := s.cur.Load(); cur != nil && cur.Model.ID == mv.ID && !force {
		res.Outcome = "unchanged"
		return res, nil
	}
	t0 := time.Now()
	var x *Index
	if e := s.extras.Load(); e != nil && !force && e.byID[mv.ID] != nil {
		// Served already beside the active one (an experiment's version
		// being activated): built and self-checked, swap it in as it is.
		x = e.byID[mv.ID]
		res.Outcome = "swapped"
		m.log.Info("index of the new active version taken from the extra serving versions", "kind", kind, "version", mv.Version)
	}
	if x == nil && useSnapshot && m.cfg.SnapshotDir != "" {
		x, err = ReadSnapshot(m.snapshotPath(kind), mv, m.cfg.Ordinals, m.cfg.Params, m.cfg.ExactThreshold)
		if err != nil {
			m.log.Warn("index snapshot not used; rebuilding", "kind", kind, "version", mv.Version, "err", err)
			x = nil
		} else {
			res.Outcome = "snapshot"
		}
	}
	if x == nil {
		x, err = m.build(ctx, mv, s.cur.Load() != nil)
		if err != nil && ctx.Err() != nil {
			// Cancelled (a shutdown, or the caller gave up): not a failure
			// of the version, and nothing to count or alert on.
			res.Outcome, res.Error = "cancelled", context.Cause(ctx).Error()
			m.log.Info("index rebuild cancelled; serving index kept", "kind", kind, "version", mv.Version, "cause", context.Cause(ctx))
			return res, lr.E("index.Reload", lr.EUNAVAILABLE, context.Cause(ctx))
		}
		if err != nil {
			res.Outcome, res.Error = "refused", err.Error()
			if lr.ErrorCode(err) == lr.EINTERNAL || lr.ErrorCode(err) == lr.EUNAVAILABLE {
				res.Outcome = "failed"
			}
			m.metrics.failures.WithLabelValues(string(kind)).Inc()
			s.stMu.Lock()
			s.lastErr = err.Error()
			s.stMu.Unlock()
			m.log.Error("index rebuild refused; serving index kept", "kind", kind, "version", mv.Version, "err", err)
			return res, err
		}
		res.Outcome = "swapped"
	}
	// The user rows of the version, for the status only: counted on the
	// primary key, once per load.
	if n, err := m.cfg.Store.CountEmbeddings(ctx, mv.ID, lr.SideUser); err == nil {
		x.UserRows = n
	} else {
		m.log.Warn("user vectors of the version not counted", "kind", kind, "version", mv.Version, "err", err)
	}
	m.swap(s, x)
	secs := time.Since(t0).Seconds()
	res.Vectors, res.Users, res.Seconds, res.SelfCheck = x.Len(), max(x.UserRows, 0), secs, x.Recall
	lk := string(kind)
	m.metrics.version.WithLabelValues(lk).Set(float64(mv.ID))
	m.metrics.vectors.WithLabelValues(lk).Set(float64(x.Len()))
	m.metrics.live.WithLabelValues(lk).Set(float64(x.LiveLen()))
	m.metrics.buildSecs.WithLabelValues(lk).Set(secs)
	m.metrics.recall.WithLabelValues(lk).Set(x.Recall)
	m.metrics.lastReload.WithLabelValues(lk).SetToCurrentTime()
	s.stMu.Lock()
	s.lastErr, s.lastReload = "", time.Now()
	s.stMu.Unlock()
	m.log.Info("index swapped", "kind", kind, "version", mv.Version, "from", res.Outcome, "vectors", x.Len(), "user_rows", x.UserRows,
		"seconds", secs, "self_check_recall", x.Recall)
	if res.Outcome == "swapped" && m.cfg.SnapshotDir != "" {
		if err := WriteSnapshot(m.snapshotPath(kind), x); err != nil {
			m.log.Warn("index snapshot not written", "kind", kind, "version", mv.Version, "err", err)
		}
	}
	return res, nil
}

func (m *Manager) snapshotPath(kind lr.ModelKind) string {
	return filepath.Join(m.cfg.SnapshotDir, string(kind)+".lrix")
}

// swap installs x as kind's serving index after bringing its live matrix
// to the last version of the live set; the live lock makes sure no SetLive
// falls between.
func (m *Manager) swap(s *slot, x *Index) {
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	m.fillLive(x)
	old := s.cur.Swap(x)
	if old != nil {
		s.prev.Store(old)
	}
	m.afterSwap(s, old)
}

// fillLive brings x's live matrix to the last version given to SetLive;
// the caller holds liveMu.
func (m *Manager) fillLive(x *Index) {
	x.SetLive(m.liveSet())
}

// Rollback swaps kind back to the index it served before the last swap
// (the current one becomes the previous). ENOTFOUND when there is none.
func (m *Manager) Rollback(kind lr.ModelKind) (string, error) {
	s, ok := m.slots[kind]
	if !ok {
		return "", lr.Errorf(lr.EINVALID, "model kind %s is not served", kind)
	}
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	prev := s.prev.Load()
	if prev == nil {
		return "", lr.Errorf(lr.ENOTFOUND, "no previous %s index to roll back to", kind)
	}
	m.liveMu.Lock()
	m.fillLive(prev)
	cur := s.cur.Swap(prev)
	s.prev.Store(cur)
	m.afterSwap(s, cur)
	m.liveMu.Unlock()
	m.metrics.version.WithLabelValues(string(kind)).Set(float64(prev.Model.ID))
	m.metrics.vectors.WithLabelValues(string(kind)).Set(float64(prev.Len()))
	m.log.Warn("index rolled back", "kind", kind, "to", prev.Model.Version, "from", cur.Model.Version)
	return prev.Model.Version, nil
}

// Run triggers Check on every notification from listen and every
// CheckEvery, until ctx ends. listen (may be nil) should block, calling
// its callback for each reload notification, e.g.
// func(ctx, fn) error { return db.Listen(ctx, postgres.ReloadChannel, fn) }.
// Errors are logged; Run returns when ctx ends.
func (m *Manager) Run(ctx context.Context, listen func(ctx context.Context, fn func(payload string)) error) {
	trigger := make(chan struct{}, 1)
	if listen != nil {
		go func() {
			err := listen(ctx, func(string) {
				select {
				case trigger <- struct{}{}:
				default:
				}
			})
			if err != nil && ctx.Err() == nil {
				m.log.Error("index reload listener stopped; periodic checks continue", "err", err)
			}
		}()
	}
	t := time.NewTicker(m.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		case <-t.C:
		}
		if _, err := m.Check(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("index check", "err", err)
		}
	}
}

// servingDuty is the share of time a rebuild beside a serving index works
// (Params.Duty) unless Config.Params sets one: the reload takes about twice
// as long, and the requests get more of the machine meanwhile.
const servingDuty = 0.5

// build loads mv's vectors, validates them, builds and self-checks. While
// an index of the kind is serving, the build and the self-check leave one
// core to the requests (Params.Workers unset: GOMAXPROCS-1, at least 1) and
// the load, the build and the self-check work half the time (Params.Duty
// unset: servingDuty), so a reload takes less of the serving path's CPU.
func (m *Manager) build(ctx context.Context, mv lr.ModelVersion, serving bool) (*Index, error) {
	p := m.cfg.Params
	workers := runtime.GOMAXPROCS(0)
	if serving {
		workers = max(1, workers-1)
		if p.Workers <= 0 {
			p.Workers = workers
		}
		if p.Duty == 0 {
			p.Duty = servingDuty
		}
	}
	// Reading the rows paces too: the database server shares the machine
	// in small deployments, and reads as fast as the rows are taken.
	ids, buf, err := m.loadSide(ctx, mv, lr.SideStreamer, true, p.Duty)
	if err != nil {
		return nil, err
	}
	ords := make([]uint32, len(ids))
	for i, id := range ids {
		ords[i] = m.cfg.Ordinals.Ordinal(lr.StreamerID(id))
	}
	x, err := New(ctx, mv, ids, ords, buf.vecs, p, m.cfg.ExactThreshold)
	runtime.KeepAlive(buf) // the graph holds its own copy: the rows are released after
	if err != nil {
		return nil, err
	}
	// The self-check asks what requests ask: user vectors, a sample read
	// from the store (the index holds none).
	queries, err := m.cfg.Store.SampleUserEmbeddings(ctx, mv.ID, m.cfg.SelfCheckQueries)
	if err != nil {
		return nil, err
	}
	usable := queries[:0]
	for _, q := range queries {
		if len(q) == mv.Dim {
			usable = append(usable, q)
		}
	}
	if len(usable) < len(queries) {
		return nil, lr.Errorf(lr.EINVALID, "model %s/%s (id %d): %d sampled user vectors do not have dimension %d",
			mv.Kind, mv.Version, mv.ID, len(queries)-len(usable), mv.Dim)
	}
	if x.Recall, err = selfCheck(ctx, x, usable, m.cfg.SelfCheckQueries, 10, workers, p.Duty); err != nil {
		return nil, err
	}
	if x.Recall < m.cfg.RecallFloor {
		return nil, lr.Errorf(lr.EINVALID, "model %s/%s (id %d): self-check recall@10 %.3f is below the floor %.2f; the serving index was kept",
			mv.Kind, mv.Version, mv.ID, x.Recall, m.cfg.RecallFloor)
	}
	return x, nil
}

// rowBuffer owns the rows loadSide reads for a build: outside the Go heap
// (internal/offheap), valid while the rowBuffer is reachable. A build holds
// them for minutes beside the graph it copies them into (256 MB at 1M
// streamers, dim 64); on the heap the collector's target would double them
// while the replica serves.
type rowBuffer struct {
	vecs []float32 // row i is vecs[i*dim:(i+1)*dim]
}

// loadSide streams and validates one side of mv. Rows must have mv.Dim
// finite components, not all zero, strictly increasing ids, and as many
// rows as counted; the error names the version and the first bad row
// (1-based, in id order). The vectors are in the returned rowBuffer (see
// its contract).
func (m *Manager) loadSide(ctx context.Context, mv lr.ModelVersion, side lr.EmbeddingSide, required bool, duty float64) ([]int64, *rowBuffer, error) {
	bad := func(row int, id int64, format string, args ...any) error {
		return lr.Errorf(lr.EINVALID, "model %s/%s (id %d): %s row %d (%s id %d): %s",
			mv.Kind, mv.Version, mv.ID, side, row, side, id, fmt.Sprintf(format, args...))
	}
	if mv.Dim <= 0 {
		return nil, nil, lr.Errorf(lr.EINVALID, "model %s/%s (id %d): dimension %d", mv.Kind, mv.Version, mv.ID, mv.Dim)
	}
	count, err := m.cfg.Store.CountEmbeddings(ctx, mv.ID, side)
	if err != nil {
		return nil, nil, err
	}
	if count == 0 && required {
		return nil, nil, lr.Errorf(lr.EINVALID, "model %s/%s (id %d): no %s vectors", mv.Kind, mv.Version, mv.ID, side)
	}
	ids := make([]int64, 0, count)
	buf := &rowBuffer{}
	// No more than count rows are appended (more is refused): the appends
	// stay in the mapping.
	vecs := offheap.Make[float32](buf, int(count)*mv.Dim)[:0]
	row := 0
	pace := newPacer(duty)
	err = m.cfg.Store.StreamEmbeddings(ctx, mv.ID, side, func(id int64, vec []float32) error {
		pace.tick()
		row++
		if len(vec) != mv.Dim {
			return bad(row, id, "dimension %d, want %d", len(vec), mv.Dim)
		}
		zero := true
		for j, v := range vec {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return bad(row, id, "component %d is %v", j, v)
			}
			zero = zero && v == 0
		}
		if zero {
			return bad(row, id, "zero vector")
		}
		if n := len(ids); n > 0 && id <= ids[n-1] {
			if id == ids[n-1] {
				return bad(row, id, "duplicate id")
			}
			return bad(row, id, "ids out of order (after %d)", ids[n-1])
		}
		if int64(row) > count {
			return bad(row, id, "more rows than the %d counted (written while loading?)", count)
		}
		ids = append(ids, id)
		vecs = append(vecs, vec...)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if int64(row) != count {
		return nil, nil, lr.Errorf(lr.EINVALID, "model %s/%s (id %d): %d %s rows streamed, %d counted: missing rows",
			mv.Kind, mv.Version, mv.ID, row, side, count)
	}
	buf.vecs = vecs
	return ids, buf, nil
}

// SelfCheck and selfCheck, which measure the planner's profile, are in
// planner.go.

// SetLive takes ls, the next published version of the live set (live/'s
// OnPublish hook gives every version, in order, before anyone can read
// it), as the live set: it brings the live matrix of every serving index
// to it (applying its changes) and keeps it for the indexes swapped in
// later. A version older than the
// last one given is ignored. Safe for concurrent use.
func (m *Manager) SetLive(ls LiveSet) {
	m.liveMu.Lock()
	defer m.liveMu.Unlock()
	if ls.Version() < m.liveSet().Version() {
		return
	}
	for k, s := range m.slots {
		cur := s.cur.Load()
		if cur != nil {
			cur.SetLive(ls)
			m.metrics.live.WithLabelValues(string(k)).Set(float64(cur.LiveLen()))
		}
		if e := s.extras.Load(); e != nil {
			for _, x := range e.byID {
				if x != cur {
					x.SetLive(ls)
				}
			}
		}
	}
	m.live.Store(&liveBox{ls})
}

// liveSet returns the last version of the live set given to SetLive (the
// empty version 0 before the first). It never blocks: the version is
// immutable, so it serves as a filter with no lock held.
func (m *Manager) liveSet() LiveSet {
	if b := m.live.Load(); b != nil {
		return b.LiveSet
	}
	return noneLive{}
}

// noneLive is version 0 of the live set: nobody is live.
type noneLive struct{}

func (noneLive) Contains(uint32) bool             { return false }
func (noneLive) GetCardinality() uint64           { return 0 }
func (noneLive) Version() uint64                  { return 0 }
func (noneLive) Changes() iter.Seq2[uint32, bool] { return func(func(uint32, bool) bool) {} }
func (noneLive) Ordinals() []uint32               { return nil }

// Current returns kind's serving index, or nil.
func (m *Manager) Current(kind lr.ModelKind) *Index {
	if s, ok := m.slots[kind]; ok {
		return s.cur.Load()
	}
	return nil
}

// Version returns the label of kind's serving model version, "" if none.
func (m *Manager) Version(kind lr.ModelKind) string {
	if x := m.Current(kind); x != nil {
		return x.Model.Version
	}
	return ""
}

// Model returns kind's serving model version (zero, ID 0, when none).
func (m *Manager) Model(kind lr.ModelKind) lr.ModelVersion {
	if x := m.Current(kind); x != nil {
		return x.Model
	}
	return lr.ModelVersion{}
}

// ModelID returns the embedding_models id of kind's serving version, 0 if
// none. A request reads it once, at its start, and pins its lookups to it
// (the model parameter of StreamerVector, Dots and Search), so that a swap
// during the request never pairs a user vector of one version with
// streamer vectors of another.
func (m *Manager) ModelID(kind lr.ModelKind) int64 { return m.Model(kind).ID }

// pinned returns kind's index of version model: the serving one when
// model is 0 or its id, else the previous one (kept for rollback) or an
// extra serving version (Serve) when it is that version. EUNAVAILABLE when
// no index of kind is loaded or the version is none of them (it was
// replaced twice since the request began, or dropped).
func (m *Manager) pinned(kind lr.ModelKind, model int64) (*slot, *Index, error) {
	s, ok := m.slots[kind]
	if !ok {
		return nil, nil, lr.Errorf(lr.EUNAVAILABLE, "no %s index loaded", kind)
	}
	x := s.cur.Load()
	if x == nil {
		return nil, nil, lr.Errorf(lr.EUNAVAILABLE, "no %s index loaded", kind)
	}
	if model == 0 || x.Model.ID == model {
		return s, x, nil
	}
	if p := s.prev.Load(); p != nil && p.Model.ID == model {
		return s, p, nil
	}
	if e := s.extras.Load(); e != nil {
		if x := e.byID[model]; x != nil {
			return s, x, nil
		}
	}
	return nil, nil, lr.Errorf(lr.EUNAVAILABLE, "%s model version %d no longer serves (serving %d)", kind, model, x.Model.ID)
}

// StreamerVector returns a copy of the vector of the streamer with ordinal
// ord under kind's version model (0: the serving one; see ModelID), or false
// (also when that version no longer serves).
func (m *Manager) StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool) {
	if _, x, err := m.pinned(kind, model); err == nil {
		return x.StreamerVector(ord)
	}
	return nil, false
}

// StreamerVectors returns every streamer vector of kind's version model
// (0: the serving one; see ModelID), for computations over a whole version
// (the fold-in's Gramian), with the version; EUNAVAILABLE when that version
// no longer serves. The vectors are shared and valid only within the
// loop's body (Index.Vectors): copy what must outlive it.
func (m *Manager) StreamerVectors(kind lr.ModelKind, model int64) (lr.ModelVersion, iter.Seq[[]float32], error) {
	_, x, err := m.pinned(kind, model)
	if err != nil {
		return lr.ModelVersion{}, nil, err
	}
	return x.Model, x.Vectors(), nil
}

// HasStreamer reports whether kind's version model (0: the serving one)
// serves and has a vector for the streamer with ordinal ord; unlike
// StreamerVector it copies nothing.
func (m *Manager) HasStreamer(kind lr.ModelKind, model int64, ord uint32) bool {
	if _, x, err := m.pinned(kind, model); err == nil {
		return x.HasStreamer(ord)
	}
	return false
}

// Dots is Index.Dots under kind's version model (0: the serving one; see
// ModelID); with no such version serving every ok[i] is false.
func (m *Manager) Dots(kind lr.ModelKind, model int64, q []float32, ords []uint32, out []float32, ok []bool) {
	if _, x, err := m.pinned(kind, model); err == nil {
		x.Dots(q, ords, out, ok)
		return
	}
	clear(out[:len(ords)])
	clear(ok[:len(ords)])
}

// Search returns up to k streamers in allowed (nil: all) with the highest
// dot product with q under kind's version model (0: the serving one; else
// it must be the serving or the previous version, see ModelID), best
// first. EUNAVAILABLE when no index of kind is loaded or version model no
// longer serves; EINVALID for a query of the wrong dimension. It never
// waits for a rebuild.
func (m *Manager) Search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed Allowed) ([]Hit, error) {
	return m.search(ctx, kind, model, q, k, allowed, false)
}

// SearchPrecise is Search with exact float32 scans only (Index.SearchPrecise):
// the operators' neighbour queries, whose answer must be the exact one.
func (m *Manager) SearchPrecise(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed Allowed) ([]Hit, error) {
	return m.search(ctx, kind, model, q, k, allowed, true)
}

func (m *Manager) search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed Allowed, precise bool) ([]Hit, error) {
	s, x, err := m.pinned(kind, model)
	if err != nil {
		return nil, err
	}
	hits, st, err := x.search(ctx, q, k, 0, allowed, precise)
	if err != nil {
		return nil, err
	}
	s.searches[st].Inc()
	return hits, nil
}

// KindStatus describes one kind's serving index.
type KindStatus struct {
	Kind    lr.ModelKind `json:"kind"`
	ModelID int64        `json:"model_id,omitempty"`
	Version string       `json:"version,omitempty"`
	Vectors int          `json:"vectors"`
	// Users is how many user vectors the store held for the version when
	// it was loaded (-1: not counted); the index holds none of them.
	Users           int64      `json:"users"`
	LiveVectors     int        `json:"live_vectors"`
	BuildSeconds    float64    `json:"build_seconds,omitempty"`
	SelfCheck       float64    `json:"self_check_recall,omitempty"`
	LastReload      *time.Time `json:"last_reload,omitempty"`
	LastError       string     `json:"last_error,omitempty"`
	PreviousVersion string     `json:"previous_version,omitempty"`
	// The serving index's plan (PlanSummary): "measured" or "threshold",
	// the recall target, the ef of unfiltered searches (0: exact scans),
	// and per measured accepted share the ef chosen and the recall the
	// self-check measured there.
	Plan         string             `json:"plan,omitempty"`
	RecallTarget float64            `json:"recall_target,omitempty"`
	SearchEf     int                `json:"search_ef"`
	PlanEf       map[string]int     `json:"plan_ef,omitempty"`
	PlanRecall   map[string]float64 `json:"plan_recall,omitempty"`
	// Versions lists every version of the kind serving (the active one
	// first, then those loaded by Serve) or wanted by Serve and not
	// loaded (loading, failed with the error).
	Versions []VersionStatus `json:"versions"`
}

// Status describes every kind's serving index.
func (m *Manager) Status() []KindStatus {
	var out []KindStatus
	for _, k := range m.cfg.Kinds {
		s := m.slots[k]
		st := KindStatus{Kind: k}
		if x := s.cur.Load(); x != nil {
			st.ModelID, st.Version, st.Vectors, st.Users, st.LiveVectors = x.Model.ID, x.Model.Version, x.Len(), x.UserRows, x.LiveLen()
			st.BuildSeconds, st.SelfCheck = x.BuiltIn.Seconds(), x.Recall
			ps := x.Summary()
			st.Plan, st.RecallTarget, st.SearchEf, st.PlanEf, st.PlanRecall = ps.Plan, ps.RecallTarget, ps.SearchEf, ps.PlanEf, ps.PlanRecall
		}
		if p := s.prev.Load(); p != nil {
			st.PreviousVersion = p.Model.Version
		}
		s.stMu.Lock()
		st.LastError = s.lastErr
		if !s.lastReload.IsZero() {
			t := s.lastReload
			st.LastReload = &t
		}
		s.stMu.Unlock()
		st.Versions = m.versions(s)
		out = append(out, st)
	}
	return out
}
