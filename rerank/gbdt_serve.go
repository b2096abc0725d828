package rerank

import (
	"math"
	"slices"

	lr "github.com/liverecall/liverecall"
)

// AlgoGBDT is TreeModel.Algo of a tree ensemble (stored versions without
// an algo are logistic Weights).
const AlgoGBDT = "gbdt"

// fnode is one node of a compiled tree: x[feat] < thr goes to child, a
// larger value to child+1, and NaN to child when Forest.dleft says so. A
// leaf has feature 0, thr +Inf and itself as child, so a
// walk of any finite x stays on it (Forest.scoreBatch walks a fixed
// number of steps); its output is in Forest.vals. 16 bytes, so a tree of
// 31 leaves is 61 nodes, under 1 KiB.
type fnode struct {
	thr   float64
	feat  int32
	child int32
}

// fhead is one compiled head: the trees whose roots are roots, and how
// its raw sum becomes its part of the score.
type fhead struct {
	obj   Objective
	loss  Loss
	base  float64
	mul   float64 // weight / scale
	scale float64
	roots []int32
	depth []int32 // of each tree: its deepest leaf's depth
	// expect is base + the sum of the trees' root values: the raw sum an
	// average input gets, from which the path attribution starts.
	expect float64
}

// Forest is a TreeModel compiled for serving: every tree's nodes in one
// flat array, children adjacent. It implements Model; immutable, safe for
// concurrent use.
type Forest struct {
	model   TreeModel
	nodes   []fnode
	vals    []float64 // Value of every node (inner nodes: cover-weighted mean), for Effects
	dleft   []bool    // of every node: NaN goes to child (else child+1)
	heads   []fhead
	watched int // index of the watched head in heads; -1 when there is none
}

// CompileChecked validates m (TreeModel.Validate) and compiles it.
func CompileChecked(m TreeModel) (*Forest, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return Compile(m)
}

// Compile lays m's trees out for serving. It checks what the layout relies
// on (child indexes in range, no node reached twice, features in range,
// at least one head) and returns EINVALID naming the head, tree and node
// otherwise; the full check is TreeModel.Validate.
func Compile(m TreeModel) (*Forest, error) {
	if m.Algo != AlgoGBDT {
		return nil, errf("rerank tree model %q: algo %q, want %q", m.Version, m.Algo, AlgoGBDT)
	}
	if len(m.Heads) == 0 {
		return nil, errf("rerank tree model %q has no heads", m.Version)
	}
	nf := len(m.Features)
	if nf > NumFeatures || !slices.Contains(FeatureSets, nf) {
		return nil, errf("rerank tree model %q has %d features; this build reads %v", m.Version, nf, FeatureSets)
	}
	f := &Forest{model: m, watched: -1}
	for hi, h := range m.Heads {
		scale := h.Scale
		if scale == 0 {
			scale = 1
		}
		if h.Loss != LossLogistic && h.Loss != LossSquared {
			return nil, errf("rerank tree model %q head %d (%s): loss %q", m.Version, hi, h.Objective, h.Loss)
		}
		fh := fhead{obj: h.Objective, loss: h.Loss, base: h.Base, scale: scale, mul: m.Weights[h.Objective] / scale, expect: h.Base}
		for ti, t := range h.Trees {
			root, depth, err := f.add(t)
			if err != nil {
				return nil, errf("rerank tree model %q head %d (%s) tree %d: %v", m.Version, hi, h.Objective, ti, err)
			}
			fh.roots, fh.depth = append(fh.roots, root), append(fh.depth, depth)
			fh.expect += f.vals[root]
		}
		if h.Objective == ObjWatched && h.Loss == LossLogistic {
			f.watched = len(f.heads)
		}
		f.heads = append(f.heads, fh)
	}
	return f, nil
}

