package recommend

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/rerank"
	"github.com/prometheus/client_golang/prometheus"
)

var _ ArmScorers = (*Models)(nil)

// Kinds of scorer in ScorerStatus and liverecall_scorer_versions.
const (
	ScorerRerank = "rerank"
	ScorerNeuMF  = "neumf"
)

// ScorerStatus describes one reranker or NeuMF version this replica serves
// or was asked to serve for experiments. Role is "active", "experiment"
// (loaded beside the active one) or "failed" (Error says why; the arms
// naming it get the default configuration).
type ScorerStatus struct {
	Kind     string     `json:"kind"` // ScorerRerank or ScorerNeuMF
	Version  string     `json:"version"`
	ModelID  int64      `json:"model_id,omitempty"` // embedding_models id (NeuMF)
	Role     string     `json:"role"`
	Algo     string     `json:"algo,omitempty"` // reranker: logistic or gbdt
	Error    string     `json:"error,omitempty"`
	FailedAt *time.Time `json:"failed_at,omitempty"`
}

// extraModels are the reranker versions and NeuMF scorers loaded for
// experiments beside the active ones. Immutable once published.
type extraModels struct {
	weights map[string]*modelBox // by reranker version
	ncf     map[int64]*NeuMF     // by embedding_models id
}

// scorerFailure is why a wanted version is not loaded.
type scorerFailure struct {
	modelID int64
	err     string
	at      time.Time
}

// extraState is what ServeExtra wants and what failed; guarded by
// Models.loadMu.
type extraState struct {
	wantWeights []string
	wantNCF     map[int64]lr.ModelVersion
	failedW     map[string]scorerFailure
	failedNCF   map[int64]scorerFailure
}

type extraMetrics struct {
	mu       sync.Mutex
	versions *prometheus.GaugeVec
	failures *prometheus.CounterVec
}

func newExtraMetrics(reg prometheus.Registerer) *extraMetrics {
	m := &extraMetrics{
		versions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_scorer_versions",
			Help: "1 for each reranker (kind rerank) or NeuMF (kind neumf) version loaded for experiments beside the active one (role experiment) or that could not be loaded (role failed: its arms get the default configuration). The active reranker is liverecall_rerank_model_info."},
			[]string{"kind", "version", "role"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_scorer_load_failures_total",
			Help: "Loads of reranker or NeuMF versions for experiments that failed or were refused."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.versions, m.failures)
	}
	return m
}

// WeightsVersion returns the reranker model of version when this replica
// serves it: the active one, or one loaded by ServeExtra; false otherwise
// (ArmScorers). It never blocks.
func (m *Models) WeightsVersion(version string) (rerank.Model, bool) {
	if version == "" {
		return nil, false
	}
	if cur := m.weights.Load().m; cur.ModelVersion() == version {
		return cur, true
	}
	if e := m.extra.Load(); e != nil {
		if b, ok := e.weights[version]; ok {
			return b.m, true
		}
	}
	return nil, false
}

// NCFFor returns the NeuMF scorer of the NCF version with embedding_models
// id modelID when one is loaded (the active version's, or one loaded by
// ServeExtra), else nil (ArmScorers). It never blocks.
func (m *Models) NCFFor(modelID int64) NCF {
	if n := m.ncf.Load(); n != nil && n.ModelID == modelID {
		return n
	}
	if e := m.extra.Load(); e != nil {
		if n, ok := e.ncf[modelID]; ok {
			return n
		}
	}
	return nil
}

