package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/liverecall/liverecall/embed"
)

func init() {
	register(&command{name: "eval", summary: "train and evaluate embedding models on a dataset (NCF leave-one-out protocol)", run: runEval})
}

func runEval(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "eval")
	format := f.FlagSet.String("format", "ncf", "dataset format: ncf (user item value [ts] files plus a negatives file)")
	dataset := f.FlagSet.String("dataset", "", "path prefix of an NCF dataset, e.g. ../shared/datasets/ml-1m (sets --train, --test, --negatives)")
	train := f.FlagSet.String("train", "", "training file (*.train.rating)")
	test := f.FlagSet.String("test", "", "test file (*.test.rating)")
	negatives := f.FlagSet.String("negatives", "", "negatives file (*.test.negative)")
	models := f.FlagSet.String("model", "als", "models to train and evaluate, comma-separated: "+strings.Join(embed.Models, ", "))
	asJSON := f.FlagSet.Bool("json", false, "print one JSON object per model instead of a table")
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
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	p.Seed = *seed
	if *format != "ncf" {
		fmt.Fprintf(app.Stderr, "liverecall eval: unknown --format %q (want ncf)\n", *format)
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
