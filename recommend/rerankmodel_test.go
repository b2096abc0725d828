package recommend_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/prometheus/client_golang/prometheus"
)

// RefreshWeights serves whichever kind of reranker is active: a tree
// model (compiled), logistic weights, an edit of the active version's
// JSON; a version that does not parse keeps the current model.
func TestRefreshRerankModelKinds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var samples []rerank.Sample
	for i := 0; i < 400; i++ {
		x := make([]float64, rerank.NumFeatures)
		for j := range x {
			x[j] = rng.Float64()
		}
		samples = append(samples, rerank.Sample{X: x, Label: x[0] > 0.5, WatchSeconds: 100 * x[1], Gift: x[2] > 0.7, Follow: x[3] > 0.8})
	}
	tm, err := rerank.TrainTrees(samples, nil, rerank.GBDTConfig{Trees: 5})
	if err != nil {
		t.Fatal(err)
	}
	trees, _ := json.Marshal(tm)
	logistic, _ := json.Marshal(rerank.DefaultWeights())
	active := struct {
		version string
		raw     []byte
	}{"t1", trees}
	reg := prometheus.NewRegistry()
	info := func() string {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, p := range m.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				out = append(out, fmt.Sprintf("%s %s/%s %v", mf.GetName(), l["version"], l["algo"], m.GetGauge().GetValue()))
			}
		}
		return strings.Join(out, "; ")
	}
	m := recommend.NewModels(recommend.ModelsConfig{Registerer: reg, ActiveWeights: func(context.Context) (string, []byte, error) {
		if active.raw == nil {
			return "", nil, lr.Errorf(lr.ENOTFOUND, "none")
		}
		return active.version, active.raw, nil
	}})
	ctx := context.Background()
	if got := info(); got != "liverecall_rerank_model_info default/logistic 1" {
		t.Fatalf("before a refresh: %s", got)
	}
	m.RefreshWeights(ctx)
	if got := info(); got != "liverecall_rerank_model_info t1/gbdt 1" {
		t.Fatalf("serving t1: %s", got)
	}
	f, ok := m.Weights().(*rerank.Forest)
	if !ok || f.ModelVersion() != "t1" {
		t.Fatalf("serving %T %q, want the forest t1", m.Weights(), m.Weights().ModelVersion())
	}
	x := samples[0].X
	// The weights edited in the stored JSON: reloaded under the same version.
	tm.Weights = map[rerank.Objective]float64{rerank.ObjWatched: 2}
	active.raw, _ = json.Marshal(tm)
	m.RefreshWeights(ctx)
	if got, want := m.Weights().Score(x), 2*f.PWatched(x); got != want {
		t.Fatalf("after the edit score %v, want %v", got, want)
	}
	active.version, active.raw = "bad", []byte(`{"algo":"gbdt","heads":[]}`)
	m.RefreshWeights(ctx)
	if v := m.Weights().ModelVersion(); v != "t1" {
		t.Fatalf("a bad version replaced the model: serving %q", v)
	}
	active.version, active.raw = "w1", logistic
	m.RefreshWeights(ctx)
	if w, ok := m.Weights().(rerank.Weights); !ok || w.Version != "w1" {
		t.Fatalf("serving %T %q, want logistic w1", m.Weights(), m.Weights().ModelVersion())
	}
	if got := info(); got != "liverecall_rerank_model_info w1/logistic 1" {
		t.Fatalf("serving w1: %s", got)
	}
}

// A tree reranker serves through Recommend: the page in the forest's score
// order, and debug explanations of its path attributions, positive first.
func TestRecommendWithTrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	var samples []rerank.Sample
	for i := 0; i < 600; i++ {
		x := make([]float64, rerank.NumFeatures)
		for j := range x {
			x[j] = rng.Float64()
		}
		samples = append(samples, rerank.Sample{X: x, Label: x[0] > 0.7, Gift: x[1] > 0.5, Follow: x[2] > 0.5, WatchSeconds: 10 * x[3]})
	}
	tm, err := rerank.TrainTrees(samples, nil, rerank.GBDTConfig{Trees: 20})
	if err != nil {
		t.Fatal(err)
	}
	tm.Weights = map[rerank.Objective]float64{rerank.ObjWatched: 1}
	f, err := rerank.CompileChecked(tm)
	if err != nil {
		t.Fatal(err)
	}
	w, svc := newWorld(t, 0)
	w.weights = f
	page, err := svc.Recommend(context.Background(), lr.RecommendRequest{RequestID: "r1", User: 7, K: 5, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if page.Debug.RerankFailed != "" || len(page.Items) != 5 || page.Items[0].StreamerID != 3 {
		t.Fatalf("page %v (rerank failure %q), want streamer 3 (mf score 1) first", ids(page), page.Debug.RerankFailed)
	}
	for i, it := range page.Items {
		x := make([]float64, rerank.NumFeatures)
		for j, n := range rerank.FeatureNames {
			x[j] = it.Debug.Features[n]
		}
		if math.Abs(it.Score-f.Score(x)) > 1e-6 || (i > 0 && it.Score > page.Items[i-1].Score) {
			t.Fatalf("item %d: score %v, the forest's %v; page %v", i, it.Score, f.Score(x), page.Items)
		}
	}
	if why := page.Items[0].Debug.Why; len(why) == 0 || why[0].Feature != "mf_score" || why[0].Effect <= 0 {
		t.Fatalf("top item's why %+v, want mf_score first, positive", why)
	}
}