// ServeExtra makes the reranker versions and NCF versions loaded beside
// the active ones exactly those given (the versions the running
// experiments' arms name): it loads the new ones (a reranker version from
// ModelsConfig.WeightsByVersion, reloaded when its stored JSON changed; a
// NeuMF scorer from the store), drops those no longer wanted, and records
// the versions it could not load (reported by Status and the metrics; a
// failure is counted and logged once per distinct error). An NCF version
// with no stored scorer is not a failure: its arms rerank with the GMF dot
// product, as the active version's do. The active models are never
// touched. It blocks while loading; the errors are joined.
func (m *Models) ServeExtra(ctx context.Context, rerankVersions []string, ncf []lr.ModelVersion) error {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	st := &m.extraSt
	st.wantWeights = slices.Compact(slices.Sorted(slices.Values(rerankVersions)))
	st.wantNCF = map[int64]lr.ModelVersion{}
	for _, mv := range ncf {
		st.wantNCF[mv.ID] = mv
	}
	old := m.extra.Load()
	next := &extraModels{weights: map[string]*modelBox{}, ncf: map[int64]*NeuMF{}}
	var errs []error
	for _, v := range st.wantWeights {
		if cur := m.weights.Load(); cur.m.ModelVersion() == v && cur.raw != nil {
			delete(st.failedW, v)
			continue // the active version (WeightsVersion gives it)
		}
		b, err := m.loadWeights(ctx, v, old)
		if c := lr.ErrorCode(err); err != nil && c != lr.EINVALID && c != lr.ENOTFOUND && old != nil && old.weights[v] != nil {
			// The store did not answer: keep serving what was loaded.
			next.weights[v] = old.weights[v]
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			errs = append(errs, err)
			m.failScorer(ScorerRerank, v, 0, err)
			continue
		}
		delete(st.failedW, v)
		next.weights[v] = b
	}
	for l := range st.failedW {
		if !slices.Contains(st.wantWeights, l) {
			delete(st.failedW, l)
		}
	}
	for id, mv := range st.wantNCF {
		if cur := m.ncf.Load(); cur != nil && cur.ModelID == id {
			delete(st.failedNCF, id)
			continue
		}
		if mv.Status == lr.StatusRetired {
			errs = append(errs, lr.Errorf(lr.EINVALID, "NCF version %s is retired", mv.Version))
			m.failScorer(ScorerNeuMF, mv.Version, id, errs[len(errs)-1])
			continue
		}
		if old != nil && old.ncf[id] != nil {
			next.ncf[id] = old.ncf[id]
			continue
		}
		n, err := m.loadScorer(ctx, mv)
		if lr.ErrorCode(err) == lr.ENOTFOUND {
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			errs = append(errs, err)
			m.failScorer(ScorerNeuMF, mv.Version, id, err)
			continue
		}
		delete(st.failedNCF, id)
		next.ncf[id] = n
		m.cfg.Log.Info("NeuMF scorer loaded for experiments", "version", mv.Version)
	}
	for id := range st.failedNCF {
		if _, ok := st.wantNCF[id]; !ok {
			delete(st.failedNCF, id)
		}
	}
	m.extra.Store(next)
	m.extraMetricsLocked()
	return errors.Join(errs...)
}

// loadWeights reads and parses reranker version v, reusing the loaded
// model when its stored JSON did not change.
func (m *Models) loadWeights(ctx context.Context, v string, old *extraModels) (*modelBox, error) {
	if m.cfg.WeightsByVersion == nil {
		return nil, lr.Errorf(lr.EINVALID, "rerank version %s: this replica cannot read reranker versions by name", v)
	}
	raw, status, err := m.cfg.WeightsByVersion(ctx, v)
	if err != nil {
		return nil, err
	}
	if status == lr.StatusRetired {
		// As for embedding versions (postgres.ArmsNamingRetired).
		return nil, lr.Errorf(lr.EINVALID, "rerank version %s is retired: its arms get the default configuration until it is activated again or the experiment stops", v)
	}
	if old != nil {
		if b, ok := old.weights[v]; ok && bytes.Equal(b.raw, raw) {
			return b, nil
		}
	}
	w, err := rerank.ParseModel(raw)
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "rerank version %s refused: %v", v, err)
	}
	w = w.WithVersion(v)
	m.cfg.Log.Info("rerank model loaded for experiments", "version", v, "algo", algoOf(w))
	return &modelBox{m: w, raw: raw}, nil
}

