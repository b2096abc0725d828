package embed

import (
	"context"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Models lists the model names Train accepts, in the order they are usually
// reported.
var Models = []string{"pop", "als", "bpr", "ncf"}

// Params overrides the tuned defaults of a model; a zero field keeps the
// default. Not every field applies to every model.
type Params struct {
	Dim    int
	Epochs int
	Seed   uint64
	Reg    float64 // ALS λ, BPR and NeuMF L2
	Alpha  float64 // ALS confidence slope
	LR     float64 // BPR and NeuMF learning rate
	Neg    int     // NeuMF negatives per positive
	// Progress, if set, is called after each epoch.
	Progress func(epoch, epochs int)
}

// Result is one trained and evaluated model.
type Result struct {
	Model   string
	Metrics Metrics
	TrainS  float64 // training wall time, seconds
	Scorer  Scorer
}

// Train fits model ("pop", "als", "bpr" or "ncf") on d.Train with the tuned
// defaults overridden by p, then evaluates it on d.Test with EvaluateLOO.
// It is the one code path of the eval command, the benchmark and the tests.
func Train(ctx context.Context, model string, d *Dataset, p Params) (Result, error) {
	start := time.Now()
	var s Scorer
	var err error
	switch model {
	case "pop":
		s = TrainItemPop(d.Train, d.NItems)
	case "als":
		cfg := DefaultALSConfig()
		setInt(&cfg.Dim, p.Dim)
		setInt(&cfg.Epochs, p.Epochs)
		setF(&cfg.Reg, p.Reg)
		setF(&cfg.Alpha, p.Alpha)
		if p.Seed != 0 {
			cfg.Seed = p.Seed
		}
		cfg.Progress = p.Progress
		s, err = TrainALS(ctx, d.Train, d.NUsers, d.NItems, cfg)
	case "bpr":
		cfg := DefaultBPRConfig()
		setInt(&cfg.Dim, p.Dim)
		setInt(&cfg.Epochs, p.Epochs)
		setF(&cfg.Reg, p.Reg)
		setF(&cfg.LR, p.LR)
		if p.Seed != 0 {
			cfg.Seed = p.Seed
		}
		cfg.Progress = p.Progress
		s, err = TrainBPR(ctx, d.Train, d.NUsers, d.NItems, cfg)
	case "ncf":
		cfg := DefaultNeuMFConfig()
		setInt(&cfg.Dim, p.Dim)
		setInt(&cfg.Epochs, p.Epochs)
		setF(&cfg.Reg, p.Reg)
		setF(&cfg.LR, p.LR)
		setInt(&cfg.Neg, p.Neg)
		if p.Seed != 0 {
			cfg.Seed = p.Seed
		}
		cfg.Progress = p.Progress
		s, err = TrainNeuMF(ctx, d.Train, d.NUsers, d.NItems, cfg)
	default:
		return Result{}, lr.Errorf(lr.EINVALID, "unknown model %q (want pop, als, bpr or ncf)", model)
	}
	if err != nil {
		return Result{}, err
	}
	r := Result{Model: model, TrainS: time.Since(start).Seconds(), Scorer: s}
	r.Metrics = EvaluateLOO(s, d.Test)
	return r, nil
}

func setInt(dst *int, v int) {
	if v != 0 {
		*dst = v
	}
}

func setF(dst *float64, v float64) {
	if v != 0 {
		*dst = v
	}
}

// PublishedRow is one model's published HR@10 / NDCG@10 on a dataset split.
type PublishedRow struct {
	Model      string
	HR10, NDCG float64
}

// Published holds the published results on the NCF-format splits
// (DeepCF, AAAI 2019, Table 2), by dataset name.
var Published = map[string][]PublishedRow{
	"ml-1m": {
		{"ItemPop", .4535, .2542},
		{"eALS", .7018, .4280},
		{"DMF", .6565, .3761},
		{"NeuMF", .7210, .4387},
		{"CFNet", .7253, .4416},
	},
	"lastfm": {
		{"ItemPop", .6628, .3862},
		{"eALS", .8265, .5162},
		{"DMF", .8840, .5804},
		{"NeuMF", .8868, .6007},
		{"CFNet", .8995, .6186},
	},
}
