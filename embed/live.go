package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Watch, Gift, Follow and Stream are the live-streaming history a training
// job reads (from Postgres, in cmd/). Ids are the product's own.
type (
	Watch struct {
		User, Streamer int64
		At             time.Time // session start
		Seconds        float64
	}
	Gift struct {
		User, Streamer int64
		At             time.Time
		Amount         float64
	}
	Follow struct {
		User, Streamer int64
		At             time.Time
	}
	// Stream is one live session; a zero End means still live.
	Stream struct {
		Streamer   int64
		Start, End time.Time
	}
)

// History is everything a training run learns from.
type History struct {
	Watches []Watch
	Gifts   []Gift
	Follows []Follow
	Streams []Stream
}

// LiveConfig configures TrainLive.
type LiveConfig struct {
	Kind    lr.ModelKind // mf (implicit ALS) or ncf (NeuMF)
	Holdout float64      // share of the most recent watches held out for evaluation, in (0, 1)
	// Cutoff, when set, holds out the watches started at or after it
	// instead of a share (Holdout is then not used): what trains is
	// exactly the history before it (gifts and follows too).
	Cutoff          time.Time
	MinInteractions int     // refuse to train on fewer training watches than this
	EvalMax         int     // evaluate at most this many held-out watches (a seeded sample); 0 means all
	FullEvalMax     int     // NCF: evaluate the full NeuMF scorer (costly per candidate) on at most this many of them; 0 means all
	GiftWeight      float64 // strength of a gift per unit of amount, in watch-seconds
	FollowWeight    float64 // strength of a follow, in watch-seconds
	ALS             ALSConfig
	NeuMF           NeuMFConfig
	Seed            uint64
}

// DefaultLiveConfig returns the defaults of the nightly job.
func DefaultLiveConfig(kind lr.ModelKind) LiveConfig {
	return LiveConfig{Kind: kind, Holdout: 0.1, MinInteractions: 100, EvalMax: 20000, FullEvalMax: 2000,
		GiftWeight: 60, FollowWeight: 600, ALS: DefaultALSConfig(), NeuMF: DefaultNeuMFConfig(), Seed: 1}
}

// LiveMetrics are the availability-aware figures (Rappaz, McAuley & Aberer,
// RecSys 2021): each held-out watch is ranked among all streamers live at its
// start, for all targets, repeat targets (the user watched the streamer in
// the training period) and new targets.
type LiveMetrics struct {
	All, Repeat, New Metrics
	Skipped          int     // held-out watches of users unknown to the model
	MeanLive         float64 // mean number of candidates per ranked watch
}

// LiveModel is the outcome of TrainLive: vectors for retrieval keyed by the
// product's ids, metrics on the held-out period, and for NCF the full scorer.
type LiveModel struct {
	Kind      lr.ModelKind
	Dim       int
	Users     []lr.Embedding
	Streamers []lr.Embedding
	Metrics   LiveMetrics  // of the retrieval vectors (dot product)
	Full      *LiveMetrics // NCF only: of the full NeuMF scorer
	Scorer    *IDScorer    // NCF only: the full NeuMF scorer over product ids (with its users' weights)
	// Split evaluates other models on the same held-out watches
	// (Split.Evaluate), e.g. the active version before replacing it.
	*Split
}

// VectorScorer scores by the dot product of vectors keyed by product id. It
// is read-only after construction and safe for concurrent use.
type VectorScorer struct {
	user, streamer map[int64][]float32
}

// NewVectorScorer indexes users and streamers (not copied).
func NewVectorScorer(users, streamers []lr.Embedding) *VectorScorer {
	s := &VectorScorer{user: make(map[int64][]float32, len(users)), streamer: make(map[int64][]float32, len(streamers))}
	for _, e := range users {
		s.user[e.ID] = e.Vec
	}
	for _, e := range streamers {
		s.streamer[e.ID] = e.Vec
	}
	return s
}

// KnowsUser reports whether the scorer has a vector for user.
func (s *VectorScorer) KnowsUser(user int64) bool { _, ok := s.user[user]; return ok }

