package index

import (
	"context"
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/synth"
)

// newTestIndex builds an Index over a synthetic set with streamer ids
// 1000+i and ordinals 3i (sparse, to catch node/ordinal mix-ups).
func newTestIndex(t testing.TB, n, dim, threshold int) (*Index, *synth.Set) {
	t.Helper()
	s, err := synth.Generate("lowrank", n, 50, dim, 3)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, n)
	ords := make([]uint32, n)
	for i := range n {
		ids[i], ords[i] = int64(1000+i), uint32(3*i)
	}
	mv := lr.ModelVersion{ID: 1, Kind: lr.ModelMF, Version: "t1", Dim: dim}
	x, err := New(context.Background(), mv, ids, ords, s.Base, nil, nil, Params{Seed: 1}, threshold)
	if err != nil {
		t.Fatal(err)
	}
	return x, s
}

// brute is exact search over the set's vectors with the 3i ordinals.
func brute(s *synth.Set, q []float32, k int, allowed Allowed) []Hit {
	labels := make([]uint32, s.N)
	for i := range labels {
		labels[i] = uint32(3 * i)
	}
	return ExactScan(q, s.Base, s.Dim, labels, k, allowed)
}

func TestPlannerEqualsBruteForce(t *testing.T) {
	const n, dim, k = 4000, 32, 10
	x, s := newTestIndex(t, n, dim, 500)
	for _, tc := range []struct {
		name string
		frac float64
		want Strategy
	}{
		{"1% live, exact", 0.01, StrategyExact},
		{"5% live, exact", 0.05, StrategyExact},
		{"20% live, hnsw", 0.2, StrategyHNSW},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := randomAllowed(n, tc.frac, 11)
			allowed := &bitset{bits: make([]bool, 3*n)}
			for i := range n {
				live := raw.bits[i]
				x.SetLive(uint32(3*i), live)
				if live {
					allowed.bits[3*i] = true
					allowed.n++
				}
			}
			if got := x.LiveLen(); got != int(allowed.n) {
				t.Fatalf("live matrix has %d rows, want %d", got, allowed.n)
			}
			sum := 0.0
			for i := range 50 {
				q := s.Query(i)
				got, st, err := x.Search(context.Background(), q, k, 0, allowed)
				if err != nil {
					t.Fatal(err)
				}
				if st != tc.want {
					t.Fatalf("strategy %s, want %s", st, tc.want)
				}
				want := brute(s, q, k, allowed)
				if st == StrategyExact && !slices.Equal(got, want) {
					t.Fatalf("query %d: exact %v, brute force %v", i, got, want)
				}
				sum += recallAt(got, want)
			}
			if r := sum / 50; r < 0.95 {
				t.Errorf("recall@10 %.3f, want ≥ 0.95", r)
			}
		})
	}
}

func TestLiveMatrixUpdates(t *testing.T) {
	x, s := newTestIndex(t, 200, 8, 1000)
	q := s.Query(0)
	all := &bitset{bits: make([]bool, 600)}
	for i := range 200 {
		all.bits[3*i] = true
	}
	all.n = 200
	for i := range 200 {
		x.SetLive(uint32(3*i), true)
	}
	x.SetLive(1, true) // no vector for ordinal 1: ignored
	x.SetLive(9999, true)
	if x.LiveLen() != 200 {
		t.Fatalf("live rows %d, want 200", x.LiveLen())
	}
	best := brute(s, q, 1, nil)[0].Ord
	x.SetLive(best, false)
	x.SetLive(best, false) // twice: no-op
	all.bits[best] = false
	all.n--
	got, _, _ := x.Search(context.Background(), q, 5, 0, all)
	if want := brute(s, q, 5, all); !slices.Equal(got, want) {
		t.Fatalf("after removal: %v, want %v", got, want)
	}
	x.SetLive(best, true)
	all.bits[best] = true
	all.n++
	got, _, _ = x.Search(context.Background(), q, 5, 0, all)
	if got[0].Ord != best {
		t.Fatalf("after re-adding %d: best is %d", best, got[0].Ord)
	}
	if _, _, err := x.Search(context.Background(), q[:3], 5, 0, nil); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("wrong-dimension query: %v", err)
	}
	if v, ok := x.StreamerVector(3 * 7); !ok || !slices.Equal(v, s.Base[7*8:8*8]) {
		t.Fatalf("StreamerVector(21) = %v %v", v, ok)
	}
	if _, ok := x.StreamerVector(4); ok {
		t.Fatal("StreamerVector of an unknown ordinal")
	}
}

// Dots equals the dot product with StreamerVector for live and offline
// streamers (after swap-removals moved live rows), and refuses unknown
// ordinals.
func TestDots(t *testing.T) {
	x, s := newTestIndex(t, 300, 8, 1000)
	for i := range 300 {
		x.SetLive(uint32(3*i), i%2 == 0)
	}
	for i := 0; i < 300; i += 8 {
		x.SetLive(uint32(3*i), false) // swap-removes: rows move
	}
	q := s.Query(1)
	ords := []uint32{0, 3, 6, 4, 9999, 3 * 299, 3 * 150}
	out, ok := make([]float32, len(ords)), make([]bool, len(ords))
	x.Dots(q, ords, out, ok)
	for i, ord := range ords {
		v, known := x.StreamerVector(ord)
		if ok[i] != known {
			t.Fatalf("ord %d: ok %v, StreamerVector %v", ord, ok[i], known)
		}
		if known && out[i] != Dot(q, v) {
			t.Fatalf("ord %d: Dots %v, Dot %v", ord, out[i], Dot(q, v))
		}
		if !known && out[i] != 0 {
			t.Fatalf("ord %d unknown but scored %v", ord, out[i])
		}
	}
	if !ok[0] || ok[3] || ok[4] {
		t.Fatalf("ok %v: want ordinals 0 known, 4 and 9999 unknown", ok)
	}
}

// Live streamers without a vector (new streamers) must not stop the planner
// from recognising the live set and scanning the live matrix.
func TestPlannerRecognisesLiveSetWithStreamersWithoutVectors(t *testing.T) {
	x, s := newTestIndex(t, 2000, 8, 1000)
	allowed := &bitset{bits: make([]bool, 6001)}
	for i := 0; i < 2000; i += 20 { // 100 live with vectors
		x.SetLive(uint32(3*i), true)
		allowed.bits[3*i] = true
		allowed.n++
	}
	for i := range 20 { // 20 live without vectors (ordinals 3i+1)
		x.SetLive(uint32(3*i+1), true)
		allowed.bits[3*i+1] = true
		allowed.n++
	}
	if st, scanLive := x.plan(allowed); st != StrategyExact || !scanLive {
		t.Fatalf("plan = %s, live matrix %v; want exact over the live matrix", st, scanLive)
	}
	q := s.Query(0)
	got, _, _ := x.Search(context.Background(), q, 10, 0, allowed)
	if want := brute(s, q, 10, allowed); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// A set much larger than the live set is not mistaken for it.
	everyone := &bitset{bits: make([]bool, 6001), n: 2000}
	for i := range 2000 {
		everyone.bits[3*i] = true
	}
	if st, scanLive := x.plan(everyone); scanLive || st != StrategyHNSW {
		t.Fatalf("plan for every streamer = %s, live matrix %v; want the graph", st, scanLive)
	}
	got, _, _ = x.Search(context.Background(), q, 10, 0, everyone)
	if r := recallAt(got, brute(s, q, 10, nil)); r < 0.8 {
		t.Fatalf("everyone: recall %.2f", r)
	}
}
