package recommend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/internal/spans"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

// Recaller is the recall stage (recall.Engine): candidates for a request,
// handed back with Release once read, and the shown log.
type Recaller interface {
	Recall(ctx context.Context, req recall.Request) (*recall.Result, error)
	Release(res *recall.Result)
	MarkShown(u lr.UserID, ids []lr.StreamerID)
}

// Users is what rerank needs to know of a user (live.State): the recent
// watches and the follows. The slices are not modified.
type Users interface {
	History(u lr.UserID) []live.Watch
	Follows(u lr.UserID) []lr.StreamerID
}

// Streams is what neighbour queries need of the live set (live.State).
type Streams interface {
	Snapshot() *live.Snapshot
	Features(ord uint32) (live.Features, bool)
}

// Vectors is what neighbour queries need of the index (index.Manager): the
// serving version, a streamer's vector and an exact float32 search, the
// last two pinned to a version (model, an embedding_models id).
type Vectors interface {
	Model(kind lr.ModelKind) lr.ModelVersion
	StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool)
	// SearchPrecise returns up to k allowed streamers (nil: all) with the
	// highest dot product with q under version model, best first,
	// scanning in float32 only; EUNAVAILABLE when model no longer serves.
	SearchPrecise(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error)
}

// UserStore is where neighbour queries read a user's vectors
// (userstore.Store): from its cache or the store, within ctx.
type UserStore interface {
	Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error)
}

// FoldedVectors gives users' MF vectors folded in from their recent
// watches (foldin.Folder): u's under MF version model, if one serves.
type FoldedVectors interface {
	Folded(u lr.UserID, model int64) (lr.FoldedVector, bool)
}

// DefaultUserTimeout is the default Config.UserTimeout.
const DefaultUserTimeout = 3 * time.Second

// NCF is the full NeuMF model of the serving NCF version.
type NCF interface {
	// ForUser returns the scorer of one request's user, given the user's
	// row of the user store under the request's versions, or nil when the
	// model cannot score this user (no stored user weights, or a row of
	// another NCF version).
	ForUser(u lr.UserID, row userstore.Row) UserNCF
}

// UserNCF is the NeuMF model bound to one user, as rerank takes it: one pair
// at a time, or a request's candidates by ordinal in one call.
type UserNCF interface {
	rerank.NCFScorer
	rerank.NCFOrdinalScorer
}

// Scorers gives the reranker's current models; read once per request.
// Models implements it; Fixed gives constant ones.
type Scorers interface {
	// Weights returns the reranker's model: logistic rerank.Weights or a
	// compiled tree ensemble (*rerank.Forest).
	Weights() rerank.Model
	// NCF returns the NeuMF scorer to rerank with, or nil (rerank then
	// takes the GMF dot product recall computed).
	NCF() NCF
}

// ImpressionLogger takes a page's impressions. It must not block: an
// implementation buffers and drops (and counts) when full.
type ImpressionLogger interface {
	Log(imps []lr.Impression)
}

// ImpressionReleaser is an ImpressionLogger that hands a page's
// impressions back once it has read them (events.ImpressionProducer):
// release is called once, from any goroutine, after which the service
// reuses the page's impressions and feature vectors for a later page
// instead of allocating them for each.
type ImpressionReleaser interface {
	LogThen(imps []lr.Impression, release func())
}

// pageImps is one page's impressions and their feature vectors, pooled
// for an ImpressionReleaser.
type pageImps struct {
	imps    []lr.Impression
	vecs    []float32
	release func() // puts it back into pageImpsPool, made once
}

var pageImpsPool sync.Pool

// getPageImps returns empty buffers for the impressions of n items.
func getPageImps(n int) *pageImps {
	b, _ := pageImpsPool.Get().(*pageImps)
	if b == nil {
		b = &pageImps{}
		b.release = func() {
			clear(b.imps) // no pointers kept into the requests
			b.imps, b.vecs = b.imps[:0], b.vecs[:0]
			pageImpsPool.Put(b)
		}
	}
	if cap(b.imps) < n {
		b.imps = make([]lr.Impression, 0, n)
	}
	if cap(b.vecs) < n*rerank.NumFeatures {
		b.vecs = make([]float32, 0, n*rerank.NumFeatures)
	}
	return b
}

