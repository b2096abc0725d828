package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/rerank/treefile"
)

func init() {
	register(&command{name: "import-rerank", summary: "import a tree reranker trained elsewhere (LightGBM text or XGBoost JSON model files), validate, stage it and activate it if it is not worse", run: runImportRerank})
}

// objectiveValues parses repeated objective=number flags.
func objectiveValues(flag string, vals []string) (map[rerank.Objective]float64, error) {
	out := map[rerank.Objective]float64{}
	for _, v := range vals {
		k, num, ok := strings.Cut(v, "=")
		x, err := strconv.ParseFloat(num, 64)
		if !ok || err != nil {
			return nil, lr.Errorf(lr.EINVALID, "--%s %q: want objective=number (e.g. watched=1)", flag, v)
		}
		out[rerank.Objective(k)] = x
	}
	return out, nil
}

func runImportRerank(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "import-rerank")
	dbURL := f.String(sDatabaseURL)
	window := f.Duration(sTrainWindow)
	var formats, files, objectives, weightFlags, scaleFlags listFlag
	f.FlagSet.Var(&files, "file", "a model file: LightGBM text (Booster.save_model) or XGBoost JSON (Booster.save_model(\"m.json\")); repeat for one file per objective")
	f.FlagSet.Var(&formats, "format", "lightgbm or xgboost: once for all files, or once per --file in the same order")
	f.FlagSet.Var(&objectives, "objective", "what a file's model predicts: watched (default for a single file), watch_seconds, gift or follow; once per --file in the same order")
	f.FlagSet.Var(&weightFlags, "weight", "objective=weight of a head in the final score (repeatable; default rerank.DefaultObjectiveWeights, as for trained versions)")
	f.FlagSet.Var(&scaleFlags, "scale", "objective=divisor of a head's prediction before it is weighted (repeatable; default watch_seconds=600, the others 1)")
	trust := f.FlagSet.Bool("trust-feature-order", false, "accept a file without feature names (LightGBM Column_0..., XGBoost without feature_names) as being in rerank.FeatureNames order")
	version := f.FlagSet.String("version", "", "version label (default rerank-import-<UTC time>)")
	force := f.FlagSet.Bool("force", false, "activate even if worse than the active version on the held-out impressions, or when there are none")
	rrWatch := f.FlagSet.Duration("rerank-watch-within", 10*time.Minute, "held-out labels: an impression counts as watched if the user started watching within this")
	rrSeconds := f.FlagSet.Int("rerank-min-seconds", 60, "held-out labels: ... and watched at least this many seconds")
	if err := f.Parse(args); err != nil {
		return err
	}
	usage := func(format string, a ...any) error {
		fmt.Fprintf(app.Stderr, "liverecall import-rerank: "+format+"\n", a...)
		return errUsage
	}
	if f.NArg() > 0 {
		return usage("unexpected argument %q", f.Arg(0))
	}
	if len(files) == 0 {
		return usage("--file is required")
	}
	if len(formats) != 1 && len(formats) != len(files) {
		return usage("give --format once, or once per --file (%d files, %d formats)", len(files), len(formats))
	}
	if len(objectives) == 0 && len(files) == 1 {
		objectives = listFlag{string(rerank.ObjWatched)}
	}
	if len(objectives) != len(files) {
		return usage("give --objective once per --file (%d files, %d objectives)", len(files), len(objectives))
	}
	weights, err := objectiveValues("weight", weightFlags)
	if err != nil {
		return err
	}
	scales, err := objectiveValues("scale", scaleFlags)
	if err != nil {
		return err
	}
	if *version == "" {
		*version = "rerank-import-" + time.Now().UTC().Format("20060102T150405")
	}

	// Read and check every file completely before touching the database.
	var read []*treefile.File
	var names []string
	for i, path := range files {
		format := formats[0]
		if len(formats) > 1 {
			format = formats[i]
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return lr.Errorf(lr.EINVALID, "%s: %v", path, err)
		}
		tf, err := treefile.Read(format, path, data, treefile.Options{Objective: rerank.Objective(objectives[i]), TrustOrder: *trust})
		if err != nil {
			return err
		}
		read = append(read, tf)
		names = append(names, filepath.Base(path))
	}
	tm, err := treefile.Assemble(*version, read, weights, scales)
	if err != nil {
		return err
	}
	model, err := rerank.CompileChecked(*tm)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(tm)
	if err != nil {
		return lr.Errorf(lr.EINVALID, "reranker %s: %v", *version, err)
	}
	app.Log.Info("tree model read", "version", *version, "source", tm.Source, "files", names, "heads", len(tm.Heads), "features", len(tm.Features))

	db, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	since := *window
	if since <= 0 {
		since = 100 * 365 * 24 * time.Hour
	}
	// The same held-out impressions as `train --model rerank`: the newest
	// fifth of the window's.
	samples, _, err := rerankSamples(ctx, db, rerankTrainConfig{since: since, window: *rrWatch, minSeconds: *rrSeconds})
	if err != nil {
		return err
	}
	hold := samples[len(samples)*4/5:]
	metrics := map[string]any{"algo": rerank.AlgoGBDT, "source": tm.Source, "files": names, "holdout": len(hold)}
	for k, v := range rerank.HeadMetrics(model, hold) {
		metrics[k] = v
	}
	return stageRerank(ctx, app, db, *version, model, raw, metrics, hold, *force)
}
