package recommend

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
	"github.com/prometheus/client_golang/prometheus"
)

// NeuMF is the NeuMF scorer of one NCF model version, as rerank takes it
// (NCF): a request's candidates are scored in one pass by their serving
// ordinals. A scorer stored as embed.ScorerFormat holds the streamer side and
// the dense weights only: ForUser binds it to the user's row of the user
// store (the user's NCF vector and MLP embedding). A legacy scorer
// (embed.ScorerFormatV1, or one built in memory with its users) holds every
// user's weights and scores from them, ignoring the row. Build it with
// NewNeuMF. It is read-only and safe for concurrent use.
type NeuMF struct {
	Version string
	// ModelID is the version's embedding_models id: a row of another
	// version is refused.
	ModelID  int64
	s        *embed.IDScorer
	gmf, mlp int // the lengths of a user's vectors
}

// NewNeuMF prepares sc to serve (its inference tables, and the table from
// the serving ordinals to the model's streamers, which gives every streamer
// of the model an ordinal) and returns it as the scorer of version, whose
// embedding_models id is modelID. It takes about a second per million
// streamers: call it before the scorer serves.
func NewNeuMF(version string, modelID int64, sc *embed.IDScorer, ords *lr.Ordinals) *NeuMF {
	sc.Prepare()
	sc.IndexOrdinals(ords)
	n := &NeuMF{Version: version, ModelID: modelID, s: sc}
	n.gmf, n.mlp = sc.UserDims()
	return n
}

// HoldsUsers says whether the scorer is a legacy one holding its users'
// weights in memory (see NeuMF).
func (n *NeuMF) HoldsUsers() bool { return n.s.HoldsUsers() }

// ForUser returns the scorer bound to u (NCF). For a scorer without users,
// that is the row's vectors bound to the model — a small value, one
// allocation of a few words, that only reads the row's slices — or nil when
// the row cannot be scored: a row of another NCF version (row.Versions.NCF
// is not ModelID), or one without the NCF vector or the MLP embedding, or
// with vectors of another shape. A legacy scorer returns itself (scoring by
// u from its own weights) whatever the row.
func (n *NeuMF) ForUser(u lr.UserID, row userstore.Row) UserNCF {
	if n.s.HoldsUsers() {
		return n
	}
	if row.Versions.NCF != n.ModelID || len(row.NCF) != n.gmf || len(row.MLP) != n.mlp || n.mlp == 0 {
		return nil
	}
	return &userNeuMF{s: n.s, uG: row.NCF, pm: row.MLP}
}

// Score scores one pair from the legacy scorer's own user weights
// (rerank.NCFScorer); false for a user it does not hold.
func (n *NeuMF) Score(u lr.UserID, s lr.StreamerID) (float32, bool) {
	return n.s.Score(int64(u), int64(s))
}

// ScoreOrdinals scores a request's candidates in one pass, by their
// ordinals, from the legacy scorer's own user weights
// (rerank.NCFOrdinalScorer); false for a user it does not hold.
func (n *NeuMF) ScoreOrdinals(u lr.UserID, ords []uint32, out []float32) bool {
	return n.s.ScoreOrdinals(int64(u), ords, out)
}

// userNeuMF is a scorer without users bound to one user's vectors (ForUser);
// its methods ignore their user argument.
type userNeuMF struct {
	s      *embed.IDScorer
	uG, pm []float32
}

// Score scores the bound user with s (rerank.NCFScorer).
func (b *userNeuMF) Score(_ lr.UserID, s lr.StreamerID) (float32, bool) {
	return b.s.ScoreFor(b.uG, b.pm, int64(s))
}

// ScoreOrdinals scores the bound user with a request's candidates in one
// pass, by their ordinals (rerank.NCFOrdinalScorer).
func (b *userNeuMF) ScoreOrdinals(_ lr.UserID, ords []uint32, out []float32) bool {
	return b.s.ScoreOrdinalsFor(b.uG, b.pm, ords, out)
}

type fixed struct {
	w   rerank.Model
	ncf NCF
}

func (f fixed) Weights() rerank.Model { return f.w }
func (f fixed) NCF() NCF              { return f.ncf }