// Config is what a Service is composed of. Recall is required for
// Recommend, Streams, Index and Ordinals for Neighbors.
type Config struct {
	Recall  Recaller
	Users   Users   // nil: rerank sees no history and no follows
	Streams Streams // live set and features for neighbour queries
	Index   Vectors
	// UserStore gives a neighbour query its user's vectors, within
	// UserTimeout (default DefaultUserTimeout: an operator's query may
	// wait for a cold read). UserStoreName names it in errors, e.g.
	// "PostgreSQL db.internal:5432/liverecall" (no credentials).
	UserStore     UserStore
	UserTimeout   time.Duration
	UserStoreName string
	// Folded, if set, gives a neighbour query the user's folded MF vector
	// beside the nightly one (recall gets it through the user vectors it
	// was given: foldin.Folder.Overlay).
	Folded      FoldedVectors
	Ordinals    *lr.Ordinals
	Scorers     Scorers          // nil: the default weights, no NeuMF
	Impressions ImpressionLogger // nil: impressions are not logged
	// RecallOrder serves the recall order without reranking (the quality
	// benchmark's recall-only variants).
	RecallOrder bool
	Now         func() time.Time // default time.Now
	Log         *slog.Logger     // default: discard
	Registerer  prometheus.Registerer
	// Trace, if set, is called once per answered request with its stage
	// times and channel outcomes (for benchmarks; Outcomes is valid only
	// during the call).
	Trace func(Trace)
	// Tracer, if set, traces rerank ("rerank") within the request's span
	// (the recall engine traces its own stage); nil: tracing off.
	Tracer trace.Tracer
	// Experiments, if set, are the online experiments whose arms serve
	// (the wiring calls its Set when they change); nil: every request
	// gets the default configuration and an arm override is EINVALID.
	Experiments *ExperimentSet
	// Arms resolves the embedding versions arms name (nil: Index, when
	// it implements ArmIndex); ArmScorers the reranker and NeuMF
	// versions (nil: Scorers, when it implements ArmScorers). Without
	// them an arm naming a version falls back to the default
	// configuration.
	Arms       ArmIndex
	ArmScorers ArmScorers
}

// Trace is what one request spent where (Config.Trace).
type Trace struct {
	Recall   time.Duration // channels, merge and filters
	Rerank   time.Duration // rerank, or the recall-order fallback
	Outcomes []recall.Outcome
}

// Service composes a recommendation. It is safe for concurrent use.
type Service struct {
	cfg         Config
	stage       *prometheus.HistogramVec
	channels    *prometheus.CounterVec
	rerankFails prometheus.Counter
	langFilter  *prometheus.CounterVec
	// expRequests and expFallbacks count, per experiment and arm, the
	// requests an arm served and those it could not (by reason).
	expRequests  *prometheus.CounterVec
	expFallbacks *prometheus.CounterVec
	arms         ArmIndex
	armScorers   ArmScorers
}