// add appends t's nodes in depth-first order (each inner node's two
// children adjacent) and returns the root's index and the tree's depth.
func (f *Forest) add(t Tree) (int32, int32, error) {
	n := len(t.Feature)
	for _, l := range []int{len(t.Threshold), len(t.DefaultLeft), len(t.Left), len(t.Right), len(t.Value)} {
		if l != n {
			return 0, 0, errf("arrays of different lengths (%d nodes, an array of %d)", n, l)
		}
	}
	if n == 0 {
		return 0, 0, errf("no nodes")
	}
	var depth int32
	seen := make([]bool, n)
	root := int32(len(f.nodes))
	f.nodes = append(f.nodes, fnode{})
	f.vals = append(f.vals, 0)
	f.dleft = append(f.dleft, false)
	// place writes source node src into slot dst, reserving its children's slots.
	var place func(src int, dst, d int32) error
	place = func(src int, dst, d int32) error {
		if seen[src] {
			return errf("node %d is reached twice (a cycle or a shared child)", src)
		}
		seen[src] = true
		v := t.Value[src]
		f.vals[dst] = v
		if t.Feature[src] < 0 {
			f.nodes[dst] = fnode{thr: math.Inf(1), child: dst}
			depth = max(depth, d)
			return nil
		}
		ft := t.Feature[src]
		if int(ft) >= len(f.model.Features) {
			return errf("node %d splits on feature %d; the model has %d", src, ft, len(f.model.Features))
		}
		l, r := int(t.Left[src]), int(t.Right[src])
		if l <= 0 || l >= n || r <= 0 || r >= n {
			return errf("node %d has children %d and %d; the tree has %d nodes", src, l, r, n)
		}
		child := int32(len(f.nodes))
		f.nodes = append(f.nodes, fnode{}, fnode{})
		f.vals = append(f.vals, 0, 0)
		f.dleft = append(f.dleft, false, false)
		f.dleft[dst] = t.DefaultLeft[src]
		f.nodes[dst] = fnode{thr: t.Threshold[src], feat: ft, child: child}
		if err := place(l, child, d+1); err != nil {
			return err
		}
		return place(r, child+1, d+1)
	}
	err := place(0, root, 0)
	return root, depth, err
}

// leaf returns the output of the tree rooted at i for x.
func (f *Forest) leaf(i int32, x []float64) float64 {
	nodes := f.nodes
	for {
		n := &nodes[i]
		if n.child == i {
			return f.vals[i]
		}
		v := x[n.feat]
		next := n.child
		if !(v < n.thr) && (v >= n.thr || !f.dleft[i]) {
			next++
		}
		i = next
	}
}

// raw is head h's sum for x.
func (f *Forest) raw(h *fhead, x []float64) float64 {
	z := h.base
	for _, r := range h.roots {
		z += f.leaf(r, x)
	}
	return z
}

// link turns a head's raw sum into its prediction.
func link(loss Loss, z float64) float64 {
	if loss == LossLogistic {
		return 1 / (1 + math.Exp(-z))
	}
	return z
}

// ModelVersion implements Model.
func (f *Forest) ModelVersion() string { return f.model.Version }

// WithVersion implements Model.
func (f *Forest) WithVersion(v string) Model {
	g := *f
	g.model.Version = v
	return &g
}

// Validate implements Model: a Forest was checked when compiled.
func (f *Forest) Validate() error {
	if f == nil || len(f.heads) == 0 {
		return lr.Errorf(lr.EINVALID, "rerank tree model: empty")
	}
	return nil
}

// TreeModel returns the model f was compiled from (its slices shared: do
// not modify them).
func (f *Forest) TreeModel() TreeModel { return f.model }

// Score is the sum over heads of weight × prediction / scale (Model).
// Heads of weight 0 are not evaluated.
func (f *Forest) Score(x []float64) float64 {
	var s float64
	for i := range f.heads {
		h := &f.heads[i]
		if h.mul == 0 {
			continue
		}
		s += h.mul * link(h.loss, f.raw(h, x))
	}
	return s
}

// Predict is head obj's prediction for x (seconds for watch_seconds, a
// probability for the binary heads), false when the model has no such head.
func (f *Forest) Predict(obj Objective, x []float64) (float64, bool) {
	for i := range f.heads {
		if h := &f.heads[i]; h.obj == obj {
			return link(h.loss, f.raw(h, x)), true
		}
	}
	return 0, false
}

// PWatched is the watched head's probability (Model); 0.5 without one.
func (f *Forest) PWatched(x []float64) float64 {
	if f.watched < 0 {
		return 0.5
	}
	h := &f.heads[f.watched]
	return link(h.loss, f.raw(h, x))
}

