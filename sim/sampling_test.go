package sim

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The Fenwick trees agree with a linear scan after arbitrary updates, and
// find never returns a member of weight zero.
func TestFenwickMatchesLinearScan(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int32{1, 7, 64, 100}
	f := newFenwick(sizes)
	w := make([][]int64, len(sizes))
	for g, n := range sizes {
		w[g] = make([]int64, n)
	}
	for step := 0; step < 5000; step++ {
		g := r.IntN(len(sizes))
		i := r.Int32N(sizes[g])
		if w[g][i] > 0 && r.IntN(2) == 0 {
			f.add(g, i, -w[g][i])
			w[g][i] = 0
		} else {
			d := 1 + r.Int64N(1000)
			f.add(g, i, d)
			w[g][i] += d
		}
		var sum int64
		for _, x := range w[g] {
			sum += x
		}
		if f.total(g) != sum {
			t.Fatalf("step %d: total %d, want %d", step, f.total(g), sum)
		}
		if sum == 0 {
			continue
		}
		x := r.Int64N(sum)
		got := f.find(g, x)
		var want int32
		for acc := int64(0); ; want++ {
			acc += w[g][want]
			if x < acc {
				break
			}
		}
		if got != want || w[g][got] == 0 {
			t.Fatalf("step %d: find(%d) = %d, want %d", step, x, got, want)
		}
	}
}

func TestAliasAndPoissonDistributions(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	weights := []float64{1, 0, 5, 2, 12}
	a := newAlias(weights)
	counts := make([]float64, len(weights))
	const n = 200000
	for i := 0; i < n; i++ {
		counts[a.sample(r)]++
	}
	for i, wt := range weights {
		if want := wt / 20 * n; math.Abs(counts[i]-want) > 0.02*n {
			t.Errorf("member %d drawn %.0f times, want about %.0f", i, counts[i], want)
		}
	}
	for _, lambda := range []float64{0.3, 4, 80, 5000} {
		var sum float64
		for i := 0; i < 20000; i++ {
			sum += float64(poisson(r, lambda))
		}
		if mean := sum / 20000; math.Abs(mean-lambda) > 0.05*lambda+0.02 {
			t.Errorf("poisson(%v) mean %.3f", lambda, mean)
		}
	}
}
