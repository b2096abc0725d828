package rerank

import (
	"cmp"
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

// qsBlockTrees is how many consecutive trees (of the heads one after the
// other) share one pass over the node lists: a tree's index in its block
// is a byte, so the bit sets of a block are an array the compiler indexes
// without a bounds check.
const qsBlockTrees = 256

// qsBlock is up to qsBlockTrees consecutive trees of the forest (those of
// the heads of nonzero weight, in head order), their nodes grouped for
// QuickScorer.
type qsBlock struct {
	segs  []qsSeg // the block's trees by head
	roots []int32 // of each tree of the block: its root in Forest.nodes
	feats []qsFeat
	// The nodes of every feature, one feature after the other, each
	// feature's sorted by threshold: the tree (its index in the block)
	// and the mask that clears its left subtree's leaves.
	tree []uint8
	mask []uint64
	// The nodes without DefaultLeft, grouped by feature likewise.
	nanTree []uint8
	nanMask []uint64
	// Per tree of the block: its leaves' outputs start at leafOff[t] in
	// qsForest.leaves, or leafOff[t] is -1 and the tree is walked.
	leafOff []int32
	ones    []uint64 // every tree's starting bit set: all of its leaves
}

// qsSeg is the trees lo..hi-1 of a block, which belong to head head.
type qsSeg struct{ head, lo, hi int }

// qsFeat is a feature's part of a qsBlock's lists: the nodes of feature f
// whose threshold is at most a value of rank r (qsForest.rank) are
// tree[start:ends[r]]; the NaN list is nanTree[nanStart:nanEnd].
type qsFeat struct {
	f                int32
	start            int32
	nanStart, nanEnd int32
	ends             []int32
}

// qsForest is Forest's QuickScorer form.
type qsForest struct {
	blocks []qsBlock
	thr    [][]float64 // of each feature: its distinct thresholds, sorted
	used   []int32     // the features with at least one threshold
	leaves []float64
}

// compileQS builds f.qs from f's compiled nodes.
func (f *Forest) compileQS() {
	nf := len(f.model.Features)
	q := &qsForest{thr: make([][]float64, nf)}
	// The leaves of the tree rooted at i, left to right.
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
		tree uint8
		mask uint64
		nan  bool // NaN goes right
	}
	byFeat := make([][]qnode, nf)
	var nthr [][]float64 // of each block: the threshold of each node of qsBlock.tree
	var buf []int32
	var b *qsBlock
	// flush groups the nodes of block b by feature.
	flush := func() {
		var bt []float64
		for ft, ns := range byFeat {
			if len(ns) == 0 {
				continue
			}
			slices.SortStableFunc(ns, func(a, b qnode) int { return cmp.Compare(a.thr, b.thr) })
			qf := qsFeat{f: int32(ft), start: int32(len(b.tree)), nanStart: int32(len(b.nanTree))}
			for _, n := range ns {
				b.tree, b.mask = append(b.tree, n.tree), append(b.mask, n.mask)
				bt = append(bt, n.thr)
				q.thr[ft] = append(q.thr[ft], n.thr)
				if n.nan {
					b.nanTree, b.nanMask = append(b.nanTree, n.tree), append(b.nanMask, n.mask)
				}
			}
			qf.nanEnd = int32(len(b.nanTree))
			b.feats = append(b.feats, qf)
			byFeat[ft] = ns[:0]
		}
		nthr = append(nthr, bt)
	}
	for hi := range f.heads {
		h := &f.heads[hi]
		if h.mul == 0 {
			continue
		}
		for _, r := range h.roots {
			if b == nil || len(b.roots) == qsBlockTrees {
				if b != nil {
					flush()
				}
				q.blocks = append(q.blocks, qsBlock{})
				b = &q.blocks[len(q.blocks)-1]
			}
			ti := len(b.roots)
			b.roots = append(b.roots, r)
			if k := len(b.segs) - 1; k >= 0 && b.segs[k].head == hi {
				b.segs[k].hi++
			} else {
				b.segs = append(b.segs, qsSeg{head: hi, lo: ti, hi: ti + 1})
			}
			buf = leaves(r, buf[:0])
			if len(buf) > 64 || !qsFits(f, r) {
				b.leafOff, b.ones = append(b.leafOff, -1), append(b.ones, 0)
				continue
			}
			b.leafOff = append(b.leafOff, int32(len(q.leaves)))
			b.ones = append(b.ones, math.MaxUint64>>(64-len(buf)))
			// pos[leaf] is the leaf's number, left to right.
			pos := make(map[int32]int, len(buf))
			for k, l := range buf {
				q.leaves = append(q.leaves, f.vals[l])
				pos[l] = k
			}
			// mark returns the number of the leftmost leaf under node i;
			// an inner node's left subtree holds leaves lo..hi-1.
			var mark func(i int32) int
			mark = func(i int32) int {
				n := &f.nodes[i]
				if n.child == i {
					return pos[i]
				}
				lo := mark(n.child)
				hi := mark(n.child + 1)
				left := (uint64(1)<<(hi-lo) - 1) << lo
				byFeat[n.feat] = append(byFeat[n.feat], qnode{thr: n.thr, tree: uint8(ti), mask: ^left, nan: !f.dleft[i]})
				return lo
			}
			mark(r)
		}
	}
	if b != nil {
		flush()
	}
	// The distinct thresholds of each feature; then the end of each
	// block's prefix for every rank.
	for ft, t := range q.thr {
		slices.Sort(t)
		q.thr[ft] = slices.CompactFunc(t, func(a, b float64) bool { return a == b })
		if len(t) > 0 {
			q.used = append(q.used, int32(ft))
		}
	}
	for bi := range q.blocks {
		b := &q.blocks[bi]
		for fi := range b.feats {
			qf := &b.feats[fi]
			t := q.thr[qf.f]
			end := int32(len(b.tree))
			if fi+1 < len(b.feats) {
				end = b.feats[fi+1].start
			}
			qf.ends = make([]int32, len(t)+1)
			j := qf.start
			qf.ends[0] = j
			for r := 1; r <= len(t); r++ {
				// the nodes of rank < r: threshold at most t[r-1]
				for j < end && nthr[bi][j] <= t[r-1] {
					j++
				}
				qf.ends[r] = j
			}
		}
	}
	f.qs = q
}