// loadScorer decodes and prepares mv's stored NeuMF scorer; lr.ENOTFOUND
// when it has none.
func (m *Models) loadScorer(ctx context.Context, mv lr.ModelVersion) (*NeuMF, error) {
	var sc *embed.IDScorer
	err := m.cfg.Store.ReadModelScorer(ctx, mv.ID, func(f string, size int64, r io.Reader) (err error) {
		sc, err = embed.ReadScorer(f, size, r) // as LoadNCF: decoded as it streams in
		return err
	})
	if err != nil {
		return nil, err
	}
	n := NewNeuMF(mv.Version, mv.ID, sc, m.cfg.Ordinals)
	debug.FreeOSMemory() // as LoadNCF: the decoding's garbage goes at once
	return n, nil
}

// failScorer records that a wanted version could not be loaded; the caller
// holds loadMu.
func (m *Models) failScorer(kind, version string, modelID int64, err error) {
	st := &m.extraSt
	f := scorerFailure{modelID: modelID, err: err.Error(), at: time.Now()}
	var prev scorerFailure
	var had bool
	if kind == ScorerRerank {
		if st.failedW == nil {
			st.failedW = map[string]scorerFailure{}
		}
		prev, had = st.failedW[version]
		if !had || prev.err != f.err {
			st.failedW[version] = f
		}
	} else {
		if st.failedNCF == nil {
			st.failedNCF = map[int64]scorerFailure{}
		}
		prev, had = st.failedNCF[modelID]
		if !had || prev.err != f.err {
			st.failedNCF[modelID] = f
		}
	}
	if had && prev.err == f.err {
		return
	}
	m.extraMetrics.failures.WithLabelValues(kind).Inc()
	m.cfg.Log.Error("version for experiments not loaded; its arms get the default configuration", "kind", kind, "version", version, "err", err)
}

// extraNCF returns the scorer loaded for experiments of modelID, or nil.
func (m *Models) extraNCF(modelID int64) *NeuMF {
	if e := m.extra.Load(); e != nil {
		return e.ncf[modelID]
	}
	return nil
}

// Status lists the reranker and NeuMF versions this replica serves: the
// active ones first, then those loaded for experiments and those that
// failed, by kind and version.
func (m *Models) Status() []ScorerStatus {
	w := m.Weights()
	out := []ScorerStatus{{Kind: ScorerRerank, Version: w.ModelVersion(), Role: "active", Algo: algoOf(w)}}
	if n, ok := m.NCF().(*NeuMF); ok && n != nil {
		out = append(out, ScorerStatus{Kind: ScorerNeuMF, Version: n.Version, ModelID: n.ModelID, Role: "active"})
	}
	return append(out, m.extraStatus()...)
}

// extraStatus lists the versions loaded for experiments and the failed
// ones.
func (m *Models) extraStatus() []ScorerStatus {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	return m.extraStatusLocked()
}

func (m *Models) extraStatusLocked() []ScorerStatus {
	var out []ScorerStatus
	if e := m.extra.Load(); e != nil {
		for _, v := range slices.Sorted(maps.Keys(e.weights)) {
			out = append(out, ScorerStatus{Kind: ScorerRerank, Version: v, Role: "experiment", Algo: algoOf(e.weights[v].m)})
		}
		for _, id := range slices.Sorted(maps.Keys(e.ncf)) {
			out = append(out, ScorerStatus{Kind: ScorerNeuMF, Version: e.ncf[id].Version, ModelID: id, Role: "experiment"})
		}
	}
	st := &m.extraSt
	for _, v := range slices.Sorted(maps.Keys(st.failedW)) {
		f := st.failedW[v]
		out = append(out, ScorerStatus{Kind: ScorerRerank, Version: v, Role: "failed", Error: f.err, FailedAt: &f.at})
	}
	for _, id := range slices.Sorted(maps.Keys(st.failedNCF)) {
		f := st.failedNCF[id]
		out = append(out, ScorerStatus{Kind: ScorerNeuMF, Version: st.wantNCF[id].Version, ModelID: id, Role: "failed", Error: f.err, FailedAt: &f.at})
	}
	return out
}

// extraMetricsLocked sets liverecall_scorer_versions; the caller holds
// loadMu.
func (m *Models) extraMetricsLocked() {
	g := m.extraMetrics.versions
	g.Reset()
	for _, s := range m.extraStatusLocked() {
		g.WithLabelValues(s.Kind, s.Version, s.Role).Set(1)
	}
}
