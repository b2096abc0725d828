package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/replay"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/sim"
)

// runReplay is `liverecall eval --format replay` on the simulated world:
// the same days of history and held-out day (simulated again from the same
// seed), replayed through the service with models trained on the days
// before, every channel alone and the three baselines scored on the same
// decisions (at most c.replayMax held-out watch starts).
//
// For choosing defaults without the held-out day:
// BENCH_QUALITY_REPLAY_VALIDATION=1 simulates the history only (the
// held-out day is never simulated) and holds out its last day instead, the
// models trained on the days before it; BENCH_QUALITY_REPLAY_WEIGHTS
// ("repeat_top=2,repeat_share=1": rerank feature names and weights) changes
// the named default rerank weights.
func runReplay(ctx context.Context, c config) (map[string]float64, error) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	testDay := start.AddDate(0, 0, c.days)
	end := testDay.AddDate(0, 0, 1)
	what := "held out"
	if os.Getenv("BENCH_QUALITY_REPLAY_VALIDATION") != "" {
		end, testDay = testDay, testDay.AddDate(0, 0, -1)
		c.days--
		what = "VALIDATION day (the held-out day not simulated)"
	}
	weights, err := weightOverrides(os.Getenv("BENCH_QUALITY_REPLAY_WEIGHTS"))
	if err != nil {
		return nil, err
	}
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	var b replay.Builder
	if _, err := w.Run(ctx, start, end, func(e lr.Event) error { b.Add(e); return nil }, nil); err != nil {
		return nil, err
	}
	hist := b.History()
	fmt.Printf("\n# replay (liverecall eval --format replay): %d days of history, %s from %s, at most %d decisions (%.1f s to simulate)\n",
		c.days, what, testDay.Format(time.DateOnly), c.replayMax, time.Since(t0).Seconds())
	if weights.Version != "default" {
		fmt.Printf("rerank weights: the defaults with %s\n", weights.Version)
	}
	rep, err := replay.Run(ctx, hist, replay.Config{HoldoutFrom: testDay, MaxDecisions: c.replayMax, Models: []string{"als", "ncf"}, Weights: &weights})
	if err != nil {
		return nil, err
	}
	fmt.Printf("%d decisions (%d not live), mean %.0f live, trained in %.1f s, replayed in %.1f s\n\n",
		rep.Decisions, rep.NotLive, rep.MeanLive, rep.TrainS, rep.ReplayS)
	fmt.Println("| ranker | HR@1 | HR@5 | HR@10 | NDCG@10 | repeat HR@1 | repeat HR@10 | new HR@1 | new HR@10 | repeat n | new n |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		name := r.Name
		switch r.Kind {
		case "channel":
			name = r.Name + " channel alone"
		case "baseline":
			name = r.Name + " (baseline)"
		}
		fmt.Printf("| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %d | %d |\n", name, r.All.HR1, r.All.HR5, r.All.HR10, r.All.NDCG10,
			r.Repeat.HR1, r.Repeat.HR10, r.New.HR1, r.New.HR10, r.Repeat.N, r.New.N)
	}
	full, _ := rep.Row(replay.Full)
	rp, _ := rep.Row(replay.Repeat)
	return map[string]float64{
		"replay_hr1_full": full.All.HR1, "replay_hr1_repeat_baseline": rp.All.HR1,
		"replay_hr10_full": full.All.HR10, "replay_hr10_repeat_baseline": rp.All.HR10,
	}, nil
}

// weightOverrides returns the default rerank weights with the weights
// named in spec ("name=value,name=value") changed; its Version is spec
// ("default" when spec is empty).
func weightOverrides(spec string) (rerank.Weights, error) {
	w := rerank.DefaultWeights()
	if spec == "" {
		return w, nil
	}
	w.Version = spec
	for _, kv := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		i := slices.Index(rerank.FeatureNames, name)
		x, err := strconv.ParseFloat(val, 64)
		if !ok || i < 0 || err != nil {
			return w, fmt.Errorf("BENCH_QUALITY_REPLAY_WEIGHTS: %q is not a rerank feature name = a number", kv)
		}
		w.W[i] = x
	}
	return w, w.Validate()
}
