package main

import (
	"context"
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