// scoreBatch scores n vectors stored stride apart in xs into out, tree by
// tree (each tree stays in cache while every candidate goes through it);
// raw and idx are scratch of at least n. out[i] equals Score(x_i) exactly.
func (f *Forest) scoreBatch(xs []float64, stride, n int, out, raw []float64, idx []int32) {
	clear(out[:n])
	finite := true
	for _, v := range xs[:n*stride] {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			finite = false
			break
		}
	}
	for hi := range f.heads {
		h := &f.heads[hi]
		if h.mul == 0 {
			continue
		}
		for c := 0; c < n; c++ {
			raw[c] = h.base
		}
		for ti, r := range h.roots {
			if finite {
				f.walkAll(r, h.depth[ti], xs, stride, n, raw, idx)
				continue
			}
			for c := 0; c < n; c++ {
				raw[c] += f.leaf(r, xs[c*stride:(c+1)*stride])
			}
		}
		for c := 0; c < n; c++ {
			out[c] += h.mul * link(h.loss, raw[c])
		}
	}
}

// walkAll adds the tree rooted at r's output to raw for the n vectors of
// xs: every vector takes its first step, then every vector its second,
// and so on for depth steps, without a test for leaves (a leaf leads to
// itself) and without a branch on the data, so the walks of different
// vectors overlap in the processor. The vectors must be finite (NaN needs
// the default direction: Forest.leaf). idx is scratch of at least n.
func (f *Forest) walkAll(r, depth int32, xs []float64, stride, n int, raw []float64, idx []int32) {
	nodes := f.nodes
	idx = idx[:n]
	for c := range idx {
		idx[c] = r
	}
	for d := int32(0); d < depth; d++ {
		o := 0
		for c, i := range idx {
			nd := &nodes[i]
			idx[c] = nd.child + b2i(xs[o+int(nd.feat)] >= nd.thr)
			o += stride
		}
	}
	for c, i := range idx {
		raw[c] += f.vals[i]
	}
}

// b2i is 1 for true (compiled without a branch).
func b2i(b bool) int32 {
	var i int32
	if b {
		i = 1
	}
	return i
}

// Expected is the score of the model's average input: each head's raw sum
// taken at its trees' roots (Value of a root is the cover-weighted mean of
// its leaves). Score(x) = Expected() + the sum of Effects(x).
func (f *Forest) Expected() float64 {
	var s float64
	for i := range f.heads {
		h := &f.heads[i]
		s += h.mul * link(h.loss, h.expect)
	}
	return s
}

// Effects implements Model with path attribution (Saabas): along x's path
// in each tree, the change of node Value at a split is credited to the
// split's feature. The credits of a head sum to its raw sum minus its
// expected raw sum; they are carried into the score space by the head's
// secant slope (link(raw) - link(expected)) / (raw - expected) (the link's
// derivative when the two are equal) times weight / scale, so over all
// features they sum to Score(x) - Expected().
func (f *Forest) Effects(x, e []float64) {
	clear(e)
	var tmp [64]float64
	c := tmp[:0]
	if len(x) > len(tmp) {
		c = make([]float64, 0, len(x))
	}
	c = c[:len(x)]
	for hi := range f.heads {
		h := &f.heads[hi]
		if h.mul == 0 {
			continue
		}
		clear(c)
		z := h.base
		for _, r := range h.roots {
			i := r
			for {
				n := &f.nodes[i]
				if n.child == i {
					break
				}
				ft := n.feat
				v := x[ft]
				next := n.child
				if !(v < n.thr) && (v >= n.thr || !f.dleft[i]) {
					next++
				}
				c[ft] += f.vals[next] - f.vals[i]
				i = next
			}
			z += f.vals[i]
		}
		var slope float64
		switch {
		case h.loss == LossSquared:
			slope = 1
		case math.Abs(z-h.expect) > 1e-12:
			slope = (link(h.loss, z) - link(h.loss, h.expect)) / (z - h.expect)
		default:
			p := link(h.loss, z)
			slope = p * (1 - p)
		}
		for j := range c {
			e[j] += h.mul * slope * c[j]
		}
	}
}
