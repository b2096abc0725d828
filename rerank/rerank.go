package rerank

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
)

// Feature names, in vector order. The order is part of the stored weights'
// format: add new features at the end.
var FeatureNames = []string{
	"mf_score", "has_mf", "ncf_score", "has_ncf",
	"log_viewers", "viewer_growth", "log_gifts_5m", "log_gift_value_5m", "log_unique_gifters_30m",
	"log_stream_age_min", "repeat_watches", "followed",
	"via_mf", "via_ncf", "via_session", "via_follow", "via_trending", "via_fresh",
	// Feature set 2: the user's repeat viewing beyond a raw count.
	"repeat_share", "log_hours_since_watch", "log_watches_24h", "repeat_top",
	// Feature set 3: the request's context (Context.Request): the local
	// hour on a circle, the weekend, the device class (desktop and other
	// are all zeros) and whether the stream's language is the locale's.
	// All 0 when the request did not say.
	"hour_sin", "hour_cos", "weekend", "device_mobile", "device_tablet", "device_tv", "language_match",
}

// featureSet3 is the index of the first feature of set 3.
var featureSet3 = slices.Index(FeatureNames, "hour_sin")

// NumFeatures is len(FeatureNames).
var NumFeatures = len(FeatureNames)

// FeatureSets are the lengths of the feature vectors of this and earlier
// builds, oldest first: each set is a prefix of the next (features are only
// appended). Stored weights of an earlier set are read with zero weights for
// the features added since (ParseWeights), so they score exactly as they did.
var FeatureSets = []int{18, featureSet3, len(FeatureNames)}

// Weights is a logistic model over the features: score = sigmoid(Bias + W·x).
type Weights struct {
	Version string    `json:"version"`
	Bias    float64   `json:"bias"`
	W       []float64 `json:"w"`
}

// DefaultWeights work without any training: repeat viewing and the models'
// scores dominate, popularity and momentum break ties, follows help. The
// repeat and NCF weights were set by `liverecall eval --format replay` on
// the simulator (make bench-quality): with repeat_watches 1.5 and ncf_score
// 1.0 the full system ranked the watched streamer first less often than the
// "most-watched live streamer" heuristic. The repeat features of feature
// set 2 (repeat_top 3, repeat_share 2, log_watches_24h 1;
// log_hours_since_watch 0) were chosen on a validation day before the
// held-out one: the replay of the simulator's last day of history, with the
// models trained on the days before it and the held-out day not simulated
// at all (BENCH_QUALITY_REPLAY_VALIDATION=1; docs/DESIGN.md, the replay).
func DefaultWeights() Weights {
	w := map[string]float64{
		"mf_score": 2.0, "ncf_score": 0.5, "has_mf": 0, "has_ncf": 0,
		"log_viewers": 0.25, "viewer_growth": 0.3, "log_gifts_5m": 0.1, "log_gift_value_5m": 0.05, "log_unique_gifters_30m": 0.1,
		"log_stream_age_min": -0.05, "repeat_watches": 4, "followed": 1.0,
		"via_mf": 0.2, "via_ncf": 0.1, "via_session": 0.3, "via_follow": 0.2, "via_trending": 0.1, "via_fresh": 0.05,
		"repeat_share": 2, "log_hours_since_watch": 0, "log_watches_24h": 1, "repeat_top": 3,
		// Feature set 3 (context) starts at zero: no measurement yet says
		// what a context is worth before training on impressions that
		// carry it (README, "Request context").
		"hour_sin": 0, "hour_cos": 0, "weekend": 0, "device_mobile": 0, "device_tablet": 0, "device_tv": 0, "language_match": 0,
	}
	out := Weights{Version: "default", Bias: -2, W: make([]float64, NumFeatures)}
	for i, n := range FeatureNames {
		out.W[i] = w[n]
	}
	return out
}

