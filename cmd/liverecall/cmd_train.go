package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/rerank"
)

func init() {
	register(&command{name: "train", summary: "train an embedding model (mf or ncf) from the Postgres history, stage it and activate it if it is not worse", run: runTrain})
}

var (
	sTrainModel   = defSetting(setting{"model", "LIVERECALL_TRAIN_MODEL", "mf", "model to train: mf (implicit ALS), ncf (NeuMF) or rerank (a reranker from impressions: --algo logistic or gbdt)"})
	sTrainWindow  = defSetting(setting{"window", "LIVERECALL_TRAIN_WINDOW", "2160h", "use the history of this last period (0 for all): the watch sessions and gifts for mf and ncf, the impressions and what followed them for rerank and import-rerank"})
	sTrainHoldout = defSetting(setting{"holdout", "LIVERECALL_TRAIN_HOLDOUT", "0.1", "share of the most recent watch sessions held out for evaluation"})
	sTrainMinRows = defSetting(setting{"min-interactions", "LIVERECALL_TRAIN_MIN_INTERACTIONS", "100", "refuse to train on fewer training watch sessions"})
	sTrainMargin  = defSetting(setting{"margin", "LIVERECALL_TRAIN_MARGIN", "0.01", "activate only if HR@10 (all targets) is not below the active version's by more than this"})
	sTrainEvalMax = defSetting(setting{"eval-max", "LIVERECALL_TRAIN_EVAL_MAX", "20000", "evaluate on at most this many held-out watch sessions (seeded sample)"})
)

// modelJobFlags are the settings train and import share: where the history
// is, which model, how the new version is evaluated and compared.
type modelJobFlags struct {
	dbURL, model     *string
	window           *time.Duration
	holdout, margin  *float64
	minRows, evalMax *int
}

func newModelJobFlags(f *flags) modelJobFlags {
	return modelJobFlags{dbURL: f.String(sDatabaseURL), model: f.String(sTrainModel), window: f.Duration(sTrainWindow),
		holdout: f.Float(sTrainHoldout), margin: f.Float(sTrainMargin), minRows: f.Int(sTrainMinRows), evalMax: f.Int(sTrainEvalMax)}
}

