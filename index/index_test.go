package index

import (
	"context"
	"iter"
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
	x, err := New(context.Background(), mv, ids, ords, s.Base, Params{Seed: 1}, threshold)
	if err != nil {
		t.Fatal(err)
	}
	return x, s
}

// testLive is a LiveSet for tests: versions of a live set, each made from
// the one before by changes, as live/ publishes them.
type testLive struct {
	bitset
	version uint64
	changes []liveChange
}

type liveChange struct {
	ord  uint32
	live bool
}

func (l *testLive) Version() uint64 { return l.version }

func (l *testLive) Changes() iter.Seq2[uint32, bool] {
	return func(yield func(uint32, bool) bool) {
		for _, c := range l.changes {
			if !yield(c.ord, c.live) {
				return
			}
		}
	}
}

func (l *testLive) Ordinals() []uint32 {
	var out []uint32
	for o, in := range l.bits {
		if in {
			out = append(out, uint32(o))
		}
	}
	return out
}

// next returns the version after l (l nil: after the empty version 0),
// made by chs in order.
func (l *testLive) next(chs ...liveChange) *testLive {
	n := &testLive{changes: chs}
	if l != nil {
		n.bits, n.n, n.version = slices.Clone(l.bits), l.n, l.version
	}
	n.version++
	for _, c := range chs {
		if int(c.ord) >= len(n.bits) {
			n.bits = append(n.bits, make([]bool, int(c.ord)+1-len(n.bits))...)
		}
		if n.bits[c.ord] != c.live {
			n.bits[c.ord] = c.live
			if c.live {
				n.n++
			} else {
				n.n--
			}
		}
	}
	return n
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
	ls := (*testLive)(nil).next()
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
			var chs []liveChange
			for i := range n {
				if raw.bits[i] != ls.Contains(uint32(3*i)) {
					chs = append(chs, liveChange{uint32(3 * i), raw.bits[i]})
				}
			}
			ls = ls.next(chs...)
			x.SetLive(ls)
			allowed := ls
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
	var chs []liveChange
	for i := range 200 {
		chs = append(chs, liveChange{uint32(3 * i), true})
	}
	chs = append(chs, liveChange{1, true}) // no vector for ordinal 1: ignored
	chs = append(chs, liveChange{9999, true})
	all := (*testLive)(nil).next(chs...)
	x.SetLive(all)
	if x.LiveLen() != 200 {
		t.Fatalf("live rows %d, want 200", x.LiveLen())
	}
	best := brute(s, q, 1, nil)[0].Ord
	all = all.next(liveChange{best, false}, liveChange{best, false}) // twice: no-op
	x.SetLive(all)
	got, _, _ := x.Search(context.Background(), q, 5, 0, all)
	if want := brute(s, q, 5, all); !slices.Equal(got, want) {
		t.Fatalf("after removal: %v, want %v", got, want)
	}
	all = all.next(liveChange{best, true})
	x.SetLive(all)
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
	var chs []liveChange
	for i := range 300 {
		chs = append(chs, liveChange{uint32(3 * i), i%2 == 0})
	}
	ls := (*testLive)(nil).next(chs...)
	x.SetLive(ls)
	chs = nil
	for i := 0; i < 300; i += 8 {
		chs = append(chs, liveChange{uint32(3 * i), false}) // swap-removes: rows move
	}
	x.SetLive(ls.next(chs...))
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
	var chs []liveChange
	for i := 0; i < 2000; i += 20 { // 100 live with vectors
		chs = append(chs, liveChange{uint32(3 * i), true})
	}
	for i := range 20 { // 20 live without vectors (ordinals 3i+1)
		chs = append(chs, liveChange{uint32(3*i + 1), true})
	}
	allowed := (*testLive)(nil).next(chs...)
	x.SetLive(allowed)
	if st, scanLive, _ := x.plan(allowed); st != StrategyExact || !scanLive {
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
	if st, scanLive, _ := x.plan(everyone); scanLive || st != StrategyHNSW {
		t.Fatalf("plan for every streamer = %s, live matrix %v; want the graph", st, scanLive)
	}
	got, _, _ = x.Search(context.Background(), q, 10, 0, everyone)
	if r := recallAt(got, brute(s, q, 10, nil)); r < 0.8 {
		t.Fatalf("everyone: recall %.2f", r)
	}
}

// The live matrix answers only for the live set it mirrors, known by type
// and version, not by size: a filter as large as the live set that is
// another set, or a version of the live set the matrix has not reached, is
// answered by a scan of every vector, filtered.
func TestPlannerKnowsTheLiveSetByVersionNotSize(t *testing.T) {
	ctx := context.Background()
	x, s := newTestIndex(t, 2000, 8, 1000)
	var chs []liveChange
	impostor := &bitset{bits: make([]bool, 6000)}
	for i := 0; i < 2000; i += 20 {
		chs = append(chs, liveChange{uint32(3 * i), true})
		impostor.bits[3*(i+10)] = true
		impostor.n++
	}
	ls := (*testLive)(nil).next(chs...)
	x.SetLive(ls)
	if impostor.n != ls.n || x.LiveLen() != int(ls.n) {
		t.Fatalf("impostor %d, live set %d, live rows %d: want equal sizes", impostor.n, ls.n, x.LiveLen())
	}
	q := s.Query(0)
	if st, scanLive, _ := x.plan(impostor); st != StrategyExact || scanLive {
		t.Fatalf("plan for a set of the live set's size = %s, live matrix %v; want exact over every vector", st, scanLive)
	}
	got, _, _ := x.Search(ctx, q, 10, 0, impostor)
	if want := brute(s, q, 10, impostor); len(want) != 10 || !slices.Equal(got, want) {
		t.Fatalf("set of the live set's size: got %v, want %v", got, want)
	}

	// The next version, not given to the index yet: not the one it mirrors.
	best := brute(s, q, 1, impostor)[0].Ord // not live in ls
	newer := ls.next(liveChange{best, true})
	if _, scanLive, _ := x.plan(newer); scanLive {
		t.Fatal("a version the live matrix has not reached is taken for it")
	}
	got, _, _ = x.Search(ctx, q, 10, 0, newer)
	if want := brute(s, q, 10, newer); !slices.Equal(got, want) || !slices.ContainsFunc(got, func(h Hit) bool { return h.Ord == best }) {
		t.Fatalf("newer version: got %v, want %v (best %d)", got, want, best)
	}
	// Given, it is; so is the older one.
	if !x.SetLive(newer) || x.LiveVersion() != newer.version || x.SetLive(ls) {
		t.Fatalf("SetLive: version %d, want %d; an older version must change nothing", x.LiveVersion(), newer.version)
	}
	for _, l := range []*testLive{newer, ls} {
		if st, scanLive, _ := x.plan(l); st != StrategyExact || !scanLive {
			t.Fatalf("plan for version %d = %s, live matrix %v; want the live matrix", l.version, st, scanLive)
		}
	}
	got, _, _ = x.Search(ctx, q, 10, 0, newer)
	if want := brute(s, q, 10, newer); !slices.Equal(got, want) {
		t.Fatalf("mirrored version: got %v, want %v", got, want)
	}
	// An older version is answered with those of its streamers still live.
	gone := brute(s, q, 1, ls)[0].Ord
	newest := newer.next(liveChange{gone, false})
	x.SetLive(newest)
	both := &bitset{bits: slices.Clone(ls.bits), n: ls.n - 1}
	both.bits[gone] = false
	got, _, _ = x.Search(ctx, q, 10, 0, ls)
	if want := brute(s, q, 10, both); !slices.Equal(got, want) {
		t.Fatalf("older version: got %v, want %v (without %d, gone since)", got, want, gone)
	}
	// A new index given the current version after a gap is filled from it.
	y, _ := newTestIndex(t, 2000, 8, 1000)
	if !y.SetLive(newest) || y.LiveLen() != x.LiveLen() || y.LiveVersion() != newest.version {
		t.Fatalf("after a gap: %d rows at version %d, want %d at %d", y.LiveLen(), y.LiveVersion(), x.LiveLen(), newest.version)
	}
	got, _, _ = y.Search(ctx, q, 10, 0, newest)
	if want := brute(s, q, 10, newest); !slices.Equal(got, want) {
		t.Fatalf("filled index: got %v, want %v", got, want)
	}
}

// oneChange is a LiveSet version that differs from the one before by one
// change (for BenchmarkLiveFollow: no set behind it).
type oneChange struct {
	bitset
	version uint64
	ord     uint32
	live    bool
}

func (c *oneChange) Version() uint64 { return c.version }
func (c *oneChange) Changes() iter.Seq2[uint32, bool] {
	return func(yield func(uint32, bool) bool) { yield(c.ord, c.live) }
}
func (c *oneChange) Ordinals() []uint32 { return nil }

// BenchmarkLiveFollow is the index's per-event cost: one streamer going
// live or offline, applied to the live matrix (20k vectors, dim 64).
func BenchmarkLiveFollow(b *testing.B) {
	x, _ := newTestIndex(b, 20_000, 64, 0)
	c := &oneChange{}
	i := 0
	for b.Loop() {
		c.version++
		c.ord, c.live = uint32(3*(i%4000)), i%8000 < 4000
		x.SetLive(c)
		i++
	}
}

// BenchmarkSearchLiveSet is a recall channel's search with the live set as
// the filter (20k vectors, dim 64, 2,000 live): plan and live-matrix scan.
func BenchmarkSearchLiveSet(b *testing.B) {
	x, s := newTestIndex(b, 20_000, 64, 0)
	var chs []liveChange
	for i := 0; i < 20_000; i += 10 {
		chs = append(chs, liveChange{uint32(3 * i), true})
	}
	ls := (*testLive)(nil).next(chs...)
	x.SetLive(ls)
	if _, scanLive, _ := x.plan(ls); !scanLive {
		b.Fatal("the live set is not scanned over the live matrix")
	}
	ctx := context.Background()
	i := 0
	for b.Loop() {
		x.Search(ctx, s.Query(i%50), 40, 0, ls)
		i++
	}
}

// SearchPrecise is exact whatever the filter's size: a live set or any
// other set large enough that Search would take the graph is scanned in
// float32 (the operators' neighbour queries promise the exact answer).
func TestSearchPreciseNeverTakesTheGraph(t *testing.T) {
	const n, dim, k = 4000, 32, 10
	x, s := newTestIndex(t, n, dim, 500)
	var chs []liveChange
	plain := &bitset{bits: make([]bool, 3*n), n: 0}
	for i := 0; i < n; i += 2 { // half live: well above the exact-scan share
		chs = append(chs, liveChange{uint32(3 * i), true})
		plain.bits[3*i] = true
		plain.n++
	}
	ls := (*testLive)(nil).next(chs...)
	x.SetLive(ls)
	for name, allowed := range map[string]Allowed{"live set": ls, "other set": plain} {
		if st, _, _ := x.plan(allowed); st != StrategyHNSW {
			t.Fatalf("%s: plan %s, want the graph for Search (else this test shows nothing)", name, st)
		}
		for i := range 20 {
			q := s.Query(i)
			got, st, err := x.SearchPrecise(context.Background(), q, k, 0, allowed)
			if err != nil {
				t.Fatal(err)
			}
			if st != StrategyExact {
				t.Fatalf("%s: SearchPrecise used %s", name, st)
			}
			if want := brute(s, q, k, allowed); !slices.Equal(got, want) {
				t.Fatalf("%s, query %d: got %v, want %v", name, i, got, want)
			}
		}
	}
}
