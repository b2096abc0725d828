package rerank

import (
	"math"
	"math/bits"
	"slices"
)

// QuickScorer (Lucchese et al., SIGIR 2015) scores a page without walking
// the trees. Number a tree's leaves left to right; an inner node whose
// test sends x right (x >= threshold, or NaN without DefaultLeft) is
// "false" for x. The leaf x reaches is the leftmost leaf that lies in the
// left subtree of no false node (every other leaf left of it is in the
// left subtree of the node where its path leaves x's). So with one bit per
// leaf, the exit leaf is the lowest set bit of the AND, over x's false
// nodes, of "every leaf but the node's left subtree".
//
// The false nodes are found by feature, not by tree: each head keeps, per
// feature, its nodes sorted by threshold, and the false ones for x are a
// prefix of that list, the nodes whose threshold is at most x[f]. Where the
// prefix ends depends only on x[f]'s rank among the forest's distinct
// thresholds of f, which is found once per candidate and feature (a binary
// search) for all heads. NaN has no rank: its false nodes are those
// without DefaultLeft, kept in a second list per feature.
//
// A tree of more than 64 leaves does not fit the bit set; it is walked
// (Forest.leaf). Each head still adds its trees' outputs in tree order, so
// the sums are the ones of the walk, bit for bit.

// qsHead is one head's nodes grouped for QuickScorer.
type qsHead struct {
	feats []qsFeat
	// The nodes of every feature, one feature after the other, each
	// feature's sorted by threshold: the tree (its index in the head) and
	// the mask that clears its left subtree's leaves.
	tree []int32
	mask []uint64
	// The nodes without DefaultLeft, grouped by feature likewise.
	nanTree []int32
	nanMask []uint64
	// Per tree, in head order: its leaves' outputs start at leafOff[t]
	// in Forest.qsLeaves, or leafOff[t] is -1 and the tree (root
	// roots[t]) is walked.
	leafOff []int32
	ones    []uint64 // every tree's starting bit set: all of its leaves
}

// qsFeat is a feature's part of qsHead's lists: the nodes of feature f
// whose threshold rank is below r (threshold at most a value of rank r)
// are tree[start:ends[r]]; the NaN list is nanTree[nanStart:nanEnd].
type qsFeat struct {
	f                int32
	start            int32
	ends             []int32
	nanStart, nanEnd int32
}

// qsForest is Forest's QuickScorer form.
type qsForest struct {
	heads  []qsHead // as Forest.heads
	thr    [][]float64
	used   []int32 // features with at least one threshold
	leaves []float64
}

