package rerank

import (
	"math"
	"math/bits"
	"slices"
)

// The page is scored by walking each tree once for all candidates: a node
// receives the set of candidates that reach it (a bit set of up to 128
// candidates, two words) and hands its children the parts that go left
// and right; a leaf adds its output to the sum of each candidate it holds.
// A node's "goes right" set does not depend on the tree: for a feature f
// and the k-th smallest of f's distinct thresholds in the forest, it is
// the candidates whose x[f] is at least that threshold, i.e. whose rank
// (the number of f's thresholds at most x[f], found once per candidate
// and feature by binary search) exceeds k. Those sets are built once per
// page for every distinct threshold (a suffix union over the ranks), so a
// node costs a few word operations whatever the number of candidates, and
// each candidate costs one addition per tree. NaN has no rank; the
// candidates with NaN in f join a node's right part when the node has no
// DefaultLeft.
//
// Every candidate reaches exactly one leaf of every tree, and the trees
// are taken in order, so each candidate's sum receives the same additions
// in the same order as the walk of Forest.leaf: the scores are equal bit
// for bit.

// cset is a set of up to 128 candidates of a chunk.
type cset [2]uint64

// snode is a node of Forest.nodes as the set walk reads it.
type snode struct {
	row   int32  // inner: the row of setForest's sets that go right; a leaf: -1
	feat  int32  // inner: the split's feature
	child int32  // inner: the left child (the right one follows)
	nan   uint64 // all ones when NaN goes right, else 0
}

// setForest is Forest's form for the set walk.
type setForest struct {
	nodes []snode     // as Forest.nodes
	thr   [][]float64 // of each feature: its distinct thresholds, sorted
	used  []int32     // the features with at least one threshold
	off   []int32     // of each feature: its first row; it has len(thr[f])+1
	rows  int         // rows of all features
	ends  [][]int32   // of each head and tree: one past the tree's last node
	big   int         // the most nodes of a tree
}

// compileSets builds f.sets from f's compiled nodes; it leaves f.sets nil
// when a threshold is NaN (Validate refuses such a model; Compile alone
// does not, and Forest.leaf then decides).
func (f *Forest) compileSets() {
	nf := len(f.model.Features)
	s := &setForest{nodes: make([]snode, len(f.nodes)), thr: make([][]float64, nf), off: make([]int32, nf)}
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
	for i, n := range f.nodes {
		if n.child == int32(i) {
			s.nodes[i] = snode{row: -1}
			continue
		}
		// Row r of feature f holds the candidates of rank >= r; x >=
		// t[k] is rank >= k+1.
		k, _ := slices.BinarySearch(s.thr[n.feat], n.thr)
		sn := snode{row: s.off[n.feat] + int32(k) + 1, feat: n.feat, child: n.child}
		if !f.dleft[i] {
			sn.nan = math.MaxUint64
		}
		s.nodes[i] = sn
	}
	s.ends = make([][]int32, len(f.heads))
	for hi := range f.heads {
		h := &f.heads[hi]
		for ti, r := range h.roots {
			end := int32(len(f.nodes))
			if ti+1 < len(h.roots) {
				end = h.roots[ti+1]
			} else if hi+1 < len(f.heads) && len(f.heads[hi+1].roots) > 0 {
				end = f.heads[hi+1].roots[0]
			}
			s.ends[hi] = append(s.ends[hi], end)
			s.big = max(s.big, int(end-r))
		}
	}
	f.sets = s
}

// setScratch is what the set walk of a page writes besides its output.
type setScratch struct {
	rows []cset // of every feature's row
	nan  []cset // of every feature: the candidates with NaN
	sets []cset // of every node of a tree: the candidates that reach it
	raw  []float64
}

// scoreSets is scoreBatch by the set walk: it scores the n vectors stored
// stride apart in xs into out, each equal to Score(x_i) exactly. sc is
// scratch, grown as needed.
func (f *Forest) scoreSets(xs []float64, stride, n int, out []float64, sc *setScratch) {
	s := f.sets
	sc.rows = slices.Grow(sc.rows[:0], s.rows)[:s.rows]
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
	nf := len(s.thr)
	for c := lo; c < hi; c++ {
		x := xs[c*stride : c*stride+nf]
		w, bit := (c-lo)>>6, uint64(1)<<((c-lo)&63)
		for _, ft := range s.used {
			v := x[ft]
			if v != v {
				nan[ft][w] |= bit
				continue
			}
			rows[s.off[ft]+rank(s.thr[ft], v)][w] |= bit
		}
	}
	// Row r of a feature: the candidates of rank r or more.
	for _, ft := range s.used {
		fr := rows[s.off[ft] : int(s.off[ft])+len(s.thr[ft])+1]
		for r := len(fr) - 2; r >= 0; r-- {
			fr[r][0] |= fr[r+1][0]
			fr[r][1] |= fr[r+1][1]
		}
	}
	var all cset
	for c := 0; c < hi-lo; c++ {
		all[c>>6] |= 1 << (c & 63)
	}
	nodes, vals := s.nodes, f.vals
	for hx := range f.heads {
		h := &f.heads[hx]
		if h.mul == 0 {
			continue
		}
		for c := range raw {
			raw[c] = h.base
		}
		ends := s.ends[hx]
		for ti, root := range h.roots {
			tn := nodes[root:ends[ti]]
			tv := vals[root:ends[ti]]
			ts := sets[:len(tn)]
			ts[0] = all
			for i := range tn {
				nd := &tn[i]
				in := ts[i]
				if nd.row < 0 {
					v := tv[i]
					for b := in[0]; b != 0; b &= b - 1 {
						raw[bits.TrailingZeros64(b)] += v
					}
					for b := in[1]; b != 0; b &= b - 1 {
						raw[64+bits.TrailingZeros64(b)] += v
					}
					continue
				}
				right, nr := rows[nd.row], nan[nd.feat]
				r0 := in[0] & (right[0] | nr[0]&nd.nan)
				r1 := in[1] & (right[1] | nr[1]&nd.nan)
				l := nd.child - root
				ts[l] = cset{in[0] &^ r0, in[1] &^ r1}
				ts[l+1] = cset{r0, r1}
			}
		}
		for c, z := range raw {
			out[lo+c] += h.mul * link(h.loss, z)
		}
	}
}