// New returns a Service over cfg's parts. Its metrics are registered on
// cfg.Registerer when it is set.
func New(cfg Config) *Service {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.UserTimeout <= 0 {
		cfg.UserTimeout = DefaultUserTimeout
	}
	if cfg.UserStoreName == "" {
		cfg.UserStoreName = "the user store"
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Scorers == nil {
		cfg.Scorers = Fixed(rerank.DefaultWeights(), nil)
	}
	s := &Service{cfg: cfg}
	s.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "liverecall_recall_stage_seconds",
		Help:    "Time spent in each stage of a recall request.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .004, .008, .016, .05},
	}, []string{"stage"})
	s.channels = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_recall_channel_outcomes_total",
		Help: "Recall channel outcomes (ok, timeout, late: the user's vectors did not arrive in time, error, skipped) by channel.",
	}, []string{"channel", "status"})
	s.rerankFails = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "liverecall_rerank_failures_total",
		Help: "Requests served in recall order because reranking failed.",
	})
	s.langFilter = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_language_filter_total",
		Help: "Requests with the same-language filter by outcome: applied (enough candidates of the language), fallback (too few: other languages filled the page), no_language (the request's context has no language).",
	}, []string{"outcome"})
	s.expRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_experiment_requests_total",
		Help: "Requests an experiment's arm served, by experiment and arm (an interleaved page counts for both arms; arm overrides are not counted).",
	}, []string{"experiment", "arm"})
	s.expFallbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_experiment_fallbacks_total",
		Help: "Requests of users assigned to an experiment's arm that got the default configuration instead, by experiment, arm and reason: mf_version, ncf_version, rerank_version (the version the arm names does not serve on this replica), interleave_overlap (the user is already in another interleaving experiment; arm empty).",
	}, []string{"experiment", "arm", "reason"})
	s.arms, s.armScorers = cfg.Arms, cfg.ArmScorers
	if s.arms == nil {
		s.arms, _ = cfg.Index.(ArmIndex)
	}
	if s.armScorers == nil {
		s.armScorers, _ = cfg.Scorers.(ArmScorers)
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(s.stage, s.channels, s.rerankFails, s.langFilter, s.expRequests, s.expFallbacks)
	}
	return s
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Recommend answers one request: the user's experiment arms (or the
// request's arm override), recall (channels, merge, integrity and shown
// filters), rerank — on any rerank failure, a panic included, the recall
// order with the channels' scores, counted and logged — then marks the
// page shown to the user, logs its impressions and records the stage
// times. A user in an interleaving experiment gets both arms' rankings,
// made at once, merged by team draft. It fails only when recall does
// (lr.EINVALID for k < 1) or the arm override names no experiment or arm
// held (lr.EINVALID); an arm whose version does not serve here serves the
// default configuration instead. The page and the impressions hold
// copies: nothing of them is reused.
func (s *Service) Recommend(ctx context.Context, req lr.RecommendRequest) (*lr.Page, error) {
	start := time.Now()
	received := req.Received
	if received.IsZero() || received.After(start) {
		received = start
	}
	tDecode := start.Sub(received)
	rid := req.RequestID
	if rid == "" {
		rid = newRequestID()
	}
	as, err := s.assign(&req)
	if err != nil {
		return nil, err
	}
	pre := []recall.Request{{User: req.User, Override: as.a.over}}
	if as.interleave {
		pre = append(pre, recall.Request{User: req.User, Override: as.b.over})
	}
	load := s.beginUser(req.User, pre...)
	reqCtx := req.Context.Clean()
	var a, b ranked
	if as.interleave {
		a, b, err = s.rankBoth(ctx, req, reqCtx, as.a, as.b, rid, load)
	} else {
		a, err = s.rank(ctx, &req, reqCtx, &as.a, rid, load)
	}
	if err != nil {
		return nil, err
	}
	tRecall, tRerank := a.tRecall, a.tRerank
	po := pageOf{items: a.pageItems, versions: a.res.Versions, expTag: as.expTag, armTag: as.armTag, tagTeams: as.tagTeams, assignments: as.assignments}
	if as.interleave {
		tRecall = max(a.tRecall, b.tRecall)
		tRerank = time.Since(start) - tRecall
		po.items, po.team = s.interleave(rid, a.pageItems, b.pageItems, req.K)
		po.teamNames, po.teamVersions = as.teams, [2]map[string]string{a.res.Versions, b.res.Versions}
	}
	page := s.page(rid, req, reqCtx, po)
	nCands := len(a.res.Candidates)
	// The items hold copies of the candidates they came from, and the page
	// and impressions copies of what they need from the items.
	a.release(s)
	b.release(s)
	s.stage.WithLabelValues("decode").Observe(tDecode.Seconds())
	s.stage.WithLabelValues("recall").Observe(tRecall.Seconds())
	s.stage.WithLabelValues("rerank").Observe(tRerank.Seconds())
	if s.cfg.Trace != nil {
		s.cfg.Trace(Trace{Recall: tRecall, Rerank: tRerank, Outcomes: a.res.Outcomes})
	}
	if req.Debug {
		page.Debug = &lr.PageDebug{Channels: outcomes(a.res.Outcomes), Filtered: a.res.Filtered, UserKnown: a.res.UserKnown, Candidates: nCands,
			TimingsMS:   map[string]float64{"decode": ms(tDecode), "recall": ms(tRecall), "rerank": ms(tRerank), "total": ms(time.Since(received))},
			Experiments: as.debug}
		if a.rerankErr != nil {
			page.Debug.RerankFailed = a.rerankErr.Error()
		} else if b.rerankErr != nil {
			page.Debug.RerankFailed = as.teams[1] + ": " + b.rerankErr.Error()
		}
	}
	return page, nil
}