// qsFits reports whether the tree rooted at i has no NaN threshold (a
// split QuickScorer's sorted lists cannot place; Validate refuses it, but
// Compile alone does not).
func qsFits(f *Forest, i int32) bool {
	n := &f.nodes[i]
	if n.child == i {
		return true
	}
	return !math.IsNaN(n.thr) && qsFits(f, n.child) && qsFits(f, n.child+1)
}

// scoreQS is scoreBatch by QuickScorer: it scores the n vectors stored
// stride apart in xs into out, each equal to Score(x_i) exactly. raw and
// ranks are scratch, grown as needed and returned for reuse.
func (f *Forest) scoreQS(xs []float64, stride, n int, out, raw []float64, ranks []int32) ([]float64, []int32) {
	q := f.qs
	nf, nh := len(f.model.Features), len(f.heads)
	ranks = slices.Grow(ranks[:0], n*nf)[:n*nf]
	for c := 0; c < n; c++ {
		x := xs[c*stride : c*stride+nf]
		rk := ranks[c*nf : c*nf+nf]
		for _, ft := range q.used {
			rk[ft] = rank(q.thr[ft], x[ft])
		}
	}
	// raw[c*nh+h] is head h's sum for candidate c.
	raw = slices.Grow(raw[:0], n*nh)[:n*nh]
	for c := 0; c < n; c++ {
		for hi := range f.heads {
			raw[c*nh+hi] = f.heads[hi].base
		}
	}
	var masks [qsBlockTrees]uint64
	for bi := range q.blocks {
		b := &q.blocks[bi]
		for c := 0; c < n; c++ {
			copy(masks[:], b.ones)
			rk := ranks[c*nf : c*nf+nf]
			for k := range b.feats {
				qf := &b.feats[k]
				var tr []uint8
				var mk []uint64
				if r := rk[qf.f]; r >= 0 {
					tr, mk = b.tree[qf.start:qf.ends[r]], b.mask[qf.start:qf.ends[r]]
				} else {
					tr, mk = b.nanTree[qf.nanStart:qf.nanEnd], b.nanMask[qf.nanStart:qf.nanEnd]
				}
				mk = mk[:len(tr)]
				for j, t := range tr {
					masks[t] &= mk[j]
				}
			}
			zs := raw[c*nh : c*nh+nh]
			for _, sg := range b.segs {
				z := zs[sg.head]
				for t := sg.lo; t < sg.hi; t++ {
					if off := b.leafOff[t]; off >= 0 {
						z += q.leaves[int(off)+bits.TrailingZeros64(masks[t&(qsBlockTrees-1)])]
					} else {
						z += f.leaf(b.roots[t], xs[c*stride:c*stride+nf])
					}
				}
				zs[sg.head] = z
			}
		}
	}
	clear(out[:n])
	for hi := range f.heads {
		h := &f.heads[hi]
		if h.mul == 0 {
			continue
		}
		for c := 0; c < n; c++ {
			out[c] += h.mul * link(h.loss, raw[c*nh+hi])
		}
	}
	return raw, ranks
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
