// Command bench-embed measures the embedding trainers on the published NCF-format
// splits (MovieLens-1M and Last.fm, ../shared/datasets): HR@10 and NDCG@10 of
// ItemPop, ALS, BPR and NeuMF with the tuned defaults, and training time on
// this machine, beside the published figures. Its last line is one JSON
// object with the headline figures. QUICK=1 skips BPR and NeuMF on ml-1m
// (reported as null).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"

	"github.com/liverecall/liverecall/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-embed:", err)
		os.Exit(1)
	}
}

// median trains model runs times and returns the run with the median
// training time (quality is the same for every run: training is seeded).
func median(ctx context.Context, model string, d *embed.Dataset, runs int) (embed.Result, []float64, error) {
	var rs []embed.Result
	var ts []float64
	for i := 0; i < runs; i++ {
		r, err := embed.Train(ctx, model, d, embed.Params{})
		if err != nil {
			return embed.Result{}, nil, err
		}
		rs = append(rs, r)
		ts = append(ts, r.TrainS)
	}
	slices.SortFunc(rs, func(a, b embed.Result) int { return int(math.Copysign(1, a.TrainS-b.TrainS)) })
	return rs[len(rs)/2], ts, nil
}

func run() error {
	ctx := context.Background()
	quick := os.Getenv("QUICK") != ""
	dir, err := embed.DatasetDir()
	if err != nil {
		return err
	}
	fmt.Printf("embedding benchmark: GOMAXPROCS=%d, quick=%v, datasets %s\n", runtime.GOMAXPROCS(0), quick, dir)
	out := map[string]any{
		"ml1m_als_hr10": nil, "ml1m_als_ndcg10": nil, "ml1m_als_train_s": nil,
		"ml1m_ncf_hr10": nil, "ml1m_ncf_ndcg10": nil, "ml1m_ncf_train_s": nil,
		"lastfm_als_hr10": nil, "lastfm_ncf_hr10": nil,
	}
	key := map[string]string{"ml-1m": "ml1m", "lastfm": "lastfm"}
	for _, name := range []string{"lastfm", "ml-1m"} {
		d, err := embed.LoadNamed(dir, name)
		if err != nil {
			return err
		}
		fmt.Printf("\n%s: %d users, %d items, %d training rows, %d test cases\n", name, d.NUsers, d.NItems, len(d.Train), len(d.Test))
		fmt.Printf("%-22s %7s %8s %9s  %s\n", "model", "HR@10", "NDCG@10", "train_s", "runs (s)")
		for _, model := range embed.Models {
			if quick && name == "ml-1m" && (model == "ncf" || model == "bpr") {
				fmt.Printf("%-22s %7s %8s %9s  skipped (QUICK=1)\n", model, "-", "-", "-")
				continue
			}
			runs := 1
			if model == "als" || model == "pop" {
				runs = 3
			}
			r, ts, err := median(ctx, model, d, runs)
			if err != nil {
				return fmt.Errorf("%s %s: %w", name, model, err)
			}
			m := r.Metrics
			fmt.Printf("%-22s %7.4f %8.4f %9.2f  %v\n", model, m.HR10, m.NDCG10, r.TrainS, round2(ts))
			k := key[name] + "_" + model
			if model == "als" || model == "ncf" {
				out[k+"_hr10"] = r4(m.HR10)
				if name == "ml-1m" {
					out[k+"_ndcg10"] = r4(m.NDCG10)
					out[k+"_train_s"] = math.Round(r.TrainS*100) / 100
				}
			}
		}
		for _, p := range embed.Published[name] {
			fmt.Printf("%-22s %7.4f %8.4f\n", "published "+p.Model, p.HR10, p.NDCG)
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	fmt.Println()
	fmt.Println(string(b))
	return nil
}

func r4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

func round2(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*100) / 100
	}
	return out
}
