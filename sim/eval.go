package sim

import (
	"math"

	lr "github.com/liverecall/liverecall"
)

// Quality is availability-aware top-K accuracy over viewing decisions: at
// each decision the candidates are the streamers live at that moment, and a
// hit is the streamer the user actually chose appearing in the top K.
type Quality struct {
	K        int
	Choices  int     // decisions evaluated
	HR       float64 // hit rate at K: share of decisions whose choice was in the top K
	NDCG     float64 // mean NDCG at K with one relevant item: 1/log2(rank+2) on a hit
	MeanLive float64 // mean number of live candidates per decision
	// NotLive counts recommended streamers that were not live at the
	// decision; they can never be hits (a recommender should not return them).
	NotLive int
}

// Evaluator accumulates Quality, one decision at a time. Not safe for
// concurrent use.
type Evaluator struct {
	k       int
	n       int
	hits    int
	ndcg    float64
	live    int
	notLive int
}

// NewEvaluator returns an evaluator of the top k (k >= 1).
func NewEvaluator(k int) *Evaluator {
	return &Evaluator{k: max(k, 1)}
}

// Add scores one decision: c is the ground truth (from Run's choice
// callback, during which c.Live is valid) and ranked the recommender's
// list, best first; only its first K entries count.
func (e *Evaluator) Add(c Choice, ranked []lr.StreamerID) {
	e.n++
	e.live += c.LiveCount
	if len(ranked) > e.k {
		ranked = ranked[:e.k]
	}
	hit := false
	for i, s := range ranked {
		if c.IsLive != nil && !c.IsLive(s) {
			e.notLive++
			continue
		}
		if s == c.Streamer && !hit {
			hit = true
			e.hits++
			e.ndcg += 1 / math.Log2(float64(i)+2)
		}
	}
}

// Result returns the quality so far.
func (e *Evaluator) Result() Quality {
	q := Quality{K: e.k, Choices: e.n, NotLive: e.notLive}
	if e.n > 0 {
		q.HR = float64(e.hits) / float64(e.n)
		q.NDCG = e.ndcg / float64(e.n)
		q.MeanLive = float64(e.live) / float64(e.n)
	}
	return q
}
