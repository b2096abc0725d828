package rerank_test

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// validTree is a stump under a split: node 0 splits on feature 0, its
// left child 1 splits on feature 2 into leaves 3 and 4, its right child 2
// is a leaf.
func validTree() rerank.Tree {
	return rerank.Tree{
		Feature:     []int32{0, 2, -1, -1, -1},
		Threshold:   []float64{0.5, 1, 0, 0, 0},
		DefaultLeft: []bool{true, false, false, false, false},
		Left:        []int32{1, 3, -1, -1, -1},
		Right:       []int32{2, 4, -1, -1, -1},
		Value:       []float64{0.1, 0.2, -0.3, 0.4, 0.1},
		Cover:       []float64{10, 6, 4, 3, 3},
	}
}

func validModel() *rerank.TreeModel {
	return &rerank.TreeModel{
		Version:  "t1",
		Algo:     "gbdt",
		Features: slices.Clone(rerank.FeatureNames),
		Heads: []rerank.Head{
			{Objective: rerank.ObjWatched, Loss: rerank.LossLogistic, Base: -1, Trees: []rerank.Tree{validTree(), validTree()}},
			{Objective: rerank.ObjWatchSeconds, Loss: rerank.LossSquared, Base: 30, Scale: 600, Trees: []rerank.Tree{validTree()}},
		},
		Weights: map[rerank.Objective]float64{rerank.ObjWatched: 1, rerank.ObjWatchSeconds: 0.5},
	}
}

