package embed

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
)

// Scorer scores items for a user; higher is better. Implementations are
// read-only after training and safe for concurrent use. out has len(items);
// a user or item the model has never seen gets a finite, low score.
type Scorer interface {
	ScoreItems(user int32, items []int32, out []float32)
}

// Metrics are the leave-one-out figures: hit ratio and NDCG at 1, 5 and 10,
// averaged over N cases.
type Metrics struct {
	HR1, HR5, HR10       float64
	NDCG1, NDCG5, NDCG10 float64
	N                    int
}

// MarshalJSON uses the names of the published tables: hr@10, ndcg@10, ...
func (m Metrics) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{
		"hr@1": round4(m.HR1), "hr@5": round4(m.HR5), "hr@10": round4(m.HR10),
		"ndcg@1": round4(m.NDCG1), "ndcg@5": round4(m.NDCG5), "ndcg@10": round4(m.NDCG10), "n": m.N,
	})
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// PessimisticRank returns the 0-based rank of a positive scored pos among
// negatives scored negs: the number of negatives scoring at least as high.
// Ties count against the positive, so a constant model ranks every positive
// last. A NaN positive ranks last; NaN negatives are ignored.
func PessimisticRank(pos float32, negs []float32) int {
	if pos != pos {
		return len(negs)
	}
	r := 0
	for _, s := range negs {
		if s >= pos {
			r++
		}
	}
	return r
}

// MetricsFromRanks averages HR@k and NDCG@k (k = 1, 5, 10) over 0-based ranks.
// NDCG of one case is 1/log2(rank+2) when rank < k, else 0.
func MetricsFromRanks(ranks []int) Metrics {
	var m Metrics
	m.N = len(ranks)
	if m.N == 0 {
		return m
	}
	for _, r := range ranks {
		g := 1 / math.Log2(float64(r)+2)
		if r < 1 {
			m.HR1++
			m.NDCG1 += g
		}
		if r < 5 {
			m.HR5++
			m.NDCG5 += g
		}
		if r < 10 {
			m.HR10++
			m.NDCG10 += g
		}
	}
	n := float64(m.N)
	m.HR1, m.HR5, m.HR10 = m.HR1/n, m.HR5/n, m.HR10/n
	m.NDCG1, m.NDCG5, m.NDCG10 = m.NDCG1/n, m.NDCG5/n, m.NDCG10/n
	return m
}

// Ranks scores every case with s (in parallel over all cores) and returns
// the pessimistic 0-based rank of each case's positive among its negatives,
// in the order of cases.
func Ranks(s Scorer, cases []TestCase) []int {
	ranks := make([]int, len(cases))
	parallelFor(len(cases), 64, func(lo, hi int) {
		var items []int32
		var scores []float32
		for i := lo; i < hi; i++ {
			tc := cases[i]
			items = append(items[:0], tc.Pos)
			items = append(items, tc.Negatives...)
			scores = slices.Grow(scores[:0], len(items))[:len(items)]
			s.ScoreItems(tc.User, items, scores)
			ranks[i] = PessimisticRank(scores[0], scores[1:])
		}
	})
	return ranks
}

// EvaluateLOO runs the leave-one-out protocol of the NCF paper: each case's
// positive is ranked among its negatives by s; ties are broken pessimistically.
func EvaluateLOO(s Scorer, cases []TestCase) Metrics {
	return MetricsFromRanks(Ranks(s, cases))
}

// parallelFor splits [0, n) into chunks of about chunk indices and runs fn on
// them from GOMAXPROCS goroutines. It returns when all chunks are done.
func parallelFor(n, chunk int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	chunk = max(chunk, 1)
	workers := min(runtime.GOMAXPROCS(0), (n+chunk-1)/chunk)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(chunk))) - chunk
				if lo >= n {
					return
				}
				fn(lo, min(lo+chunk, n))
			}
		}()
	}
	wg.Wait()
}

// ValidationSplit carves a leave-one-out validation set out of the training
// interactions only (never the test file): for each user with at least two
// distinct items it holds out one interaction chosen with seed (the latest
// one when the interactions carry distinct times), and samples nNeg negatives
// uniformly among items the user never interacted with in training. It
// returns a new Dataset whose Train lacks the held-out rows and whose Test is
// the validation cases.
func (d *Dataset) ValidationSplit(seed uint64, nNeg int) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	byUser := make([][]int, d.NUsers)
	for i, x := range d.Train {
		byUser[x.User] = append(byUser[x.User], i)
	}
	held := make([]bool, len(d.Train))
	var cases []TestCase
	for u, rows := range byUser {
		items := map[int32]bool{}
		for _, i := range rows {
			items[d.Train[i].Item] = true
		}
		if len(items) < 2 || len(items) >= d.NItems-nNeg {
			continue
		}
		pick := rows[rng.IntN(len(rows))]
		latest, distinct := rows[0], true
		for _, i := range rows[1:] {
			if d.Train[i].Time == d.Train[latest].Time {
				distinct = false
			}
			if d.Train[i].Time > d.Train[latest].Time {
				latest = i
			}
		}
		if distinct && len(rows) > 1 {
			pick = latest
		}
		pos := d.Train[pick].Item
		for _, i := range rows { // hold out every row of that item
			if d.Train[i].Item == pos {
				held[i] = true
			}
		}
		tc := TestCase{User: int32(u), Pos: pos, Negatives: make([]int32, 0, nNeg)}
		chosen := map[int32]bool{}
		for len(tc.Negatives) < nNeg {
			it := int32(rng.IntN(d.NItems))
			if items[it] || chosen[it] {
				continue
			}
			chosen[it] = true
			tc.Negatives = append(tc.Negatives, it)
		}
		cases = append(cases, tc)
	}
	train := make([]Interaction, 0, len(d.Train)-len(cases))
	for i, x := range d.Train {
		if !held[i] {
			train = append(train, x)
		}
	}
	return &Dataset{Name: d.Name + "-validation", NUsers: d.NUsers, NItems: d.NItems, Train: train, Test: cases}
}
