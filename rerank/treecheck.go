package rerank

import (
	"math"
	"slices"

	lr "github.com/liverecall/liverecall"
)

// Objectives are the objectives a tree model's head may predict.
var Objectives = []Objective{ObjWatched, ObjWatchSeconds, ObjGift, ObjFollow}

func knownObjective(o Objective) bool { return slices.Contains(Objectives, o) }

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// CheckFeatures checks that names, a model's feature order, equals
// FeatureNames or the prefix of it one of FeatureSets gives. On a mismatch
// the EINVALID error names the first differing position and both names
// (the model's first, "(none)" past an end).
func CheckFeatures(names []string) error {
	n := len(names)
	for i := 0; i < max(n, NumFeatures); i++ {
		got, want := "(none)", "(none)"
		if i < n {
			got = names[i]
		}
		if i < NumFeatures {
			want = FeatureNames[i]
		}
		if i >= n {
			// names is a proper prefix of FeatureNames: fine when it is
			// one of the earlier feature sets.
			if slices.Contains(FeatureSets, n) {
				return nil
			}
			return lr.Errorf(lr.EINVALID, "%d features, this build knows feature sets of %v: feature %d is %s here and %s in this build",
				n, FeatureSets, i, got, want)
		}
		if got != want {
			return lr.Errorf(lr.EINVALID, "feature %d is %q, this build's feature %d is %q (features are checked against rerank.FeatureNames in order)",
				i, got, i, want)
		}
	}
	return nil
}

// Validate checks m before it is stored, activated or served; a model that
// passes can be evaluated without bounds or termination checks. It
// returns an EINVALID error naming the head, tree and node at fault when:
// Algo is not "gbdt"; Features is neither FeatureNames nor a FeatureSets
// prefix of it; there is no head; a head's objective or loss is unknown
// or an objective has two heads; a weight (of an unknown objective, or not
// finite), a Base or a Scale (negative or not finite) is bad; a tree has
// no nodes or arrays of different lengths; a split's feature is out of
// range, its threshold not finite or a child index out of range; a node
// is not reached exactly once from the root (a cycle, a node shared by two
// parents, an orphan); a Value (leaf or inner) is not finite or a Cover
// is negative or not finite. Leaves' Left, Right, Threshold and
// DefaultLeft are not looked at. Validate reads m only; its receiver is
// a value so that a TreeModel and a *TreeModel both have it (CompileChecked
// finds it on a TreeModel value).
func (m TreeModel) Validate() error {
	if m.Algo != AlgoGBDT {
		return lr.Errorf(lr.EINVALID, "rerank model %q: algo %q, want %q", m.Version, m.Algo, AlgoGBDT)
	}
	if err := CheckFeatures(m.Features); err != nil {
		return lr.Errorf(lr.EINVALID, "rerank model %q: %s", m.Version, lr.ErrorMessage(err))
	}
	if len(m.Heads) == 0 {
		return lr.Errorf(lr.EINVALID, "rerank model %q has no heads", m.Version)
	}
	for o, w := range m.Weights {
		if !knownObjective(o) {
			return lr.Errorf(lr.EINVALID, "rerank model %q: weight of unknown objective %q (known: %v)", m.Version, o, Objectives)
		}
		if !finite(w) {
			return lr.Errorf(lr.EINVALID, "rerank model %q: weight of %q is %v", m.Version, o, w)
		}
	}
	seen := map[Objective]int{}
	for h := range m.Heads {
		hd := &m.Heads[h]
		if !knownObjective(hd.Objective) {
			return lr.Errorf(lr.EINVALID, "rerank model %q: head %d: unknown objective %q (known: %v)", m.Version, h, hd.Objective, Objectives)
		}
		if prev, dup := seen[hd.Objective]; dup {
			return lr.Errorf(lr.EINVALID, "rerank model %q: heads %d and %d both predict %q", m.Version, prev, h, hd.Objective)
		}
		seen[hd.Objective] = h
		if hd.Loss != LossLogistic && hd.Loss != LossSquared {
			return lr.Errorf(lr.EINVALID, "rerank model %q: head %q: unknown loss %q (want %q or %q)", m.Version, hd.Objective, hd.Loss, LossLogistic, LossSquared)
		}
		if !finite(hd.Base) {
			return lr.Errorf(lr.EINVALID, "rerank model %q: head %q: base is %v", m.Version, hd.Objective, hd.Base)
		}
		if !finite(hd.Scale) || hd.Scale < 0 {
			return lr.Errorf(lr.EINVALID, "rerank model %q: head %q: scale is %v (want a finite value > 0, or 0 for 1)", m.Version, hd.Objective, hd.Scale)
		}
		for t := range hd.Trees {
			if err := hd.Trees[t].check(len(m.Features)); err != nil {
				return lr.Errorf(lr.EINVALID, "rerank model %q: head %q tree %d: %s", m.Version, hd.Objective, t, err.Message)
			}
		}
	}
	return nil
}