// ranked is one ranking of a request: recall's result and the reranked
// page items (items, then fill: the other languages after a same-language
// page too short).
type ranked struct {
	res              *recall.Result
	items, fill      []rerank.Item
	pageItems        []rerank.Item
	rerankErr        error
	tRecall, tRerank time.Duration
}

// release hands r's candidates and items back (nothing when r is empty).
func (r *ranked) release(s *Service) {
	if r.res != nil {
		s.cfg.Recall.Release(r.res)
	}
	rerank.Release(r.items)
	rerank.Release(r.fill)
}

// rankBoth ranks req under pa and pb at once (an interleaving
// experiment's two arms); on an error it releases both and returns it.
// (Its own function, so that what the goroutine shares escapes to the heap
// only for interleaved pages.)
func (s *Service) rankBoth(ctx context.Context, req lr.RecommendRequest, reqCtx lr.RequestContext, pa, pb plan, rid string, load *live.Load) (a, b ranked, err error) {
	var errB error
	done := make(chan struct{})
	go func() {
		defer close(done)
		b, errB = s.rank(ctx, &req, reqCtx, &pb, rid, load)
	}()
	a, err = s.rank(ctx, &req, reqCtx, &pa, rid, load)
	<-done
	if err == nil {
		err = errB
	}
	if err != nil {
		a.release(s)
		b.release(s)
		return ranked{}, ranked{}, err
	}
	return a, b, nil
}

// rank recalls and reranks req under p: one ranked list of up to req.K
// items. load is the user's state load (beginUser): recall's channels that
// read the user's history wait for it, the others run meanwhile; rerank
// reads what it brought.
func (s *Service) rank(ctx context.Context, req *lr.RecommendRequest, reqCtx lr.RequestContext, p *plan, rid string, load *live.Load) (ranked, error) {
	var r ranked
	start := time.Now()
	model := s.cfg.Scorers.NCF()
	if p.ncfSet {
		model = p.ncf
	}
	rreq := recall.Request{User: req.User, K: req.K, Exclude: req.Exclude, Override: p.over, UserLoad: load}
	if model != nil {
		// The NCF dot products are skipped only when NeuMF can score this
		// user's row (an imported version, or a row without the MLP
		// embedding, keeps them for rerank's GMF fallback).
		user := req.User
		rreq.FullNCF = func(row userstore.Row) bool { return model.ForUser(user, row) != nil }
	}
	res, err := s.cfg.Recall.Recall(ctx, rreq)
	if err != nil {
		return r, err
	}
	r.res = res
	load.Wait(ctx) // settled by recall already, unless a Recaller of its own ignored it
	var ncf UserNCF
	if model != nil {
		ncf = model.ForUser(req.User, res.User)
	}
	r.tRecall = time.Since(start)
	for _, o := range res.Outcomes {
		s.channels.WithLabelValues(o.Channel, o.Status).Inc()
	}
	w := p.weights
	if w == nil {
		w = s.cfg.Scorers.Weights()
	}
	cands, rest := res.Candidates, []recall.Candidate(nil)
	if req.SameLanguage {
		cands, rest = s.sameLanguage(res, reqCtx.Language, req.K)
	}
	_, span := spans.Start(ctx, s.cfg.Tracer, "rerank")
	if s.cfg.RecallOrder {
		r.items = recallOrder(cands, req.K)
	} else {
		r.items, r.rerankErr = s.rerankSafely(cands, w, ncf, req.User, req.Debug, req.K, reqCtx)
	}
	r.pageItems = r.items
	if len(rest) > 0 {
		// Too few candidates of the language: the others fill the page,
		// after them, ranked among themselves.
		if s.cfg.RecallOrder {
			r.fill = recallOrder(rest, req.K-len(r.items))
		} else {
			var err error
			if r.fill, err = s.rerankSafely(rest, w, ncf, req.User, req.Debug, req.K-len(r.items), reqCtx); err != nil && r.rerankErr == nil {
				r.rerankErr = err
			}
		}
		r.pageItems = append(append(make([]rerank.Item, 0, len(r.items)+len(r.fill)), r.items...), r.fill...)
		res.Filtered["language"] = len(rest) - len(r.fill)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("liverecall.candidates", len(res.Candidates)), attribute.Int("liverecall.items", len(r.items)))
		if r.rerankErr != nil {
			span.SetStatus(codes.Error, r.rerankErr.Error())
		}
	}
	span.End()
	if r.rerankErr != nil {
		s.rerankFails.Inc()
		s.cfg.Log.Warn("rerank failed, serving recall order", "request_id", rid, "err", r.rerankErr)
	}
	r.tRerank = time.Since(start) - r.tRecall
	return r, nil
}