func runTrain(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "train")
	j := newModelJobFlags(f)
	force := f.FlagSet.Bool("force", false, "activate even if the new version is worse than the active one")
	version := f.FlagSet.String("version", "", "version label (default <kind>-<UTC time>)")
	dim := f.FlagSet.Int("dim", 0, "latent factors (0: tuned default, 64)")
	epochs := f.FlagSet.Int("epochs", 0, "training epochs (0: tuned default)")
	seed := f.FlagSet.Uint64("seed", 1, "random seed")
	lrate := f.FlagSet.Float64("lr", 0, "NeuMF learning rate (0: tuned default)")
	rrWatch := f.FlagSet.Duration("rerank-watch-within", 10*time.Minute, "rerank: an impression counts as a success if the user started watching within this")
	rrSeconds := f.FlagSet.Int("rerank-min-seconds", 60, "rerank: ... and watched at least this many seconds")
	rrSamples := f.FlagSet.Int("rerank-min-samples", 500, "rerank: refuse to train on fewer impressions")
	rrAlgo := f.FlagSet.String("algo", "logistic", "rerank: logistic (weights over the features) or gbdt (gradient-boosted trees, one head per objective)")
	rrCap := f.FlagSet.Float64("rerank-watch-cap", 600, "rerank gbdt: watch seconds are capped at this for the watch_seconds objective")
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		fmt.Fprintf(app.Stderr, "liverecall train: unexpected argument %q\n", f.Arg(0))
		return errUsage
	}
	// --algo chooses a reranker's algorithm: refused, before anything is
	// opened, when it names none or the model is not a reranker.
	algoSet := false
	f.FlagSet.Visit(func(fl *flag.Flag) { algoSet = algoSet || fl.Name == "algo" })
	switch {
	case *rrAlgo != "logistic" && *rrAlgo != rerank.AlgoGBDT:
		fmt.Fprintf(app.Stderr, "liverecall train: --algo %q: want logistic or gbdt\n", *rrAlgo)
		return errUsage
	case algoSet && *j.model != "rerank":
		fmt.Fprintf(app.Stderr, "liverecall train: --algo applies to --model rerank only, not %q\n", *j.model)
		return errUsage
	}
	if *j.model == "rerank" {
		db, err := postgres.Open(ctx, *j.dbURL)
		if err != nil {
			return err
		}
		defer db.Close()
		since := *j.window
		if since <= 0 {
			since = 100 * 365 * 24 * time.Hour
		}
		return trainRerank(ctx, app, db, rerankTrainConfig{since: since, window: *rrWatch, minSeconds: *rrSeconds,
			minSamples: *rrSamples, force: *force, seed: *seed, algo: *rrAlgo, watchCap: *rrCap, version: *version})
	}
	kind, err := lr.ParseModelKind(*j.model)
	if err != nil {
		fmt.Fprintf(app.Stderr, "liverecall train: %v\n", err)
		return errUsage
	}
	cfg, total := liveTrainConfig(kind, j, *seed, *dim, *epochs, *lrate)
	progress, done := epochProgress(app, string(kind), total)
	cfg.ALS.Progress, cfg.NeuMF.Progress = progress, progress

	db, err := postgres.Open(ctx, *j.dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	// One embedding training run at a time per database, however started
	// (the two CronJobs' schedules keep them apart; this holds if not).
	release, err := db.LockTraining(ctx, func() {
		app.Log.Info("another training run holds the training lock; waiting for it to end", "model", kind)
	})
	if err != nil {
		return fmt.Errorf("training %s: waiting for the training lock: %w", kind, err)
	}
	defer release()
	var since time.Time
	if *j.window > 0 {
		since = time.Now().Add(-*j.window)
	}
	h, err := readHistory(ctx, db, since)
	if err != nil {
		return err
	}
	app.Log.Info("history read", "watches", len(h.Watches), "gifts", len(h.Gifts), "follows", len(h.Follows), "streams", len(h.Streams))

	start := time.Now()
	m, err := embed.TrainLive(ctx, h, cfg)
	done()
	if err != nil {
		return fmt.Errorf("training %s failed, nothing written: %w", kind, err)
	}
	trainS := time.Since(start).Seconds()
	app.Log.Info("trained", "kind", kind, "train_s", trainS, "hr@10", m.Metrics.All.HR10, "ndcg@10", m.Metrics.All.NDCG10,
		"repeat_hr@10", m.Metrics.Repeat.HR10, "new_hr@10", m.Metrics.New.HR10, "held_out", m.Metrics.All.N)

	metrics := map[string]any{"train_s": trainS, "cutoff": m.Cutoff, "train_watches": m.TrainWatch, "held_out": m.HeldWatch,
		"eval": liveMetricsJSON(m.Metrics)}
	if m.Full != nil {
		metrics["eval_full_neumf"] = liveMetricsJSON(*m.Full)
	}
	active, activeM, hasActive, err := evaluateActive(ctx, app, db, kind, m, metrics)
	if err != nil {
		return err
	}
	params, scorer, err := versionParams(kind, cfg, m)
	if err != nil {
		return err
	}
	label := *version
	if label == "" {
		label = fmt.Sprintf("%s-%s", kind, time.Now().UTC().Format("20060102T150405.000Z"))
	}
	mv, err := stageVersion(ctx, db, kind, label, m.Dim, metrics, params, m.Users, m.Streamers, scorer)
	if err != nil {
		return err
	}
	app.Log.Info("staged", "version", mv.Version, "id", mv.ID, "users", len(m.Users), "streamers", len(m.Streamers))
	if hasActive && !*force && m.Metrics.All.HR10 < activeM.All.HR10-*j.margin {
		return lr.Errorf(lr.ECONFLICT, "version %s (id %d) staged but not activated: HR@10 %.4f is below the active %s's %.4f by more than the margin %.4f (use --force to activate anyway)",
			mv.Version, mv.ID, m.Metrics.All.HR10, active.Version, activeM.All.HR10, *j.margin)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		return err
	}
	app.Log.Info("activated", "version", mv.Version, "id", mv.ID)
	fmt.Fprintf(app.Stdout, "activated %s/%s (id %d): HR@10 %.4f NDCG@10 %.4f on %d held-out watches\n",
		kind, mv.Version, mv.ID, m.Metrics.All.HR10, m.Metrics.All.NDCG10, m.Metrics.All.N)
	return nil
}