// ScoreIDs writes the scores of streamers for user to out; streamers without
// a vector get -MaxFloat32. It returns false (and writes nothing) for an
// unknown user.
func (s *VectorScorer) ScoreIDs(user int64, streamers []int64, out []float32) bool {
	u, ok := s.user[user]
	if !ok {
		return false
	}
	for k, id := range streamers {
		v, ok := s.streamer[id]
		if !ok || len(v) != len(u) {
			out[k] = -math.MaxFloat32
			continue
		}
		out[k] = dot(u, v)
	}
	return true
}

// IDScorer is the full NeuMF scorer over product ids, for rerank: Score gives
// the logit of (user, streamer). It is read-only and safe for concurrent use.
type IDScorer struct {
	Model     *NeuMF
	UserIDs   []int64 // dense index → user id
	StreamIDs []int64 // dense index → streamer id
	user      map[int64]int
	streamer  map[int64]int
	infOnce   sync.Once
	inf       *Inference // built by Prepare
	byOrd     []int32    // serving ordinal → dense index, -1 none (IndexOrdinals)
	itemsPool sync.Pool  // *[]int32, ScoreOrdinals' dense indices
}

// NewIDScorer wraps m with the id of each dense user and item index.
func NewIDScorer(m *NeuMF, userIDs, streamerIDs []int64) *IDScorer {
	s := &IDScorer{Model: m, UserIDs: userIDs, StreamIDs: streamerIDs,
		user: make(map[int64]int, len(userIDs)), streamer: make(map[int64]int, len(streamerIDs))}
	for i, id := range userIDs {
		s.user[id] = i
	}
	for i, id := range streamerIDs {
		s.streamer[id] = i
	}
	return s
}

// HoldsUsers says whether the scorer holds per-user weights (one trained in
// this process, or decoded from a legacy neumf-v1 blob), so that the
// methods taking a user id can score; a scorer decoded from a neumf-v2 blob
// holds none and scores users given by vectors (ScoreOrdinalsFor).
func (s *IDScorer) HoldsUsers() bool { return s.Model.NUsers > 0 }

// UserDims returns the lengths of the user vectors the ...For methods take:
// the retrieval vector (Dim) and the MLP embedding.
func (s *IDScorer) UserDims() (gmf, mlp int) { return s.Model.Dim, s.Model.mlpDim() }

// UserRow returns fresh copies of user's retrieval vector (h_G ⊙ p_u, as
// NeuMF.RetrievalVectors) and MLP embedding, the vectors ScoreOrdinalsFor
// takes; false when the scorer does not hold the user.
func (s *IDScorer) UserRow(user int64) (uG, pm []float32, ok bool) {
	u, ok := s.user[user]
	if !ok {
		return nil, nil, false
	}
	m := s.Model
	d, e := m.Dim, m.mlpDim()
	hG := m.Dense[newLayout(d, m.Layers).hG:]
	uG = make([]float32, d)
	for f, p := range m.PG[u*d : (u+1)*d] {
		uG[f] = p * hG[f]
	}
	return uG, slices.Clone(m.PM[u*e : (u+1)*e]), true
}

// Score returns the NeuMF logit of user and streamer and true, or false when
// either is unknown to the model.
func (s *IDScorer) Score(user, streamer int64) (float32, bool) {
	u, ok1 := s.user[user]
	i, ok2 := s.streamer[streamer]
	if !ok1 || !ok2 {
		return 0, false
	}
	return s.Model.Score(u, i), true
}

// KnowsUser reports whether user has embeddings.
func (s *IDScorer) KnowsUser(user int64) bool { _, ok := s.user[user]; return ok }

// ScoreIDs is as VectorScorer.ScoreIDs with the full NeuMF logit.
func (s *IDScorer) ScoreIDs(user int64, streamers []int64, out []float32) bool {
	u, ok := s.user[user]
	if !ok {
		return false
	}
	for k, id := range streamers {
		i, ok := s.streamer[id]
		if !ok {
			out[k] = -math.MaxFloat32
			continue
		}
		out[k] = s.Model.Score(u, i)
	}
	return true
}

