package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/rerank"
)

// followImpressions writes 1500 impressions of the last two hours: a
// followed streamer is watched 70% of the time, another 5%.
func followImpressions(t *testing.T, db *postgres.DB) {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	follow := slices.Index(rerank.FeatureNames, "followed")
	var imps []lr.Impression
	var evs []lr.Event
	for i := 0; i < 1500; i++ {
		x := make([]float32, rerank.NumFeatures)
		followed := rng.IntN(3) == 0
		if followed {
			x[follow] = 1
		}
		at := base.Add(time.Duration(i) * time.Second)
		u, s := lr.UserID(i%97+1), lr.StreamerID(i+1)
		imps = append(imps, lr.Impression{RequestID: fmt.Sprint("r", i), UserID: u, StreamerID: s, StreamID: lr.StreamID(s), ShownAt: at, Features: x})
		if (followed && rng.Float64() < 0.7) || (!followed && rng.Float64() < 0.05) {
			evs = append(evs,
				lr.Event{ID: fmt.Sprint("j", i), Type: lr.EventViewerJoined, TS: at.Add(time.Minute), StreamerID: s, StreamID: lr.StreamID(s), UserID: u, V: 1},
				lr.Event{ID: fmt.Sprint("l", i), Type: lr.EventViewerLeft, TS: at.Add(3 * time.Minute), StreamerID: s, StreamID: lr.StreamID(s), UserID: u, V: 1})
		}
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
}

// xgbStump is an XGBoost JSON model (binary:logistic, base_score 0.5) of
// one stump on "followed": below 0.5 a leaf of logit(0.05), else logit(0.7).
func xgbStump() string {
	names, _ := json.Marshal(rerank.FeatureNames)
	return fmt.Sprintf(`{"learner":{"attributes":{},"feature_names":%s,"feature_types":[],
"gradient_booster":{"model":{"gbtree_model_param":{"num_parallel_tree":"1","num_trees":"1"},"iteration_indptr":[0,1],"tree_info":[0],
"trees":[{"base_weights":[0,-2.9444,0.8473],"categories":[],"categories_nodes":[],"categories_segments":[],"categories_sizes":[],
"default_left":[0,0,0],"id":0,"left_children":[1,-1,-1],"loss_changes":[100,0,0],"parents":[2147483647,0,0],"right_children":[2,-1,-1],
"split_conditions":[5E-1,-2.944439E0,8.472979E-1],"split_indices":[%d,0,0],"split_type":[0,0,0],"sum_hessian":[300,200,100],
"tree_param":{"num_deleted":"0","num_feature":"%d","num_nodes":"3","size_leaf_vector":"1"}}]},"name":"gbtree"},
"learner_model_param":{"base_score":"5E-1","boost_from_average":"1","num_class":"0","num_feature":"%d","num_target":"1"},
"objective":{"name":"binary:logistic","reg_loss_param":{"scale_pos_weight":"1"}}},"version":[2,1,3]}`,
		names, slices.Index(rerank.FeatureNames, "followed"), rerank.NumFeatures, rerank.NumFeatures)
}

func rerankVersions(t *testing.T, db *postgres.DB) int {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM rerank_models`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestImportRerank(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	followImpressions(t, db)
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fixture := func(name string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", "rerank", "treefile", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	run := func(args ...string) (int, string, string) {
		app, out, errb := testApp(map[string]string{"DATABASE_URL": url})
		app.Log = newLogger(&strings.Builder{}, "error", "text")
		code := Run(ctx, app, append([]string{"import-rerank"}, args...))
		return code, out.String(), errb.String()
	}

	// Bad files write nothing.
	lgb := fixture("lgb_binary.txt")
	bad := []struct {
		name, data, format, want string
	}{
		{"nan.txt", strings.Replace(lgb, "leaf_value=-0.20000000000000001 0.10000000000000001", "leaf_value=-0.20000000000000001 nan", 1), "lightgbm", "nan.txt: Tree=0: leaf 1: leaf_value is NaN"},
		{"cycle.txt", strings.Replace(lgb, "left_child=-1 -2", "left_child=-1 0", 1), "lightgbm", "tree 0: node 1: child 0 is its ancestor (a cycle)"},
		{"order.txt", strings.Replace(lgb, "feature_names=mf_score has_mf", "feature_names=has_mf mf_score", 1), "lightgbm", `order.txt: feature 0 is "has_mf", this build's feature 0 is "mf_score"`},
		{"stump.json", strings.Replace(xgbStump(), "-2.944439E0", "NaN", 1), "xgboost", "stump.json: tree 0: node 1: leaf value is NaN"},
		{"wrongformat.json", xgbStump(), "lightgbm", "wrongformat.json: not a LightGBM text model"},
	}
	for _, c := range bad {
		code, _, errs := run("--format", c.format, "--file", write(c.name, c.data), "--force")
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want 1 and %q", c.name, code, errs, c.want)
		}
	}
	if code, _, errs := run("--format", "lightgbm", "--file", write("a.txt", lgb), "--file", write("b.txt", lgb)); code != 2 || !strings.Contains(errs, "--objective once per --file") {
		t.Errorf("two files without objectives: exit %d, %q", code, errs)
	}
	if code, _, errs := run("--format", "lightgbm", "--file", write("w.txt", lgb), "--weight", "watched"); code != 1 || !strings.Contains(errs, `--weight "watched": want objective=number`) {
		t.Errorf("bad weight: exit %d, %q", code, errs)
	}
	if n := rerankVersions(t, db); n != 0 {
		t.Fatalf("%d versions stored by bad imports", n)
	}

	// The fixture ignores "followed": worse on the held-out impressions
	// than the default weights, so it is staged, not activated.
	code, out, errs := run("--format", "lightgbm", "--file", write("lgb.txt", lgb), "--version", "lgb-1")
	if code != 0 || !strings.Contains(out, "staged lgb-1") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
	if _, err := db.ActiveRerankModel(ctx); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("active after a staged import: %v", err)
	}

	// The stump predicts the held-out labels better: activated without
	// --force, with a regression head beside it.
	code, out, errs = run("--format", "xgboost", "--format", "lightgbm", "--file", write("stump.json", xgbStump()), "--objective", "watched",
		"--file", write("secs.txt", fixture("lgb_regression.txt")), "--objective", "watch_seconds",
		"--weight", "watch_seconds=0.5", "--scale", "watch_seconds=600", "--version", "stump-1")
	if code != 0 || !strings.Contains(out, "activated stump-1") {
		t.Fatalf("exit %d, out %q, err %q", code, out, errs)
	}
	active, err := db.ActiveRerankModel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var tm rerank.TreeModel
	if err := json.Unmarshal(active.Weights, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.Version != "stump-1" || tm.Source != "xgboost+lightgbm" || len(tm.Heads) != 2 || tm.Weights[rerank.ObjWatchSeconds] != 0.5 || tm.Heads[1].Scale != 600 {
		t.Fatalf("stored model %+v", tm)
	}
	var metrics map[string]any
	if err := json.Unmarshal(active.Metrics, &metrics); err != nil {
		t.Fatal(err)
	}
	if metrics["holdout"].(float64) != 300 || metrics["holdout_logloss"].(float64) > metrics["previous_logloss"].(float64) {
		t.Fatalf("metrics %v", metrics)
	}
	m, err := rerank.ParseModel(active.Weights)
	if err != nil {
		t.Fatal(err)
	}
	x := make([]float64, rerank.NumFeatures)
	x[slices.Index(rerank.FeatureNames, "followed")] = 1
	if p := m.PWatched(x); math.Abs(p-0.7) > 1e-6 {
		t.Fatalf("P(watched | followed) = %v, want 0.7 (sigmoid of the stump's leaf)", p)
	}
	if n := rerankVersions(t, db); n != 2 {
		t.Fatalf("%d versions, want 2 (staged, active)", n)
	}
}
