package index

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/liverecall/liverecall/internal/synth"
	"github.com/viterin/vek/vek32"
)

// The assembly kernel must compute exactly what the portable one does, for
// every dimension (padding), any number of blocks and extreme values.
func TestQDotKernelsAgree(t *testing.T) {
	if !hasVNNI {
		t.Log("no AVX-512 VNNI on this CPU: qdot is qdotGo, nothing to compare")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, dim := range []int{1, 2, 7, 8, 9, 16, 31, 64, 100, 128, 300} {
		for _, rows := range []int{1, 7, 8, 9, 64, 333} {
			m := newQMatrix(dim)
			for r := 0; r < rows; r++ {
				v := make([]float32, dim)
				for d := range v {
					switch rng.IntN(10) {
					case 0:
						v[d] = 0
					case 1:
						v[d] = float32(math.Copysign(1e30, rng.NormFloat64()))
					default:
						v[d] = float32(rng.NormFloat64())
					}
				}
				m.push(v)
			}
			q := make([]float32, dim)
			for d := range q {
				q[d] = float32(rng.NormFloat64() * 3)
			}
			q[rng.IntN(dim)] = -50 // an extreme query coordinate
			qp := make([]uint32, m.qdim/4)
			m.quantizeQuery(q, qp)
			nb := (rows + qBlock - 1) / qBlock
			want, wantMax := make([]float32, nb*qBlock), make([]float32, nb)
			got, gotMax := make([]float32, nb*qBlock), make([]float32, nb)
			qdotGo(m.data, m.scales, m.bias, nb, m.qdim/4, qp, want, wantMax)
			qdot(m.data, m.scales, m.bias, nb, m.qdim/4, qp, got, gotMax)
			for i := range want {
				if math.Float32bits(want[i]) != math.Float32bits(got[i]) {
					t.Fatalf("dim %d rows %d: row %d: kernel %v, portable %v", dim, rows, i, got[i], want[i])
				}
			}
			for b := range wantMax {
				if wantMax[b] != gotMax[b] || wantMax[b] != slices.Max(want[b*qBlock:(b+1)*qBlock]) {
					t.Fatalf("dim %d rows %d: block %d max: kernel %v, portable %v", dim, rows, b, gotMax[b], wantMax[b])
				}
			}
			// The portable kernel against the definition.
			for r := 0; r < rows; r++ {
				var sum int64
				for d := 0; d < dim; d++ {
					qd := int64(uint8(qp[d/4]>>(8*(d%4)))) - 128
					sum += int64(m.data[m.at(r, d)]) * qd
				}
				if w := float32(sum) * m.scales[r]; w != want[r] {
					t.Fatalf("dim %d row %d: portable kernel %v, definition %v", dim, r, want[r], w)
				}
			}
			for r := rows; r < nb*qBlock; r++ {
				if want[r] != 0 {
					t.Fatalf("dim %d rows %d: padding lane %d scored %v", dim, rows, r, want[r])
				}
			}
		}
	}
}

// After any sequence of adds and swap-removes, the 8-bit copy must be
// exactly the quantization of the float rows in their current order.
func TestQMatrixMirrorsLiveRows(t *testing.T) {
	const dim = 12
	rng := rand.New(rand.NewPCG(3, 4))
	m := newLiveMatrix(dim)
	check := func(step int) {
		t.Helper()
		fresh := newQMatrix(dim)
		for r := range m.ords {
			fresh.push(m.rows[r*dim : (r+1)*dim])
		}
		if m.q.n != len(m.ords) || !slices.Equal(m.q.data, fresh.data) || !slices.Equal(m.q.scales, fresh.scales) || !slices.Equal(m.q.bias, fresh.bias) {
			t.Fatalf("step %d: 8-bit copy (n %d, %d bytes) differs from the quantized rows (n %d, %d bytes)",
				step, m.q.n, len(m.q.data), fresh.n, len(fresh.data))
		}
	}
	for step := 0; step < 3000; step++ {
		ord := uint32(rng.IntN(200))
		if rng.IntN(3) > 0 {
			v := make([]float32, dim)
			for d := range v {
				v[d] = float32(rng.NormFloat64())
			}
			m.set(ord, v)
		} else {
			m.set(ord, nil)
		}
		if step%97 == 0 {
			check(step)
		}
	}
	check(-1)
	for _, o := range slices.Clone(m.ords) {
		m.set(o, nil)
	}
	check(-2)
	if len(m.q.data) != 0 {
		t.Fatalf("empty matrix keeps %d bytes", len(m.q.data))
	}
}

// The 8-bit scan with exact rescoring must return what the exact scan
// returns (recall, same exact scores), on embedding-like (low-rank) and
// uniform data, with and without a filter, for small and large k.
func TestQuantizedScanRecall(t *testing.T) {
	const n, nq, dim = 20_000, 150, 64
	for _, kind := range []string{"lowrank", "uniform", "clustered"} {
		s, err := synth.Generate(kind, n, nq, dim, 9)
		if err != nil {
			t.Fatal(err)
		}
		m := newLiveMatrix(dim)
		for i := 0; i < n; i++ {
			m.set(uint32(i*3), s.Base[i*dim:(i+1)*dim])
		}
		for _, filtered := range []bool{false, true} {
			var accept Allowed
			if filtered {
				accept = randomAllowed(3*n, 0.5, 5)
			}
			for _, k := range []int{1, 20, 40, 200} {
				found, total := 0, 0
				for i := 0; i < nq; i++ {
					q := s.Query(i)
					want := ExactScan(q, m.rows, dim, m.ords, k, accept)
					got := m.searchInt8(q, k, accept)
					if len(got) != len(want) {
						t.Fatalf("%s k=%d: %d hits, exact %d", kind, k, len(got), len(want))
					}
					in := map[uint32]bool{}
					for _, h := range want {
						in[h.Ord] = true
					}
					for j, h := range got {
						if in[h.Ord] {
							found++
						}
						if accept != nil && !accept.Contains(h.Ord) {
							t.Fatalf("%s: returned %d, which the filter refuses", kind, h.Ord)
						}
						r := int(h.Ord / 3)
						if e := vek32.Dot(q, s.Base[r*dim:(r+1)*dim]); e != h.Score {
							t.Fatalf("%s: hit %d score %v, exact dot %v", kind, j, h.Score, e)
						}
						if j > 0 && better(cand{h.Score, h.Ord}, cand{got[j-1].Score, got[j-1].Ord}) {
							t.Fatalf("%s: hits out of order at %d", kind, j)
						}
					}
					total += len(want)
				}
				recall := float64(found) / float64(total)
				t.Logf("%s filtered=%v k=%d: recall %.4f", kind, filtered, k, recall)
				if recall < 0.999 {
					t.Errorf("%s filtered=%v k=%d: recall %.4f of the exact scan, want ≥ 0.999", kind, filtered, k, recall)
				}
			}
		}
	}
}

func TestQuantizedScanEdges(t *testing.T) {
	m := newLiveMatrix(3)
	if got := m.searchInt8([]float32{1, 2, 3}, 5, nil); len(got) != 0 {
		t.Fatalf("empty matrix: %v", got)
	}
	m.set(1, []float32{0, 0, 0}) // a zero vector scores 0
	m.set(2, []float32{1, 0, 0})
	m.set(3, []float32{-1, 0, 0})
	got := m.searchInt8([]float32{1, 0, 0}, 10, nil)
	want := []Hit{{Ord: 2, Score: 1}, {Ord: 1, Score: 0}, {Ord: 3, Score: -1}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := m.searchInt8([]float32{0, 0, 0}, 2, nil); len(got) != 2 || got[0].Ord != 1 || got[1].Ord != 2 {
		t.Fatalf("zero query: ties must go to the lower ordinal, got %v", got)
	}
}

// The planner uses the 8-bit scan for large live matrices and reports it;
// SearchPrecise never does.
func BenchmarkLiveScan(b *testing.B) {
	const n, dim, k = 20_000, 64, 40
	s, m := lowrankLive(b, n, 100, dim, 1)
	b.Run("exact", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m.searchExact(s.Query(i%100), k, nil)
		}
	})
	b.Run("int8", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			m.searchInt8(s.Query(i%100), k, nil)
		}
	})
}