// LiveRanker is what EvaluateLive needs from a model.
type LiveRanker interface {
	ScoreIDs(user int64, streamers []int64, out []float32) bool
}

// liveSet answers "who was live at t" for non-decreasing t by sweeping the
// streams in start order; the live streamers are kept in a slice with O(1)
// insertion and removal.
type liveSet struct {
	streams []Stream // sorted by start
	next    int
	open    []Stream      // streams started and not yet ended
	count   map[int64]int // streamer → open streams
	pos     map[int64]int // streamer → index in ids
	ids     []int64       // live streamers, in no particular order
}

func newLiveSet(streams []Stream) *liveSet {
	s := slices.Clone(streams)
	slices.SortFunc(s, func(a, b Stream) int { return a.Start.Compare(b.Start) })
	return &liveSet{streams: s, count: map[int64]int{}, pos: map[int64]int{}}
}

// at returns the streamers live at t (start ≤ t < end), in no particular
// order. The slice is owned by l and valid until the next call; t must not
// decrease between calls.
func (l *liveSet) at(t time.Time) []int64 {
	for l.next < len(l.streams) && !l.streams[l.next].Start.After(t) {
		st := l.streams[l.next]
		l.next++
		if l.count[st.Streamer]++; l.count[st.Streamer] == 1 {
			l.pos[st.Streamer] = len(l.ids)
			l.ids = append(l.ids, st.Streamer)
		}
		l.open = append(l.open, st)
	}
	kept := l.open[:0]
	for _, st := range l.open {
		if st.End.IsZero() || st.End.After(t) {
			kept = append(kept, st)
			continue
		}
		if l.count[st.Streamer]--; l.count[st.Streamer] == 0 {
			delete(l.count, st.Streamer)
			i, last := l.pos[st.Streamer], len(l.ids)-1
			l.ids[i] = l.ids[last]
			l.pos[l.ids[i]] = i
			l.ids = l.ids[:last]
			delete(l.pos, st.Streamer)
		}
	}
	l.open = kept
	return l.ids
}

// EvaluateLive ranks each held-out watch's streamer among the streamers live
// at the watch's start (the target is added when the streams table missed
// it), pessimistically, and reports all / repeat / new targets. seen says
// whether (user, streamer) interacted in the training period. Watches of
// users the model does not know are counted in Skipped.
func EvaluateLive(m LiveRanker, held []Watch, streams []Stream, seen func(user, streamer int64) bool) LiveMetrics {
	held = slices.Clone(held)
	slices.SortStableFunc(held, func(a, b Watch) int { return a.At.Compare(b.At) })
	ls := newLiveSet(streams)
	var all, rep, nw []int
	var out LiveMetrics
	var cands []int64
	var scores []float32
	var liveSum float64
	for _, w := range held {
		live := ls.at(w.At)
		cands = append(cands[:0], w.Streamer)
		for _, id := range live {
			if id != w.Streamer {
				cands = append(cands, id)
			}
		}
		scores = slices.Grow(scores[:0], len(cands))[:len(cands)]
		if !m.ScoreIDs(w.User, cands, scores) {
			out.Skipped++
			continue
		}
		r := PessimisticRank(scores[0], scores[1:])
		liveSum += float64(len(cands))
		all = append(all, r)
		if seen(w.User, w.Streamer) {
			rep = append(rep, r)
		} else {
			nw = append(nw, r)
		}
	}
	out.All, out.Repeat, out.New = MetricsFromRanks(all), MetricsFromRanks(rep), MetricsFromRanks(nw)
	if len(all) > 0 {
		out.MeanLive = liveSum / float64(len(all))
	}
	return out
}

// liveSampler draws negatives among streamers live at the positive's time
// (falling back to uniform when too few are live).
type liveSampler struct {
	uniform *uniformSampler
	starts  []int64 // stream start (unix ns), sorted
	streams []liveIdx
}

type liveIdx struct {
	item       int32
	start, end int64 // unix ns; end MaxInt64 when open
}

