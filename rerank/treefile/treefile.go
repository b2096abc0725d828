// Package treefile reads tree ensembles trained elsewhere — a LightGBM text
// model (Booster.save_model) or an XGBoost JSON model (save_model of a
// ".json" file) — into the reranker's own tree types (rerank.Tree,
// rerank.Head), so that a team that trains trees in Python can serve them
// here. Each file becomes one head (one objective); Assemble puts heads
// and their weights together into a rerank.TreeModel and validates it.
//
// What a file must be: a single-output boosted ensemble of numerical
// splits whose objective is binary log loss (LightGBM "binary", XGBoost
// "binary:logistic": the head's loss is logistic) or squared error
// (LightGBM "regression", XGBoost "reg:squarederror": squared), over
// features named exactly as rerank.FeatureNames, in that order (or a
// rerank.FeatureSets prefix of it). Anything else — other objectives,
// several classes or targets, categorical splits, linear trees, random
// forest averaging, a feature order that differs — is refused with an
// EINVALID error naming the file (and the tree and node when one is at
// fault); nothing is guessed.
//
// Splits are converted exactly: LightGBM's "x <= t" becomes "x < the next
// float64 above t"; XGBoost compares the feature rounded to float32 with a
// float32 condition c, which becomes "x < the smallest float64 that
// rounds to c or above". Missing values (NaN) follow each split's default
// direction, as the libraries do (see ReadLightGBM for its missing types).
// Inner nodes' Cover and Value are recomputed from the leaves (hessian
// sums, or counts without them; the cover-weighted mean), as rerank.Tree
// defines them.
package treefile