// Validate checks that w fits this build's features and holds only finite numbers.
func (w Weights) Validate() error {
	if len(w.W) != NumFeatures {
		return lr.Errorf(lr.EINVALID, "rerank weights %q have %d features, this build has %d", w.Version, len(w.W), NumFeatures)
	}
	bad := func(x float64) bool { return math.IsNaN(x) || math.IsInf(x, 0) }
	if bad(w.Bias) {
		return lr.Errorf(lr.EINVALID, "rerank weights %q: weight -1 (the bias) is %v", w.Version, w.Bias)
	}
	for i, x := range w.W {
		if bad(x) {
			return lr.Errorf(lr.EINVALID, "rerank weights %q: weight %d is %v", w.Version, i, x)
		}
	}
	return nil
}

// ParseWeights decodes stored weights and validates them. Weights of an
// earlier feature set (FeatureSets) get zero weights for the features added
// since: they rank as they did in the build that trained them.
func ParseWeights(b []byte) (Weights, error) {
	var w Weights
	if err := json.Unmarshal(b, &w); err != nil {
		return w, lr.Errorf(lr.EINVALID, "rerank weights: %v", err)
	}
	if n := len(w.W); n < NumFeatures && slices.Contains(FeatureSets, n) {
		w.W = append(w.W, make([]float64, NumFeatures-n)...)
	}
	return w, w.Validate()
}

// NCFScorer scores a (user, streamer) pair with the full NeuMF model; ok is
// false when the model does not know one of them.
type NCFScorer interface {
	Score(u lr.UserID, s lr.StreamerID) (float32, bool)
}

// NCFOrdinalScorer scores all of a request's candidates with the full
// NeuMF model in one call (the user side computed once), by the candidates'
// serving ordinals (a table lookup each instead of a map lookup). out[i] is
// -MaxFloat32 for a streamer the model does not know; false means the user
// is unknown (out is then not written).
type NCFOrdinalScorer interface {
	ScoreOrdinals(u lr.UserID, ords []uint32, out []float32) bool
}

// Context is what features need beyond the candidate itself.
type Context struct {
	User    lr.UserID
	History []live.Watch
	Follows []lr.StreamerID
	// NCF scores one pair at a time and NCFBatch all the candidates in one
	// call; Rank uses NCFBatch when it is set, else NCF. Both nil: the GMF
	// dot product recall computed is the NCF score. The wiring sets both
	// from one model (recommend does).
	NCF      NCFScorer
	NCFBatch NCFOrdinalScorer
	Now      time.Time
	Explain  bool
	MaxShare float64 // the largest share of one category in the page; default 0.4
	// Request is the request's context (features of set 3); its zero
	// value says nothing.
	Request lr.RequestContext
}

// Item is a reranked candidate.
type Item struct {
	recall.Candidate
	Score  float64
	Vector []float64         // the feature vector (logged with impressions)
	Why    []Contribution    // when Context.Explain: see explain (positive contributions first)
	Extra  map[string]string // notes, e.g. "diversity: moved down"

	block []float64 // on the first item of a page: every item's Vector, for Release
}

// Contribution is one feature's part in a score.
type Contribution struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"`
	Effect  float64 `json:"effect"` // weight × value
}

// Features computes the feature vector of c (the NCF score as Rank takes it)
// as a page of c alone would have it: repeat_top is 1 when the user has
// watched c at all (Rank compares c with the page's other candidates).
func Features(c recall.Candidate, ctx *Context) []float64 {
	x := make([]float64, NumFeatures)
	ncf, hasNCF := c.NCFScore, c.HasNCF
	if ctx.NCF != nil {
		if s, ok := ctx.NCF.Score(ctx.User, c.StreamerID); ok {
			ncf, hasNCF = s, true
		}
	} else if ctx.NCFBatch != nil {
		var out [1]float32
		if ctx.NCFBatch.ScoreOrdinals(ctx.User, []uint32{c.Ord}, out[:]) && out[0] != -math.MaxFloat32 {
			ncf, hasNCF = out[0], true
		}
	}
	uv := userView{repeats: map[lr.StreamerID]repeatStat{}, follows: map[lr.StreamerID]bool{}}
	uv.fill(ctx)
	uv.top = uv.repeats[c.StreamerID].n
	featuresInto(x, &c, ncf, hasNCF, &uv)
	return x
}

// repeatStat is a user's watching of one streamer in Context.History.
type repeatStat struct {
	n    int   // watch sessions
	day  int   // of them, joined in the 24 hours before Context.Now
	last int64 // the newest join (unix ns)
}