func newLiveSampler(u *uniformSampler, streams []Stream, idx map[int64]int32) *liveSampler {
	s := &liveSampler{uniform: u}
	for _, st := range streams {
		it, ok := idx[st.Streamer]
		if !ok {
			continue
		}
		end := int64(math.MaxInt64)
		if !st.End.IsZero() {
			end = st.End.UnixNano()
		}
		s.streams = append(s.streams, liveIdx{it, st.Start.UnixNano(), end})
	}
	slices.SortFunc(s.streams, func(a, b liveIdx) int { return int(sign(a.start - b.start)) })
	for _, st := range s.streams {
		s.starts = append(s.starts, st.start)
	}
	return s
}

func sign(x int64) int64 {
	switch {
	case x < 0:
		return -1
	case x > 0:
		return 1
	}
	return 0
}

// Negative draws a streamer whose stream was live at pos.Time (unix ns),
// other than the positive, by rejection over the streams started before it.
func (s *liveSampler) Negative(rng *rand.Rand, pos Interaction) int32 {
	n := sort.Search(len(s.starts), func(i int) bool { return s.starts[i] > pos.Time })
	for tries := 0; tries < 32 && n > 0; tries++ {
		st := s.streams[rng.IntN(n)]
		if st.end > pos.Time && st.item != pos.Item {
			return st.item
		}
	}
	return s.uniform.Negative(rng, pos)
}

// Split is a history cut in time: the training interactions before the
// cut-off (aggregated per user and streamer over dense ids) and the held-out
// watches from it on, with what EvaluateLive needs to rank them.
type Split struct {
	Cutoff      time.Time
	TrainWatch  int           // training watch sessions
	HeldWatch   int           // held-out watch sessions (before EvalMax sampling)
	Train       []Interaction // one row per (user, streamer): summed strength, Time = last interaction (unix ns)
	UserIDs     []int64       // dense user index → id
	StreamerIDs []int64       // dense streamer index → id

	userIdx, itemIdx map[int64]int32
	pairs            map[[2]int32]bool
	held             []Watch
	streams          []Stream
}

// SplitHistory holds out the most recent cfg.Holdout of h's watches by start
// time, or those started at or after cfg.Cutoff when it is set (nothing at
// the cut-off instant trains), and aggregates the rest, with
// gifts and follows before the cut-off, into one implicit strength per user
// and streamer: watch seconds + GiftWeight·amount + FollowWeight per follow.
// At most EvalMax held-out watches (a seeded sample) are kept. It returns an
// EINVALID "too little data" error when fewer than MinInteractions watches
// train or none is held out.
func SplitHistory(h *History, cfg LiveConfig) (*Split, error) {
	if cfg.Cutoff.IsZero() && (cfg.Holdout <= 0 || cfg.Holdout >= 1) {
		return nil, lr.Errorf(lr.EINVALID, "holdout must be in (0, 1), got %v", cfg.Holdout)
	}
	need := max(cfg.MinInteractions, 1)
	watches := slices.Clone(h.Watches)
	slices.SortStableFunc(watches, func(a, b Watch) int { return a.At.Compare(b.At) })
	nTrain := int(float64(len(watches)) * (1 - cfg.Holdout))
	if !cfg.Cutoff.IsZero() {
		nTrain = sort.Search(len(watches), func(i int) bool { return !watches[i].At.Before(cfg.Cutoff) })
	}
	if nTrain < need || nTrain == len(watches) {
		return nil, lr.Errorf(lr.EINVALID, "too little data: %d watch sessions (%d for training), need at least %d for training and one held out",
			len(watches), nTrain, need)
	}
	cut := watches[nTrain].At
	if !cfg.Cutoff.IsZero() {
		cut = cfg.Cutoff
	}
	for nTrain > 0 && !watches[nTrain-1].At.Before(cut) {
		nTrain--
	}
	trainW, held := watches[:nTrain], watches[nTrain:]
	if len(trainW) < need {
		return nil, lr.Errorf(lr.EINVALID, "too little data: %d training watch sessions before %s, need %d", len(trainW), cut.Format(time.RFC3339), need)
	}
	s := &Split{Cutoff: cut, TrainWatch: len(trainW), HeldWatch: len(held), userIdx: map[int64]int32{}, itemIdx: map[int64]int32{},
		pairs: map[[2]int32]bool{}, streams: h.Streams}
	id := func(m map[int64]int32, ids *[]int64, v int64) int32 {
		if k, ok := m[v]; ok {
			return k
		}
		k := int32(len(*ids))
		m[v] = k
		*ids = append(*ids, v)
		return k
	}
	strength := map[[2]int32]float64{}
	last := map[[2]int32]int64{}
	var order [][2]int32
	add := func(user, streamer int64, v float64, at time.Time) {
		k := [2]int32{id(s.userIdx, &s.UserIDs, user), id(s.itemIdx, &s.StreamerIDs, streamer)}
		if _, ok := strength[k]; !ok {
			order = append(order, k)
		}
		strength[k] += v
		last[k] = max(last[k], at.UnixNano())
	}
	for _, w := range trainW {
		add(w.User, w.Streamer, max(w.Seconds, 1), w.At)
	}
	for _, g := range h.Gifts {
		if g.At.Before(cut) {
			add(g.User, g.Streamer, cfg.GiftWeight*g.Amount, g.At)
		}
	}
	for _, f := range h.Follows {
		if f.At.Before(cut) {
			add(f.User, f.Streamer, cfg.FollowWeight, f.At)
		}
	}
	s.Train = make([]Interaction, 0, len(order))
	for _, k := range order {
		s.Train = append(s.Train, Interaction{User: k[0], Item: k[1], Value: float32(strength[k]), Time: last[k]})
		s.pairs[k] = true
	}
	if cfg.EvalMax > 0 && len(held) > cfg.EvalMax {
		rng := rand.New(rand.NewPCG(cfg.Seed, 0xe7a1))
		held = slices.Clone(held)
		rng.Shuffle(len(held), func(a, b int) { held[a], held[b] = held[b], held[a] })
		held = held[:cfg.EvalMax]
	}
	s.held = held
	return s, nil
}