// liveTrainConfig is the training configuration of kind from the flags
// (zero: the tuned default), and the number of epochs progress counts.
func liveTrainConfig(kind lr.ModelKind, j modelJobFlags, seed uint64, dim, epochs int, lrate float64) (embed.LiveConfig, int) {
	cfg := embed.DefaultLiveConfig(kind)
	cfg.Holdout, cfg.MinInteractions, cfg.EvalMax, cfg.Seed = *j.holdout, *j.minRows, *j.evalMax, seed
	cfg.ALS.Seed, cfg.NeuMF.Seed = seed, seed
	if dim > 0 {
		cfg.ALS.Dim, cfg.NeuMF.Dim = dim, dim
	}
	if epochs > 0 {
		cfg.ALS.Epochs, cfg.NeuMF.Epochs = epochs, epochs
	}
	if lrate > 0 {
		cfg.NeuMF.LR = lrate
	}
	total := cfg.ALS.Epochs
	if n := cfg.NeuMF; kind == lr.ModelNCF {
		total = n.PretrainGMF + n.PretrainMLP + n.Epochs // NeuMF's Progress counts the pre-training epochs
	}
	return cfg, total
}

// evaluateActive evaluates kind's active version, if there is one, on the
// held-out watches m was evaluated on, and adds the result to metrics.
func evaluateActive(ctx context.Context, app *App, db *postgres.DB, kind lr.ModelKind, m *embed.LiveModel, metrics map[string]any) (lr.ModelVersion, embed.LiveMetrics, bool, error) {
	var activeM embed.LiveMetrics
	active, err := db.ActiveModel(ctx, kind)
	if lr.ErrorCode(err) == lr.ENOTFOUND {
		return active, activeM, false, nil
	}
	if err != nil {
		return active, activeM, false, err
	}
	if activeM, err = evaluateStored(ctx, db, active, m.Split); err != nil {
		return active, activeM, false, err
	}
	metrics["active"] = map[string]any{"id": active.ID, "version": active.Version, "eval": liveMetricsJSON(activeM)}
	app.Log.Info("active version on the same held-out watches", "version", active.Version, "hr@10", activeM.All.HR10, "ndcg@10", activeM.All.NDCG10)
	return active, activeM, true, nil
}

// versionParams are the params stored with a version trained with cfg,
// and for NCF its NeuMF scorer (embed.ScorerFormat: the streamer side and
// the dense weights; each user's weights go with the user's vector, as
// m.Users' MLP), stored beside the vectors.
func versionParams(kind lr.ModelKind, cfg embed.LiveConfig, m *embed.LiveModel) (map[string]any, []byte, error) {
	var scorer []byte
	params := map[string]any{"holdout": cfg.Holdout, "gift_weight": cfg.GiftWeight, "follow_weight": cfg.FollowWeight, "seed": cfg.Seed}
	if kind == lr.ModelMF {
		a := cfg.ALS
		params["trainer"], params["dim"], params["epochs"], params["reg"], params["alpha"], params["eps"] = "implicit-als", a.Dim, a.Epochs, a.Reg, a.Alpha, a.Eps
		return params, nil, nil
	}
	n := cfg.NeuMF
	params["trainer"], params["dim"], params["epochs"], params["layers"], params["lr"], params["neg"], params["batch"] = "neumf", n.Dim, n.Epochs, n.Layers, n.LR, n.Neg, n.Batch
	scorer, err := m.Scorer.MarshalBinary()
	if err != nil {
		return nil, nil, err
	}
	params["scorer_format"], params["scorer_bytes"] = embed.ScorerFormat, len(scorer)
	return params, scorer, nil
}

