package rerank_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// xorSamples: the watched label is the XOR of features 0 and 1 (each
// above 0.5 or not), flipped for a share noise of the samples; the other
// features are noise. Gift follows feature 4, follow is rare, watch
// seconds grow with feature 0.
func xorSamples(n int, seed uint64, noise float64) []rerank.Sample {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]rerank.Sample, n)
	for i := range out {
		x := make([]float64, rerank.NumFeatures)
		for j := range x {
			x[j] = rng.Float64()
		}
		y := (x[0] > 0.5) != (x[1] > 0.5)
		if rng.Float64() < noise {
			y = !y
		}
		out[i] = rerank.Sample{X: x, Label: y, WatchSeconds: 1000 * x[0], Gift: x[4] > 0.8, Follow: rng.IntN(20) == 0}
	}
	return out
}

func aucOf(samples []rerank.Sample, score func([]float64) float64) float64 {
	s := make([]float64, len(samples))
	l := make([]bool, len(samples))
	for i, x := range samples {
		s[i], l[i] = score(x.X), x.Label
	}
	return rerank.AUC(s, l)
}

func compile(t testing.TB, m rerank.TreeModel) *rerank.Forest {
	t.Helper()
	f, err := rerank.Compile(m)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Trees learn the XOR of two features; the logistic model cannot.
func TestTrainTreesLearnsXOR(t *testing.T) {
	train, valid, test := xorSamples(4000, 1, 0.05), xorSamples(1000, 2, 0.05), xorSamples(2000, 3, 0)
	m, err := rerank.TrainTrees(train, valid, rerank.GBDTConfig{Seed: 1, Trees: 80, LearningRate: 0.2})
	if err != nil {
		t.Fatal(err)
	}
	f := compile(t, m)
	w, err := rerank.Train(train, rerank.TrainConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	gAUC, lAUC := aucOf(test, f.PWatched), aucOf(test, w.Score)
	t.Logf("XOR: AUC trees %.3f, logistic %.3f; %d heads, notes %v", gAUC, lAUC, len(m.Heads), m.Notes)
	if gAUC < 0.95 || lAUC > 0.65 {
		t.Fatalf("AUC trees %.3f (want >= 0.95), logistic %.3f (want <= 0.65)", gAUC, lAUC)
	}
	// Every objective got a head; watch seconds are predicted in seconds,
	// capped at the default 600, and scaled by it in the score.
	if len(m.Heads) != 4 {
		t.Fatalf("%d heads, want 4 (notes %v)", len(m.Heads), m.Notes)
	}
	lo, _ := f.Predict(rerank.ObjWatchSeconds, append([]float64{0.05}, test[0].X[1:]...))
	hi, _ := f.Predict(rerank.ObjWatchSeconds, append([]float64{0.95}, test[0].X[1:]...))
	if lo > 150 || hi < 500 || hi > 610 {
		t.Fatalf("watch seconds predicted %.0f at x0=0.05 (want ~50) and %.0f at x0=0.95 (want ~600, capped)", lo, hi)
	}
	for _, h := range m.Heads {
		if h.Objective == rerank.ObjWatchSeconds && h.Scale != 600 {
			t.Fatalf("watch_seconds scale %v, want 600", h.Scale)
		}
	}
	met := rerank.HeadMetrics(f, test)
	if met["auc_watched"] < 0.95 || met["auc_gift"] < 0.9 || met["rmse_watch_seconds"] > 100 {
		t.Fatalf("holdout metrics %v", met)
	}
}

// A head stops once the validation loss stops improving, and keeps the
// trees of its best round; without validation samples it grows them all.
func TestTrainTreesEarlyStopping(t *testing.T) {
	// Labels are pure noise: after a few rounds every tree fits noise.
	// (Only the watched head is trained: the others have one value.)
	train, valid := xorSamples(2000, 4, 0.5), xorSamples(1000, 5, 0.5)
	for _, set := range [][]rerank.Sample{train, valid} {
		for i := range set {
			set[i].WatchSeconds, set[i].Gift, set[i].Follow = 0, false, false
		}
	}
	cfg := rerank.GBDTConfig{Seed: 1, Trees: 60, EarlyStop: 5}
	m, err := rerank.TrainTrees(train, valid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.Heads[0].Trees); len(m.Heads) != 1 || n >= 30 {
		t.Fatalf("%d heads; watched kept %d trees of 60 on noise labels, want early stopping", len(m.Heads), n)
	}
	m, err = rerank.TrainTrees(train, nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(m.Heads[0].Trees); n != 60 {
		t.Fatalf("without validation samples %d trees, want 60", n)
	}
}

// The same samples and seed give the same model (row subsampling
// included); another seed another one.
func TestTrainTreesDeterministic(t *testing.T) {
	train, valid := xorSamples(1500, 6, 0.1), xorSamples(500, 7, 0.1)
	cfg := rerank.GBDTConfig{Seed: 3, Trees: 30, Subsample: 0.7}
	enc := func(cfg rerank.GBDTConfig) string {
		m, err := rerank.TrainTrees(train, valid, cfg)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(m)
		return string(b)
	}
	a, b := enc(cfg), enc(cfg)
	if a != b {
		t.Fatal("two trainings with one seed differ")
	}
	cfg.Seed = 4
	if enc(cfg) == a {
		t.Fatal("another seed gave the same model")
	}
}

// A head whose label has one value is skipped with a note; watched having
// one value is an error.
func TestTrainTreesOneClass(t *testing.T) {
	train := xorSamples(500, 8, 0.1)
	for i := range train {
		train[i].Gift = false
	}
	m, err := rerank.TrainTrees(train, nil, rerank.GBDTConfig{Trees: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Heads) != 3 || len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "gift") {
		t.Fatalf("%d heads, notes %q; want gift skipped", len(m.Heads), m.Notes)
	}
	for i := range train {
		train[i].Label = true
	}
	if _, err := rerank.TrainTrees(train, nil, rerank.GBDTConfig{Trees: 5}); lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(err.Error(), "watched") {
		t.Fatalf("watched of one class: %v, want EINVALID naming watched", err)
	}
}

func trainedForest(t testing.TB) (*rerank.Forest, rerank.TreeModel) {
	t.Helper()
	m, err := rerank.TrainTrees(xorSamples(2000, 9, 0.1), xorSamples(500, 10, 0.1), rerank.GBDTConfig{Seed: 1, Trees: 40})
	if err != nil {
		t.Fatal(err)
	}
	m.Version = "g1"
	return compile(t, m), m
}

// Per-feature effects (path attribution in the score space) sum to the
// score minus the model's expected score, with NaN features too.
func TestForestEffectsSumToScore(t *testing.T) {
	f, _ := trainedForest(t)
	for i, s := range xorSamples(200, 11, 0) {
		x := s.X
		if i%5 == 0 {
			x[1] = math.NaN()
		}
		e := make([]float64, len(x))
		f.Effects(x, e)
		var sum float64
		for _, v := range e {
			sum += v
		}
		if want := f.Score(x) - f.Expected(); math.Abs(sum-want) > 1e-9 {
			t.Fatalf("sample %d: effects sum to %v, score - expected is %v", i, sum, want)
		}
	}
}

// Rank with a forest orders candidates by the forest's scores, gives each
// item its exact Score, and explains positive contributions first.
func TestRankWithTrees(t *testing.T) {
	f, _ := trainedForest(t)
	var cands = xorCands(60)
	items := rerankRank(cands, f)
	if len(items) != 60 {
		t.Fatalf("%d items", len(items))
	}
	for i, it := range items {
		if s := f.Score(it.Vector); s != it.Score {
			t.Fatalf("item %d: rank score %v, Score of its vector %v", i, it.Score, s)
		}
		if i > 0 && it.Score > items[i-1].Score {
			t.Fatalf("item %d scores %v above item %d's %v", i, it.Score, i-1, items[i-1].Score)
		}
		pos := true
		for _, c := range it.Why {
			if c.Effect > 0 && !pos {
				t.Fatalf("item %d: a positive contribution after a negative one: %+v", i, it.Why)
			}
			pos = c.Effect > 0
		}
	}
	if len(items[0].Why) == 0 || items[0].Why[0].Effect <= 0 {
		t.Fatalf("top item explained by %+v, want a positive contribution first", items[0].Why)
	}
}

// A tree model survives JSON (ParseModel compiles it and scores as the
// original); logistic weights parse as ParseWeights does; bad JSON and
// bad trees are refused with EINVALID.
func TestParseModel(t *testing.T) {
	f, m := trainedForest(t)
	b, _ := json.Marshal(m)
	got, err := rerank.ParseModel(b)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := got.(*rerank.Forest)
	if !ok || g.ModelVersion() != "g1" {
		t.Fatalf("parsed %T %q", got, got.ModelVersion())
	}
	for _, s := range xorSamples(50, 12, 0) {
		if g.Score(s.X) != f.Score(s.X) {
			t.Fatal("parsed model scores differently")
		}
	}
	wb, _ := json.Marshal(rerank.DefaultWeights())
	if got, err := rerank.ParseModel(wb); err != nil || got.(rerank.Weights).Bias != rerank.DefaultWeights().Bias {
		t.Fatalf("logistic weights: %v %v", got, err)
	}
	// Editing an objective weight in the JSON changes the score without retraining.
	m2 := m
	m2.Weights = map[rerank.Objective]float64{rerank.ObjWatched: 1}
	b2, _ := json.Marshal(m2)
	h, err := rerank.ParseModel(b2)
	if err != nil {
		t.Fatal(err)
	}
	x := xorSamples(1, 13, 0)[0].X
	if h.Score(x) != h.PWatched(x) {
		t.Fatalf("watched weight 1 only: score %v, P(watched) %v", h.Score(x), h.PWatched(x))
	}

	bad := map[string]string{
		"not json":     `{"algo":`,
		"unknown algo": `{"algo":"forest"}`,
		"no heads":     `{"algo":"gbdt","features":` + featuresJSON() + `}`,
		"few features": `{"algo":"gbdt","features":["mf_score"],"heads":[{"objective":"watched","loss":"logistic","trees":[]}]}`,
		"child out of range": `{"algo":"gbdt","features":` + featuresJSON() + `,"heads":[{"objective":"watched","loss":"logistic","trees":[
			{"feature":[0,-1,-1],"threshold":[0.5,0,0],"default_left":[true,false,false],"left":[1,-1,-1],"right":[7,-1,-1],"value":[0,1,2],"cover":[2,1,1]}]}]}`,
		"cycle": `{"algo":"gbdt","features":` + featuresJSON() + `,"heads":[{"objective":"watched","loss":"logistic","trees":[
			{"feature":[0,0,-1],"threshold":[0.5,0.5,0],"default_left":[true,true,false],"left":[1,1,-1],"right":[2,2,-1],"value":[0,1,2],"cover":[2,1,1]}]}]}`,
		"bad loss": `{"algo":"gbdt","features":` + featuresJSON() + `,"heads":[{"objective":"watched","loss":"hinge","trees":[]}]}`,
	}
	for name, js := range bad {
		if _, err := rerank.ParseModel([]byte(js)); lr.ErrorCode(err) != lr.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func featuresJSON() string {
	b, _ := json.Marshal(rerank.FeatureNames)
	return string(b)
}

// xorCands are n candidates of varied features and categories.
func xorCands(n int) []recall.Candidate {
	rng := rand.New(rand.NewPCG(14, 14))
	out := make([]recall.Candidate, n)
	for i := range out {
		c := cand(i+1, string(rune('a'+i%6)), float32(rng.Float64()), rng.IntN(500), "mf", "trending")
		c.HasMF = rng.IntN(2) == 0
		c.NCFScore, c.HasNCF = float32(rng.Float64()), true
		c.Features.Gifts5m = rng.IntN(5)
		out[i] = c
	}
	return out
}

func rerankRank(cands []recall.Candidate, m rerank.Model) []rerank.Item {
	return rerank.Rank(cands, m, &rerank.Context{User: 1, Explain: true, MaxShare: 1}, len(cands))
}

// Logistic weights served through Model score exactly as before:
// sigmoid(bias + the weights · x, summed in feature order), and explain
// with weight × value.
func TestRankLogisticScoresUnchanged(t *testing.T) {
	w := rerank.DefaultWeights()
	for _, it := range rerankRank(xorCands(30), w) {
		z := w.Bias
		for j, x := range it.Vector {
			z += w.W[j] * x
		}
		if want := 1 / (1 + math.Exp(-z)); it.Score != want {
			t.Fatalf("streamer %d: score %v, want %v", it.StreamerID, it.Score, want)
		}
		for _, c := range it.Why {
			j := slices.Index(rerank.FeatureNames, c.Feature)
			if c.Effect != w.W[j]*it.Vector[j] {
				t.Fatalf("streamer %d: %s effect %v, want %v", it.StreamerID, c.Feature, c.Effect, w.W[j]*it.Vector[j])
			}
		}
	}
}