func TestKthLargest(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for c, n := range []int{1, 2, 7, 100, 1250, 1250, 1250, 1250} {
		xs := make([]float32, n)
		for i := range xs {
			switch c {
			case 5: // rising
				xs[i] = float32(i)
			case 6: // falling
				xs[i] = -float32(i)
			case 7: // all equal
				xs[i] = 3
			default:
				xs[i] = float32(rng.IntN(50)) - 25 // ties on purpose
			}
		}
		sorted := slices.Clone(xs)
		slices.Sort(sorted)
		buf := make([]float32, n)
		for _, kth := range []int{1, 2, n / 2, n - 1, n} {
			if kth < 1 || kth > n {
				continue
			}
			before := slices.Clone(xs)
			if got, want := kthLargest(xs, kth, buf), sorted[n-kth]; got != want {
				t.Errorf("n %d kth %d: %v, want %v", n, kth, got, want)
			}
			if !slices.Equal(xs, before) {
				t.Fatalf("kthLargest changed its input")
			}
		}
	}
}

// Concurrent searches of one live matrix share nothing they write (the race
// detector watches), and each gets what it would get alone.
func TestLiveScanConcurrent(t *testing.T) {
	const n, dim, k = 3000, 32, 20
	s, m := lowrankLive(t, n, 8, dim, 3)
	want := make([][]Hit, 8)
	for i := range want {
		want[i] = m.searchInt8(s.Query(i), k, nil)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for r := 0; r < 20; r++ {
				i := (g + r) % len(want)
				if got := m.searchInt8(s.Query(i), k, nil); !slices.Equal(got, want[i]) {
					t.Errorf("query %d concurrently: %v, alone: %v", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

// lowrankLive is a live matrix holding n low-rank synthetic vectors (row i
// as ordinal i) and the set they came from, with nq queries.
func lowrankLive(tb testing.TB, n, nq, dim int, seed uint64) (*synth.Set, *liveMatrix) {
	tb.Helper()
	s, err := synth.Generate("lowrank", n, nq, dim, seed)
	if err != nil {
		tb.Fatal(err)
	}
	m := newLiveMatrix(dim)
	for i := 0; i < n; i++ {
		m.set(uint32(i), s.Base[i*dim:(i+1)*dim])
	}
	return s, m
}
