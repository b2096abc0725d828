// Package synth generates the synthetic vector sets that the index tests and
// benchmark share: uniform, clustered and low-rank ("embedding-like").
package synth

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Kinds lists the generators by name.
var Kinds = []string{"uniform", "clustered", "lowrank"}

// Set is a generated data set: n base vectors and nq queries, row-major.
type Set struct {
	Kind    string
	N, Dim  int
	Base    []float32
	Queries []float32
}

// Query returns query i.
func (s *Set) Query(i int) []float32 { return s.Queries[i*s.Dim : (i+1)*s.Dim] }

// Generate builds a set deterministically from seed.
//   - uniform: components uniform in [-1, 1).
//   - clustered: 64 Gaussian clusters (σ 0.15) around uniform centres.
//   - lowrank: rank-8 factors times a fixed 8×dim basis plus 5% noise, with
//     log-normal norms, the way MF/NCF item and user vectors look: a few
//     dominant directions and popularity in the norm. Queries come from the
//     same model ("user" vectors).
func Generate(kind string, n, nq, dim int, seed uint64) (*Set, error) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	s := &Set{Kind: kind, N: n, Dim: dim}
	switch kind {
	case "uniform":
		gen := func(v []float32) {
			for i := range v {
				v[i] = float32(r.Float64()*2 - 1)
			}
		}
		s.Base, s.Queries = fill(n, dim, gen), fill(nq, dim, gen)
	case "clustered":
		const k = 64
		centres := make([]float32, k*dim)
		for i := range centres {
			centres[i] = float32(r.Float64()*2 - 1)
		}
		gen := func(v []float32) {
			c := centres[r.IntN(k)*dim:]
			for i := range v {
				v[i] = c[i] + float32(r.NormFloat64()*0.15)
			}
		}
		s.Base, s.Queries = fill(n, dim, gen), fill(nq, dim, gen)
	case "lowrank":
		const rank = 8
		basis := make([]float64, rank*dim)
		for i := range basis {
			basis[i] = r.NormFloat64() / math.Sqrt(rank)
		}
		gen := func(v []float32) {
			var f [rank]float64
			for j := range f {
				f[j] = r.NormFloat64()
			}
			scale := math.Exp(r.NormFloat64() * 0.3)
			for i := range v {
				x := 0.0
				for j := range rank {
					x += f[j] * basis[j*dim+i]
				}
				v[i] = float32(scale * (x + 0.05*r.NormFloat64()))
			}
		}
		s.Base, s.Queries = fill(n, dim, gen), fill(nq, dim, gen)
	default:
		return nil, fmt.Errorf("synth: unknown kind %q", kind)
	}
	return s, nil
}

func fill(n, dim int, gen func([]float32)) []float32 {
	out := make([]float32, n*dim)
	for i := range n {
		gen(out[i*dim : (i+1)*dim])
	}
	return out
}
