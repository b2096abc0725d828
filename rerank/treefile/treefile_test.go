package treefile_test

import (
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/rerank/treefile"
)

// walk follows rerank.Tree's documented semantics: x[f] < threshold goes
// left, NaN goes the default way.
func walk(t rerank.Tree, x []float64) float64 {
	i := int32(0)
	for t.Feature[i] != -1 {
		v := x[t.Feature[i]]
		switch {
		case math.IsNaN(v):
			if t.DefaultLeft[i] {
				i = t.Left[i]
			} else {
				i = t.Right[i]
			}
		case v < t.Threshold[i]:
			i = t.Left[i]
		default:
			i = t.Right[i]
		}
	}
	return t.Value[i]
}

// margin is the head's raw score: Base + the sum of its trees' leaves.
func margin(h rerank.Head, x []float64) float64 {
	s := h.Base
	for _, t := range h.Trees {
		s += walk(t, x)
	}
	return s
}

// vec builds a feature vector of rerank.NumFeatures from name=value pairs.
func vec(kv map[string]float64) []float64 {
	x := make([]float64, rerank.NumFeatures)
	for k, v := range kv {
		i := slices.Index(rerank.FeatureNames, k)
		if i < 0 {
			panic(k)
		}
		x[i] = v
	}
	return x
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var nan = math.NaN()

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

func TestLightGBMBinaryScoresAsLightGBM(t *testing.T) {
	f, err := treefile.ReadLightGBM("lgb_binary.txt", []byte(read(t, "lgb_binary.txt")), treefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Head.Objective != rerank.ObjWatched || f.Head.Loss != rerank.LossLogistic || f.Head.Base != 0 || len(f.Head.Trees) != 4 {
		t.Fatalf("head %+v", f.Head)
	}
	if !slices.Equal(f.Features, rerank.FeatureNames[:22]) {
		t.Fatalf("features %v", f.Features)
	}
	// Expected sums by LightGBM's rules (x <= t goes left; missing type
	// None: NaN is 0; NaN: NaN goes the default way; Zero: NaN and
	// |x| <= 1e-35 go the default way).
	cases := []struct {
		name string
		x    map[string]float64
		want float64
	}{
		{"at thresholds", map[string]float64{"mf_score": 0.2, "repeat_watches": 5, "log_viewers": 3.5, "has_mf": 0}, -0.2 + 0.05 + 0.01 + 0.3},
		{"above", map[string]float64{"mf_score": 0.7, "repeat_watches": 2, "log_viewers": 3.5000001, "has_mf": 1}, 0.1 - 0.05 + 0.01 - 0.3},
		{"NaN everywhere", map[string]float64{"mf_score": nan, "repeat_watches": 0, "log_viewers": nan, "has_mf": nan}, -0.2 - 0.05 + 0.01 + 0.3},
		{"just above, NaN default left, tiny as zero", map[string]float64{"mf_score": math.Nextafter(0.5, 1), "repeat_watches": nan, "log_viewers": 0, "has_mf": -1e-40}, 0.1 + 0.05 + 0.01 + 0.3},
		{"equal goes left, small but not zero", map[string]float64{"mf_score": 0.5, "log_viewers": 4, "has_mf": 2e-35}, -0.2 - 0.05 + 0.01 - 0.3},
	}
	for _, c := range cases {
		if got := margin(f.Head, vec(c.x)); !near(got, c.want) {
			t.Errorf("%s: margin %v, want %v", c.name, got, c.want)
		}
	}
	// Inner nodes: cover = sum of the leaves' weights, value their
	// cover-weighted mean (root of tree 0: leaves -0.2×10, 0.1×5, 0.4×5).
	tr := f.Head.Trees[0]
	if tr.Cover[0] != 20 || !near(tr.Value[0], (-0.2*10+0.1*5+0.4*5)/20) || tr.Cover[1] != 10 || !near(tr.Value[1], 0.25) {
		t.Fatalf("inner covers %v values %v", tr.Cover, tr.Value)
	}

	// sigmoid:2 predicts sigmoid(2 × sum): the leaves are doubled.
	f2, err := treefile.ReadLightGBM("s2.txt", []byte(strings.Replace(read(t, "lgb_binary.txt"), "sigmoid:1", "sigmoid:2", 1)), treefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := margin(f2.Head, vec(cases[0].x)); !near(got, 2*cases[0].want) {
		t.Fatalf("sigmoid:2 margin %v, want %v", got, 2*cases[0].want)
	}
}

func TestLightGBMRegressionOfAnEarlierFeatureSet(t *testing.T) {
	f, err := treefile.ReadLightGBM("lgb_regression.txt", []byte(read(t, "lgb_regression.txt")), treefile.Options{Objective: rerank.ObjWatchSeconds})
	if err != nil {
		t.Fatal(err)
	}
	if f.Head.Loss != rerank.LossSquared || len(f.Features) != rerank.FeatureSets[0] {
		t.Fatalf("loss %s, %d features", f.Head.Loss, len(f.Features))
	}
	cases := []struct {
		x    map[string]float64
		want float64
	}{
		{map[string]float64{"mf_score": 0.1, "log_viewers": 1}, 20 - 3},
		{map[string]float64{"mf_score": nan, "log_viewers": 2.0000000000000004}, 20 - 3}, // None: NaN is 0 <= 0.25; equal goes left
		{map[string]float64{"mf_score": 0.3, "log_viewers": nan}, 60 - 3},                // NaN type, default left
		{map[string]float64{"mf_score": 0.25, "log_viewers": math.Nextafter(2.0000000000000004, 3)}, 20 + 4.5},
	}
	for i, c := range cases {
		if got := margin(f.Head, vec(c.x)); !near(got, c.want) {
			t.Errorf("case %d: %v, want %v", i, got, c.want)
		}
	}
}

func TestLightGBMRefusals(t *testing.T) {
	good := read(t, "lgb_binary.txt")
	var columns []string
	for i := range 22 {
		columns = append(columns, "Column_"+itoa(i))
	}
	cases := []struct {
		name, old, new string
		opt            treefile.Options
		want           string
	}{
		{"swapped features", "feature_names=mf_score has_mf", "feature_names=has_mf mf_score", treefile.Options{}, `bad.txt: feature 0 is "has_mf", this build's feature 0 is "mf_score"`},
		{"unnamed features", "feature_names=" + strings.Join(rerank.FeatureNames[:22], " "), "feature_names=" + strings.Join(columns, " "), treefile.Options{}, "bad.txt: the model has no feature names"},
		{"NaN leaf", "leaf_value=-0.20000000000000001 0.10000000000000001", "leaf_value=-0.20000000000000001 nan", treefile.Options{}, "bad.txt: Tree=0: leaf 1: leaf_value is NaN"},
		{"infinite leaf", "leaf_value=0.01", "leaf_value=inf", treefile.Options{}, "bad.txt: Tree=2: leaf 0: leaf_value is +Inf"},
		{"cycle", "left_child=-1 -2", "left_child=-1 0", treefile.Options{}, `bad.txt: rerank model "bad.txt": head "watched" tree 0: node 1: child 0 is its ancestor (a cycle)`},
		{"leaf out of range", "right_child=1 -3", "right_child=1 -4", treefile.Options{}, "bad.txt: Tree=0: split 1: right_child -4 is leaf 3, there are 3 leaves"},
		{"split out of range", "right_child=1 -3", "right_child=2 -3", treefile.Options{}, "bad.txt: Tree=0: split 0: right_child 2 is not a split"},
		{"feature out of range", "split_feature=0 10", "split_feature=0 22", treefile.Options{}, "bad.txt: Tree=0: split 1: split_feature 22 out of range [0, 22)"},
		{"NaN threshold", "threshold=0.5 2", "threshold=nan 2", treefile.Options{}, "bad.txt: Tree=0: split 0: threshold is NaN"},
		{"short array", "split_feature=0 10", "split_feature=0", treefile.Options{}, "bad.txt: Tree=0: split_feature has 1 values, want 2"},
		{"categorical split", "decision_type=0 10", "decision_type=1 10", treefile.Options{}, "bad.txt: Tree=0: split 0: categorical split (decision_type 1)"},
		{"categorical tree", "num_leaves=3\nnum_cat=0", "num_leaves=3\nnum_cat=1", treefile.Options{}, "bad.txt: Tree=0: num_cat=1: categorical splits are not served"},
		{"zero as missing against the threshold", "decision_type=6", "decision_type=4", treefile.Options{}, "bad.txt: Tree=3: split 0: zero-as-missing split"},
		{"linear tree", "is_linear=0\nshrinkage=1\n", "is_linear=1\nshrinkage=1\n", treefile.Options{}, "bad.txt: Tree=0: is_linear=1"},
		{"multiclass", "num_class=1", "num_class=3", treefile.Options{}, "bad.txt: num_class=3"},
		{"random forest", "feature_names=", "average_output\nfeature_names=", treefile.Options{}, "bad.txt: average_output"},
		{"ranking objective", "objective=binary sigmoid:1", "objective=lambdarank", treefile.Options{}, "bad.txt: objective=lambdarank: only binary"},
		{"sqrt regression", "objective=binary sigmoid:1", "objective=regression sqrt", treefile.Options{}, "bad.txt: objective=regression sqrt"},
		{"binary model for a regression head", "", "", treefile.Options{Objective: rerank.ObjWatchSeconds}, `bad.txt: objective "watch_seconds" is predicted with squared loss, the file's model was trained with "binary sigmoid:1"`},
		{"unknown objective", "", "", treefile.Options{Objective: "likes"}, `bad.txt: unknown objective "likes"`},
		{"trees out of order", "Tree=1", "Tree=7", treefile.Options{}, `bad.txt: block "Tree=7" where Tree=1 was expected`},
		{"not LightGBM", "tree\nversion=v4", "{\"learner\"", treefile.Options{}, "bad.txt: not a LightGBM text model"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Replace(good, c.old, c.new, 1)
			if c.old != "" && data == good {
				t.Fatalf("the edit %q did not apply", c.old)
			}
			_, err := treefile.ReadLightGBM("bad.txt", []byte(data), c.opt)
			if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(lr.ErrorMessage(err), c.want) {
				t.Fatalf("error %v, want EINVALID containing %q", err, c.want)
			}
		})
	}
	// The same unnamed file is accepted when the order is trusted.
	data := strings.Replace(good, "feature_names="+strings.Join(rerank.FeatureNames[:22], " "), "feature_names="+strings.Join(columns, " "), 1)
	f, err := treefile.ReadLightGBM("trusted.txt", []byte(data), treefile.Options{TrustOrder: true})
	if err != nil || !slices.Equal(f.Features, rerank.FeatureNames[:22]) {
		t.Fatalf("trusted order: %v, %v", err, f)
	}
}

func TestXGBoostBinaryScoresAsXGBoost(t *testing.T) {
	for _, bs := range []string{`"2.5E-1"`, `"[2.5E-1]"`} {
		data := strings.Replace(read(t, "xgb_binary.json"), `"2.5E-1"`, bs, 1)
		f, err := treefile.ReadXGBoost("xgb_binary.json", []byte(data), treefile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		// base_score 0.25 is a probability: the margin is logit(0.25) = ln(1/3).
		if f.Head.Loss != rerank.LossLogistic || !near(f.Head.Base, math.Log(1.0/3)) {
			t.Fatalf("base_score %s: head loss %s base %v", bs, f.Head.Loss, f.Head.Base)
		}
		base := math.Log(1.0 / 3)
		f32 := func(v float64) float64 { return float64(float32(v)) } // XGBoost's leaves are float32
		// XGBoost rounds the feature to float32 and goes left when it is
		// below the float32 condition; NaN goes the default way.
		cases := []struct {
			name string
			x    map[string]float64
			want float64
		}{
			{"1.1 rounds to the condition 1.1f", map[string]float64{"mf_score": 0.2, "repeat_watches": 1.1}, f32(0.2) + f32(-0.05)},
			{"NaN defaults", map[string]float64{"mf_score": nan, "repeat_watches": nan}, f32(0.2) + f32(-0.05)},
			{"equal goes right", map[string]float64{"mf_score": 0.5, "log_viewers": 3.4, "repeat_watches": 1.0999999}, f32(-0.1) + f32(0.05)},
			{"NaN default right", map[string]float64{"mf_score": 0.7, "log_viewers": nan, "repeat_watches": 0}, f32(0.3) + f32(0.05)},
			{"below in float64, equal in float32", map[string]float64{"mf_score": 0.49999999999, "log_viewers": 3.5, "repeat_watches": float64(float32(1.1))}, f32(0.3) + f32(-0.05)},
		}
		for _, c := range cases {
			if got := margin(f.Head, vec(c.x)); !near(got, base+c.want) {
				t.Errorf("%s: margin %v, want %v", c.name, got, base+c.want)
			}
		}
		tr := f.Head.Trees[0]
		if tr.Cover[2] != 6 || !near(tr.Value[2], (f32(-0.1)+f32(0.3))/2) || tr.Cover[0] != 10 || !near(tr.Value[0], (f32(0.2)*4+f32(-0.1)*3+f32(0.3)*3)/10) {
			t.Fatalf("inner covers %v values %v", tr.Cover, tr.Value)
		}
	}
}

func TestXGBoostFloat32Threshold(t *testing.T) {
	// For conditions across magnitudes, x < threshold exactly when
	// float32(x) < c, checked at the float64 neighbours of the boundary.
	for _, c := range []float32{0.5, 1.1, -1.1, 3.4028e38, 1e-30, -7.25, 0, 1e-45} {
		f, err := treefile.ReadXGBoost("t.json", []byte(strings.Replace(read(t, "xgb_binary.json"), `"split_conditions":[1.1,`, `"split_conditions":[`+ftoa(c)+`,`, 1)), treefile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		th := f.Head.Trees[1].Threshold[0]
		for _, x := range []float64{math.Nextafter(th, math.Inf(-1)), th, math.Nextafter(th, math.Inf(1)), float64(c), math.Nextafter(float64(c), math.Inf(-1))} {
			if (x < th) != (float32(x) < c) {
				t.Errorf("c=%v: x=%v goes %v here, float32(x)<c is %v", c, x, x < th, float32(x) < c)
			}
		}
	}
}

func TestXGBoostRegressionDartAndDeletedNodes(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal([]byte(read(t, "xgb_binary.json")), &m); err != nil {
		t.Fatal(err)
	}
	learner := m["learner"].(map[string]any)
	learner["objective"] = map[string]any{"name": "reg:squarederror"}
	learner["learner_model_param"].(map[string]any)["base_score"] = "1.5E1"
	gb := learner["gradient_booster"].(map[string]any)
	// dart: the trees are scaled by weight_drop.
	learner["gradient_booster"] = map[string]any{"name": "dart", "gbtree": gb, "weight_drop": []float64{1, 0.5}}
	// A deleted node (left by pruning): unreached, counted in num_deleted.
	tree := gb["model"].(map[string]any)["trees"].([]any)[1].(map[string]any)
	for k, v := range map[string]any{"left_children": -1, "right_children": -1, "split_indices": 0, "split_conditions": 7.0,
		"default_left": 0, "split_type": 0, "sum_hessian": 0.0, "parents": 2147483647, "base_weights": 0.0, "loss_changes": 0.0} {
		tree[k] = append(tree[k].([]any), v)
	}
	tree["tree_param"].(map[string]any)["num_nodes"] = "4"
	tree["tree_param"].(map[string]any)["num_deleted"] = "1"
	b, _ := json.Marshal(m)
	f, err := treefile.ReadXGBoost("reg.json", b, treefile.Options{Objective: rerank.ObjWatchSeconds})
	if err != nil {
		t.Fatal(err)
	}
	if f.Head.Loss != rerank.LossSquared || f.Head.Base != 15 || len(f.Head.Trees[1].Feature) != 3 {
		t.Fatalf("head %+v", f.Head)
	}
	x := vec(map[string]float64{"mf_score": 0.2, "repeat_watches": 0})
	if got, want := margin(f.Head, x), 15+float64(float32(0.2))+0.5*float64(float32(0.05)); !near(got, want) {
		t.Fatalf("margin %v, want %v", got, want)
	}
	// Without num_deleted the same node is an orphan.
	tree["tree_param"].(map[string]any)["num_deleted"] = "0"
	b, _ = json.Marshal(m)
	_, err = treefile.ReadXGBoost("reg.json", b, treefile.Options{Objective: rerank.ObjWatchSeconds})
	if want := `tree 1: node 3 is not reached from the root (an orphan)`; !strings.Contains(lr.ErrorMessage(err), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

func TestXGBoostRefusals(t *testing.T) {
	good := read(t, "xgb_binary.json")
	cases := []struct {
		name, old, new string
		opt            treefile.Options
		want           string
	}{
		{"renamed feature", `"repeat_watches"`, `"repeat_watch"`, treefile.Options{}, `bad.json: feature 10 is "repeat_watch", this build's feature 10 is "repeat_watches"`},
		{"no feature names", `"feature_names":["mf_score","has_mf","ncf_score","has_ncf","log_viewers","viewer_growth","log_gifts_5m","log_gift_value_5m","log_unique_gifters_30m","log_stream_age_min","repeat_watches","followed","via_mf","via_ncf","via_session","via_follow","via_trending","via_fresh","repeat_share","log_hours_since_watch","log_watches_24h","repeat_top"]`, `"feature_names":[]`, treefile.Options{}, "bad.json: the model has no feature names"},
		{"NaN leaf", `"split_conditions":[0.5,0.2,3.5,-0.1,0.3]`, `"split_conditions":[0.5,0.2,3.5,-0.1,NaN]`, treefile.Options{}, "bad.json: tree 0: node 4: leaf value is NaN"},
		{"infinite condition", `"split_conditions":[0.5,0.2,3.5,-0.1,0.3]`, `"split_conditions":[0.5,0.2,-Infinity,-0.1,0.3]`, treefile.Options{}, "bad.json: tree 0: node 2: split_condition is -Inf"},
		{"cycle", `"left_children":[1,-1,3,-1,-1]`, `"left_children":[1,-1,0,-1,-1]`, treefile.Options{}, `head "watched" tree 0: node 2: child 0 is its ancestor (a cycle)`},
		{"shared node", `"left_children":[1,-1,3,-1,-1]`, `"left_children":[1,-1,1,-1,-1]`, treefile.Options{}, `tree 0: node 2: child 1 was already reached from node 0`},
		{"child out of range", `"right_children":[2,-1,4,-1,-1]`, `"right_children":[2,-1,9,-1,-1]`, treefile.Options{}, "bad.json: tree 0: node 2: right child 9 out of range [0, 5)"},
		{"feature out of range", `"split_indices":[0,0,4,0,0]`, `"split_indices":[0,0,40,0,0]`, treefile.Options{}, "bad.json: tree 0: node 2: split_indices 40 out of range [0, 22)"},
		{"ragged arrays", `"default_left":[1,0,0,0,0]`, `"default_left":[1,0,0,0]`, treefile.Options{}, "bad.json: tree 0: 4 default_left for 5 nodes"},
		{"categorical split", `"split_type":[0,0,0,0,0]`, `"split_type":[0,0,1,0,0]`, treefile.Options{}, "bad.json: tree 0: node 2: categorical split"},
		{"hinge objective", `"binary:logistic"`, `"binary:hinge"`, treefile.Options{}, `bad.json: objective "binary:hinge": only binary:logistic and reg:squarederror`},
		{"multiclass", `"num_class":"0"`, `"num_class":"3"`, treefile.Options{}, "bad.json: num_class=3"},
		{"vector base score", `"2.5E-1"`, `"[2.5E-1,3E-1]"`, treefile.Options{}, "bad.json: base_score [2.5E-1,3E-1] has several values"},
		{"base score not a probability", `"2.5E-1"`, `"1.5E0"`, treefile.Options{}, "bad.json: base_score 1.5 of binary:logistic is not a probability"},
		{"linear booster", `"name":"gbtree"}`, `"name":"gblinear"}`, treefile.Options{}, `bad.json: gradient_booster "gblinear"`},
		{"not JSON", `{"learner"`, `tree`, treefile.Options{}, "bad.json: not JSON (byte "},
		{"a dump", `{"learner"`, `[{"nodeid":0,"depth":0,"split":"mf_score","split_condition":0.5,"yes":1,"no":2,"missing":1,"children":[{"nodeid":1,"leaf":0.2},{"nodeid":2,"leaf":-0.1}]}, {"learner"`, treefile.Options{}, "bad.json: a JSON array: this is a dump (Booster.dump_model)"},
		{"binary model for a regression head", "", "", treefile.Options{Objective: rerank.ObjWatchSeconds}, `bad.json: objective "watch_seconds" is predicted with squared loss`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Replace(good, c.old, c.new, 1)
			if c.old != "" && data == good {
				t.Fatalf("the edit %q did not apply", c.old)
			}
			_, err := treefile.ReadXGBoost("bad.json", []byte(data), c.opt)
			if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(lr.ErrorMessage(err), c.want) {
				t.Fatalf("error %v, want EINVALID containing %q", err, c.want)
			}
		})
	}
	data := strings.Replace(good, cases[1].old, cases[1].new, 1)
	if f, err := treefile.ReadXGBoost("trusted.json", []byte(data), treefile.Options{TrustOrder: true}); err != nil || len(f.Features) != 22 {
		t.Fatalf("trusted order: %v", err)
	}
}

func TestAssemble(t *testing.T) {
	w, err := treefile.Read(treefile.XGBoost, "w.json", []byte(read(t, "xgb_binary.json")), treefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := treefile.Read(treefile.LightGBM, "s.txt", []byte(read(t, "lgb_regression.txt")), treefile.Options{Objective: rerank.ObjWatchSeconds})
	if err != nil {
		t.Fatal(err)
	}
	m, err := treefile.Assemble("v1", []*treefile.File{s, w},
		map[rerank.Objective]float64{rerank.ObjWatchSeconds: 0.5}, map[rerank.Objective]float64{rerank.ObjWatchSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Features) != 22 || m.Source != "lightgbm+xgboost" || m.Weights[rerank.ObjWatched] != 1 || m.Weights[rerank.ObjWatchSeconds] != 0.5 || m.Heads[0].Scale != 600 {
		t.Fatalf("model %+v", m)
	}
	// Defaults: the trainer's objective weights, and the watch cap as the
	// watch_seconds scale.
	m, err = treefile.Assemble("v2", []*treefile.File{s, w}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if def := rerank.DefaultObjectiveWeights(); m.Weights[rerank.ObjWatchSeconds] != def[rerank.ObjWatchSeconds] || m.Weights[rerank.ObjWatched] != def[rerank.ObjWatched] || m.Heads[0].Scale != 600 || m.Heads[1].Scale != 0 {
		t.Fatalf("defaults: weights %v, scales %v %v", m.Weights, m.Heads[0].Scale, m.Heads[1].Scale)
	}
	for _, c := range []struct {
		name     string
		files    []*treefile.File
		weights  map[rerank.Objective]float64
		scales   map[rerank.Objective]float64
		contains string
	}{
		{"two files for one objective", []*treefile.File{w, w}, nil, nil, `w.json and w.json both predict "watched"`},
		{"weight without a head", []*treefile.File{w}, map[rerank.Objective]float64{rerank.ObjGift: 1}, nil, `a weight for "gift"`},
		{"scale without a head", []*treefile.File{w}, nil, map[rerank.Objective]float64{rerank.ObjWatchSeconds: 600}, `a scale for "watch_seconds"`},
		{"NaN weight", []*treefile.File{w}, map[rerank.Objective]float64{rerank.ObjWatched: nan}, nil, `weight of "watched" is NaN`},
		{"none", nil, nil, nil, "no model files"},
	} {
		if _, err := treefile.Assemble("v1", c.files, c.weights, c.scales); lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(lr.ErrorMessage(err), c.contains) {
			t.Errorf("%s: %v, want %q", c.name, err, c.contains)
		}
	}
	if _, err := treefile.Read("onnx", "m.onnx", nil, treefile.Options{}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("unknown format: %v", err)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func ftoa(f float32) string { b, _ := json.Marshal(f); return string(b) }

// The serving evaluator (rerank.Forest) scores imported models as the
// formats say: the hand-computed sums above, through the head's link.
func TestImportedModelsServeAsTheFormatsSay(t *testing.T) {
	sigmoid := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	w, err := treefile.ReadLightGBM("w.txt", []byte(read(t, "lgb_binary.txt")), treefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := treefile.ReadXGBoost("s.json", []byte(strings.Replace(strings.Replace(read(t, "xgb_binary.json"), "binary:logistic", "reg:squarederror", 1), `"2.5E-1"`, `"3E1"`, 1)),
		treefile.Options{Objective: rerank.ObjWatchSeconds})
	if err != nil {
		t.Fatal(err)
	}
	tm, err := treefile.Assemble("v", []*treefile.File{w, s}, map[rerank.Objective]float64{rerank.ObjWatchSeconds: 0.5}, map[rerank.Objective]float64{rerank.ObjWatchSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	f, err := rerank.CompileChecked(*tm)
	if err != nil {
		t.Fatal(err)
	}
	f32 := func(v float64) float64 { return float64(float32(v)) }
	for _, c := range []struct {
		x             map[string]float64
		watched, secs float64 // LightGBM leaf sum; XGBoost leaf sum
	}{
		{map[string]float64{"mf_score": 0.2, "repeat_watches": 5, "log_viewers": 3.5, "has_mf": 0}, -0.2 + 0.05 + 0.01 + 0.3, f32(0.2) + f32(-0.05)},
		{map[string]float64{"mf_score": nan, "repeat_watches": nan, "log_viewers": nan, "has_mf": nan}, -0.2 - 0.05 + 0.01 + 0.3, f32(0.2) + f32(-0.05)},
		{map[string]float64{"mf_score": 0.5, "repeat_watches": 1.0999999, "log_viewers": 3.4, "has_mf": 2e-35}, -0.2 + 0.05 + 0.01 - 0.3, f32(-0.1) + f32(0.05)},
		{map[string]float64{"mf_score": 0.49999999999, "repeat_watches": 2, "log_viewers": 4, "has_mf": 1}, -0.2 - 0.05 + 0.01 - 0.3, f32(0.3) + f32(-0.05)},
	} {
		x := vec(c.x)
		pw, _ := f.Predict(rerank.ObjWatched, x)
		ps, _ := f.Predict(rerank.ObjWatchSeconds, x)
		if !near(pw, sigmoid(c.watched)) || !near(ps, 30+c.secs) {
			t.Errorf("%v: predictions %v, %v; want %v, %v", c.x, pw, ps, sigmoid(c.watched), 30+c.secs)
		}
		if got, want := f.Score(x), sigmoid(c.watched)+0.5*(30+c.secs)/600; !near(got, want) {
			t.Errorf("%v: score %v, want %v", c.x, got, want)
		}
	}
}
