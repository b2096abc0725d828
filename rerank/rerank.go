package rerank

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
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
}

// NumFeatures is len(FeatureNames).
var NumFeatures = len(FeatureNames)

// Weights is a logistic model over the features: score = sigmoid(Bias + W·x).
type Weights struct {
	Version string    `json:"version"`
	Bias    float64   `json:"bias"`
	W       []float64 `json:"w"`
}

// DefaultWeights work without any training: the models' scores and repeat
// viewing dominate, popularity and momentum break ties, follows help.
func DefaultWeights() Weights {
	w := map[string]float64{
		"mf_score": 2.0, "ncf_score": 1.0, "has_mf": 0, "has_ncf": 0,
		"log_viewers": 0.25, "viewer_growth": 0.3, "log_gifts_5m": 0.1, "log_gift_value_5m": 0.05, "log_unique_gifters_30m": 0.1,
		"log_stream_age_min": -0.05, "repeat_watches": 1.5, "followed": 1.0,
		"via_mf": 0.2, "via_ncf": 0.1, "via_session": 0.3, "via_follow": 0.2, "via_trending": 0.1, "via_fresh": 0.05,
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
	for i, x := range append([]float64{w.Bias}, w.W...) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return lr.Errorf(lr.EINVALID, "rerank weights %q: weight %d is %v", w.Version, i-1, x)
		}
	}
	return nil
}

// ParseWeights decodes stored weights and validates them.
func ParseWeights(b []byte) (Weights, error) {
	var w Weights
	if err := json.Unmarshal(b, &w); err != nil {
		return w, lr.Errorf(lr.EINVALID, "rerank weights: %v", err)
	}
	return w, w.Validate()
}

// NCFScorer scores a (user, streamer) pair with the full NeuMF model; ok is
// false when the model does not know one of them.
type NCFScorer interface {
	Score(u lr.UserID, s lr.StreamerID) (float32, bool)
}

// NCFBatchScorer is an NCFScorer that can also score all of a request's
// candidates in one call (the NeuMF user side computed once); Rank uses it
// when the scorer has it. out[i] is -MaxFloat32 for a streamer the model does
// not know; false means the user is unknown (out is then not written).
type NCFBatchScorer interface {
	NCFScorer
	ScoreMany(u lr.UserID, ids []lr.StreamerID, out []float32) bool
}

// Context is what features need beyond the candidate itself.
type Context struct {
	User     lr.UserID
	History  []live.Watch
	Follows  []lr.StreamerID
	NCF      NCFScorer // may be nil: the GMF dot product from recall is used
	Now      time.Time
	Explain  bool
	MaxShare float64 // the largest share of one category in the page; default 0.4
}

// Item is a reranked candidate.
type Item struct {
	recall.Candidate
	Score  float64
	Vector []float64         // the feature vector (logged with impressions)
	Why    []Contribution    // the largest contributions, when Context.Explain
	Extra  map[string]string // notes, e.g. "diversity: moved down"
}

// Contribution is one feature's part in a score.
type Contribution struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"`
	Effect  float64 `json:"effect"` // weight × value
}

// Features computes the feature vector of c.
func Features(c recall.Candidate, ctx *Context, repeats map[lr.StreamerID]int, follows map[lr.StreamerID]bool) []float64 {
	x := make([]float64, NumFeatures)
	f := c.Features
	if c.HasMF {
		x[0], x[1] = float64(c.MFScore), 1
	}
	ncf, hasNCF := float64(c.NCFScore), c.HasNCF
	if ctx.NCF != nil {
		if s, ok := ctx.NCF.Score(ctx.User, c.StreamerID); ok {
			ncf, hasNCF = float64(s), true
		}
	}
	if hasNCF {
		x[2], x[3] = ncf, 1
	}
	x[4] = math.Log1p(float64(f.Viewers))
	x[5] = math.Log1p(float64(f.Viewers)) - math.Log1p(float64(f.Viewers5mAgo))
	x[6] = math.Log1p(float64(f.Gifts5m))
	x[7] = math.Log1p(f.GiftValue5m)
	x[8] = math.Log1p(float64(f.UniqueGifters30m))
	x[9] = math.Log1p(f.Age.Minutes())
	x[10] = math.Log1p(float64(repeats[c.StreamerID]))
	if follows[c.StreamerID] {
		x[11] = 1
	}
	for _, ch := range c.Channels {
		if i := slices.Index(recall.Channels, ch); i >= 0 {
			x[12+i] = 1
		}
	}
	return x
}

