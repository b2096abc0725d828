package index

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/viterin/vek/vek32"

	"github.com/liverecall/liverecall/internal/synth"
)

// dotRows (the assembly kernel where it runs) agrees with vek32.Dot for
// every row, at dims it takes (multiples of 16) and dims it leaves to
// vek32, with strides longer than the dim, any row order and repeats.
func TestDotRowsMatchesDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ dim, stride int }{{16, 16}, {32, 33}, {64, 64}, {64, 65}, {128, 128}, {8, 8}, {65, 65}, {100, 101}} {
		const n = 300
		vecs := make([]float32, n*c.stride)
		for i := range vecs {
			vecs[i] = float32(r.NormFloat64())
		}
		q := make([]float32, c.dim)
		for i := range q {
			q[i] = float32(r.NormFloat64())
		}
		for _, cnt := range []int{0, 1, 3, 4, 5, 32, 200} {
			ids := make([]uint32, cnt)
			for i := range ids {
				ids[i] = uint32(r.IntN(n))
			}
			ids = append(ids, n-1) // the last row: no read past the end
			out := make([]float32, len(ids))
			dotRows(q, vecs, c.stride, ids, out, nil)
			for i, id := range ids {
				o := int(id) * c.stride
				want := vek32.Dot(q, vecs[o:o+c.dim])
				if math.Abs(float64(out[i]-want)) > 1e-4*math.Max(1, math.Abs(float64(want))) {
					t.Fatalf("dim %d stride %d: row %d: %v, want %v", c.dim, c.stride, id, out[i], want)
				}
			}
		}
	}
}

func BenchmarkDotRows(b *testing.B) {
	const dim, n = 64, 1 << 20
	r := rand.New(rand.NewPCG(3, 4))
	vecs := make([]float32, n*dim)
	for i := range vecs {
		vecs[i] = float32(r.NormFloat64())
	}
	q := vecs[:dim]
	ids := make([]uint32, 32)
	out := make([]float32, 32)
	for b.Loop() {
		for i := range ids {
			ids[i] = uint32(r.IntN(n))
		}
		dotRows(q, vecs, dim, ids, out, &ids[0])
	}
}

// BenchmarkSearchLowRank is one unfiltered search at ef 64 on 100k
// low-rank 64-d vectors (for pprof: go test -bench SearchLowRank
// -cpuprofile ...); the graph is built once.
func BenchmarkSearchLowRank(b *testing.B) {
	s, g := buildSet(b, "lowrank", 100_000, 64)
	i := 0
	for b.Loop() {
		g.Search(s.Query(i%200), 10, 64, nil)
		i++
	}
}

// BenchmarkBuild builds a graph on 100k iid and low-rank 64-d vectors
// (for pprof: go test -run X -bench Build -benchtime 1x -cpuprofile ...).
func BenchmarkBuild(b *testing.B) {
	for _, kind := range []string{"uniform", "lowrank"} {
		b.Run(kind, func(b *testing.B) {
			s, err := synth.Generate(kind, 100_000, 1, 64, 42)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := Build(context.Background(), s.Base, 64, nil, Params{Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