// seen reports whether user and streamer interacted before the cut-off.
func (s *Split) seen(user, streamer int64) bool {
	u, ok1 := s.userIdx[user]
	i, ok2 := s.itemIdx[streamer]
	return ok1 && ok2 && s.pairs[[2]int32{u, i}]
}

// Evaluate ranks the held-out watches with r among the streamers live at
// each (EvaluateLive), splitting repeat and new targets by the training
// period. Any model can be compared this way: a trained one, the active
// version's stored vectors, imported vectors.
func (s *Split) Evaluate(r LiveRanker) LiveMetrics {
	return EvaluateLive(r, s.held, s.streams, s.seen)
}

// EvaluateFirst is Evaluate on at most n of the held-out watches (0: all),
// the same n for every model: a seeded sample when EvalMax sampled, else the
// earliest n.
func (s *Split) EvaluateFirst(r LiveRanker, n int) LiveMetrics {
	held := s.held
	if n > 0 && len(held) > n {
		held = held[:n]
	}
	return EvaluateLive(r, held, s.streams, s.seen)
}

// TrainLive runs one training job over h: SplitHistory, then cfg.Kind on
// the training part, then the availability-aware evaluation of the
// retrieval vectors (and, for NCF, of the full scorer). NCF negatives are
// drawn among streamers live at each interaction's time. It returns an
// EINVALID error for too little data and for a diverging fit.
func TrainLive(ctx context.Context, h *History, cfg LiveConfig) (*LiveModel, error) {
	sp, err := SplitHistory(h, cfg)
	if err != nil {
		return nil, err
	}
	nu, ni := len(sp.UserIDs), len(sp.StreamerIDs)
	out := &LiveModel{Kind: cfg.Kind, Split: sp}
	switch cfg.Kind {
	case lr.ModelMF:
		m, err := TrainALS(ctx, sp.Train, nu, ni, cfg.ALS)
		if err != nil {
			return nil, err
		}
		out.Dim = m.Dim
		out.Users = embeddings(sp.UserIDs, m.User, m.Dim)
		out.Streamers = embeddings(sp.StreamerIDs, m.Item, m.Dim)
	case lr.ModelNCF:
		nc := cfg.NeuMF
		u := &uniformSampler{nItems: ni, seen: userItems(sp.Train, nu)}
		nc.Sampler = newLiveSampler(u, h.Streams, sp.itemIdx)
		m, err := TrainNeuMF(ctx, sp.Train, nu, ni, nc)
		if err != nil {
			return nil, err
		}
		uv, iv := m.RetrievalVectors()
		out.Dim = m.Dim
		out.Users = embeddings(sp.UserIDs, uv, m.Dim)
		e := m.mlpDim()
		for k := range out.Users {
			out.Users[k].MLP = slices.Clone(m.PM[k*e : (k+1)*e])
		}
		out.Streamers = embeddings(sp.StreamerIDs, iv, m.Dim)
		out.Scorer = NewIDScorer(m, sp.UserIDs, sp.StreamerIDs)
		full := sp.EvaluateFirst(out.Scorer, cfg.FullEvalMax)
		out.Full = &full
	default:
		return nil, lr.Errorf(lr.EINVALID, "unknown model kind %q (want mf or ncf)", cfg.Kind)
	}
	for _, e := range append(slices.Clip(out.Users), out.Streamers...) {
		if !finite32(e.Vec) || !finite32(e.MLP) {
			return nil, lr.Errorf(lr.EINVALID, "training diverged: vector of id %d is not finite", e.ID)
		}
	}
	out.Metrics = sp.Evaluate(NewVectorScorer(out.Users, out.Streamers))
	return out, nil
}