// Fixed returns Scorers that always give w (logistic Weights or a
// *rerank.Forest) and ncf (nil: no NeuMF), for benchmarks and tests.
func Fixed(w rerank.Model, ncf *NeuMF) Scorers {
	if ncf == nil {
		return fixed{w: w}
	}
	return fixed{w: w, ncf: ncf}
}

// ModelStore is where the serving models come from (postgres.DB).
type ModelStore interface {
	// ActiveModel returns kind's active version; lr.ENOTFOUND if none.
	ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error)
	// ReadModelScorer calls fn with a reader of a version's stored NeuMF
	// scorer (its size bytes), valid until fn returns, and returns fn's
	// error or the reader's (then what fn decoded is discarded: a checksum
	// is checked at the end); lr.ENOTFOUND when it has none (an imported
	// version).
	ReadModelScorer(ctx context.Context, modelID int64, fn func(format string, size int64, r io.Reader) error) error
}

// ModelsConfig says where Models load from.
type ModelsConfig struct {
	Store ModelStore
	// ActiveWeights returns the active reranker version and its stored
	// JSON (logistic weights or a tree model, rerank.ParseModel);
	// lr.ENOTFOUND when no version is active.
	ActiveWeights func(ctx context.Context) (version string, weights []byte, err error)
	// WeightsByVersion returns the stored JSON and the status of reranker
	// version (ServeExtra); lr.ENOTFOUND when there is none. nil:
	// experiments' reranker versions cannot be loaded (they are reported
	// as failed).
	WeightsByVersion func(ctx context.Context, version string) ([]byte, lr.ModelStatus, error)
	// Serving returns the version of kind the index serves ("" if none).
	Serving  func(kind lr.ModelKind) string
	Ordinals *lr.Ordinals
	Log      *slog.Logger // default: discard
	// Registerer takes liverecall_rerank_model_info; nil: not exported.
	Registerer prometheus.Registerer
}

// Models are the reranker's serving models and the policy that keeps them
// current: the active reranker weights (the defaults until a version is
// active; a refused or unreadable version keeps the current ones) and the
// NeuMF scorer of the NCF version the index serves (none while the
// index serves another version or none, or the version has no scorer:
// rerank then takes the GMF dot product). It implements Scorers; safe for
// concurrent use.
type Models struct {
	cfg     ModelsConfig
	weights atomic.Pointer[modelBox]
	info    *prometheus.GaugeVec // 1 for the serving reranker's version and algo
	ncf     atomic.Pointer[NeuMF]
	// loadMu makes LoadNCF and ServeExtra one at a time: the index loop,
	// the refresh loop and the experiments loop call them, and a scorer is
	// seconds and much memory to decode. It guards extraSt.
	loadMu sync.Mutex
	// extra are the versions loaded for experiments (ServeExtra).
	extra        atomic.Pointer[extraModels]
	extraSt      extraState
	extraMetrics *extraMetrics
}

// NewModels returns Models holding the default weights and no NeuMF.
func NewModels(cfg ModelsConfig) *Models {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Models{cfg: cfg, info: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_rerank_model_info",
		Help: "Always 1; the labels name the reranker this replica serves: its version (default: the built-in weights) and algo (logistic, gbdt)."},
		[]string{"version", "algo"})}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(m.info)
	}
	m.extraMetrics = newExtraMetrics(cfg.Registerer)
	m.serve(&modelBox{m: rerank.DefaultWeights()})
	return m
}

// serve makes b the model Weights returns, and says so in the info metric.
func (m *Models) serve(b *modelBox) {
	m.weights.Store(b)
	m.info.Reset()
	m.info.WithLabelValues(b.m.ModelVersion(), algoOf(b.m)).Set(1)
}

// modelBox holds a rerank.Model for an atomic.Pointer, with the stored
// JSON it was parsed from (nil: the defaults).
type modelBox struct {
	m   rerank.Model
	raw []byte
}

// Weights returns the current reranker model: the logistic weights or a
// compiled tree ensemble (Scorers).
func (m *Models) Weights() rerank.Model { return m.weights.Load().m }

// NCF returns the NeuMF scorer of the NCF version the index serves, or nil
// while it is not loaded (Scorers).
func (m *Models) NCF() NCF {
	n := m.ncf.Load()
	if n == nil || n.Version != m.cfg.Serving(lr.ModelNCF) {
		return nil
	}
	return n
}

