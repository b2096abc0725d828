package treefile

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// kZeroThreshold is LightGBM's "is zero" bound (1e-35 as a float32):
// |x| <= it counts as zero for a split whose missing type is Zero.
var kZeroThreshold = float64(float32(1e-35))

// LightGBM's placeholder names of a model trained without column names.
var lgbPlaceholder = regexp.MustCompile(`^Column_([0-9]+)$`)

// ReadLightGBM reads a LightGBM text model: a header ("tree", then
// key=value lines: num_class, num_tree_per_iteration, max_feature_idx,
// objective, feature_names, ...) and one "Tree=i" block per tree
// (num_leaves, num_cat, split_feature, threshold, decision_type,
// left_child, right_child — a negative child c is leaf ^c —, leaf_value,
// leaf_weight, leaf_count, is_linear, shrinkage), then sections it
// ignores (feature importances, parameters).
//
// Leaf values are read as stored (the shrinkage is already applied to
// them); a "binary sigmoid:s" objective with s != 1 has its leaves
// multiplied by s (LightGBM predicts sigmoid(s × sum)). A split's
// decision_type holds the categorical bit (refused), the default-left
// bit and the missing type, which decide where NaN goes: missing type
// NaN sends it the default way; None replaces it with 0 first, so it goes
// the way 0 compares; Zero sends NaN and every |x| <= 1e-35 the default
// way, which "<" can express only when 0 compares that way too (default
// left and threshold >= 1e-35, or default right and threshold < -1e-35) —
// other Zero splits are refused (retrain with zero_as_missing=false).
func ReadLightGBM(name string, data []byte, opt Options) (*File, error) {
	errf := func(format string, args ...any) error {
		return lr.Errorf(lr.EINVALID, "%s: %s", name, fmt.Sprintf(format, args...))
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	k := 0
	for k < len(lines) && strings.TrimSpace(lines[k]) == "" {
		k++
	}
	if k == len(lines) || strings.TrimSpace(lines[k]) != "tree" {
		first := ""
		if k < len(lines) {
			first = lines[k]
			if len(first) > 40 {
				first = first[:40] + "..."
			}
		}
		return nil, errf("not a LightGBM text model (its first line is %q, want \"tree\"; save it with Booster.save_model)", first)
	}
	k++
	header := map[string]string{}
	for ; k < len(lines) && !strings.HasPrefix(lines[k], "Tree="); k++ {
		l := lines[k]
		if l == "" {
			continue
		}
		key, val, _ := strings.Cut(l, "=")
		header[key] = val
	}
	for _, key := range []string{"num_class", "max_feature_idx", "feature_names"} {
		if _, ok := header[key]; !ok {
			return nil, errf("header has no %s line", key)
		}
	}
	if v := header["num_class"]; v != "1" {
		return nil, errf("num_class=%s: only single-output models (binary or regression) are served", v)
	}
	if v, ok := header["num_tree_per_iteration"]; ok && v != "1" {
		return nil, errf("num_tree_per_iteration=%s: only one tree per iteration is served", v)
	}
	if _, ok := header["average_output"]; ok {
		return nil, errf("average_output: a random forest (boosting=rf) averages its trees; only boosted sums are served")
	}
	maxIdx, err := strconv.Atoi(header["max_feature_idx"])
	if err != nil || maxIdx < 0 {
		return nil, errf("max_feature_idx=%q is not a feature index", header["max_feature_idx"])
	}
	nf := maxIdx + 1
	names := strings.Fields(header["feature_names"])
	if len(names) != nf {
		return nil, errf("%d feature_names for max_feature_idx=%d", len(names), maxIdx)
	}
	placeholder := true
	for i, n := range names {
		if m := lgbPlaceholder.FindStringSubmatch(n); m == nil || m[1] != strconv.Itoa(i) {
			placeholder = false
		}
	}
	if placeholder {
		names = nil
	}
	feats, err := features(name, names, nf, opt)
	if err != nil {
		return nil, err
	}

	obj, ok := header["objective"]
	if !ok {
		return nil, errf("header has no objective line (a custom objective?): only binary and regression are served")
	}
	of := strings.Fields(obj)
	if len(of) == 0 {
		return nil, errf("empty objective")
	}
	var loss rerank.Loss
	sigmoid := 1.0
	switch of[0] {
	case "binary":
		loss = rerank.LossLogistic
		for _, p := range of[1:] {
			if v, ok := strings.CutPrefix(p, "sigmoid:"); ok {
				s, err := strconv.ParseFloat(v, 64)
				if err != nil || !finite(s) || s <= 0 {
					return nil, errf("objective=%s: bad sigmoid %q", obj, v)
				}
				sigmoid = s
			}
		}
	case "regression":
		loss = rerank.LossSquared
		if len(of) > 1 {
			return nil, errf("objective=%s: a regression with %q (e.g. sqrt transforms the label) is not served", obj, strings.Join(of[1:], " "))
		}
	default:
		return nil, errf("objective=%s: only binary (log loss) and regression (squared error) are served", obj)
	}
	o, err := headObjective(name, opt, loss, obj)
	if err != nil {
		return nil, err
	}
	head := rerank.Head{Objective: o, Loss: loss}

	for k < len(lines) {
		l := lines[k]
		if l == "" {
			k++
			continue
		}
		id, isTree := strings.CutPrefix(l, "Tree=")
		if !isTree {
			break // "end of trees", feature importances, parameters
		}
		if id != strconv.Itoa(len(head.Trees)) {
			return nil, errf("block %q where Tree=%d was expected", l, len(head.Trees))
		}
		k++
		kv := map[string]string{}
		for ; k < len(lines) && lines[k] != ""; k++ {
			key, val, _ := strings.Cut(lines[k], "=")
			kv[key] = val
		}
		t, err := lgbTree(kv, nf, sigmoid)
		if err != nil {
			return nil, errf("Tree=%d: %s", len(head.Trees), err)
		}
		head.Trees = append(head.Trees, t)
	}
	if len(head.Trees) == 0 {
		return nil, errf("no trees")
	}
	one := rerank.TreeModel{Version: name, Algo: rerank.AlgoGBDT, Features: feats, Heads: []rerank.Head{head}}
	if err := one.Validate(); err != nil {
		return nil, fileErr(name, err, "nodes are numbered as LightGBM's splits 0..num_leaves-2, then its leaves: leaf k is node num_leaves-1+k")
	}
	return &File{Name: name, Format: LightGBM, Features: feats, Head: head}, nil
}

// lgbTree converts one Tree= block; its errors name the split or leaf by
// LightGBM's numbering.
func lgbTree(kv map[string]string, nf int, sigmoid float64) (rerank.Tree, error) {
	var t rerank.Tree
	nl, err := strconv.Atoi(kv["num_leaves"])
	if err != nil || nl < 1 {
		return t, fmt.Errorf("num_leaves=%q is not a count of leaves", kv["num_leaves"])
	}
	if v := kv["num_cat"]; v != "" && v != "0" {
		return t, fmt.Errorf("num_cat=%s: categorical splits are not served (train with the feature as numerical)", v)
	}
	if v := kv["is_linear"]; v != "" && v != "0" {
		return t, fmt.Errorf("is_linear=%s: linear trees are not served", v)
	}
	ns := nl - 1
	leafValue, err := floats(kv, "leaf_value", nl, true)
	if err != nil {
		return t, err
	}
	for i, v := range leafValue {
		if !finite(v) {
			return t, fmt.Errorf("leaf %d: leaf_value is %v", i, v)
		}
	}
	cover, err := floats(kv, "leaf_weight", nl, false)
	if err != nil {
		return t, err
	}
	if cover == nil {
		if cover, err = floats(kv, "leaf_count", nl, false); err != nil {
			return t, err
		}
	}
	if cover == nil {
		cover = make([]float64, nl)
	}
	for i, c := range cover {
		if !finite(c) || c < 0 {
			return t, fmt.Errorf("leaf %d: weight (cover) is %v", i, c)
		}
	}
	n := ns + nl
	t = rerank.Tree{Feature: make([]int32, n), Threshold: make([]float64, n), DefaultLeft: make([]bool, n),
		Left: make([]int32, n), Right: make([]int32, n), Value: make([]float64, n), Cover: make([]float64, n)}
	for k := 0; k < nl; k++ {
		t.Feature[ns+k] = -1
		t.Value[ns+k] = leafValue[k] * sigmoid
		t.Cover[ns+k] = cover[k]
	}
	if ns == 0 {
		return t, nil
	}
	var feat, dt, left, right []int
	for _, f := range []struct {
		key string
		dst *[]int
	}{{"split_feature", &feat}, {"decision_type", &dt}, {"left_child", &left}, {"right_child", &right}} {
		if *f.dst, err = ints(kv, f.key, ns); err != nil {
			return t, err
		}
	}
	threshold, err := floats(kv, "threshold", ns, true)
	if err != nil {
		return t, err
	}
	child := func(i int, side string, c int) (int32, error) {
		if c >= 0 {
			if c >= ns {
				return 0, fmt.Errorf("split %d: %s %d is not a split (there are %d)", i, side, c, ns)
			}
			return int32(c), nil
		}
		if ^c >= nl {
			return 0, fmt.Errorf("split %d: %s %d is leaf %d, there are %d leaves", i, side, c, ^c, nl)
		}
		return int32(ns + ^c), nil
	}
	for i := 0; i < ns; i++ {
		if feat[i] < 0 || feat[i] >= nf {
			return t, fmt.Errorf("split %d: split_feature %d out of range [0, %d)", i, feat[i], nf)
		}
		th := threshold[i]
		if !finite(th) {
			return t, fmt.Errorf("split %d: threshold is %v", i, th)
		}
		d := dt[i]
		if d&1 != 0 {
			return t, fmt.Errorf("split %d: categorical split (decision_type %d): not served (train with the feature as numerical)", i, d)
		}
		defLeft := d&2 != 0
		switch missing := (d >> 2) & 3; missing {
		case 0: // None: NaN is replaced by 0
			defLeft = 0 <= th
		case 1: // Zero: NaN and |x| <= kZeroThreshold go the default way
			if !(defLeft && th >= kZeroThreshold) && !(!defLeft && th < -kZeroThreshold) {
				return t, fmt.Errorf("split %d: zero-as-missing split (decision_type %d, threshold %v) sends zero against its threshold, which this evaluator cannot express (retrain with zero_as_missing=false)", i, d, th)
			}
		case 2: // NaN: NaN goes the default way
		default:
			return t, fmt.Errorf("split %d: unknown missing type in decision_type %d", i, d)
		}
		l, err := child(i, "left_child", left[i])
		if err != nil {
			return t, err
		}
		r, err := child(i, "right_child", right[i])
		if err != nil {
			return t, err
		}
		t.Feature[i] = int32(feat[i])
		t.Threshold[i] = math.Nextafter(th, math.Inf(1)) // x <= th  <=>  x < next float64 above th
		t.DefaultLeft[i] = defLeft
		t.Left[i], t.Right[i] = l, r
	}
	fillInner(&t)
	return t, nil
}

// floats parses the n space-separated numbers of kv[key]; a missing key is
// an error when required, else nil.
func floats(kv map[string]string, key string, n int, required bool) ([]float64, error) {
	v, ok := kv[key]
	if !ok {
		if required {
			return nil, fmt.Errorf("no %s line", key)
		}
		return nil, nil
	}
	f := strings.Fields(v)
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]float64, n)
	for i, s := range f {
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%s value %d: %q is not a number", key, i, s)
		}
		out[i] = x
	}
	return out, nil
}

func ints(kv map[string]string, key string, n int) ([]int, error) {
	v, ok := kv[key]
	if !ok {
		return nil, fmt.Errorf("no %s line", key)
	}
	f := strings.Fields(v)
	if len(f) != n {
		return nil, fmt.Errorf("%s has %d values, want %d", key, len(f), n)
	}
	out := make([]int, n)
	for i, s := range f {
		x, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%s value %d: %q is not an integer", key, i, s)
		}
		out[i] = x
	}
	return out, nil
}
