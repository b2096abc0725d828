package rerank

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// GBDTConfig sets the histogram gradient-boosting trainer (TrainTrees).
// Zero fields take the defaults named.
type GBDTConfig struct {
	Trees          int     // most boosting rounds per head; default 200
	LearningRate   float64 // shrinkage of every leaf; default 0.1
	MaxLeaves      int     // leaves per tree (grown best split first); default 31
	MaxDepth       int     // depth limit (the root is depth 0); default 8
	MinChildWeight float64 // least hessian sum in a child; default 1
	Lambda         float64 // L2 penalty on leaf values; default 1
	Subsample      float64 // share of the training rows each tree sees, in (0, 1]; default 1
	EarlyStop      int     // stop a head after this many rounds without a better validation loss; default 20
	MaxBins        int     // histogram bins per feature, at most 255 (one is NaN's); default 255
	// WatchCap caps the watch seconds the watch_seconds head learns (and
	// is that head's Scale, so its weighted prediction lies in [0, 1]);
	// default 600.
	WatchCap float64
	// Weights of the objectives in the score; default
	// DefaultObjectiveWeights.
	Weights map[Objective]float64
	Seed    uint64
}

// DefaultObjectiveWeights are the score's weights of the objectives'
// (scaled) predictions when training sets none: watching counts most,
// watch time half as much (as a share of the cap), a gift or a follow
// 0.3 each. They are stored in the version's JSON ("weights") and can be
// edited there without retraining.
func DefaultObjectiveWeights() map[Objective]float64 {
	return map[Objective]float64{ObjWatched: 1, ObjWatchSeconds: 0.5, ObjGift: 0.3, ObjFollow: 0.3}
}

func (c *GBDTConfig) defaults() {
	if c.Trees <= 0 {
		c.Trees = 200
	}
	if c.LearningRate <= 0 {
		c.LearningRate = 0.1
	}
	if c.MaxLeaves < 2 {
		c.MaxLeaves = 31
	}
	if c.MaxDepth <= 0 {
		c.MaxDepth = 8
	}
	if c.MinChildWeight <= 0 {
		c.MinChildWeight = 1
	}
	if c.Lambda <= 0 {
		c.Lambda = 1
	}
	if c.Subsample <= 0 || c.Subsample > 1 {
		c.Subsample = 1
	}
	if c.EarlyStop <= 0 {
		c.EarlyStop = 20
	}
	if c.MaxBins <= 1 || c.MaxBins > 255 {
		c.MaxBins = 255
	}
	if c.WatchCap <= 0 {
		c.WatchCap = 600
	}
	if c.Weights == nil {
		c.Weights = DefaultObjectiveWeights()
	}
}

