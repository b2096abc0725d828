package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/rerank"
)

func TestTrainRerankFromImpressions(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	app, out, _ := testApp(nil)
	app.Log = newLogger(&strings.Builder{}, "error", "text")
	cfg := rerankTrainConfig{since: 24 * time.Hour, window: 10 * time.Minute, minSeconds: 60, minSamples: 200, seed: 1}

	if err := trainRerank(ctx, app, db, cfg); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("no impressions: %v, want invalid", err)
	}

	// Followed streamers get watched for 2 minutes; the others rarely.
	rng := rand.New(rand.NewPCG(3, 3))
	base := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	var imps []lr.Impression
	var evs []lr.Event
	for i := 0; i < 1500; i++ {
		x := make([]float32, rerank.NumFeatures)
		followed := rng.IntN(3) == 0
		if followed {
			x[11] = 1
		}
		x[4] = float32(rng.Float64() * 4)
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
	if err := trainRerank(ctx, app, db, cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "activated rerank-") {
		t.Fatalf("output %q", out)
	}
	m, err := db.ActiveRerankModel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, err := rerank.ParseWeights(m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	if w.W[11] <= rerank.DefaultWeights().W[11] {
		t.Fatalf("follow weight %.3f did not grow from the default %.3f", w.W[11], rerank.DefaultWeights().W[11])
	}
}

// train --model rerank --algo gbdt on PostgreSQL: the watched label is an
// XOR of two features (which trees learn and logistic weights cannot),
// watch time, gifts during the watch and follows after the impression come
// from the events. The tree version is activated with per-head metrics; a
// logistic version trained next is worse on the holdout and stays staged.
func TestTrainRerankGBDT(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	app, out, _ := testApp(nil)
	app.Log = newLogger(&strings.Builder{}, "error", "text")
	rng := rand.New(rand.NewPCG(5, 5))
	base := time.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	var imps []lr.Impression
	var evs []lr.Event
	for i := 0; i < 3000; i++ {
		x := make([]float32, rerank.NumFeatures)
		x[0], x[4], x[6] = float32(rng.Float64()*2), float32(rng.Float64()*4), float32(rng.Float64())
		xor := (x[0] > 1) != (x[4] > 2)
		at := base.Add(time.Duration(i) * 3 * time.Second)
		u, s := lr.UserID(i%131+1), lr.StreamerID(i+1)
		imps = append(imps, lr.Impression{RequestID: fmt.Sprint("r", i), UserID: u, StreamerID: s, StreamID: lr.StreamID(s), ShownAt: at, Features: x})
		p := 0.05
		if xor {
			p = 0.8
		}
		if rng.Float64() >= p {
			continue
		}
		secs := 90 + rng.IntN(200)
		join := at.Add(time.Minute)
		ev := func(id string, typ lr.EventType, ts time.Time) lr.Event {
			return lr.Event{ID: fmt.Sprint(id, i), Type: typ, TS: ts, StreamerID: s, StreamID: lr.StreamID(s), UserID: u, V: 1}
		}
		evs = append(evs, ev("j", lr.EventViewerJoined, join), ev("l", lr.EventViewerLeft, join.Add(time.Duration(secs)*time.Second)))
		if x[6] > 0.5 {
			g := ev("g", lr.EventGiftSent, join.Add(30*time.Second))
			g.Amount = 5
			evs = append(evs, g)
		}
		if rng.IntN(3) == 0 {
			evs = append(evs, ev("f", lr.EventFollowCreated, join.Add(40*time.Second)))
		}
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	if _, err := db.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	cfg := rerankTrainConfig{since: 24 * time.Hour, window: 10 * time.Minute, minSeconds: 60, minSamples: 200, seed: 1, algo: "gbdt", version: "g1"}
	if err := trainRerank(ctx, app, db, cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "activated g1") {
		t.Fatalf("output %q", out)
	}
	m, err := db.ActiveRerankModel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	model, err := rerank.ParseModel(m.Weights)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := model.(*rerank.Forest)
	if !ok || len(f.TreeModel().Heads) != 4 {
		t.Fatalf("active model %T, want a forest of 4 heads", model)
	}
	var met map[string]any
	if err := json.Unmarshal(m.Metrics, &met); err != nil {
		t.Fatal(err)
	}
	t.Logf("metrics %v", met)
	for k, min := range map[string]float64{"auc_watched": 0.85, "auc_gift": 0.75, "auc_follow": 0.7} {
		if v, _ := met[k].(float64); v < min {
			t.Errorf("%s = %v, want >= %v", k, met[k], min)
		}
	}
	if v, ok := met["rmse_watch_seconds"].(float64); !ok || v <= 0 || v > 150 {
		t.Errorf("rmse_watch_seconds = %v", met["rmse_watch_seconds"])
	}
	// A logistic version cannot learn the XOR: worse on the holdout, staged.
	cfg.algo, cfg.version = "logistic", "l1"
	if err := trainRerank(ctx, app, db, cfg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "staged l1") {
		t.Fatalf("output %q, want l1 staged", out)
	}
	if m, _ := db.ActiveRerankModel(ctx); m.Version != "g1" {
		t.Fatalf("active %q, want g1", m.Version)
	}
	cfg.algo = "forest"
	if err := trainRerank(ctx, app, db, cfg); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("--algo forest: %v, want EINVALID", err)
	}
}
