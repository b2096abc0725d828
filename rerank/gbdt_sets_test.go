package rerank

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randomTree splits random leaves until the tree has nleaves leaves; its
// thresholds are drawn from thr, so that many splits share a threshold.
func randomTree(rng *rand.Rand, nleaves, nf int, thr []float64) Tree {
	var t Tree
	leaf := func() int32 {
		t.Feature = append(t.Feature, -1)
		t.Threshold = append(t.Threshold, 0)
		t.DefaultLeft = append(t.DefaultLeft, false)
		t.Left, t.Right = append(t.Left, -1), append(t.Right, -1)
		t.Value = append(t.Value, rng.NormFloat64())
		t.Cover = append(t.Cover, 1)
		return int32(len(t.Feature) - 1)
	}
	leaves := []int32{leaf()}
	for len(leaves) < nleaves {
		k := rng.IntN(len(leaves))
		i := leaves[k]
		l, r := leaf(), leaf()
		t.Feature[i], t.Threshold[i], t.DefaultLeft[i] = int32(rng.IntN(nf)), thr[rng.IntN(len(thr))], rng.IntN(2) == 0
		t.Left[i], t.Right[i] = l, r
		leaves[k] = l
		leaves = append(leaves, r)
	}
	return t
}

// TestSetWalkEqualsWalk: on random forests (trees of 1 to 300 leaves,
// heads of one to hundreds of trees, thresholds shared between nodes) and
// random vectors (values exactly on thresholds, just beside them, between
// and beyond them, ±Inf, NaN; pages of 50 and of 300, i.e. several chunks
// of 128), the page's scores by the set walk equal, bit for bit, Score's
// walk of each vector (Tree semantics: x < threshold left, NaN by
// DefaultLeft), and so do the batch walk's.
func TestSetWalkEqualsWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	nf := NumFeatures
	for round := 0; round < 40; round++ {
		thr := make([]float64, 1+rng.IntN(12))
		for i := range thr {
			thr[i] = math.Round(rng.NormFloat64()*4) / 2
		}
		thr = append(thr, math.Copysign(0, -1), 0)
		objs := []Objective{ObjWatched, ObjWatchSeconds, ObjGift, ObjFollow}
		m := TreeModel{Version: "rand", Algo: AlgoGBDT, Features: FeatureNames[:nf], Weights: map[Objective]float64{}}
		for hi, o := range objs[:1+rng.IntN(len(objs))] {
			h := Head{Objective: o, Loss: LossLogistic, Base: rng.NormFloat64()}
			if hi == 1 {
				h.Loss, h.Scale = LossSquared, 300
			}
			ntrees := rng.IntN(30)
			if round%5 == 0 {
				ntrees = 300 + rng.IntN(300)
			}
			for k := ntrees; k >= 0; k-- {
				n := 1 + rng.IntN(40)
				switch rng.IntN(40) {
				case 0, 1, 2, 3:
					n = 60 + rng.IntN(20)
				case 4:
					n = 256 + rng.IntN(44)
				}
				h.Trees = append(h.Trees, randomTree(rng, n, 1+rng.IntN(nf), thr))
			}
			m.Heads = append(m.Heads, h)
			m.Weights[o] = rng.Float64()
		}
		f, err := Compile(m)
		if err != nil {
			t.Fatal(err)
		}
		n := 50
		if round%3 == 1 {
			n = 300 // chunks of 128 and a partial one
		}
		xs := make([]float64, n*nf)
		for i := range xs {
			switch rng.IntN(8) {
			case 0, 1, 2:
				xs[i] = thr[rng.IntN(len(thr))]
			case 3:
				xs[i] = math.NaN()
			case 4:
				xs[i] = math.Inf(1 - 2*rng.IntN(2))
			case 5:
				xs[i] = math.Nextafter(thr[rng.IntN(len(thr))], math.Inf(1-2*rng.IntN(2)))
			default:
				xs[i] = rng.NormFloat64() * 3
			}
		}
		// Half the rounds: no NaN nor Inf, so the batch walk applies.
		finite := round%2 == 0
		if finite {
			for i, v := range xs {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					xs[i] = thr[i%len(thr)]
				}
			}
		}
		sets := make([]float64, n)
		f.scoreSets(xs, nf, n, sets, &setScratch{})
		walk := make([]float64, n)
		f.scoreBatch(xs, nf, n, walk, make([]float64, n), make([]int32, n))
		for c := 0; c < n; c++ {
			want := f.Score(xs[c*nf : (c+1)*nf])
			if sets[c] != want || walk[c] != want {
				t.Fatalf("round %d candidate %d: set walk %v, batch walk %v, walk %v", round, c, sets[c], walk[c], want)
			}
		}
	}
}