// interleave merges two arms' ranked items into one page of up to k by
// team draft (experiment.TeamDraft), its coin seeded from the request
// id; it returns the page's items (copies of the arms' items, whose
// slices they share) and each position's team (0: a, 1: b).
func (s *Service) interleave(rid string, a, b []rerank.Item, k int) ([]rerank.Item, []int) {
	idsOf := func(items []rerank.Item) []lr.StreamerID {
		out := make([]lr.StreamerID, len(items))
		for i := range items {
			out[i] = items[i].StreamerID
		}
		return out
	}
	ids, team := experiment.TeamDraft(idsOf(a), idsOf(b), k, interleaveRNG(rid))
	items := make([]rerank.Item, len(ids))
	for i, id := range ids {
		from := a
		if team[i] == 1 {
			from = b
		}
		for j := range from {
			if from[j].StreamerID == id {
				items[i] = from[j]
				break
			}
		}
	}
	return items, team
}

// sameLanguage applies the same-language filter to res's candidates for
// a page of k: it returns the candidates whose stream's language is lang
// or unknown, in recall order, and, when they are fewer than k, the others
// (to fill the page after them; else they are dropped, counted in
// res.Filtered["language"]). Without a language (lang "") it changes
// nothing. It reorders res.Candidates in place.
func (s *Service) sameLanguage(res *recall.Result, lang string, k int) (keep, rest []recall.Candidate) {
	if lang == "" {
		s.langFilter.WithLabelValues("no_language").Inc()
		return res.Candidates, nil
	}
	cands := res.Candidates
	n := 0
	for _, c := range cands {
		if l := c.Features.Language; l == "" || l == lang {
			cands[n] = c
			n++
		} else {
			rest = append(rest, c)
		}
	}
	copy(cands[n:], rest) // res.Candidates keeps every candidate (for Release)
	if n >= k || len(rest) == 0 {
		if len(rest) > 0 {
			res.Filtered["language"] = len(rest)
		}
		s.langFilter.WithLabelValues("applied").Inc()
		return cands[:n], nil
	}
	s.langFilter.WithLabelValues("fallback").Inc()
	return cands[:n], cands[n:]
}

// pageOf is what a page is built from: its items, the model versions
// they were ranked with, and the experiments' tags; for an interleaved
// page, each position's team (an index into teamNames and teamVersions).
type pageOf struct {
	items        []rerank.Item
	versions     map[string]string
	team         []int
	teamNames    [2]string
	teamVersions [2]map[string]string
	expTag       string // the impressions' experiment and arm
	armTag       string
	tagTeams     bool // the impressions name their team (expTag is the interleaving experiment)
	assignments  []lr.Assignment
}

