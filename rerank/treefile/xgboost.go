package treefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// The parts of an XGBoost JSON model (doc/model.schema) that are read.
type xgbModel struct {
	Learner *struct {
		FeatureNames      []string `json:"feature_names"`
		LearnerModelParam struct {
			BaseScore  string `json:"base_score"`
			NumClass   string `json:"num_class"`
			NumFeature string `json:"num_feature"`
			NumTarget  string `json:"num_target"`
		} `json:"learner_model_param"`
		Objective struct {
			Name string `json:"name"`
		} `json:"objective"`
		GradientBooster struct {
			Name       string                      `json:"name"`
			Model      *xgbGBTree                  `json:"model"`       // gbtree
			GBTree     *struct{ Model *xgbGBTree } `json:"gbtree"`      // dart
			WeightDrop []xgbFloat                  `json:"weight_drop"` // dart
		} `json:"gradient_booster"`
	} `json:"learner"`
}

type xgbGBTree struct {
	Trees    []xgbTree `json:"trees"`
	TreeInfo []int     `json:"tree_info"`
}

type xgbTree struct {
	TreeParam struct {
		NumNodes       string `json:"num_nodes"`
		NumDeleted     string `json:"num_deleted"`
		SizeLeafVector string `json:"size_leaf_vector"`
	} `json:"tree_param"`
	LeftChildren    []int64    `json:"left_children"`
	RightChildren   []int64    `json:"right_children"`
	SplitIndices    []int64    `json:"split_indices"`
	SplitConditions []xgbFloat `json:"split_conditions"`
	SplitType       []int      `json:"split_type"`
	DefaultLeft     []xgbBool  `json:"default_left"`
	SumHessian      []xgbFloat `json:"sum_hessian"`
}

// xgbFloat is a number, or one of the strings the sanitizer makes of
// XGBoost's non-JSON NaN, Infinity and -Infinity.
type xgbFloat float64

func (f *xgbFloat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = xgbFloat(math.NaN())
	case `"Infinity"`:
		*f = xgbFloat(math.Inf(1))
	case `"-Infinity"`:
		*f = xgbFloat(math.Inf(-1))
	default:
		x, err := strconv.ParseFloat(string(b), 64)
		if err != nil {
			return fmt.Errorf("%s is not a number", b)
		}
		*f = xgbFloat(x)
	}
	return nil
}

// xgbBool is default_left's element: 0/1 (most versions) or a JSON bool.
type xgbBool bool

func (v *xgbBool) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case "0", "false":
		*v = false
	case "1", "true":
		*v = true
	default:
		return fmt.Errorf("default_left element %s is not 0, 1, true or false", b)
	}
	return nil
}

// sanitize quotes the bare NaN, Infinity and -Infinity that XGBoost
// writes for non-finite numbers (not JSON), outside strings, so that the
// model decodes and the non-finite value is refused naming its tree and
// node.
func sanitize(b []byte) []byte {
	var out bytes.Buffer
	inStr, esc := false, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		if inStr {
			out.WriteByte(c)
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
			continue
		}
		if c == '"' {
			inStr = true
			out.WriteByte(c)
			continue
		}
		quoted := false
		for _, tok := range []string{"-Infinity", "Infinity", "NaN"} {
			if bytes.HasPrefix(b[i:], []byte(tok)) {
				out.WriteString(`"` + tok + `"`)
				i += len(tok) - 1
				quoted = true
				break
			}
		}
		if !quoted {
			out.WriteByte(c)
		}
	}
	return out.Bytes()
}