// Rank scores every candidate with w, orders them best first, applies the
// diversity step and returns the first k. It never fails on odd input: a
// non-finite score ranks last.
func Rank(cands []recall.Candidate, w Weights, ctx *Context, k int) []Item {
	repeats := map[lr.StreamerID]int{}
	for _, h := range ctx.History {
		repeats[h.StreamerID]++
	}
	follows := map[lr.StreamerID]bool{}
	for _, id := range ctx.Follows {
		follows[id] = true
	}
	// Score first, then order a permutation (stable: equal scores keep the
	// recall order) and build the items once, in order: sorting the items
	// themselves moved whole candidates around.
	// With a batch scorer, the full NeuMF scores of every candidate at
	// once, passed to Features as the candidates' NCF scores.
	if b, ok := ctx.NCF.(NCFBatchScorer); ok && len(cands) > 0 {
		ids := make([]lr.StreamerID, len(cands))
		for i, c := range cands {
			ids[i] = c.StreamerID
		}
		out := make([]float32, len(cands))
		if b.ScoreMany(ctx.User, ids, out) {
			cands = slices.Clone(cands)
			for i, s := range out {
				if s != -math.MaxFloat32 {
					cands[i].NCFScore, cands[i].HasNCF = s, true
				}
			}
		}
		plain := *ctx
		plain.NCF = nil
		ctx = &plain
	}
	scores := make([]float64, len(cands))
	vecs := make([][]float64, len(cands))
	order := make([]int, len(cands))
	for i, c := range cands {
		x := Features(c, ctx, repeats, follows)
		z := w.Bias
		for j := range x {
			z += w.W[j] * x[j]
		}
		s := 1 / (1 + math.Exp(-z))
		if math.IsNaN(s) {
			s = -1
		}
		scores[i], vecs[i], order[i] = s, x, i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(scores[b], scores[a]); c != 0 {
			return c
		}
		return a - b
	})
	items := make([]Item, len(cands))
	for j, i := range order {
		items[j] = Item{Candidate: cands[i], Score: scores[i], Vector: vecs[i]}
		if ctx.Explain {
			items[j].Why = explain(vecs[i], w)
		}
	}
	return diversify(items, k, ctx.MaxShare, ctx.Explain)
}

func explain(x []float64, w Weights) []Contribution {
	var cs []Contribution
	for j := range x {
		if e := w.W[j] * x[j]; e != 0 {
			cs = append(cs, Contribution{Feature: FeatureNames[j], Value: x[j], Effect: e})
		}
	}
	sort.Slice(cs, func(a, b int) bool { return math.Abs(cs[a].Effect) > math.Abs(cs[b].Effect) })
	if len(cs) > 4 {
		cs = cs[:4]
	}
	return cs
}

// diversify takes items best first but lets no category hold more than
// maxShare of the k slots while other categories have candidates; the
// items it holds back fill what is left at the end.
func diversify(items []Item, k int, maxShare float64, explain bool) []Item {
	if maxShare <= 0 {
		maxShare = 0.4
	}
	limit := int(math.Ceil(maxShare * float64(k)))
	if limit < 1 {
		limit = 1
	}
	out := make([]Item, 0, min(k, len(items)))
	var held []Item
	per := map[string]int{}
	for _, it := range items {
		if len(out) == k {
			break
		}
		cat := it.Candidate.Features.Category
		if cat != "" && per[cat] >= limit {
			if explain {
				it.Extra = map[string]string{"diversity": fmt.Sprintf("held back: category %q already has %d of %d", cat, per[cat], k)}
			}
			held = append(held, it)
			continue
		}
		per[cat]++
		out = append(out, it)
	}
	for _, it := range held {
		if len(out) == k {
			break
		}
		out = append(out, it)
	}
	return out
}

func errf(format string, args ...any) error { return lr.Errorf(lr.EINVALID, format, args...) }
