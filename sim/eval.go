package sim

import (
	"math"

	lr "github.com/liverecall/liverecall"
)

// Quality is availability-aware top-K accuracy over viewing decisions: at
// each decision the candidates are the streamers live at that moment, and a
// hit is the streamer the user actually chose appearing in the top K.
type Quality struct {
	K       int
	Choices int     // decisions evaluated
	HR      float64 // hit rate at K: share of decisions whose choice was in the top K
	Hits    int     // decisions whose choice was in the top K
	NDCG    float64 // mean NDCG at K with one relevant item: 1/log2(rank+2) on a hit
	// NDCGStdErr is the standard error of NDCG (the sample standard
	// deviation of the decisions' NDCG over sqrt(Choices); 0 under two
	// decisions).
	NDCGStdErr float64
	MeanLive   float64 // mean number of live candidates per decision
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
	ndcg2   float64 // sum of squares, for the standard error
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
			g := 1 / math.Log2(float64(i)+2)
			e.ndcg += g
			e.ndcg2 += g * g
		}
	}
}

// Result returns the quality so far.
func (e *Evaluator) Result() Quality {
	q := Quality{K: e.k, Choices: e.n, Hits: e.hits, NotLive: e.notLive}
	if e.n > 0 {
		n := float64(e.n)
		q.HR = float64(e.hits) / n
		q.NDCG = e.ndcg / n
		q.MeanLive = float64(e.live) / n
	}
	if e.n > 1 {
		n := float64(e.n)
		variance := max(0, (e.ndcg2-n*q.NDCG*q.NDCG)/(n-1))
		q.NDCGStdErr = math.Sqrt(variance / n)
	}
	return q
}

// HRInterval is the 95% Wilson score interval of the hit rate (Hits of
// Choices), which, unlike the normal approximation, stays inside [0, 1]
// and holds for few decisions or rates near 0 or 1. It is [0, 1] with no
// decisions.
func (q Quality) HRInterval() (lo, hi float64) {
	return Wilson(q.Hits, q.Choices, 1.959963984540054)
}

// NDCGInterval is the 95% normal-approximation interval of the mean NDCG
// (NDCG ± 1.96 NDCGStdErr), clipped to [0, 1].
func (q Quality) NDCGInterval() (lo, hi float64) {
	d := 1.959963984540054 * q.NDCGStdErr
	return max(0, q.NDCG-d), min(1, q.NDCG+d)
}

// Wilson returns the Wilson score interval of a proportion of k successes
// in n trials at z standard deviations (1.96 for 95%): the interval of the
// proportions p for which |k/n - p| <= z sqrt(p(1-p)/n). It is [0, 1] when
// n <= 0.
func Wilson(k, n int, z float64) (lo, hi float64) {
	if n <= 0 {
		return 0, 1
	}
	nf, p := float64(n), float64(k)/float64(n)
	z2 := z * z
	center := (p + z2/(2*nf)) / (1 + z2/nf)
	half := z / (1 + z2/nf) * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return max(0, center-half), min(1, center+half)
}
