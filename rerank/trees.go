package rerank

// The types a tree-ensemble reranker is made of. A trained ensemble (the
// in-process GBDT trainer) and one loaded from a LightGBM or XGBoost dump
// are both converted to these before they are validated, stored or served.

// Objective names a quantity the multi-objective reranker predicts from the
// impressions joined with what followed them.
type Objective string

const (
	// ObjWatched: the user started watching the streamer within the
	// window after the impression and stayed at least the minimum seconds
	// (binary, log loss).
	ObjWatched Objective = "watched"
	// ObjWatchSeconds: seconds watched of that session, capped
	// (regression, squared loss).
	ObjWatchSeconds Objective = "watch_seconds"
	// ObjGift: the user sent the streamer a gift within that session
	// (binary, log loss).
	ObjGift Objective = "gift"
	// ObjFollow: the user followed the streamer within the window after
	// the impression (binary, log loss).
	ObjFollow Objective = "follow"
)

// Loss is how a head's raw sum of leaf values becomes a prediction.
type Loss string

const (
	// LossLogistic: the prediction is sigmoid(Base + sum of leaves).
	LossLogistic Loss = "logistic"
	// LossSquared: the prediction is Base + sum of leaves.
	LossSquared Loss = "squared"
)

// Tree is one regression tree in flat arrays, all of one length (the
// number of nodes); node 0 is the root. Node i is a leaf when Feature[i]
// is -1, and then Value[i] is its output. Otherwise it splits on
// feature Feature[i] (an index into FeatureNames): x[Feature[i]] <
// Threshold[i] goes to Left[i], a larger value to Right[i], and a
// missing value (NaN) to Left[i] when DefaultLeft[i], else Right[i]. A
// LightGBM split (x <= t) is stored with the next float64 above t as its
// threshold, so every tree here compares with "<".
//
// Cover[i] is the weight of the training data that reached node i (the
// hessian sum, or the count when the source has no hessians), and
// Value[i] of an inner node is the cover-weighted mean of its subtree's
// leaves: both serve the per-feature contributions of an explanation.
type Tree struct {
	Feature     []int32   `json:"feature"`
	Threshold   []float64 `json:"threshold"`
	DefaultLeft []bool    `json:"default_left"`
	Left        []int32   `json:"left"`
	Right       []int32   `json:"right"`
	Value       []float64 `json:"value"`
	Cover       []float64 `json:"cover"`
}

// Head is the ensemble of one objective: its prediction for a feature
// vector x is Loss applied to Base + the sum of every tree's leaf for x.
type Head struct {
	Objective Objective `json:"objective"`
	Loss      Loss      `json:"loss"`
	Base      float64   `json:"base"`
	Trees     []Tree    `json:"trees"`
	// Scale divides the prediction before it is weighted (e.g. the cap
	// of watch seconds, so each head's prediction lies in [0, 1]); 0
	// means 1.
	Scale float64 `json:"scale,omitempty"`
}

// TreeModel is a multi-objective tree reranker: a candidate's score is
// the sum over heads of Weights[head's objective] × the head's (scaled)
// prediction. The weights are part of the stored version and can be
// edited without retraining; Features is the feature order the trees
// index, which must equal FeatureNames (or a FeatureSets prefix of it).
type TreeModel struct {
	Version  string                `json:"version"`
	Algo     string                `json:"algo"`             // "gbdt"; the stored form's discriminator against logistic Weights
	Source   string                `json:"source,omitempty"` // "liverecall", "lightgbm", "xgboost"
	Features []string              `json:"features"`
	Heads    []Head                `json:"heads"`
	Weights  map[Objective]float64 `json:"weights"`
	// Notes are what the trainer wants a reader of the version to know
	// (e.g. a head skipped because its label had one class only).
	Notes []string `json:"notes,omitempty"`
}