// userView is what the features read of the request's user.
type userView struct {
	repeats map[lr.StreamerID]repeatStat
	follows map[lr.StreamerID]bool
	total   int   // watch sessions in the history
	now     int64 // Context.Now (unix ns); 0 when unset
	top     int   // the most sessions any candidate has (0: none watched)

	// The request's context (Context.Request).
	ctx  [7]float64 // feature set 3 but language_match, the same for every candidate
	lang string     // the request's language, "" when unknown
}

// fill reads ctx's history and follows into uv (its maps empty).
func (uv *userView) fill(ctx *Context) {
	uv.total = len(ctx.History)
	if !ctx.Now.IsZero() {
		uv.now = ctx.Now.UnixNano()
	}
	dayAgo := uv.now - int64(24*time.Hour)
	for _, h := range ctx.History {
		r := uv.repeats[h.StreamerID]
		r.n++
		ts := h.JoinedAt.UnixNano()
		if uv.now != 0 && ts > dayAgo && ts <= uv.now {
			r.day++
		}
		r.last = max(r.last, ts)
		uv.repeats[h.StreamerID] = r
	}
	for _, id := range ctx.Follows {
		uv.follows[id] = true
	}
	uv.ctx, uv.lang = contextFeatures(&ctx.Request), ctx.Request.Language
}

// contextFeatures returns feature set 3 of a request with context rc, but
// language_match (which depends on the candidate), in FeatureNames order.
func contextFeatures(rc *lr.RequestContext) (x [7]float64) {
	if rc.LocalTime {
		a := 2 * math.Pi * float64(rc.Hour) / 24
		x[0], x[1] = math.Sin(a), math.Cos(a)
		if rc.Weekday == time.Saturday || rc.Weekday == time.Sunday {
			x[2] = 1
		}
	}
	switch rc.Device {
	case lr.DeviceMobile:
		x[3] = 1
	case lr.DeviceTablet:
		x[4] = 1
	case lr.DeviceTV:
		x[5] = 1
	}
	return x
}

// featuresInto writes c's feature vector into x, with ncf (when hasNCF) as
// its NCF score.
func featuresInto(x []float64, c *recall.Candidate, ncf float32, hasNCF bool, uv *userView) {
	clear(x)
	f := &c.Features
	if c.HasMF {
		x[0], x[1] = float64(c.MFScore), 1
	}
	if hasNCF {
		x[2], x[3] = float64(ncf), 1
	}
	x[4] = math.Log1p(float64(f.Viewers))
	x[5] = math.Log1p(float64(f.Viewers)) - math.Log1p(float64(f.Viewers5mAgo))
	x[6] = math.Log1p(float64(f.Gifts5m))
	x[7] = math.Log1p(f.GiftValue5m)
	x[8] = math.Log1p(float64(f.UniqueGifters30m))
	x[9] = math.Log1p(f.Age.Minutes())
	r := uv.repeats[c.StreamerID]
	x[10] = math.Log1p(float64(r.n))
	if uv.follows[c.StreamerID] {
		x[11] = 1
	}
	for _, ch := range c.Channels {
		if i := slices.Index(recall.Channels, ch); i >= 0 {
			x[12+i] = 1
		}
	}
	if r.n > 0 {
		x[18] = float64(r.n) / float64(uv.total)
		if uv.now != 0 && r.last <= uv.now {
			x[19] = math.Log1p(float64(uv.now-r.last) / float64(time.Hour))
		}
		x[20] = math.Log1p(float64(r.day))
		if r.n == uv.top {
			x[21] = 1
		}
	}
	copy(x[featureSet3:], uv.ctx[:6])
	if uv.lang != "" && f.Language == uv.lang {
		x[featureSet3+6] = 1
	}
}

