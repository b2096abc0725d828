package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/rerank"
)

// rerankTrainConfig is what `liverecall train --model rerank` reads.
type rerankTrainConfig struct {
	since      time.Duration // impressions shown within this much before now
	window     time.Duration // a watch (or follow) must start within this after the impression
	minSeconds int           // and last at least this long
	minSamples int
	force      bool
	seed       uint64
	algo       string  // "logistic" (default) or "gbdt"
	watchCap   float64 // gbdt: watch seconds are capped at this (default 600)
	version    string  // the version's name; default rerank-<UTC time>
}

// rerankSamples reads the impressions shown in the last c.since with a
// feature vector of this build, labelled with what followed, in time order;
// skipped counts those without a usable vector.
func rerankSamples(ctx context.Context, db *postgres.DB, c rerankTrainConfig) (samples []rerank.Sample, skipped int, err error) {
	err = db.LabeledImpressions(ctx, time.Now().Add(-c.since), c.window, c.minSeconds, func(li postgres.LabeledImpression) error {
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
		samples = append(samples, rerank.Sample{X: x, Label: li.Watched, WatchSeconds: li.WatchSeconds, Gift: li.Gift, Follow: li.Follow})
		return nil
	})
	return samples, skipped, err
}

// splitHoldout splits samples (in time order, as rerankSamples returns
// them) into the older four fifths and the newest fifth, the holdout every
// reranker version is compared on (stageRerank).
func splitHoldout(samples []rerank.Sample) (train, hold []rerank.Sample) {
	cut := len(samples) * 4 / 5
	return samples[:cut], samples[cut:]
}

// trainRerank learns a reranker (logistic weights, or with c.algo "gbdt" a
// multi-objective tree ensemble) from impressions joined with what each
// user did next, holds out the newest fifth by time, and stores and
// activates it as stageRerank decides. It writes nothing when anything
// fails.
func trainRerank(ctx context.Context, app *App, db *postgres.DB, c rerankTrainConfig) error {
	if c.algo == "" {
		c.algo = "logistic"
	}
	if c.algo != "logistic" && c.algo != rerank.AlgoGBDT {
		return lr.Errorf(lr.EINVALID, "--algo %q: want logistic or gbdt", c.algo)
	}
	samples, skipped, err := rerankSamples(ctx, db, c)
	if err != nil {
		return err
	}
	if len(samples) < c.minSamples {
		return lr.Errorf(lr.EINVALID, "only %d usable impressions in the last %s (need %d; %d had no feature vector)", len(samples), c.since, c.minSamples, skipped)
	}
	train, hold := splitHoldout(samples)
	version := c.version
	if version == "" {
		version = "rerank-" + time.Now().UTC().Format("20060102T150405")
	}
	metrics := map[string]any{"train": len(train), "holdout": len(hold), "algo": c.algo}
	var model rerank.Model
	var raw []byte
	if c.algo == rerank.AlgoGBDT {
		// Early stopping watches the newest eighth of the training part,
		// before the holdout in time; the trees learn from the rest.
		vcut := len(train) * 7 / 8
		tm, err := rerank.TrainTrees(train[:vcut], train[vcut:], rerank.GBDTConfig{Seed: c.seed, WatchCap: c.watchCap})
		if err != nil {
			return err
		}
		tm.Version = version
		f, err := rerank.CompileChecked(tm)
		if err != nil {
			return err
		}
		for k, v := range rerank.HeadMetrics(f, hold) {
			metrics[k] = v
		}
		if len(tm.Notes) > 0 {
			metrics["notes"] = tm.Notes
		}
		model = f
		raw, _ = json.Marshal(tm)
	} else {
		w, err := rerank.Train(train, rerank.TrainConfig{Seed: c.seed})
		if err != nil {
			return err
		}
		w.Version = version
		model = w
		raw, _ = json.Marshal(w)
	}
	return stageRerank(ctx, app, db, version, model, raw, metrics, hold, c.force)
}

// stageRerank stores model (raw: the JSON rerank.ParseModel reads back) as
// reranker version `version` with metrics, and activates it when its log
// loss of P(watched) on the held-out samples is not worse than the active
// model's (the default weights when no version is active or the active one
// does not parse in this build), or when force; otherwise it stays staged.
// hold must not be empty unless force. The two log losses are added to
// metrics ("holdout_logloss", "previous_logloss"). Nothing is stored when
// the model does not validate.
func stageRerank(ctx context.Context, app *App, db *postgres.DB, version string, model rerank.Model, raw []byte, metrics map[string]any, hold []rerank.Sample, force bool) error {
	if err := model.Validate(); err != nil {
		return err
	}
	if len(hold) == 0 && !force {
		return lr.Errorf(lr.EINVALID, "reranker %s: no held-out impressions to compare it with the active model on (--force activates without)", version)
	}
	var current rerank.Model = rerank.DefaultWeights()
	if m, err := db.ActiveRerankModel(ctx); err == nil {
		if cm, err := rerank.ParseModel(m.Weights); err == nil {
			current = cm
		}
	} else if lr.ErrorCode(err) != lr.ENOTFOUND {
		return err
	}
	newLoss, oldLoss := math.NaN(), math.NaN()
	if len(hold) > 0 {
		newLoss, oldLoss = rerank.ModelLogLoss(hold, model), rerank.ModelLogLoss(hold, current)
		if metrics == nil {
			metrics = map[string]any{}
		}
		metrics["holdout_logloss"], metrics["previous_logloss"] = newLoss, oldLoss
	}
	mb, err := json.Marshal(metrics)
	if err != nil {
		return lr.Errorf(lr.EINVALID, "reranker %s metrics: %v", version, err)
	}
	m, err := db.CreateRerankModel(ctx, version, raw, mb)
	if err != nil {
		return err
	}
	app.Log.Info("stored reranker", "version", version, "holdout_logloss", newLoss, "previous_logloss", oldLoss, "holdout", len(hold))
	if !(newLoss <= oldLoss) && !force { // --force activates anyway
		fmt.Fprintf(app.Stdout, "staged %s (holdout log loss %.4f, worse than the active %.4f): not activated\n", version, newLoss, oldLoss)
		return nil
	}
	if err := db.ActivateRerankModel(ctx, m.ID); err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "activated %s (holdout log loss %.4f, previous %.4f)\n", version, newLoss, oldLoss)
	return nil
}