func TestTreeModelValidateAccepts(t *testing.T) {
	m := validModel()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	// An earlier feature set is a prefix of FeatureNames.
	m.Features = rerank.FeatureNames[:rerank.FeatureSets[0]]
	if err := m.Validate(); err != nil {
		t.Fatalf("feature set %d refused: %v", rerank.FeatureSets[0], err)
	}
	// A single leaf is a tree; a head may have no trees (its base only).
	m = validModel()
	m.Heads[0].Trees = append(m.Heads[0].Trees, rerank.Tree{Feature: []int32{-1}, Threshold: []float64{0},
		DefaultLeft: []bool{false}, Left: []int32{0}, Right: []int32{0}, Value: []float64{0.5}, Cover: []float64{1}})
	m.Heads[1].Trees = nil
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestTreeModelValidateRefuses(t *testing.T) {
	tree := func(f func(*rerank.Tree)) func(*rerank.TreeModel) {
		return func(m *rerank.TreeModel) { f(&m.Heads[0].Trees[1]) }
	}
	cases := []struct {
		name string
		edit func(*rerank.TreeModel)
		want string // in the message
	}{
		{"algo", func(m *rerank.TreeModel) { m.Algo = "logistic" }, `algo "logistic"`},
		{"renamed feature", func(m *rerank.TreeModel) { m.Features[3] = "has_ncf_x" }, `feature 3 is "has_ncf_x", this build's feature 3 is "has_ncf"`},
		{"swapped features", func(m *rerank.TreeModel) { m.Features[0], m.Features[1] = m.Features[1], m.Features[0] }, `feature 0 is "has_mf", this build's feature 0 is "mf_score"`},
		{"not a feature set", func(m *rerank.TreeModel) { m.Features = m.Features[:5] }, `5 features, this build knows feature sets`},
		{"extra feature", func(m *rerank.TreeModel) { m.Features = append(m.Features, "from_the_future") }, `"from_the_future", this build's feature ` + strconv.Itoa(rerank.NumFeatures) + ` is "(none)"`},
		{"no heads", func(m *rerank.TreeModel) { m.Heads = nil }, "no heads"},
		{"unknown objective", func(m *rerank.TreeModel) { m.Heads[1].Objective = "likes" }, `head 1: unknown objective "likes"`},
		{"duplicate objective", func(m *rerank.TreeModel) { m.Heads[1].Objective = rerank.ObjWatched }, `heads 0 and 1 both predict "watched"`},
		{"unknown loss", func(m *rerank.TreeModel) { m.Heads[1].Loss = "hinge" }, `head "watch_seconds": unknown loss "hinge"`},
		{"weight of unknown objective", func(m *rerank.TreeModel) { m.Weights["likes"] = 1 }, `weight of unknown objective "likes"`},
		{"NaN weight", func(m *rerank.TreeModel) { m.Weights[rerank.ObjWatched] = math.NaN() }, `weight of "watched" is NaN`},
		{"infinite base", func(m *rerank.TreeModel) { m.Heads[0].Base = math.Inf(1) }, `head "watched": base is +Inf`},
		{"NaN scale", func(m *rerank.TreeModel) { m.Heads[1].Scale = math.NaN() }, `head "watch_seconds": scale is NaN`},
		{"negative scale", func(m *rerank.TreeModel) { m.Heads[1].Scale = -1 }, `head "watch_seconds": scale is -1`},
		{"empty tree", tree(func(t *rerank.Tree) { *t = rerank.Tree{} }), `head "watched" tree 1: no nodes`},
		{"short array", tree(func(t *rerank.Tree) { t.Cover = t.Cover[:4] }), `tree 1: 5 feature entries but 4 cover entries`},
		{"short default_left", tree(func(t *rerank.Tree) { t.DefaultLeft = nil }), `tree 1: 5 feature entries but 0 default_left entries`},
		{"left child out of range", tree(func(t *rerank.Tree) { t.Left[1] = 5 }), `tree 1: node 1: left child 5 out of range [0, 5)`},
		{"right child negative", tree(func(t *rerank.Tree) { t.Right[0] = -1 }), `tree 1: node 0: right child -1 out of range`},
		{"cycle to root", tree(func(t *rerank.Tree) { t.Right[1] = 0; t.Feature[4] = -1 }), `tree 1: node 1: child 0 is its ancestor (a cycle)`},
		{"self loop", tree(func(t *rerank.Tree) { t.Left[1] = 1 }), `tree 1: node 1: child 1 is its ancestor (a cycle)`},
		{"shared node", tree(func(t *rerank.Tree) { t.Right[1] = 2 }), `tree 1: node 1: child 2 was already reached from node 0 (a node shared by two parents)`},
		{"orphan", tree(func(t *rerank.Tree) { t.Feature[1] = -1 }), `tree 1: node 3 is not reached from the root (an orphan)`},
		{"split feature out of range", tree(func(t *rerank.Tree) { t.Feature[1] = int32(rerank.NumFeatures) }), `tree 1: node 1: split feature ` + strconv.Itoa(rerank.NumFeatures) + ` out of range`},
		{"split feature below -1", tree(func(t *rerank.Tree) { t.Feature[1] = -2 }), `tree 1: node 1: split feature -2 out of range`},
		{"split feature past an earlier set", func(m *rerank.TreeModel) {
			m.Features = m.Features[:rerank.FeatureSets[0]]
			m.Heads[0].Trees[1].Feature[1] = int32(rerank.FeatureSets[0])
		}, `tree 1: node 1: split feature ` + strconv.Itoa(rerank.FeatureSets[0]) + ` out of range [0, ` + strconv.Itoa(rerank.FeatureSets[0]) + `)`},
		{"NaN threshold", tree(func(t *rerank.Tree) { t.Threshold[1] = math.NaN() }), `tree 1: node 1: threshold is NaN`},
		{"infinite threshold", tree(func(t *rerank.Tree) { t.Threshold[0] = math.Inf(-1) }), `tree 1: node 0: threshold is -Inf`},
		{"NaN leaf", tree(func(t *rerank.Tree) { t.Value[3] = math.NaN() }), `head "watched" tree 1: node 3: value is NaN`},
		{"infinite inner value", tree(func(t *rerank.Tree) { t.Value[1] = math.Inf(1) }), `tree 1: node 1: value is +Inf`},
		{"negative cover", tree(func(t *rerank.Tree) { t.Cover[2] = -1 }), `tree 1: node 2: cover is -1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := validModel()
			c.edit(m)
			err := m.Validate()
			if lr.ErrorCode(err) != lr.EINVALID {
				t.Fatalf("accepted or wrong code: %v", err)
			}
			if msg := lr.ErrorMessage(err); !strings.Contains(msg, c.want) || !strings.HasPrefix(msg, `rerank model "t1"`) {
				t.Fatalf("message %q, want it to contain %q", msg, c.want)
			}
		})
	}
}

// The serving path applies Validate: a stored model whose feature order
// differs from FeatureNames (which compiling alone does not look at) is
// refused by ParseModel.
func TestParseModelValidatesTreeModels(t *testing.T) {
	m := validModel()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rerank.ParseModel(b); err != nil {
		t.Fatalf("valid model refused: %v", err)
	}
	m.Features[0], m.Features[1] = m.Features[1], m.Features[0]
	b, _ = json.Marshal(m)
	if _, err := rerank.ParseModel(b); lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(lr.ErrorMessage(err), `feature 0 is "has_mf"`) {
		t.Fatalf("swapped features: %v", err)
	}
}
