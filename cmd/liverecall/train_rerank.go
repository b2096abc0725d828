package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/rerank"
)

// rerankTrainConfig is what `liverecall train --model rerank` reads.
type rerankTrainConfig struct {
	since      time.Duration // impressions shown within this much before now
	window     time.Duration // a watch must start within this after the impression
	minSeconds int           // and last at least this long
	minSamples int
	force      bool
	seed       uint64
}

// trainRerank learns reranker weights from impressions joined with what each
// user did next, holds out the newest fifth by time, and activates the new
// weights only if their held-out log loss is not worse than the active
// weights' (or force). It writes nothing when anything fails.
func trainRerank(ctx context.Context, app *App, db *postgres.DB, c rerankTrainConfig) error {
	var samples []rerank.Sample
	var skipped int
	err := db.LabeledImpressions(ctx, time.Now().Add(-c.since), c.window, c.minSeconds, func(li postgres.LabeledImpression) error {
		if len(li.Features) != rerank.NumFeatures {
			// Served in recall order, or by a build with another feature
			// set (an older one lacks the newer features: filling them
			// with zeros would teach their weights nothing true).
			skipped++
			return nil
		}
		x := make([]float64, len(li.Features))
		for i, v := range li.Features {
			x[i] = float64(v)
		}
		samples = append(samples, rerank.Sample{X: x, Label: li.Watched})
		return nil
	})
	if err != nil {
		return err
	}
	if len(samples) < c.minSamples {
		return lr.Errorf(lr.EINVALID, "only %d usable impressions in the last %s (need %d; %d had no feature vector)", len(samples), c.since, c.minSamples, skipped)
	}
	// Impressions arrive in time order: the newest fifth is the holdout.
	cut := len(samples) * 4 / 5
	train, hold := samples[:cut], samples[cut:]
	w, err := rerank.Train(train, rerank.TrainConfig{Seed: c.seed})
	if err != nil {
		return err
	}
	w.Version = "rerank-" + time.Now().UTC().Format("20060102T150405")
	current := rerank.DefaultWeights()
	if m, err := db.ActiveRerankModel(ctx); err == nil {
		if cw, err := rerank.ParseWeights(m.Weights); err == nil {
			current = cw
		}
	} else if lr.ErrorCode(err) != lr.ENOTFOUND {
		return err
	}
	newLoss, oldLoss := rerank.LogLoss(hold, w), rerank.LogLoss(hold, current)
	metrics, _ := json.Marshal(map[string]any{"holdout_logloss": newLoss, "previous_logloss": oldLoss, "train": len(train), "holdout": len(hold)})
	wb, _ := json.Marshal(w)
	m, err := db.CreateRerankModel(ctx, w.Version, wb, metrics)
	if err != nil {
		return err
	}
	app.Log.Info("trained reranker", "version", w.Version, "holdout_logloss", newLoss, "previous_logloss", oldLoss, "samples", len(samples))
	if newLoss > oldLoss && !c.force { // --force activates anyway
		fmt.Fprintf(app.Stdout, "staged %s (holdout log loss %.4f, worse than the active %.4f): not activated\n", w.Version, newLoss, oldLoss)
		return nil
	}
	if err := db.ActivateRerankModel(ctx, m.ID); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "activated %s (holdout log loss %.4f, previous %.4f)\n", w.Version, newLoss, oldLoss)
	return nil
}