// check validates one tree against nf features; see Validate.
func (t *Tree) check(nf int) *lr.Error {
	n := len(t.Feature)
	if n == 0 {
		return lr.Errorf(lr.EINVALID, "no nodes")
	}
	lens := []struct {
		name string
		n    int
	}{{"threshold", len(t.Threshold)}, {"default_left", len(t.DefaultLeft)}, {"left", len(t.Left)},
		{"right", len(t.Right)}, {"value", len(t.Value)}, {"cover", len(t.Cover)}}
	for _, l := range lens {
		if l.n != n {
			return lr.Errorf(lr.EINVALID, "%d feature entries but %d %s entries (all arrays must have one entry per node)", n, l.n, l.name)
		}
	}
	for i := 0; i < n; i++ {
		if !finite(t.Value[i]) {
			return lr.Errorf(lr.EINVALID, "node %d: value is %v", i, t.Value[i])
		}
		if !finite(t.Cover[i]) || t.Cover[i] < 0 {
			return lr.Errorf(lr.EINVALID, "node %d: cover is %v", i, t.Cover[i])
		}
		f := t.Feature[i]
		if f == -1 {
			continue
		}
		if f < 0 || int(f) >= nf {
			return lr.Errorf(lr.EINVALID, "node %d: split feature %d out of range [0, %d) (-1 marks a leaf)", i, f, nf)
		}
		if !finite(t.Threshold[i]) {
			return lr.Errorf(lr.EINVALID, "node %d: threshold is %v", i, t.Threshold[i])
		}
		for _, c := range []struct {
			side string
			c    int32
		}{{"left", t.Left[i]}, {"right", t.Right[i]}} {
			if c.c < 0 || int(c.c) >= n {
				return lr.Errorf(lr.EINVALID, "node %d: %s child %d out of range [0, %d)", i, c.side, c.c, n)
			}
		}
	}
	// Every node is reached exactly once from the root: a second arrival
	// is a cycle or a shared node, a node never reached an orphan.
	from := make([]int32, n) // the parent + 1 a node was first reached from; the root is marked -1
	from[0] = -1
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if t.Feature[i] == -1 {
			continue
		}
		for _, c := range []int32{t.Left[i], t.Right[i]} {
			if from[c] != 0 {
				for a := i; ; a = from[a] - 1 {
					if a == c {
						return lr.Errorf(lr.EINVALID, "node %d: child %d is its ancestor (a cycle)", i, c)
					}
					if a == 0 {
						break
					}
				}
				return lr.Errorf(lr.EINVALID, "node %d: child %d was already reached from node %d (a node shared by two parents)", i, c, from[c]-1)
			}
			from[c] = i + 1
			stack = append(stack, c)
		}
	}
	for i := 1; i < n; i++ {
		if from[i] == 0 {
			return lr.Errorf(lr.EINVALID, "node %d is not reached from the root (an orphan)", i)
		}
	}
	return nil
}