// TrainTrees fits one gradient-boosted tree ensemble per objective to
// train: watched, gift and follow with log loss, watch_seconds with
// squared loss on min(seconds, WatchCap)/WatchCap (its leaves and base are
// then multiplied by WatchCap, so the head predicts seconds, and its Scale
// is WatchCap). Each head stops early when its loss on valid (impressions
// later in time than train's) has not improved for EarlyStop rounds, and
// keeps the trees of its best round; with no valid samples every head
// grows Trees trees. A head whose label has one value only in train is
// skipped and said so in Notes, except watched: then TrainTrees fails
// (EINVALID), since versions are compared on it. The same samples, config
// and seed give the same model.
func TrainTrees(train, valid []Sample, cfg GBDTConfig) (TreeModel, error) {
	cfg.defaults()
	if len(train) == 0 {
		return TreeModel{}, errf("gbdt: no training samples")
	}
	for i, set := range [][]Sample{train, valid} {
		for _, s := range set {
			if len(s.X) != NumFeatures {
				return TreeModel{}, errf("gbdt: a %s sample has %d features, want %d", [2]string{"training", "validation"}[i], len(s.X), NumFeatures)
			}
		}
	}
	bn := newBinner(train, cfg.MaxBins)
	bins := bn.binAll(train)
	m := TreeModel{Algo: AlgoGBDT, Source: "liverecall", Features: slices.Clone(FeatureNames), Weights: map[Objective]float64{}}
	for k, v := range cfg.Weights {
		m.Weights[k] = v
	}
	objectives := []struct {
		obj   Objective
		loss  Loss
		label func(Sample) float64
	}{
		{ObjWatched, LossLogistic, func(s Sample) float64 { return b2f(s.Label) }},
		{ObjWatchSeconds, LossSquared, func(s Sample) float64 { return math.Min(math.Max(s.WatchSeconds, 0), cfg.WatchCap) / cfg.WatchCap }},
		{ObjGift, LossLogistic, func(s Sample) float64 { return b2f(s.Gift) }},
		{ObjFollow, LossLogistic, func(s Sample) float64 { return b2f(s.Follow) }},
	}
	for hi, o := range objectives {
		y, yv := make([]float64, len(train)), make([]float64, len(valid))
		for i, s := range train {
			y[i] = o.label(s)
		}
		for i, s := range valid {
			yv[i] = o.label(s)
		}
		if lo, hi := slices.Min(y), slices.Max(y); lo == hi {
			if o.obj == ObjWatched {
				return TreeModel{}, errf("gbdt: need impressions with both outcomes of %s to learn from: all %d are %v", o.obj, len(y), lo)
			}
			m.Notes = append(m.Notes, fmt.Sprintf("%s: every training impression has the label %v; head skipped", o.obj, lo))
			continue
		}
		g := &grower{cfg: &cfg, bins: bins, nf: NumFeatures, bn: bn, loss: o.loss, rng: rand.New(rand.NewPCG(cfg.Seed, uint64(hi)+1))}
		h := g.boost(y, valid, yv)
		h.Objective = o.obj
		if o.obj == ObjWatchSeconds {
			h.Base *= cfg.WatchCap
			for _, t := range h.Trees {
				for i := range t.Value {
					t.Value[i] *= cfg.WatchCap
				}
			}
			h.Scale = cfg.WatchCap
		}
		m.Heads = append(m.Heads, h)
	}
	return m, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// nanBin is the bin of a missing value.
const nanBin = 255

// binner maps feature values to histogram bins: cuts[f] ascending, a value
// v falls in bin k when cuts[f][k-1] <= v < cuts[f][k]; NaN in nanBin.
type binner struct{ cuts [][]float64 }

// newBinner chooses each feature's cuts at quantiles of its training
// values (every distinct value its own bin when there are few): at most
// maxBins-1 value bins, cuts halfway between neighbouring distinct values.
func newBinner(train []Sample, maxBins int) *binner {
	nf := len(train[0].X)
	b := &binner{cuts: make([][]float64, nf)}
	vals := make([]float64, 0, len(train))
	for f := 0; f < nf; f++ {
		vals = vals[:0]
		for _, s := range train {
			if v := s.X[f]; !math.IsNaN(v) {
				vals = append(vals, v)
			}
		}
		slices.Sort(vals)
		var distinct []float64
		var count []int
		for i, v := range vals {
			if i == 0 || v != vals[i-1] {
				distinct = append(distinct, v)
				count = append(count, 0)
			}
			count[len(count)-1]++
		}
		maxCuts := maxBins - 2 // value bins = cuts + 1; one bin is NaN's
		var cuts []float64
		per := float64(len(vals)) / float64(maxCuts+1)
		acc := 0
		for i := 0; i+1 < len(distinct); i++ {
			acc += count[i]
			if len(distinct) > maxCuts+1 && float64(acc) < per*float64(len(cuts)+1) {
				continue
			}
			mid := distinct[i] + (distinct[i+1]-distinct[i])/2
			if !(mid > distinct[i]) {
				mid = distinct[i+1]
			}
			cuts = append(cuts, mid)
			if len(cuts) == maxCuts {
				break
			}
		}
		b.cuts[f] = cuts
	}
	return b
}

// binAll returns the bins of every sample's features, row-major.
func (b *binner) binAll(samples []Sample) []uint8 {
	nf := len(b.cuts)
	out := make([]uint8, len(samples)*nf)
	for i, s := range samples {
		for f, v := range s.X {
			if math.IsNaN(v) {
				out[i*nf+f] = nanBin
				continue
			}
			out[i*nf+f] = uint8(sort.Search(len(b.cuts[f]), func(k int) bool { return b.cuts[f][k] > v }))
		}
	}
	return out
}

// hbin is one histogram bin: the gradient and hessian sums of its rows.
type hbin struct{ g, h float64 }

// gnode is a node while its tree grows.
type gnode struct {
	rows  []int32 // the rows that reach it (a window of grower.rows)
	g, h  float64
	depth int
	hist  []hbin // nf × 256, while it is a leaf that may split
	// The best split found: feature, first right bin, where NaN goes, gain.
	feat    int
	bin     int
	defLeft bool
	gain    float64
	// In the tree: children (-1: a leaf) and output.
	left, right int
	value       float64
}

// grower boosts one head.
type grower struct {
	cfg   *GBDTConfig
	bins  []uint8
	nf    int
	bn    *binner
	loss  Loss
	rng   *rand.Rand
	grad  []float64
	hess  []float64
	rows  []int32
	nodes []gnode
	free  [][]hbin
}

// boost grows a head for labels y (and validation labels yv of valid).
func (g *grower) boost(y []float64, valid []Sample, yv []float64) Head {
	n := len(y)
	var base float64
	for _, v := range y {
		base += v
	}
	base /= float64(n)
	if g.loss == LossLogistic {
		p := math.Min(math.Max(base, 1e-6), 1-1e-6)
		base = math.Log(p / (1 - p))
	}
	head := Head{Loss: g.loss, Base: base}
	pred := make([]float64, n)
	for i := range pred {
		pred[i] = base
	}
	pv := make([]float64, len(valid))
	for i := range pv {
		pv[i] = base
	}
	g.grad, g.hess = make([]float64, n), make([]float64, n)
	bestLoss, bestRound := g.lossOf(pv, yv), 0
	for round := 0; round < g.cfg.Trees; round++ {
		for i := range y {
			if g.loss == LossLogistic {
				p := 1 / (1 + math.Exp(-pred[i]))
				g.grad[i], g.hess[i] = p-y[i], math.Max(p*(1-p), 1e-16)
			} else {
				g.grad[i], g.hess[i] = pred[i]-y[i], 1
			}
		}
		g.rows = g.rows[:0]
		for i := 0; i < n; i++ {
			if g.cfg.Subsample >= 1 || g.rng.Float64() < g.cfg.Subsample {
				g.rows = append(g.rows, int32(i))
			}
		}
		if len(g.rows) == 0 {
			continue
		}
		t := g.grow()
		head.Trees = append(head.Trees, t)
		for i := range pred {
			pred[i] += g.leafOfBinned(i)
		}
		if len(valid) == 0 {
			continue
		}
		for i, s := range valid {
			pv[i] += treeLeaf(&t, s.X)
		}
		if l := g.lossOf(pv, yv); l < bestLoss {
			bestLoss, bestRound = l, round+1
		} else if round+1-bestRound >= g.cfg.EarlyStop {
			break
		}
	}
	if len(valid) > 0 {
		head.Trees = head.Trees[:bestRound]
	}
	return head
}

// lossOf is the mean loss of raw sums z for labels y (0 without samples).
func (g *grower) lossOf(z, y []float64) float64 {
	if len(z) == 0 {
		return 0
	}
	var s float64
	for i := range z {
		if g.loss == LossLogistic {
			// log(1+e^z) - y z, computed stably
			s += math.Max(z[i], 0) + math.Log1p(math.Exp(-math.Abs(z[i]))) - y[i]*z[i]
		} else {
			d := z[i] - y[i]
			s += d * d
		}
	}
	return s / float64(len(z))
}

// treeLeaf is the output of t for x (the serving rule, on the Tree arrays).
func treeLeaf(t *Tree, x []float64) float64 {
	i := 0
	for t.Feature[i] >= 0 {
		v := x[t.Feature[i]]
		switch {
		case v < t.Threshold[i]:
			i = int(t.Left[i])
		case v >= t.Threshold[i] || !t.DefaultLeft[i]:
			i = int(t.Right[i])
		default:
			i = int(t.Left[i])
		}
	}
	return t.Value[i]
}

// leafOfBinned is the output of the tree last grown for training row r.
func (g *grower) leafOfBinned(r int) float64 {
	i := 0
	row := g.bins[r*g.nf : (r+1)*g.nf]
	for g.nodes[i].left >= 0 {
		nd := &g.nodes[i]
		b := row[nd.feat]
		if (b == nanBin && nd.defLeft) || (b != nanBin && int(b) < nd.bin) {
			i = nd.left
		} else {
			i = nd.right
		}
	}
	return g.nodes[i].value
}

func (g *grower) newHist() []hbin {
	if k := len(g.free); k > 0 {
		h := g.free[k-1]
		g.free = g.free[:k-1]
		clear(h)
		return h
	}
	return make([]hbin, g.nf*256)
}

// fill sums the gradients of nd's rows into its histogram.
func (g *grower) fill(nd *gnode) {
	nd.hist = g.newHist()
	nf := g.nf
	h := nd.hist
	for _, r := range nd.rows {
		gr, hs := g.grad[r], g.hess[r]
		row := g.bins[int(r)*nf : int(r)*nf+nf]
		for f, b := range row {
			p := &h[f*256+int(b)]
			p.g += gr
			p.h += hs
		}
	}
}

// best finds nd's best split (gain 0: none).
func (g *grower) best(nd *gnode) {
	nd.gain = 0
	if nd.depth >= g.cfg.MaxDepth {
		return
	}
	lam, mcw := g.cfg.Lambda, g.cfg.MinChildWeight
	parent := nd.g * nd.g / (nd.h + lam)
	for f := 0; f < g.nf; f++ {
		hist := nd.hist[f*256 : f*256+256]
		nb := len(g.bn.cuts[f]) + 1
		miss := hist[nanBin]
		var gl, hl float64
		for t := 1; t < nb; t++ {
			gl += hist[t-1].g
			hl += hist[t-1].h
			// NaN to the right, then (when this node has NaNs) to the left.
			for k := 0; k < 2; k++ {
				lg, lh := gl, hl
				if k == 1 {
					if miss.h == 0 {
						break
					}
					lg, lh = gl+miss.g, hl+miss.h
				}
				rg, rh := nd.g-lg, nd.h-lh
				if lh < mcw || rh < mcw {
					continue
				}
				gain := lg*lg/(lh+lam) + rg*rg/(rh+lam) - parent
				if gain > nd.gain+1e-12 {
					dl := k == 1
					if miss.h == 0 {
						dl = lh >= rh // no missing value seen: NaN follows the bigger side
					}
					nd.gain, nd.feat, nd.bin, nd.defLeft = gain, f, t, dl
				}
			}
		}
	}
}

// grow grows one tree on g.rows, best leaf first, and returns it.
func (g *grower) grow() Tree {
	for _, nd := range g.nodes {
		if nd.hist != nil {
			g.free = append(g.free, nd.hist)
		}
	}
	g.nodes = g.nodes[:0]
	root := gnode{rows: g.rows, left: -1, right: -1}
	for _, r := range g.rows {
		root.g += g.grad[r]
		root.h += g.hess[r]
	}
	g.nodes = append(g.nodes, root)
	g.fill(&g.nodes[0])
	g.best(&g.nodes[0])
	leaves := 1
	for leaves < g.cfg.MaxLeaves {
		pick := -1
		for i := range g.nodes {
			if nd := &g.nodes[i]; nd.left < 0 && nd.gain > 0 && (pick < 0 || nd.gain > g.nodes[pick].gain) {
				pick = i
			}
		}
		if pick < 0 {
			break
		}
		g.split(pick)
		leaves++
	}
	lam, lr := g.cfg.Lambda, g.cfg.LearningRate
	t := Tree{}
	for i := range g.nodes {
		nd := &g.nodes[i]
		if nd.left < 0 {
			nd.value = -nd.g / (nd.h + lam) * lr
		}
	}
	// Inner values bottom up: children always come after their parent.
	for i := len(g.nodes) - 1; i >= 0; i-- {
		nd := &g.nodes[i]
		if nd.left >= 0 {
			l, r := &g.nodes[nd.left], &g.nodes[nd.right]
			if nd.h > 0 {
				nd.value = (l.h*l.value + r.h*r.value) / (l.h + r.h)
			} else {
				nd.value = (l.value + r.value) / 2
			}
		}
	}
	for i := range g.nodes {
		nd := &g.nodes[i]
		feat, thr := int32(-1), 0.0
		if nd.left >= 0 {
			feat, thr = int32(nd.feat), g.bn.cuts[nd.feat][nd.bin-1]
		}
		t.Feature = append(t.Feature, feat)
		t.Threshold = append(t.Threshold, thr)
		t.DefaultLeft = append(t.DefaultLeft, nd.left >= 0 && nd.defLeft)
		t.Left = append(t.Left, int32(nd.left))
		t.Right = append(t.Right, int32(nd.right))
		t.Value = append(t.Value, nd.value)
		t.Cover = append(t.Cover, nd.h)
	}
	return t
}

// split splits leaf i by its best split: its rows are partitioned in
// place, the smaller child's histogram is summed and the larger's is the
// parent's minus it.
func (g *grower) split(i int) {
	nd := &g.nodes[i]
	f, bin, dl := nd.feat, nd.bin, nd.defLeft
	rows := nd.rows
	lo, hi := 0, len(rows)
	for lo < hi { // stable enough: order within a child does not change sums' determinism
		b := g.bins[int(rows[lo])*g.nf+f]
		if (b == nanBin && dl) || (b != nanBin && int(b) < bin) {
			lo++
		} else {
			hi--
			rows[lo], rows[hi] = rows[hi], rows[lo]
		}
	}
	l := gnode{rows: rows[:lo], depth: nd.depth + 1, left: -1, right: -1}
	r := gnode{rows: rows[lo:], depth: nd.depth + 1, left: -1, right: -1}
	for _, x := range l.rows {
		l.g += g.grad[x]
		l.h += g.hess[x]
	}
	r.g, r.h = nd.g-l.g, nd.h-l.h
	small, large := &l, &r
	if len(r.rows) < len(l.rows) {
		small, large = &r, &l
	}
	g.fill(small)
	large.hist = nd.hist
	for f := 0; f < g.nf; f++ { // the bins in use: the value bins and NaN's
		lh, sh := large.hist[f*256:f*256+256], small.hist[f*256:f*256+256]
		for k := 0; k <= len(g.bn.cuts[f]); k++ {
			lh[k].g -= sh[k].g
			lh[k].h -= sh[k].h
		}
		lh[nanBin].g -= sh[nanBin].g
		lh[nanBin].h -= sh[nanBin].h
	}
	nd.hist = nil
	r.h = 0
	for _, x := range r.rows {
		r.h += g.hess[x]
	}
	r.g = 0
	for _, x := range r.rows {
		r.g += g.grad[x]
	}
	g.best(&l)
	g.best(&r)
	li := len(g.nodes)
	g.nodes = append(g.nodes, l, r)
	g.nodes[i].left, g.nodes[i].right = li, li+1
}