// Rank scores every candidate with m, orders them best first (candidates
// flagged Shown after all the others), applies the diversity step and
// returns the first k. It never fails on odd input: a non-finite score
// ranks last.
func Rank(cands []recall.Candidate, m Model, ctx *Context, k int) []Item {
	sc := scratchPool.Get().(*scratch)
	defer sc.put()
	uv := &userView{repeats: sc.repeats, follows: sc.follows}
	uv.fill(ctx)
	n := len(cands)
	for i := range cands {
		uv.top = max(uv.top, uv.repeats[cands[i].StreamerID].n)
	}
	// The NCF score of each candidate: the full NeuMF model's when it knows
	// the pair (with NCFBatch, every candidate in one call), else the
	// GMF dot product recall computed.
	ncf, hasNCF := grow(&sc.ncf, n), grow(&sc.hasNCF, n)
	for i := range cands {
		ncf[i], hasNCF[i] = cands[i].NCFScore, cands[i].HasNCF
	}
	if ctx.NCFBatch != nil && n > 0 {
		out := grow(&sc.out, n)
		clear(out) // a scorer that skips a streamer leaves 0, as with a new slice
		ords := grow(&sc.ords, n)
		for i := range cands {
			ords[i] = cands[i].Ord
		}
		if !ctx.NCFBatch.ScoreOrdinals(ctx.User, ords, out) {
			out = out[:0]
		}
		for i, s := range out {
			if s != -math.MaxFloat32 {
				ncf[i], hasNCF[i] = s, true
			}
		}
	} else if ctx.NCF != nil {
		for i := range cands {
			if s, ok := ctx.NCF.Score(ctx.User, cands[i].StreamerID); ok {
				ncf[i], hasNCF[i] = s, true
			}
		}
	}
	// Score every candidate (the vectors in one block), then order a
	// permutation (stable: equal scores keep the recall order), choose the
	// page, and build items for the page only.
	scores, order := grow(&sc.scores, n), grow(&sc.order, n)
	if f, ok := m.(*Forest); ok {
		// Trees score the page tree by tree (Forest.scoreBatch).
		xb := grow(&sc.x, n*NumFeatures)
		for i := range cands {
			featuresInto(xb[i*NumFeatures:(i+1)*NumFeatures], &cands[i], ncf[i], hasNCF[i], uv)
		}
		f.scoreBatch(xb, NumFeatures, n, scores, grow(&sc.raw, n), grow(&sc.idx, n))
	} else {
		x := grow(&sc.x, NumFeatures)
		for i := range cands {
			featuresInto(x, &cands[i], ncf[i], hasNCF[i], uv)
			scores[i] = m.Score(x)
		}
	}
	for i := range cands {
		if math.IsNaN(scores[i]) {
			scores[i] = -1
		}
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		// Streamers already shown (recall admits them only to fill the
		// page) come after the others, whatever their scores.
		if sa, sb := cands[a].Shown, cands[b].Shown; sa != sb {
			if sa {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return a - b
	})
	split := len(order) // order[split:] are the already shown
	for j, i := range order {
		if cands[i].Shown {
			split = j
			break
		}
	}
	page, held := diversify(order, split, func(i int) string { return cands[i].Features.Category }, k, ctx.MaxShare, ctx.Explain, sc)
	items, xs := itemsFor(len(page))
	for j, i := range page {
		c := cands[i]
		c.NCFScore, c.HasNCF = ncf[i], hasNCF[i]
		x := xs[j*NumFeatures : (j+1)*NumFeatures : (j+1)*NumFeatures]
		featuresInto(x, &c, ncf[i], hasNCF[i], uv)
		items[j] = Item{Candidate: c, Score: scores[i], Vector: x}
		if j == 0 {
			items[j].block = xs
		}
		if ctx.Explain {
			items[j].Why = explain(x, m)
			if h, ok := held[i]; ok {
				items[j].Extra = map[string]string{"diversity": h}
			}
		}
	}
	return items
}

// scratch is the working memory of one Rank call, reused across calls:
// a request's slices and maps were most of what reranking allocated.
type scratch struct {
	repeats map[lr.StreamerID]repeatStat
	follows map[lr.StreamerID]bool
	per     map[string]int
	ncf     []float32
	out     []float32
	hasNCF  []bool
	ords    []uint32
	x       []float64
	scores  []float64
	raw     []float64
	idx     []int32
	order   []int
	page    []int
	held    []int
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{repeats: map[lr.StreamerID]repeatStat{}, follows: map[lr.StreamerID]bool{}, per: map[string]int{}}
}}