import (
	"math"
	"slices"
	"strings"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// Formats.
const (
	LightGBM = "lightgbm"
	XGBoost  = "xgboost"
)

// Options say how a file is read.
type Options struct {
	// Objective is the objective the file's model predicts, i.e. the head
	// it becomes; "" means rerank.ObjWatched. A binary objective
	// (watched, gift, follow) needs a logistic model, watch_seconds a
	// squared-error one.
	Objective rerank.Objective
	// TrustOrder accepts a file without feature names (LightGBM's
	// Column_0, Column_1, ... or an XGBoost model without feature_names)
	// as being in rerank.FeatureNames order; its feature count must still
	// be one of rerank.FeatureSets. Without it such a file is refused.
	TrustOrder bool
}

// File is one model file read: the head it becomes and the feature order
// its trees index (FeatureNames or a FeatureSets prefix of it).
type File struct {
	Name     string
	Format   string
	Features []string
	Head     rerank.Head
}

// Read reads data, the contents of the file called name, in format
// (LightGBM or XGBoost).
func Read(format, name string, data []byte, opt Options) (*File, error) {
	switch format {
	case LightGBM:
		return ReadLightGBM(name, data, opt)
	case XGBoost:
		return ReadXGBoost(name, data, opt)
	}
	return nil, lr.Errorf(lr.EINVALID, "%s: unknown model format %q (want %q or %q)", name, format, LightGBM, XGBoost)
}

// DefaultWatchScale is the Scale a watch_seconds head gets when none is
// given: 600 seconds, the cap the in-process trainer uses by default
// (train --rerank-watch-cap), so that its prediction / scale lies in
// [0, 1] like the binary heads' for watches up to ten minutes.
const DefaultWatchScale = 600

// Assemble builds the tree model of version from files (one head each,
// objectives distinct) with weights per objective (an objective without a
// weight gets rerank.DefaultObjectiveWeights') and scales (Head.Scale; a
// watch_seconds head without one gets DefaultWatchScale, another head 0,
// i.e. 1), and validates it. Its Features are the longest of the files'
// feature orders (all are prefixes of FeatureNames, so every head's
// indices stay valid); its Source is the files' formats joined by "+".
func Assemble(version string, files []*File, weights, scales map[rerank.Objective]float64) (*rerank.TreeModel, error) {
	if len(files) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "no model files")
	}
	m := &rerank.TreeModel{Version: version, Algo: rerank.AlgoGBDT, Weights: map[rerank.Objective]float64{}}
	var sources []string
	for _, f := range files {
		if len(f.Features) > len(m.Features) {
			m.Features = f.Features
		}
		if !slices.Contains(sources, f.Format) {
			sources = append(sources, f.Format)
		}
		h := f.Head
		h.Scale = scales[h.Objective]
		if _, ok := scales[h.Objective]; !ok && h.Objective == rerank.ObjWatchSeconds {
			h.Scale = DefaultWatchScale
		}
		m.Heads = append(m.Heads, h)
		m.Weights[h.Objective] = rerank.DefaultObjectiveWeights()[h.Objective]
	}
	m.Source = strings.Join(sources, "+")
	for o, w := range weights {
		if !headFor(m, o) {
			return nil, lr.Errorf(lr.EINVALID, "a weight for %q, which no model file predicts", o)
		}
		m.Weights[o] = w
	}
	for o := range scales {
		if !headFor(m, o) {
			return nil, lr.Errorf(lr.EINVALID, "a scale for %q, which no model file predicts", o)
		}
	}
	for i, f := range files {
		for _, g := range files[:i] {
			if g.Head.Objective == f.Head.Objective {
				return nil, lr.Errorf(lr.EINVALID, "%s and %s both predict %q", g.Name, f.Name, f.Head.Objective)
			}
		}
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

func headFor(m *rerank.TreeModel, o rerank.Objective) bool {
	return slices.ContainsFunc(m.Heads, func(h rerank.Head) bool { return h.Objective == o })
}

// headObjective checks that the objective opt names fits the file's loss and
// returns the head's objective.
func headObjective(name string, opt Options, loss rerank.Loss, fileObjective string) (rerank.Objective, error) {
	o := opt.Objective
	if o == "" {
		o = rerank.ObjWatched
	}
	if !slices.Contains(rerank.Objectives, o) {
		return "", lr.Errorf(lr.EINVALID, "%s: unknown objective %q (known: %v)", name, o, rerank.Objectives)
	}
	want := rerank.LossLogistic
	if o == rerank.ObjWatchSeconds {
		want = rerank.LossSquared
	}
	if loss != want {
		return "", lr.Errorf(lr.EINVALID, "%s: objective %q is predicted with %s loss, the file's model was trained with %q (%s)", name, o, want, fileObjective, loss)
	}
	return o, nil
}

// features checks a file's feature names against rerank.FeatureNames.
// names nil (or the library's placeholder names) means the file has none:
// accepted only with opt.TrustOrder, as FeatureNames[:n].
func features(name string, names []string, n int, opt Options) ([]string, error) {
	if names == nil {
		if !opt.TrustOrder {
			return nil, lr.Errorf(lr.EINVALID, "%s: the model has no feature names (train on a DataFrame whose columns are rerank.FeatureNames, or pass the flag that trusts the column order)", name)
		}
		if n > rerank.NumFeatures || !slices.Contains(rerank.FeatureSets, n) {
			return nil, lr.Errorf(lr.EINVALID, "%s: the model has %d unnamed features; this build's feature sets have %v", name, n, rerank.FeatureSets)
		}
		return rerank.FeatureNames[:n:n], nil
	}
	if err := rerank.CheckFeatures(names); err != nil {
		return nil, lr.Errorf(lr.EINVALID, "%s: %s", name, lr.ErrorMessage(err))
	}
	return names, nil
}

// fillInner sets the Cover and Value of t's inner nodes from its leaves:
// the cover is the sum of the children's, the value their cover-weighted
// mean (the plain mean when both covers are 0). A malformed tree (a
// child out of range, a cycle) is left for Validate to refuse.
func fillInner(t *rerank.Tree) {
	n := int32(len(t.Feature))
	in := func(c int32) bool { return c >= 0 && c < n }
	state := make([]uint8, n) // 0 not seen, 1 children pending, 2 done
	stack := []int32{0}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		if t.Feature[i] == -1 || state[i] == 2 {
			state[i] = 2
			stack = stack[:len(stack)-1]
			continue
		}
		l, r := t.Left[i], t.Right[i]
		if state[i] == 0 {
			state[i] = 1
			for _, c := range []int32{l, r} {
				if in(c) && state[c] == 0 {
					stack = append(stack, c)
				}
			}
			continue
		}
		state[i] = 2
		stack = stack[:len(stack)-1]
		if !in(l) || !in(r) {
			continue
		}
		cl, cr := t.Cover[l], t.Cover[r]
		t.Cover[i] = cl + cr
		if cl+cr > 0 {
			t.Value[i] = (t.Value[l]*cl + t.Value[r]*cr) / (cl + cr)
		} else {
			t.Value[i] = (t.Value[l] + t.Value[r]) / 2
		}
	}
}

// fileErr prefixes an error of Validate (or any coded error) with the
// file's name.
func fileErr(name string, err error, note string) error {
	if err == nil {
		return nil
	}
	msg := lr.ErrorMessage(err)
	if note != "" {
		msg += " (" + note + ")"
	}
	return lr.Errorf(lr.ErrorCode(err), "%s: %s", name, msg)
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