// embeddings splits a row-major matrix into rows keyed by ids (copies).
func embeddings(ids []int64, flat []float32, dim int) []lr.Embedding {
	out := make([]lr.Embedding, len(ids))
	for k, id := range ids {
		out[k] = lr.Embedding{ID: id, Vec: slices.Clone(flat[k*dim : (k+1)*dim])}
	}
	return out
}

// popRanker scores a streamer by how many users interacted with it in the
// training period: the popularity baseline among live streamers.
type popRanker struct{ n map[int64]float32 }

func (p popRanker) ScoreIDs(_ int64, streamers []int64, out []float32) bool {
	for k, id := range streamers {
		out[k] = p.n[id]
	}
	return true
}

// LiveResult is one model under the availability-aware protocol.
type LiveResult struct {
	Model   string
	Metrics LiveMetrics
	TrainS  float64
}

// EvaluateLiveModels trains each of models ("pop": most-watched live
// streamer; "als": implicit ALS; "ncf": NeuMF, whose retrieval vectors are
// reported as "ncf" and full scorer as "ncf-full") on the training part of
// h and ranks the held-out watches among the streamers live at each, with
// cfg's split and hyper-parameters. Every model sees the same split.
func EvaluateLiveModels(ctx context.Context, h *History, models []string, cfg LiveConfig) ([]LiveResult, error) {
	sp, err := SplitHistory(h, cfg)
	if err != nil {
		return nil, err
	}
	var out []LiveResult
	for _, name := range models {
		start := time.Now()
		switch name {
		case "pop":
			p := popRanker{n: map[int64]float32{}}
			for _, x := range sp.Train {
				p.n[sp.StreamerIDs[x.Item]]++
			}
			out = append(out, LiveResult{Model: name, Metrics: sp.Evaluate(p), TrainS: time.Since(start).Seconds()})
		case "als", "ncf":
			c := cfg
			c.Kind = lr.ModelMF
			if name == "ncf" {
				c.Kind = lr.ModelNCF
			}
			m, err := TrainLive(ctx, h, c)
			if err != nil {
				return nil, err
			}
			out = append(out, LiveResult{Model: name, Metrics: m.Metrics, TrainS: time.Since(start).Seconds()})
			if m.Full != nil {
				out = append(out, LiveResult{Model: name + "-full", Metrics: *m.Full, TrainS: time.Since(start).Seconds()})
			}
		default:
			return nil, lr.Errorf(lr.EINVALID, "unknown model %q for the live protocol (want pop, als or ncf)", name)
		}
	}
	return out, nil
}