// put empties the maps (keeping their room) and returns sc to the pool.
// A scratch that grew for an unusually large request is dropped instead,
// so one such request does not pin its memory.
func (sc *scratch) put() {
	if len(sc.repeats) > 1024 || len(sc.follows) > 1024 || cap(sc.order) > 4096 {
		return
	}
	clear(sc.repeats)
	clear(sc.follows)
	clear(sc.per)
	scratchPool.Put(sc)
}

// grow returns (*s)[:n], reallocating *s when it is too small. The
// contents are not cleared: callers write every element they read.
func grow[T any](s *[]T, n int) []T {
	if cap(*s) < n {
		*s = make([]T, n)
	}
	return (*s)[:n]
}

// itemsFor returns n items and their n feature vectors' backing array,
// reused from an earlier Release when there is one.
func itemsFor(n int) ([]Item, []float64) {
	if p, ok := itemsPool.Get().(*pagePair); ok && cap(p.items) >= n && cap(p.xs) >= n*NumFeatures {
		return p.items[:n], p.xs[:n*NumFeatures]
	}
	return make([]Item, n), make([]float64, n*NumFeatures)
}

type pagePair struct {
	items []Item
	xs    []float64
}

var itemsPool sync.Pool

// Release hands back items Rank returned, for reuse by later calls. Call it
// once nothing reads them (or their Vectors) any more; copy out what must
// outlive the request first.
func Release(items []Item) {
	if cap(items) == 0 || cap(items) > 1024 {
		return
	}
	xs := items[:1][0].block
	if xs == nil {
		return // not from Rank, or empty
	}
	items = items[:cap(items)]
	xs = xs[:cap(xs)]
	if cap(xs) < len(items)*NumFeatures {
		return
	}
	clear(items) // drop the candidates' references (channel lists, explanations)
	itemsPool.Put(&pagePair{items: items[:0], xs: xs})
}

// Most contributions an explanation lists: the largest positive ones,
// then the largest negative ones.
const (
	explainPositive = 4
	explainNegative = 2
)

// explain lists why an item scored as it did: its features' positive
// effects (Model.Effects), largest first, at most explainPositive, then
// its negative ones, most negative first, at most explainNegative. Zero
// effects are left out.
func explain(x []float64, m Model) []Contribution {
	eff := make([]float64, len(x))
	m.Effects(x, eff)
	return explainEffects(x, eff)
}

// diversify takes candidates best first (order) but lets no category hold
// more than maxShare of the k slots while other categories have candidates;
// the candidates it holds back fill what is left at the end of their group:
// order[:split] (not shown yet), then order[split:] (already shown). It
// returns the page and, when explain, why each held-back candidate was held.
func diversify(order []int, split int, category func(int) string, k int, maxShare float64, explain bool, sc *scratch) ([]int, map[int]string) {
	if maxShare <= 0 {
		maxShare = 0.4
	}
	limit := int(math.Ceil(maxShare * float64(k)))
	if limit < 1 {
		limit = 1
	}
	out := sc.page[:0]
	held := sc.held[:0]
	defer func() { sc.page, sc.held = out[:0], held[:0] }()
	var why map[int]string
	if explain {
		why = map[int]string{}
	}
	per := sc.per
	// The not yet shown first, then the shown (order[split:]), each group
	// followed by what the cap held back of it, so a streamer already
	// shown never comes before one that is not.
	for _, group := range [2][]int{order[:split], order[split:]} {
		from := len(held)
		for _, i := range group {
			if len(out) == k {
				break
			}
			cat := category(i)
			if cat != "" && per[cat] >= limit {
				if explain {
					why[i] = fmt.Sprintf("held back: category %q already has %d of %d", cat, per[cat], k)
				}
				held = append(held, i)
				continue
			}
			per[cat]++
			out = append(out, i)
		}
		for _, i := range held[from:] {
			if len(out) == k {
				break
			}
			out = append(out, i)
		}
	}
	return out, why
}

func errf(format string, args ...any) error { return lr.Errorf(lr.EINVALID, format, args...) }