// ReadXGBoost reads an XGBoost JSON model (Booster.save_model("m.json")):
// learner.feature_names, learner.learner_model_param.base_score,
// learner.objective.name and learner.gradient_booster (gbtree, or dart
// whose trees are scaled by their weight_drop) with its trees' flat
// arrays: a node is a leaf when its left child is -1, and then its
// split_condition is its value; otherwise feature split_indices goes
// left when below split_condition, and a missing value (NaN) goes left
// when default_left. sum_hessian is the cover.
//
// XGBoost compares the feature as a float32; the threshold stored here is
// the smallest float64 that rounds to the condition or above, so "x < t"
// here decides as XGBoost does for every float64 x. base_score is the
// prediction before any tree: for binary:logistic a probability, stored as
// its margin logit(p); for reg:squarederror the value itself. A "[v]"
// base_score (XGBoost 3.1 writes a vector) is read as v. Nodes deleted by
// pruning (tree_param.num_deleted, exact method) are dropped.
func ReadXGBoost(name string, data []byte, opt Options) (*File, error) {
	errf := func(format string, args ...any) error {
		return lr.Errorf(lr.EINVALID, "%s: %s", name, fmt.Sprintf(format, args...))
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '[' {
		return nil, errf("a JSON array: this is a dump (Booster.dump_model), which has neither base_score nor the objective, so it cannot score as the model did; save the model with Booster.save_model(\"model.json\")")
	}
	var m xgbModel
	if err := json.Unmarshal(sanitize(data), &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, errf("not JSON (byte %d: %v); save the model with Booster.save_model(\"model.json\")", se.Offset, err)
		}
		return nil, errf("not an XGBoost JSON model: %v", err)
	}
	if m.Learner == nil {
		return nil, errf("no learner object: not an XGBoost JSON model (save it with Booster.save_model(\"model.json\"))")
	}
	L := m.Learner
	p := L.LearnerModelParam
	if v := p.NumClass; v != "" && v != "0" && v != "1" {
		return nil, errf("num_class=%s: only single-output models (binary or regression) are served", v)
	}
	if v := p.NumTarget; v != "" && v != "1" {
		return nil, errf("num_target=%s: only single-output models are served", v)
	}
	nf, err := strconv.Atoi(p.NumFeature)
	if err != nil || nf < 1 {
		return nil, errf("learner_model_param.num_feature=%q is not a feature count", p.NumFeature)
	}
	names := L.FeatureNames
	if len(names) == 0 {
		names = nil
	} else if len(names) != nf {
		return nil, errf("%d feature_names for num_feature=%d", len(names), nf)
	}
	feats, err := features(name, names, nf, opt)
	if err != nil {
		return nil, err
	}

	var loss rerank.Loss
	switch L.Objective.Name {
	case "binary:logistic":
		loss = rerank.LossLogistic
	case "reg:squarederror":
		loss = rerank.LossSquared
	default:
		return nil, errf("objective %q: only binary:logistic and reg:squarederror are served", L.Objective.Name)
	}
	o, err := headObjective(name, opt, loss, L.Objective.Name)
	if err != nil {
		return nil, err
	}
	bs := strings.TrimSpace(p.BaseScore)
	if strings.HasPrefix(bs, "[") && strings.HasSuffix(bs, "]") {
		bs = strings.TrimSpace(bs[1 : len(bs)-1])
		if strings.Contains(bs, ",") {
			return nil, errf("base_score %s has several values: only single-output models are served", p.BaseScore)
		}
	}
	base, err := strconv.ParseFloat(bs, 32) // a float32 in XGBoost
	if err != nil || !finite(base) {
		return nil, errf("base_score %q is not a number", p.BaseScore)
	}
	if loss == rerank.LossLogistic {
		if base <= 0 || base >= 1 {
			return nil, errf("base_score %v of binary:logistic is not a probability in (0, 1)", base)
		}
		base = math.Log(base / (1 - base))
	}
	head := rerank.Head{Objective: o, Loss: loss, Base: base}

	gb := L.GradientBooster
	var model *xgbGBTree
	var drop []xgbFloat
	switch gb.Name {
	case "gbtree", "":
		model = gb.Model
	case "dart":
		if gb.GBTree != nil {
			model = gb.GBTree.Model
		}
		drop = gb.WeightDrop
	default:
		return nil, errf("gradient_booster %q: only tree boosters (gbtree, dart) are served", gb.Name)
	}
	if model == nil || len(model.Trees) == 0 {
		return nil, errf("no trees")
	}
	if drop != nil && len(drop) != len(model.Trees) {
		return nil, errf("dart: %d weight_drop values for %d trees", len(drop), len(model.Trees))
	}
	for i, g := range model.TreeInfo {
		if g != 0 {
			return nil, errf("tree %d belongs to output group %d: only single-output models are served", i, g)
		}
	}
	for i := range model.Trees {
		scale := 1.0
		if drop != nil {
			scale = float64(drop[i])
			if !finite(scale) {
				return nil, errf("tree %d: weight_drop is %v", i, scale)
			}
		}
		t, err := xgbConvert(&model.Trees[i], nf, scale)
		if err != nil {
			return nil, errf("tree %d: %s", i, err)
		}
		head.Trees = append(head.Trees, t)
	}
	one := rerank.TreeModel{Version: name, Algo: rerank.AlgoGBDT, Features: feats, Heads: []rerank.Head{head}}
	if err := one.Validate(); err != nil {
		return nil, fileErr(name, err, "")
	}
	return &File{Name: name, Format: XGBoost, Features: feats, Head: head}, nil
}