// Refresh brings both models up to date: LoadNCF, then RefreshWeights.
// Failures are logged and keep what serves.
func (m *Models) Refresh(ctx context.Context) {
	m.LoadNCF(ctx)
	m.RefreshWeights(ctx)
}

// LoadNCF loads the NeuMF scorer of the active NCF version once the index
// serves that version (and not again while it does). A legacy scorer that
// holds its users' weights is logged as a warning once per load.
func (m *Models) LoadNCF(ctx context.Context) {
	m.loadMu.Lock()
	defer m.loadMu.Unlock()
	serving := m.cfg.Serving(lr.ModelNCF)
	if cur := m.ncf.Load(); serving == "" || (cur != nil && cur.Version == serving) {
		return
	}
	mv, err := m.cfg.Store.ActiveModel(ctx, lr.ModelNCF)
	if err != nil || mv.Version != serving {
		return // the index has not caught up with the active version yet
	}
	if n := m.extraNCF(mv.ID); n != nil {
		// Loaded for an experiment: the activated version needs no decoding.
		m.ncf.Store(n)
		m.cfg.Log.Info("NeuMF scorer of the active version taken from the experiments' scorers", "version", mv.Version)
		return
	}
	// The scorer is in model_scorers (an imported version has none); the
	// migration that created that table moved the scorers of older versions
	// out of their params, so there is nothing to fall back to.
	var sc *embed.IDScorer
	var format string
	err = m.cfg.Store.ReadModelScorer(ctx, mv.ID, func(f string, size int64, r io.Reader) (err error) {
		format = f
		// Decoded as it streams in: the stored bytes are never held whole.
		sc, err = embed.ReadScorer(f, size, r)
		return err
	})
	if err != nil {
		if lr.ErrorCode(err) != lr.ENOTFOUND && ctx.Err() == nil {
			m.cfg.Log.Warn("NeuMF scorer of the active NCF version not loaded; rerank uses the GMF dot product", "version", mv.Version, "err", err)
		}
		return
	}
	m.ncf.Store(NewNeuMF(mv.Version, mv.ID, sc, m.cfg.Ordinals))
	// The scorer's tables lie outside the Go heap and the decoding streamed
	// through a 64 KiB buffer; its id tables' garbage does not: collect it
	// at once and give its pages back, so that the collector's next target
	// is set by the live heap (a new NCF version is rare), and the mappings
	// of the scorer this one replaces are released.
	debug.FreeOSMemory()
	if sc.HoldsUsers() {
		m.cfg.Log.Warn("this NCF version's NeuMF scorer holds its users' weights in memory (legacy "+embed.ScorerFormatV1+"); retrain to move them to the store",
			"version", mv.Version, "users", len(sc.UserIDs))
	}
	m.cfg.Log.Info("NeuMF scorer loaded", "version", mv.Version, "format", format)
}

// RefreshWeights loads the active reranker version, logistic weights or a
// tree model (rerank.ParseModel); a version that does not fit this build
// is refused (logged) and the current model kept.
func (m *Models) RefreshWeights(ctx context.Context) {
	version, raw, err := m.cfg.ActiveWeights(ctx)
	switch {
	case err == nil:
		if cur := m.weights.Load(); cur.m.ModelVersion() == version && bytes.Equal(cur.raw, raw) {
			return // serving it already (an edit of the stored JSON is reloaded)
		}
		w, err := rerank.ParseModel(raw)
		if err != nil {
			m.cfg.Log.Warn("active rerank model refused; keeping the current one", "version", version, "err", err)
			return
		}
		w = w.WithVersion(version)
		m.cfg.Log.Info("rerank model loaded", "version", version, "algo", algoOf(w))
		m.serve(&modelBox{m: w, raw: raw})
	case lr.ErrorCode(err) == lr.ENOTFOUND:
	default:
		if ctx.Err() == nil {
			m.cfg.Log.Warn("rerank weights refresh failed", "err", err)
		}
	}
}

// algoOf names m's algorithm for logs.
func algoOf(m rerank.Model) string {
	if _, ok := m.(*rerank.Forest); ok {
		return rerank.AlgoGBDT
	}
	return "logistic"
}
