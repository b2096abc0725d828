package rerank

import (
	"encoding/json"
	"math"
	"sort"

	lr "github.com/liverecall/liverecall"
)

// Model is what Rank scores candidates with: the logistic Weights or a
// compiled tree ensemble (*Forest). Implementations are immutable once
// built and safe for concurrent use.
type Model interface {
	// ModelVersion is the stored version the model came from.
	ModelVersion() string
	// WithVersion returns the model under another version name.
	WithVersion(v string) Model
	// Validate reports why the model cannot serve this build (EINVALID).
	Validate() error
	// Score is the ranking score of feature vector x (higher ranks first).
	Score(x []float64) float64
	// PWatched is the predicted probability that the user watches (the
	// objective versions are compared on before activation).
	PWatched(x []float64) float64
	// Effects writes into e (len(x)) each feature's part in Score(x):
	// weight × value for the logistic model (in the linear term), the
	// path attribution of the trees in the score space for a forest.
	Effects(x, e []float64)
}

// ModelVersion implements Model.
func (w Weights) ModelVersion() string { return w.Version }

// WithVersion implements Model.
func (w Weights) WithVersion(v string) Model { w.Version = v; return w }

// Score is sigmoid(Bias + W·x) (Model).
func (w Weights) Score(x []float64) float64 {
	z := w.Bias
	for j := range x {
		z += w.W[j] * x[j]
	}
	return 1 / (1 + math.Exp(-z))
}

// PWatched is Score: the logistic model predicts watching (Model).
func (w Weights) PWatched(x []float64) float64 { return w.Score(x) }

// Effects writes weight × value (Model).
func (w Weights) Effects(x, e []float64) {
	for j := range x {
		e[j] = w.W[j] * x[j]
	}
}

// ParseModel decodes a stored reranker version: a JSON object whose "algo"
// is "gbdt" is a TreeModel (validated, then compiled); without "algo" it
// is logistic Weights (ParseWeights, unchanged). Anything else is refused
// with EINVALID.
func ParseModel(b []byte) (Model, error) {
	var head struct {
		Algo *string `json:"algo"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return nil, lr.Errorf(lr.EINVALID, "rerank model: %v", err)
	}
	switch {
	case head.Algo == nil || *head.Algo == "logistic":
		w, err := ParseWeights(b)
		if err != nil {
			return nil, err
		}
		return w, nil
	case *head.Algo == AlgoGBDT:
		var m TreeModel
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "rerank tree model: %v", err)
		}
		return CompileChecked(m)
	default:
		return nil, lr.Errorf(lr.EINVALID, "rerank model: unknown algo %q (want %q or none for logistic weights)", *head.Algo, AlgoGBDT)
	}
}

// ModelLogLoss is the mean negative log-likelihood of the samples' Label
// (watched) under m.PWatched.
func ModelLogLoss(samples []Sample, m Model) float64 {
	var sum float64
	for _, s := range samples {
		p := math.Min(math.Max(m.PWatched(s.X), 1e-12), 1-1e-12)
		if s.Label {
			sum -= math.Log(p)
		} else {
			sum -= math.Log(1 - p)
		}
	}
	return sum / float64(len(samples))
}

// explainEffects lists why an item scored as it did from its features'
// effects: the positive ones, largest first, at most explainPositive, then
// the negative ones, most negative first, at most explainNegative. Zero
// effects are left out.
func explainEffects(x, eff []float64) []Contribution {
	var pos, neg []Contribution
	for j := range x {
		switch e := eff[j]; {
		case e > 0:
			pos = append(pos, Contribution{Feature: FeatureNames[j], Value: x[j], Effect: e})
		case e < 0:
			neg = append(neg, Contribution{Feature: FeatureNames[j], Value: x[j], Effect: e})
		}
	}
	sort.SliceStable(pos, func(a, b int) bool { return pos[a].Effect > pos[b].Effect })
	sort.SliceStable(neg, func(a, b int) bool { return neg[a].Effect < neg[b].Effect })
	return append(pos[:min(len(pos), explainPositive)], neg[:min(len(neg), explainNegative)]...)
}
