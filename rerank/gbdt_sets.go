package rerank

import (
	"math"
	"math/bits"
	"slices"
)

// Rank scores a page of trees by walking each tree once for all
// candidates: a node receives the set of candidates that reach it (a bit
// set of up to 128 candidates, two words; a larger page is scored in
// chunks of 128) and hands its children the parts that go left and
// right; each leaf's output is added to the sum of every candidate it
// holds. A node's "goes right" set does not depend on the tree: for
// feature f and t[k], the k-th (from 0) of f's distinct thresholds in the
// forest, sorted, it is the candidates whose x[f] >= t[k], i.e. whose rank
// (the number of f's thresholds at most x[f], found once per candidate
// and feature by binary search) exceeds k. Those sets are built once per
// page for every distinct threshold (a suffix union over the ranks), so a
// node costs a few word operations whatever the number of candidates, and
// a candidate one addition per tree. NaN has no rank: the candidates with
// NaN in f join a node's right part when the node has no DefaultLeft.
// Trees of any number of leaves are read this way.
//
// Every candidate reaches exactly one leaf of every tree, and the trees
// are taken in order, so each candidate's sum receives the same additions
// in the same order as the walk of Forest.leaf: the scores are equal bit
// for bit (TestSetWalkEqualsWalk).

// cset is a set of up to 128 candidates of a chunk.
type cset [2]uint64

// snode is an inner node of a tree as the set walk reads it: the
// candidates in slot self are split into slots l (left) and l+1 (right);
// those in row row of the page's sets go right.
type snode struct{ self, l, row int32 }

// stree is one tree for the set walk: its inner nodes in breadth-first
// order (a node before its children), so they are split in one loop
// without a test for leaves, then its leaves' slots and outputs.
type stree struct {
	inner []snode
	leaf  []int32 // of each leaf: its slot
	vals  []float64
	slots int
}

// setForest is Forest's form for the set walk.
type setForest struct {
	trees [][]stree   // of each head
	thr   [][]float64 // of each feature: its distinct thresholds, sorted
	used  []int32     // the features with at least one threshold
	off   []int32     // of each feature: its first row; it has len(thr[f])+1
	rows  int         // rows of all features; rows+r is row r with the NaN candidates
	big   int         // the most slots of a tree
}

// compileSets builds f.sets from f's compiled nodes; it leaves f.sets nil
// when a threshold is NaN (Validate refuses such a model; Compile alone
// does not, and Forest.leaf then decides).
func (f *Forest) compileSets() {
	nf := len(f.model.Features)
	s := &setForest{thr: make([][]float64, nf), off: make([]int32, nf)}
	for i, n := range f.nodes {
		if n.child == int32(i) {
			continue
		}
		if math.IsNaN(n.thr) {
			return
		}
		s.thr[n.feat] = append(s.thr[n.feat], n.thr)
	}
	for ft, t := range s.thr {
		slices.Sort(t)
		t = slices.CompactFunc(t, func(a, b float64) bool { return a == b })
		s.thr[ft] = t
		s.off[ft] = int32(s.rows)
		if len(t) > 0 {
			s.used = append(s.used, int32(ft))
			s.rows += len(t) + 1
		}
	}
	s.trees = make([][]stree, len(f.heads))
	type item struct{ node, slot int32 }
	var queue []item
	for hi := range f.heads {
		for _, r := range f.heads[hi].roots {
			var t stree
			queue = append(queue[:0], item{r, 0})
			t.slots = 1
			for q := 0; q < len(queue); q++ {
				i, slot := queue[q].node, queue[q].slot
				n := &f.nodes[i]
				if n.child == i {
					t.leaf, t.vals = append(t.leaf, slot), append(t.vals, f.vals[i])
					continue
				}
				// Row r of feature f holds the candidates of rank >= r;
				// x >= thr[k] is rank >= k+1.
				// Without DefaultLeft NaN goes right: the row's copy that
				// holds the NaN candidates too.
				k, _ := slices.BinarySearch(s.thr[n.feat], n.thr)
				sn := snode{self: slot, l: int32(t.slots), row: s.off[n.feat] + int32(k) + 1}
				if !f.dleft[i] {
					sn.row += int32(s.rows)
				}
				t.inner = append(t.inner, sn)
				queue = append(queue, item{n.child, sn.l}, item{n.child + 1, sn.l + 1})
				t.slots += 2
			}
			s.big = max(s.big, t.slots)
			s.trees[hi] = append(s.trees[hi], t)
		}
	}
	f.sets = s
}

// setScratch is what the set walk of a page writes besides its output.
type setScratch struct {
	rows []cset // of every feature's row, then the same with the NaN candidates
	nan  []cset // of every feature: the candidates with NaN
	sets []cset // of every slot of a tree: the candidates that reach it
	raw  []float64
}