// stageVersion writes a staged version, its vectors (users with their MLP
// embedding, if any) and, when scorer is not nil, its NeuMF scorer
// (embed.ScorerFormat), all before anything activates
// it, so an active NCF version always has its scorer. When a write fails,
// the half-written version is deleted.
func stageVersion(ctx context.Context, db *postgres.DB, kind lr.ModelKind, label string, dim int, metrics, params map[string]any, users, streamers []lr.Embedding, scorer []byte) (lr.ModelVersion, error) {
	mj, err := json.Marshal(metrics)
	if err != nil {
		return lr.ModelVersion{}, err
	}
	pj, err := json.Marshal(params)
	if err != nil {
		return lr.ModelVersion{}, err
	}
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: kind, Version: label, Dim: dim, Metrics: mj, Params: pj})
	if err != nil {
		return mv, err
	}
	_, err = db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, users)
	if err == nil {
		_, err = db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, streamers)
	}
	if err == nil && scorer != nil {
		err = db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, scorer)
	}
	if err != nil {
		if derr := db.DeleteStagedModel(context.WithoutCancel(ctx), mv.ID); derr != nil {
			return mv, fmt.Errorf("%w (and deleting the half-written version %d failed: %v)", err, mv.ID, derr)
		}
		return mv, err
	}
	return mv, nil
}

// evaluateStored ranks the held-out watches of sp with the stored vectors of
// version mv (the active one), so the two are compared on the same data.
func evaluateStored(ctx context.Context, db *postgres.DB, mv lr.ModelVersion, sp *embed.Split) (embed.LiveMetrics, error) {
	var users, streamers []lr.Embedding
	if err := db.StreamEmbeddings(ctx, mv.ID, lr.SideUser, func(id int64, vec []float32) error {
		users = append(users, lr.Embedding{ID: id, Vec: vec})
		return nil
	}); err != nil {
		return embed.LiveMetrics{}, err
	}
	if err := db.StreamEmbeddings(ctx, mv.ID, lr.SideStreamer, func(id int64, vec []float32) error {
		streamers = append(streamers, lr.Embedding{ID: id, Vec: vec})
		return nil
	}); err != nil {
		return embed.LiveMetrics{}, err
	}
	return sp.Evaluate(embed.NewVectorScorer(users, streamers)), nil
}

// readHistory loads the training history from Postgres.
func readHistory(ctx context.Context, db *postgres.DB, since time.Time) (*embed.History, error) {
	h := &embed.History{}
	if err := db.TrainingWatches(ctx, since, func(w postgres.WatchRow) error {
		h.Watches = append(h.Watches, embed.Watch{User: int64(w.UserID), Streamer: int64(w.StreamerID), At: w.StartedAt, Seconds: float64(w.Seconds)})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingGifts(ctx, since, func(g postgres.GiftRow) error {
		h.Gifts = append(h.Gifts, embed.Gift{User: int64(g.UserID), Streamer: int64(g.StreamerID), At: g.SentAt, Amount: g.Amount})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingFollows(ctx, func(f postgres.FollowRow) error {
		h.Follows = append(h.Follows, embed.Follow{User: int64(f.UserID), Streamer: int64(f.StreamerID), At: f.CreatedAt})
		return nil
	}); err != nil {
		return nil, err
	}
	if err := db.TrainingStreams(ctx, since, func(s postgres.StreamRow) error {
		h.Streams = append(h.Streams, embed.Stream{Streamer: int64(s.StreamerID), Start: s.StartedAt, End: s.EndedAt})
		return nil
	}); err != nil {
		return nil, err
	}
	return h, nil
}

func liveMetricsJSON(m embed.LiveMetrics) map[string]any {
	return map[string]any{"all": m.All, "repeat": m.Repeat, "new": m.New, "skipped": m.Skipped, "mean_live": m.MeanLive}
}

// epochProgress returns a per-epoch callback: a progress bar when stderr is a
// terminal, a structured log line otherwise; done finishes the bar.
func epochProgress(app *App, what string, total int) (func(epoch, epochs int), func()) {
	if isTerminal(app.Stderr) {
		bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(app.Stderr),
			progressbar.OptionSetDescription("training "+what), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true))
		return func(int, int) { _ = bar.Add(1) }, func() { _ = bar.Finish(); fmt.Fprintln(app.Stderr) }
	}
	return func(ep, eps int) { app.Log.Info("training", "model", what, "epoch", ep, "of", eps) }, func() {}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
