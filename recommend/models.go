package recommend

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

// NeuMF is the full NeuMF scorer of one NCF model version, as rerank takes
// it (NCF): a request's candidates are scored in one pass by their serving
// ordinals. Build it with NewNeuMF.
type NeuMF struct {
	Version string
	s       *embed.IDScorer
}

// NewNeuMF prepares sc to serve (its inference tables, and the table from
// the serving ordinals to the model's streamers, which gives every streamer
// of the model an ordinal) and returns it as version's scorer. It takes
// about a second per million streamers: call it before the scorer serves.
func NewNeuMF(version string, sc *embed.IDScorer, ords *lr.Ordinals) *NeuMF {
	sc.Prepare()
	sc.IndexOrdinals(ords)
	return &NeuMF{Version: version, s: sc}
}

// ForUser returns the scorer bound to u (NCF). SKELETON: the per-user
// weights are still the in-memory ones of the decoded scorer; row is unused.
func (n *NeuMF) ForUser(u lr.UserID, row userstore.Row) UserNCF { return n }

// Score scores one pair (rerank.NCFScorer).
func (n *NeuMF) Score(u lr.UserID, s lr.StreamerID) (float32, bool) {
	return n.s.Score(int64(u), int64(s))
}

// ScoreOrdinals scores a request's candidates in one pass, by their
// ordinals (rerank.NCFOrdinalScorer).
func (n *NeuMF) ScoreOrdinals(u lr.UserID, ords []uint32, out []float32) bool {
	return n.s.ScoreOrdinals(int64(u), ords, out)
}

type fixed struct {
	w   rerank.Weights
	ncf NCF
}

func (f fixed) Weights() rerank.Weights { return f.w }
func (f fixed) NCF() NCF                { return f.ncf }

// Fixed returns Scorers that always give w and ncf (nil: no NeuMF), for
// benchmarks and tests.
func Fixed(w rerank.Weights, ncf *NeuMF) Scorers {
	if ncf == nil {
		return fixed{w: w}
	}
	return fixed{w: w, ncf: ncf}
}

// ModelStore is where the serving models come from (postgres.DB).
type ModelStore interface {
	// ActiveModel returns kind's active version; lr.ENOTFOUND if none.
	ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error)
	// ModelScorer returns a version's stored NeuMF scorer; lr.ENOTFOUND
	// when it has none (an imported version).
	ModelScorer(ctx context.Context, modelID int64) (format string, data []byte, err error)
}

// ModelsConfig says where Models load from.
type ModelsConfig struct {
	Store ModelStore
	// ActiveWeights returns the active reranker weights' version and their
	// stored JSON; lr.ENOTFOUND when no version is active.
	ActiveWeights func(ctx context.Context) (version string, weights []byte, err error)
	// Serving returns the version of kind the index serves ("" if none).
	Serving  func(kind lr.ModelKind) string
	Ordinals *lr.Ordinals
	Log      *slog.Logger // default: discard
}

// Models are the reranker's serving models and the policy that keeps them
// current: the active reranker weights (the defaults until a version is
// active; a refused or unreadable version keeps the current ones) and the
// full NeuMF scorer of the NCF version the index serves (none while the
// index serves another version or none, or the version has no scorer:
// rerank then takes the GMF dot product). It implements Scorers; safe for
// concurrent use.
type Models struct {
	cfg     ModelsConfig
	weights atomic.Pointer[rerank.Weights]
	ncf     atomic.Pointer[NeuMF]
	// loadMu makes LoadNCF one at a time: the index loop and the refresh
	// loop both call it, and a scorer is seconds and much memory to decode.
	loadMu sync.Mutex
}

// NewModels returns Models holding the default weights and no NeuMF.
func NewModels(cfg ModelsConfig) *Models {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m := &Models{cfg: cfg}
	w := rerank.DefaultWeights()
	m.weights.Store(&w)
	return m
}

// Weights returns the current reranker weights (Scorers).
func (m *Models) Weights() rerank.Weights { return *m.weights.Load() }

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

// LoadNCF loads the full NeuMF scorer of the active NCF version once the
// index serves that version (and not again while it does).
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
	// The scorer is in model_scorers (an imported version has none); the
	// migration that created that table moved the scorers of older versions
	// out of their params, so there is nothing to fall back to.
	format, blob, err := m.cfg.Store.ModelScorer(ctx, mv.ID)
	var sc *embed.IDScorer
	if err == nil {
		sc, err = embed.DecodeScorer(format, blob)
	}
	if err != nil {
		if lr.ErrorCode(err) != lr.ENOTFOUND && ctx.Err() == nil {
			m.cfg.Log.Warn("NeuMF scorer of the active NCF version not loaded; rerank uses the GMF dot product", "version", mv.Version, "err", err)
		}
		return
	}
	m.ncf.Store(NewNeuMF(mv.Version, sc, m.cfg.Ordinals))
	m.cfg.Log.Info("NeuMF scorer loaded", "version", mv.Version)
}

// RefreshWeights loads the active reranker weights; weights that do not fit
// this build are refused (logged) and the current ones kept.
func (m *Models) RefreshWeights(ctx context.Context) {
	version, raw, err := m.cfg.ActiveWeights(ctx)
	switch {
	case err == nil:
		w, err := rerank.ParseWeights(raw)
		if err != nil {
			m.cfg.Log.Warn("active rerank weights refused; keeping the current ones", "version", version, "err", err)
			return
		}
		w.Version = version
		if cur := m.weights.Load(); cur.Version != w.Version {
			m.cfg.Log.Info("rerank weights loaded", "version", w.Version)
		}
		m.weights.Store(&w)
	case lr.ErrorCode(err) == lr.ENOTFOUND:
	default:
		if ctx.Err() == nil {
			m.cfg.Log.Warn("rerank weights refresh failed", "err", err)
		}
	}
}
