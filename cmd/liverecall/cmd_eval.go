package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

func init() {
	register(&command{name: "eval", summary: "train and evaluate embedding models: NCF leave-one-out on dataset files, or availability-aware on the PostgreSQL history", run: runEval})
}

func runEval(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "eval")
	format := f.FlagSet.String("format", "ncf", "ncf: leave-one-out on NCF-format files; live: the availability-aware protocol on the PostgreSQL history (--database-url); replay: the whole serving system, replaying the PostgreSQL history")
	holdoutFrom := f.FlagSet.String("holdout-from", "", "replay: score the watch starts from this time on (RFC 3339) and train on the history before it (default: the most recent --holdout share of watch sessions)")
	dbURL := f.String(sDatabaseURL)
	window := f.Duration(sTrainWindow)
	holdout := f.Float(sTrainHoldout)
	evalMax := f.Int(sTrainEvalMax)
	dataset := f.FlagSet.String("dataset", "", "path prefix of an NCF dataset, e.g. ../shared/datasets/ml-1m (sets --train, --test, --negatives)")
	train := f.FlagSet.String("train", "", "training file (*.train.rating)")
	test := f.FlagSet.String("test", "", "test file (*.test.rating)")
	negatives := f.FlagSet.String("negatives", "", "negatives file (*.test.negative)")
	models := f.FlagSet.String("model", "als", "models to train and evaluate, comma-separated: "+strings.Join(embed.Models, ", "))
	asJSON := f.FlagSet.Bool("json", false, "print one JSON object per model instead of a table")
	foldIn := f.FlagSet.Bool("foldin", false, "replay: also score the full system with MF user vectors folded in from the session at each decision (row full+foldin), as serve --foldin does")
	var p embed.Params
	f.FlagSet.IntVar(&p.Dim, "dim", 0, "latent factors (0: the model's tuned default, 64)")
	f.FlagSet.IntVar(&p.Epochs, "epochs", 0, "training epochs (0: the model's tuned default)")
	seed := f.FlagSet.Uint64("seed", 1, "random seed")
	f.FlagSet.Float64Var(&p.Reg, "reg", 0, "L2 regularisation (0: the model's tuned default)")
	f.FlagSet.Float64Var(&p.Alpha, "alpha", 0, "ALS confidence slope (0: tuned default)")
	f.FlagSet.Float64Var(&p.LR, "lr", 0, "BPR/NeuMF learning rate (0: tuned default)")
	f.FlagSet.IntVar(&p.Neg, "neg", 0, "NeuMF negatives per positive (0: tuned default)")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, "usage: liverecall eval --format ncf (--dataset PREFIX | --train F --test F --negatives F) --model als,ncf [--json]")
		fmt.Fprintln(app.Stderr, "       liverecall eval --format live [--database-url URL] --model pop,als,ncf [--json]")
		fmt.Fprintln(app.Stderr, "       liverecall eval --format replay [--database-url URL] [--holdout-from TIME | --holdout SHARE] [--eval-max N] [--model als,ncf] [--foldin] [--json]")
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	p.Seed = *seed
	if *foldIn && *format != "replay" {
		fmt.Fprintln(app.Stderr, "liverecall eval: --foldin applies to --format replay only")
		return errUsage
	}
	if *format == "live" {
		return evalLive(ctx, app, *dbURL, *window, *holdout, *evalMax, strings.Split(*models, ","), p, *asJSON)
	}
	if *format == "replay" {
		var from time.Time
		if *holdoutFrom != "" {
			t, err := time.Parse(time.RFC3339, *holdoutFrom)
			if err != nil {
				fmt.Fprintf(app.Stderr, "liverecall eval: --holdout-from %q is not an RFC 3339 time (e.g. 2026-01-10T00:00:00Z)\n", *holdoutFrom)
				return errUsage
			}
			from = t
		}
		return evalReplay(ctx, app, *dbURL, from, *holdout, *evalMax, strings.Split(*models, ","), p, *foldIn, *asJSON)
	}
	if *format != "ncf" {
		fmt.Fprintf(app.Stderr, "liverecall eval: unknown --format %q (want ncf, live or replay)\n", *format)
		return errUsage
	}
	if *dataset != "" {
		*train, *test, *negatives = *dataset+".train.rating", *dataset+".test.rating", *dataset+".test.negative"
	}
	if *train == "" || *test == "" || *negatives == "" {
		fmt.Fprintln(app.Stderr, "liverecall eval: --train, --test and --negatives (or --dataset) are required")
		return errUsage
	}
	names := strings.Split(*models, ",")
	for _, n := range names {
		if !validModel(n) {
			fmt.Fprintf(app.Stderr, "liverecall eval: unknown --model %q (want %s)\n", n, strings.Join(embed.Models, ", "))
			return errUsage
		}
	}
	d, err := embed.LoadNCF(*train, *test, *negatives)
	if err != nil {
		return err
	}
	app.Log.Info("dataset loaded", "name", d.Name, "users", d.NUsers, "items", d.NItems, "train", len(d.Train), "cases", len(d.Test))
	var results []embed.Result
	for _, n := range names {
		pp := p
		pp.Progress = func(ep, eps int) { app.Log.Debug("epoch", "model", n, "epoch", ep, "of", eps) }
		r, err := embed.Train(ctx, n, d, pp)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		app.Log.Info("evaluated", "model", n, "hr@10", r.Metrics.HR10, "ndcg@10", r.Metrics.NDCG10, "train_s", r.TrainS)
		if *asJSON {
			if err := writeEvalJSON(app.Stdout, r); err != nil {
				return err
			}
		}
		results = append(results, r)
	}
	if !*asJSON {
		writeEvalTable(app.Stdout, d, results)
	}
	return nil
}