// page builds the page of po's items, marks it shown and logs its
// impressions (when there is an impression log) with the request's
// context reqCtx.
func (s *Service) page(rid string, req lr.RecommendRequest, reqCtx lr.RequestContext, po pageOf) *lr.Page {
	now := s.cfg.Now()
	items := po.items
	page := &lr.Page{RequestID: rid, ModelVersions: po.versions, Items: make([]lr.PageItem, 0, len(items)), Assignments: po.assignments}
	shown := make([]lr.StreamerID, 0, len(items))
	logging := s.cfg.Impressions != nil
	var imps []lr.Impression
	var vecs []float32
	var versions string
	var teamVersions [2]string
	var impCtx *lr.RequestContext
	if reqCtx.Known() {
		impCtx = &reqCtx
	}
	releaser, pooled := s.cfg.Impressions.(ImpressionReleaser)
	var buf *pageImps
	if logging {
		if pooled {
			buf = getPageImps(len(items))
			imps, vecs = buf.imps, buf.vecs
		} else {
			imps = make([]lr.Impression, 0, len(items))
			// The impressions' feature vectors, one block for the page:
			// they outlive the request (the producer's buffer holds them).
			vecs = make([]float32, 0, len(items)*rerank.NumFeatures)
		}
		versions = versionString(po.versions)
		if po.team != nil {
			teamVersions = [2]string{versionString(po.teamVersions[0]), versionString(po.teamVersions[1])}
		}
	}
	for pos, it := range items {
		pi := lr.PageItem{StreamerID: it.StreamerID, StreamID: it.Features.StreamID, Score: it.Score, Channels: it.Channels}
		if po.team != nil {
			pi.Team = po.teamNames[po.team[pos]]
		}
		if req.Debug {
			fm := map[string]float64{}
			for j, v := range it.Vector {
				fm[rerank.FeatureNames[j]] = v
			}
			pi.Debug = &lr.ItemDebug{Features: fm, Why: contributions(it.Why), Live: lr.LiveFeatures(it.Features), Notes: it.Extra}
		}
		page.Items = append(page.Items, pi)
		shown = append(shown, it.StreamerID)
		if !logging {
			continue
		}
		imp := lr.Impression{RequestID: rid, UserID: req.User, StreamerID: it.StreamerID, StreamID: it.Features.StreamID,
			Position: pos, Score: it.Score, Channels: it.Channels, ModelVersions: versions, ShownAt: now, Features: appendFloat32(&vecs, it.Vector), Context: impCtx,
			Experiment: po.expTag, Arm: po.armTag}
		if po.team != nil {
			imp.ModelVersions = teamVersions[po.team[pos]]
			if po.tagTeams {
				imp.Team = pi.Team
			}
		}
		imps = append(imps, imp)
	}
	s.cfg.Recall.MarkShown(req.User, shown)
	switch {
	case pooled:
		buf.imps, buf.vecs = imps, vecs
		releaser.LogThen(imps, buf.release)
	case logging && len(imps) > 0:
		s.cfg.Impressions.Log(imps)
	}
	return page
}

func outcomes(os []recall.Outcome) []lr.ChannelOutcome {
	out := make([]lr.ChannelOutcome, len(os))
	for i, o := range os {
		out[i] = lr.ChannelOutcome(o)
	}
	return out
}

func contributions(cs []rerank.Contribution) []lr.Contribution {
	if cs == nil {
		return nil
	}
	out := make([]lr.Contribution, len(cs))
	for i, c := range cs {
		out[i] = lr.Contribution(c)
	}
	return out
}

// appendFloat32 appends x, converted, to *block and returns the appended
// part (nil for nil x), capped so that appending to it cannot overwrite
// what follows in the block.
func appendFloat32(block *[]float32, x []float64) []float32 {
	if x == nil {
		return nil
	}
	start := len(*block)
	for _, v := range x {
		*block = append(*block, float32(v))
	}
	return (*block)[start:len(*block):len(*block)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func versionString(v map[string]string) string {
	var parts []string
	for _, k := range []string{"mf", "ncf"} {
		if v[k] != "" {
			parts = append(parts, k+"="+v[k])
		}
	}
	return strings.Join(parts, ",")
}

// rerankSafely reranks with w, and on any failure (a panic included) returns the
// recall order with the channels' scores.
func (s *Service) rerankSafely(cands []recall.Candidate, w rerank.Model, ncf UserNCF, u lr.UserID, explain bool, k int, reqCtx lr.RequestContext) (items []rerank.Item, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rerank panicked: %v", r)
			items = recallOrder(cands, k)
		}
	}()
	if w == nil {
		return recallOrder(cands, k), fmt.Errorf("no rerank model")
	}
	if err := w.Validate(); err != nil {
		return recallOrder(cands, k), err
	}
	rc := &rerank.Context{User: u, Now: s.cfg.Now(), Explain: explain, Request: reqCtx}
	if ncf != nil {
		rc.NCF, rc.NCFBatch = ncf, ncf
	}
	if s.cfg.Users != nil {
		rc.History, rc.Follows = s.cfg.Users.History(u), s.cfg.Users.Follows(u)
	}
	return rerank.Rank(cands, w, rc, k), nil
}

func recallOrder(cands []recall.Candidate, k int) []rerank.Item {
	n := min(k, len(cands))
	out := make([]rerank.Item, n)
	for i := 0; i < n; i++ {
		out[i] = rerank.Item{Candidate: cands[i], Score: float64(cands[i].ChanScore)}
	}
	return out
}