// scoreSets is scoreBatch by the set walk: it scores the n vectors stored
// stride apart in xs into out, each equal to Score(x_i) exactly. sc is
// scratch, grown as needed.
func (f *Forest) scoreSets(xs []float64, stride, n int, out []float64, sc *setScratch) {
	s := f.sets
	sc.rows = slices.Grow(sc.rows[:0], 2*s.rows)[:2*s.rows]
	sc.nan = slices.Grow(sc.nan[:0], len(s.thr))[:len(s.thr)]
	sc.sets = slices.Grow(sc.sets[:0], s.big)[:s.big]
	sc.raw = slices.Grow(sc.raw[:0], n)[:n]
	clear(out[:n])
	for lo := 0; lo < n; lo += 128 {
		hi := min(lo+128, n)
		f.scoreChunk(xs, stride, lo, hi, out, sc)
	}
}

// scoreChunk is scoreSets of the candidates lo..hi-1 (at most 128).
func (f *Forest) scoreChunk(xs []float64, stride, lo, hi int, out []float64, sc *setScratch) {
	s := f.sets
	rows, nan, sets, raw := sc.rows, sc.nan, sc.sets, sc.raw[lo:hi]
	clear(rows)
	clear(nan)
	for _, ft := range s.used {
		t, fr := s.thr[ft], rows[s.off[ft]:int(s.off[ft])+len(s.thr[ft])+1]
		for c := lo; c < hi; c++ {
			w, bit := (c-lo)>>6, uint64(1)<<((c-lo)&63)
			v := xs[c*stride+int(ft)]
			if v != v {
				nan[ft][w] |= bit
				continue
			}
			fr[rank(t, v)][w] |= bit
		}
	}
	// Row r of a feature: the candidates of rank r or more.
	for _, ft := range s.used {
		fr := rows[s.off[ft] : int(s.off[ft])+len(s.thr[ft])+1]
		for r := len(fr) - 2; r >= 0; r-- {
			fr[r][0] |= fr[r+1][0]
			fr[r][1] |= fr[r+1][1]
		}
		fn, nn := rows[s.rows+int(s.off[ft]):][:len(fr)], nan[ft]
		for r, set := range fr {
			fn[r] = cset{set[0] | nn[0], set[1] | nn[1]}
		}
	}
	var all cset
	for c := 0; c < hi-lo; c++ {
		all[c>>6] |= 1 << (c & 63)
	}
	n0 := min(hi-lo, 64)
	// leaf0[c] is the output of the leaf candidate c reaches (word 0,
	// 64: none); leaf1[c] that of candidate 64+c.
	var leaf0, leaf1 [65]float64
	for hx := range f.heads {
		h := &f.heads[hx]
		if h.mul == 0 {
			continue
		}
		for c := range raw {
			raw[c] = h.base
		}
		for ti := range s.trees[hx] {
			t := &s.trees[hx][ti]
			ts := sets[:t.slots]
			ts[0] = all
			for k := range t.inner {
				nd := &t.inner[k]
				in := ts[nd.self]
				right := rows[nd.row]
				r0, r1 := in[0]&right[0], in[1]&right[1]
				ts[nd.l] = cset{in[0] &^ r0, in[1] &^ r1}
				ts[nd.l+1] = cset{r0, r1}
			}
			// Most leaves hold a few candidates of a word: the first
			// three are stored without a test (an empty word stores to
			// index 64, which no candidate reads).
			for j, slot := range t.leaf {
				in, v := ts[slot], t.vals[j]
				b0, b1 := in[0], in[1]
				leaf0[bits.TrailingZeros64(b0)] = v
				leaf1[bits.TrailingZeros64(b1)] = v
				b0, b1 = b0&(b0-1), b1&(b1-1)
				leaf0[bits.TrailingZeros64(b0)] = v
				leaf1[bits.TrailingZeros64(b1)] = v
				b0, b1 = b0&(b0-1), b1&(b1-1)
				leaf0[bits.TrailingZeros64(b0)] = v
				leaf1[bits.TrailingZeros64(b1)] = v
				b0, b1 = b0&(b0-1), b1&(b1-1)
				for b0|b1 != 0 {
					leaf0[bits.TrailingZeros64(b0)] = v
					leaf1[bits.TrailingZeros64(b1)] = v
					b0, b1 = b0&(b0-1), b1&(b1-1)
				}
			}
			for c := 0; c < n0; c++ {
				raw[c] += leaf0[c]
			}
			for c := 64; c < len(raw); c++ {
				raw[c] += leaf1[c-64]
			}
		}
		for c, z := range raw {
			out[lo+c] += h.mul * link(h.loss, z)
		}
	}
}

// rank is the number of thresholds in t (sorted, distinct) at most v, or
// -1 when v is NaN.
func rank(t []float64, v float64) int32 {
	if v != v {
		return -1
	}
	if len(t) == 0 {
		return 0
	}
	// The search halves m without a branch on the data.
	base, m := 0, len(t)
	for m > 1 {
		half := m / 2
		base += half * int(b2i(t[base+half] <= v))
		m -= half
	}
	return int32(base) + b2i(t[base] <= v)
}
