package sim

import (
	"math"
	"math/rand/v2"
)

// fenwick is a set of Fenwick (binary indexed) trees over integer weights,
// one per group, stored back to back in one slice: group g owns
// tree[off[g]:off[g+1]] (1-based inside the group). Integer weights keep
// sums exact, so a group whose members all left sums to exactly zero and
// sampling never returns a member of weight zero.
type fenwick struct {
	tree []int64
	off  []int32 // len groups+1
}

func newFenwick(sizes []int32) *fenwick {
	f := &fenwick{off: make([]int32, len(sizes)+1)}
	for g, n := range sizes {
		f.off[g+1] = f.off[g] + n
	}
	f.tree = make([]int64, f.off[len(sizes)])
	return f
}

// add adds d to member i (0-based) of group g.
func (f *fenwick) add(g int, i int32, d int64) {
	t := f.tree[f.off[g]:f.off[g+1]]
	for j := i + 1; j <= int32(len(t)); j += j & -j {
		t[j-1] += d
	}
}

// total is the sum of group g's weights.
func (f *fenwick) total(g int) int64 {
	t := f.tree[f.off[g]:f.off[g+1]]
	var s int64
	for j := int32(len(t)); j > 0; j -= j & -j {
		s += t[j-1]
	}
	return s
}

// find returns the member of group g at which the running sum of weights
// first exceeds r (0 <= r < total(g)).
func (f *fenwick) find(g int, r int64) int32 {
	t := f.tree[f.off[g]:f.off[g+1]]
	n := int32(len(t))
	var pos int32
	step := int32(1)
	for step*2 <= n {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if next := pos + step; next <= n && t[next-1] <= r {
			pos = next
			r -= t[next-1]
		}
	}
	return pos // 0-based index of the member
}

// alias is Walker's alias table for O(1) sampling from a fixed discrete
// distribution.
type alias struct {
	prob  []float32
	alias []int32
}

func newAlias(w []float64) alias {
	n := len(w)
	a := alias{prob: make([]float32, n), alias: make([]int32, n)}
	if n == 0 {
		return a
	}
	var sum float64
	for _, x := range w {
		sum += x
	}
	scaled := make([]float64, n)
	small := make([]int32, 0, n)
	large := make([]int32, 0, n)
	for i, x := range w {
		scaled[i] = x * float64(n) / sum
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		a.prob[s], a.alias[s] = float32(scaled[s]), l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	for _, i := range large {
		a.prob[i], a.alias[i] = 1, i
	}
	for _, i := range small {
		a.prob[i], a.alias[i] = 1, i
	}
	return a
}

func (a alias) sample(r *rand.Rand) int32 {
	i := r.Int32N(int32(len(a.prob)))
	if r.Float32() < a.prob[i] {
		return i
	}
	return a.alias[i]
}

// poisson draws from Poisson(lambda): inversion for small lambda, a rounded
// normal approximation above 500.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 500 {
		n := math.Round(lambda + math.Sqrt(lambda)*r.NormFloat64())
		if n < 0 {
			return 0
		}
		return int(n)
	}
	l := math.Exp(-lambda)
	k, p := 0, r.Float64()
	for p > l {
		k++
		p *= r.Float64()
	}
	return k
}

// gamma draws from Gamma(shape, 1) (Marsaglia and Tsang; shape < 1 boosted).
func gamma(r *rand.Rand, shape float64) float64 {
	if shape < 1 {
		return gamma(r, shape+1) * math.Pow(r.Float64(), 1/shape)
	}
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if u < 1-0.0331*x*x*x*x || math.Log(u) < 0.5*x*x+d*(1-v+math.Log(v)) {
			return d * v
		}
	}
}

func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}
