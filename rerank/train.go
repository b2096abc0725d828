package rerank

import (
	"math"
	"math/rand/v2"
)

// Sample is one impression: its feature vector and what the user did
// afterwards. Label is the watched objective (watched long enough, soon
// enough), the one logistic Train learns; the tree trainer (TrainTrees)
// learns a head for each objective.
type Sample struct {
	X            []float64
	Label        bool
	WatchSeconds float64 // seconds of that watch (0: none); TrainTrees caps them
	Gift         bool    // a gift to the streamer during that watch
	Follow       bool    // a follow of the streamer within the window
}

// TrainConfig sets the logistic regression's optimiser.
type TrainConfig struct {
	Epochs int     // default 20
	LR     float64 // default 0.05
	L2     float64 // default 1e-4
	Seed   uint64
}

// Train fits logistic weights to samples with mini-batch gradient descent
// (Adagrad steps, L2 penalty), starting from the defaults so that few
// samples only nudge them. It returns an EINVALID error when there is
// nothing to learn from (no samples, or only one class) or the fit diverges.
func Train(samples []Sample, cfg TrainConfig) (Weights, error) {
	pos := 0
	for _, s := range samples {
		if len(s.X) != NumFeatures {
			return Weights{}, errf("sample has %d features, want %d", len(s.X), NumFeatures)
		}
		if s.Label {
			pos++
		}
	}
	if len(samples) == 0 || pos == 0 || pos == len(samples) {
		return Weights{}, errf("need impressions with both outcomes to learn from: %d samples, %d positive", len(samples), pos)
	}
	if cfg.Epochs <= 0 {
		cfg.Epochs = 20
	}
	if cfg.LR <= 0 {
		cfg.LR = 0.05
	}
	if cfg.L2 <= 0 {
		cfg.L2 = 1e-4
	}
	w := DefaultWeights()
	w.Version = ""
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	gsq := make([]float64, NumFeatures+1)
	const batch = 64
	grad := make([]float64, NumFeatures+1)
	for ep := 0; ep < cfg.Epochs; ep++ {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for b := 0; b < len(order); b += batch {
			clear(grad)
			end := min(b+batch, len(order))
			for _, i := range order[b:end] {
				s := samples[i]
				z := w.Bias
				for j, x := range s.X {
					z += w.W[j] * x
				}
				p := 1 / (1 + math.Exp(-z))
				y := 0.0
				if s.Label {
					y = 1
				}
				g := p - y
				grad[NumFeatures] += g
				for j, x := range s.X {
					grad[j] += g * x
				}
			}
			n := float64(end - b)
			for j := 0; j <= NumFeatures; j++ {
				g := grad[j] / n
				if j < NumFeatures {
					g += cfg.L2 * w.W[j]
				}
				gsq[j] += g * g
				step := cfg.LR * g / (math.Sqrt(gsq[j]) + 1e-8)
				if j < NumFeatures {
					w.W[j] -= step
				} else {
					w.Bias -= step
				}
			}
		}
	}
	if err := w.Validate(); err != nil {
		return Weights{}, errf("training diverged: %v", err)
	}
	return w, nil
}

// LogLoss is the mean negative log-likelihood of samples under w.
func LogLoss(samples []Sample, w Weights) float64 {
	var sum float64
	for _, s := range samples {
		z := w.Bias
		for j, x := range s.X {
			z += w.W[j] * x
		}
		p := 1 / (1 + math.Exp(-z))
		p = math.Min(math.Max(p, 1e-12), 1-1e-12)
		if s.Label {
			sum -= math.Log(p)
		} else {
			sum -= math.Log(1 - p)
		}
	}
	return sum / float64(len(samples))
}