// xgbConvert converts one tree; its errors name XGBoost's node ids.
func xgbConvert(x *xgbTree, nf int, scale float64) (rerank.Tree, error) {
	var t rerank.Tree
	n := len(x.LeftChildren)
	if n == 0 {
		return t, fmt.Errorf("no nodes")
	}
	if v := x.TreeParam.SizeLeafVector; v != "" && v != "0" && v != "1" {
		return t, fmt.Errorf("size_leaf_vector=%s: vector leaves (multi-target trees) are not served", v)
	}
	if v := x.TreeParam.NumNodes; v != "" && v != strconv.Itoa(n) {
		return t, fmt.Errorf("num_nodes=%s but %d left_children", v, n)
	}
	for _, a := range []struct {
		key string
		n   int
	}{{"right_children", len(x.RightChildren)}, {"split_indices", len(x.SplitIndices)},
		{"split_conditions", len(x.SplitConditions)}, {"default_left", len(x.DefaultLeft)}} {
		if a.n != n {
			return t, fmt.Errorf("%d %s for %d nodes", a.n, a.key, n)
		}
	}
	if x.SplitType != nil && len(x.SplitType) != n {
		return t, fmt.Errorf("%d split_type for %d nodes", len(x.SplitType), n)
	}
	if x.SumHessian != nil && len(x.SumHessian) != n {
		return t, fmt.Errorf("%d sum_hessian for %d nodes", len(x.SumHessian), n)
	}
	// Drop the nodes pruning deleted: they are not reached from the root
	// and their count is num_deleted. Any other unreached node is kept for
	// Validate to refuse.
	keep := make([]int32, n) // new index + 1; 0: dropped
	for i := range keep {
		keep[i] = int32(i) + 1
	}
	if nd, _ := strconv.Atoi(x.TreeParam.NumDeleted); nd > 0 {
		reached := make([]bool, n)
		stack := []int64{0}
		for len(stack) > 0 {
			i := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if i < 0 || i >= int64(n) || reached[i] {
				continue
			}
			reached[i] = true
			if x.LeftChildren[i] != -1 {
				stack = append(stack, x.LeftChildren[i], x.RightChildren[i])
			}
		}
		unreached := 0
		for _, r := range reached {
			if !r {
				unreached++
			}
		}
		if unreached == nd {
			k := int32(0)
			for i, r := range reached {
				keep[i] = 0
				if r {
					k++
					keep[i] = k
				}
			}
		}
	}
	m := 0
	for _, k := range keep {
		if k > 0 {
			m++
		}
	}
	t = rerank.Tree{Feature: make([]int32, m), Threshold: make([]float64, m), DefaultLeft: make([]bool, m),
		Left: make([]int32, m), Right: make([]int32, m), Value: make([]float64, m), Cover: make([]float64, m)}
	child := func(i int, side string, c int64) (int32, error) {
		if c < 0 || c >= int64(n) || keep[c] == 0 {
			return 0, fmt.Errorf("node %d: %s %d out of range [0, %d)", i, side, c, n)
		}
		return keep[c] - 1, nil
	}
	for i := 0; i < n; i++ {
		j := keep[i] - 1
		if j < 0 {
			continue
		}
		if x.SumHessian != nil {
			c := float64(x.SumHessian[i])
			if !finite(c) || c < 0 {
				return t, fmt.Errorf("node %d: sum_hessian is %v", i, c)
			}
			t.Cover[j] = c
		}
		cond := float64(x.SplitConditions[i])
		if x.LeftChildren[i] == -1 {
			if x.RightChildren[i] != -1 {
				return t, fmt.Errorf("node %d: left child -1 (a leaf) but right child %d", i, x.RightChildren[i])
			}
			if !finite(cond) {
				return t, fmt.Errorf("node %d: leaf value is %v", i, cond)
			}
			t.Feature[j] = -1
			t.Value[j] = float64(float32(cond)) * scale // XGBoost holds leaves as float32
			continue
		}
		if x.SplitType != nil && x.SplitType[i] != 0 {
			return t, fmt.Errorf("node %d: categorical split (split_type %d): not served (train with the feature as numerical)", i, x.SplitType[i])
		}
		f := x.SplitIndices[i]
		if f < 0 || f >= int64(nf) {
			return t, fmt.Errorf("node %d: split_indices %d out of range [0, %d)", i, f, nf)
		}
		if !finite(cond) {
			return t, fmt.Errorf("node %d: split_condition is %v", i, cond)
		}
		l, err := child(i, "left child", x.LeftChildren[i])
		if err != nil {
			return t, err
		}
		r, err := child(i, "right child", x.RightChildren[i])
		if err != nil {
			return t, err
		}
		t.Feature[j] = int32(f)
		t.Threshold[j] = float32Threshold(float32(cond))
		t.DefaultLeft[j] = bool(x.DefaultLeft[i])
		t.Left[j], t.Right[j] = l, r
	}
	fillInner(&t)
	return t, nil
}

// float32Threshold returns t such that, for every float64 x (NaN aside),
// x < t exactly when float32(x) < c: the midpoint between c and the
// float32 below it (exact in float64), or the float64 after it when the
// midpoint itself rounds to the float32 below (round half to even).
func float32Threshold(c float32) float64 {
	below := math.Nextafter32(c, float32(math.Inf(-1)))
	mid := (float64(below) + float64(c)) / 2
	if float32(mid) == c {
		return mid
	}
	return math.Nextafter(mid, math.Inf(1))
}