// compileQS builds f.qs from f's compiled nodes.
func (f *Forest) compileQS() {
	nf := len(f.model.Features)
	q := &qsForest{thr: make([][]float64, nf), heads: make([]qsHead, len(f.heads))}
	// The leaves of the tree rooted at r, left to right.
	var leaves func(i int32, out []int32) []int32
	leaves = func(i int32, out []int32) []int32 {
		n := &f.nodes[i]
		if n.child == i {
			return append(out, i)
		}
		return leaves(n.child+1, leaves(n.child, out))
	}
	type qnode struct {
		thr  float64
		tree int32
		mask uint64
		nan  bool // NaN goes right
	}
	byFeat := make([][]qnode, nf)
	nthr := make([][]float64, len(f.heads)) // the threshold of each node in qsHead.tree
	for hi := range f.heads {
		h := &f.heads[hi]
		qh := &q.heads[hi]
		for i := range byFeat {
			byFeat[i] = byFeat[i][:0]
		}
		var buf []int32
		for ti, r := range h.roots {
			buf = leaves(r, buf[:0])
			if len(buf) > 64 {
				qh.leafOff = append(qh.leafOff, -1)
				qh.ones = append(qh.ones, 0)
				continue
			}
			qh.leafOff = append(qh.leafOff, int32(len(q.leaves)))
			qh.ones = append(qh.ones, math.MaxUint64>>(64-len(buf)))
			// pos[node] = the leaf number of the node's leftmost leaf;
			// a node's left subtree holds leaves pos[left]..pos[right]-1.
			pos := make(map[int32]int, 2*len(buf))
			for k, l := range buf {
				q.leaves = append(q.leaves, f.vals[l])
				pos[l] = k
			}
			var mark func(i int32) int
			mark = func(i int32) int {
				n := &f.nodes[i]
				if n.child == i {
					return pos[i]
				}
				lo := mark(n.child)
				hi := mark(n.child + 1)
				left := (uint64(1)<<(hi-lo) - 1) << lo
				byFeat[n.feat] = append(byFeat[n.feat], qnode{thr: n.thr, tree: int32(ti), mask: ^left, nan: !f.dleft[i]})
				return lo
			}
			mark(r)
		}
		for ft, ns := range byFeat {
			if len(ns) == 0 {
				continue
			}
			slices.SortStableFunc(ns, func(a, b qnode) int {
				if a.thr < b.thr {
					return -1
				}
				if a.thr > b.thr {
					return 1
				}
				return 0
			})
			qf := qsFeat{f: int32(ft), start: int32(len(qh.tree)), nanStart: int32(len(qh.nanTree))}
			for _, n := range ns {
				qh.tree, qh.mask = append(qh.tree, n.tree), append(qh.mask, n.mask)
				nthr[hi] = append(nthr[hi], n.thr)
				q.thr[ft] = append(q.thr[ft], n.thr)
				if n.nan {
					qh.nanTree, qh.nanMask = append(qh.nanTree, n.tree), append(qh.nanMask, n.mask)
				}
			}
			qf.nanEnd = int32(len(qh.nanTree))
			qh.feats = append(qh.feats, qf)
		}
	}
	// The distinct thresholds of each feature, over all heads; then each
	// head's end of its prefix for every rank.
	for ft, t := range q.thr {
		slices.Sort(t)
		q.thr[ft] = slices.CompactFunc(t, func(a, b float64) bool { return a == b })
		if len(t) > 0 {
			q.used = append(q.used, int32(ft))
		}
	}
	for hi := range q.heads {
		qh := &q.heads[hi]
		for k := range qh.feats {
			qf := &qh.feats[k]
			t := q.thr[qf.f]
			end := int32(len(qh.tree))
			if k+1 < len(qh.feats) {
				end = qh.feats[k+1].start
			}
			qf.ends = make([]int32, len(t)+1)
			j := qf.start
			qf.ends[0] = j
			for r := 1; r <= len(t); r++ {
				// the nodes of rank < r: threshold at most t[r-1]
				for j < end && nthr[hi][j] <= t[r-1] {
					j++
				}
				qf.ends[r] = j
			}
		}
	}
	f.qs = q
}

// scoreQS is scoreBatch by QuickScorer: it scores the n vectors stored
// stride apart in xs into out, each equal to Score(x_i) exactly. ranks
// and masks are scratch (grown as needed) and returned for reuse.
func (f *Forest) scoreQS(xs []float64, stride, n int, out []float64, ranks []int32, masks []uint64) ([]int32, []uint64) {
	q := f.qs
	nf := len(f.model.Features)
	ranks = slices.Grow(ranks[:0], n*nf)[:n*nf]
	for c := 0; c < n; c++ {
		x := xs[c*stride : c*stride+nf]
		rk := ranks[c*nf : c*nf+nf]
		for _, ft := range q.used {
			rk[ft] = rank(q.thr[ft], x[ft])
		}
	}
	clear(out[:n])
	for hi := range f.heads {
		h, qh := &f.heads[hi], &q.heads[hi]
		if h.mul == 0 {
			continue
		}
		nt := len(qh.ones)
		masks = slices.Grow(masks[:0], nt)[:nt]
		for c := 0; c < n; c++ {
			copy(masks, qh.ones)
			rk := ranks[c*nf : c*nf+nf]
			for k := range qh.feats {
				qf := &qh.feats[k]
				var tr []int32
				var mk []uint64
				if r := rk[qf.f]; r >= 0 {
					tr, mk = qh.tree[qf.start:qf.ends[r]], qh.mask[qf.start:qf.ends[r]]
				} else {
					tr, mk = qh.nanTree[qf.nanStart:qf.nanEnd], qh.nanMask[qf.nanStart:qf.nanEnd]
				}
				mk = mk[:len(tr)]
				for j, t := range tr {
					masks[t] &= mk[j]
				}
			}
			z := h.base
			for t, off := range qh.leafOff {
				if off >= 0 {
					z += q.leaves[int(off)+bits.TrailingZeros64(masks[t])]
				} else {
					z += f.leaf(h.roots[t], xs[c*stride:c*stride+nf])
				}
			}
			out[c] += h.mul * link(h.loss, z)
		}
	}
	return ranks, masks
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
	base, m := 0, len(t)
	for m > 1 {
		half := m / 2
		if t[base+half] <= v {
			base += half
		}
		m -= half
	}
	if t[base] <= v {
		base++
	}
	return int32(base)
}
