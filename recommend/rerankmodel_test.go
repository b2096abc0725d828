package recommend_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
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
	m := recommend.NewModels(recommend.ModelsConfig{ActiveWeights: func(context.Context) (string, []byte, error) {
		if active.raw == nil {
			return "", nil, lr.Errorf(lr.ENOTFOUND, "none")
		}
		return active.version, active.raw, nil
	}})
	ctx := context.Background()
	m.RefreshWeights(ctx)
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
}