func validModel(n string) bool {
	for _, m := range embed.Models {
		if m == n {
			return true
		}
	}
	return false
}

// writeEvalJSON prints {"model":…,"hr@1":…,…,"train_s":…} on one line.
func writeEvalJSON(w io.Writer, r embed.Result) error {
	m := r.Metrics
	b, err := json.Marshal(struct {
		Model  string  `json:"model"`
		HR1    float64 `json:"hr@1"`
		HR5    float64 `json:"hr@5"`
		HR10   float64 `json:"hr@10"`
		NDCG1  float64 `json:"ndcg@1"`
		NDCG5  float64 `json:"ndcg@5"`
		NDCG10 float64 `json:"ndcg@10"`
		TrainS float64 `json:"train_s"`
	}{r.Model, r4(m.HR1), r4(m.HR5), r4(m.HR10), r4(m.NDCG1), r4(m.NDCG5), r4(m.NDCG10), math.Round(r.TrainS*100) / 100})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func r4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

func writeEvalTable(w io.Writer, d *embed.Dataset, rs []embed.Result) {
	fmt.Fprintf(w, "dataset %s: %d users, %d items, %d training rows, %d test cases\n\n", d.Name, d.NUsers, d.NItems, len(d.Train), len(d.Test))
	fmt.Fprintf(w, "%-14s %6s %6s %6s %7s %7s %7s %8s\n", "model", "HR@1", "HR@5", "HR@10", "NDCG@1", "NDCG@5", "NDCG@10", "train_s")
	for _, r := range rs {
		m := r.Metrics
		fmt.Fprintf(w, "%-14s %6.4f %6.4f %6.4f %7.4f %7.4f %7.4f %8.2f\n", r.Model, m.HR1, m.HR5, m.HR10, m.NDCG1, m.NDCG5, m.NDCG10, r.TrainS)
	}
	if pub, ok := embed.Published[d.Name]; ok {
		fmt.Fprintf(w, "\npublished on %s (DeepCF, AAAI 2019, Table 2):\n", d.Name)
		for _, p := range pub {
			fmt.Fprintf(w, "%-14s %6s %6s %6.4f %7s %7s %7.4f\n", p.Model, "", "", p.HR10, "", "", p.NDCG)
		}
	}
}

// evalLive runs the availability-aware protocol on the PostgreSQL history.
func evalLive(ctx context.Context, app *App, dbURL string, window time.Duration, holdout float64, evalMax int, models []string, p embed.Params, asJSON bool) error {
	for _, n := range models {
		if n != "pop" && n != "als" && n != "ncf" {
			fmt.Fprintf(app.Stderr, "liverecall eval: --format live takes --model pop, als or ncf, not %q\n", n)
			return errUsage
		}
	}
	cfg := liveEvalConfig(p)
	cfg.Holdout, cfg.EvalMax = holdout, evalMax
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	var since time.Time
	if window > 0 {
		since = time.Now().Add(-window)
	}
	h, err := readHistory(ctx, db, since)
	if err != nil {
		return err
	}
	rs, err := embed.EvaluateLiveModels(ctx, h, models, cfg)
	if err != nil {
		return err
	}
	if asJSON {
		for _, r := range rs {
			m := r.Metrics
			b, err := json.Marshal(map[string]any{"model": r.Model,
				"hr@1": r4(m.All.HR1), "hr@5": r4(m.All.HR5), "hr@10": r4(m.All.HR10),
				"ndcg@1": r4(m.All.NDCG1), "ndcg@5": r4(m.All.NDCG5), "ndcg@10": r4(m.All.NDCG10),
				"repeat_hr@10": r4(m.Repeat.HR10), "repeat_ndcg@10": r4(m.Repeat.NDCG10),
				"new_hr@10": r4(m.New.HR10), "new_ndcg@10": r4(m.New.NDCG10),
				"n": m.All.N, "repeat_n": m.Repeat.N, "new_n": m.New.N, "mean_live": math.Round(m.MeanLive*10) / 10,
				"train_s": math.Round(r.TrainS*100) / 100})
			if err != nil {
				return err
			}
			fmt.Fprintln(app.Stdout, string(b))
		}
		return nil
	}
	fmt.Fprintf(app.Stdout, "availability-aware protocol: %d watch sessions, each held-out one ranked among the streamers live at its start\n\n", len(h.Watches))
	fmt.Fprintf(app.Stdout, "%-9s %7s %8s %10s %11s %8s %9s %6s %9s %8s\n", "model", "HR@10", "NDCG@10", "rep HR@10", "rep NDCG10", "new HR@10", "new NDCG", "n", "mean live", "train_s")
	for _, r := range rs {
		m := r.Metrics
		fmt.Fprintf(app.Stdout, "%-9s %7.4f %8.4f %10.4f %11.4f %8.4f %9.4f %6d %9.1f %8.2f\n", r.Model, m.All.HR10, m.All.NDCG10,
			m.Repeat.HR10, m.Repeat.NDCG10, m.New.HR10, m.New.NDCG10, m.All.N, m.MeanLive, r.TrainS)
	}
	return nil
}

// liveEvalConfig is the MF live-evaluation configuration with the
// training parameters the command line set (p's zero fields keep the
// defaults), for --format live and --format replay.
func liveEvalConfig(p embed.Params) embed.LiveConfig {
	cfg := embed.DefaultLiveConfig(lr.ModelMF)
	if p.Seed != 0 {
		cfg.Seed, cfg.ALS.Seed, cfg.NeuMF.Seed = p.Seed, p.Seed, p.Seed
	}
	if p.Dim > 0 {
		cfg.ALS.Dim, cfg.NeuMF.Dim = p.Dim, p.Dim
	}
	if p.Epochs > 0 {
		cfg.ALS.Epochs, cfg.NeuMF.Epochs = p.Epochs, p.Epochs
	}
	if p.Reg > 0 {
		cfg.ALS.Reg = p.Reg
	}
	if p.Alpha > 0 {
		cfg.ALS.Alpha = p.Alpha
	}
	if p.LR > 0 {
		cfg.NeuMF.LR = p.LR
	}
	return cfg
}
