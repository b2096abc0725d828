package recommend

import (
	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// ArmIndex resolves the embedding versions an experiment's arm names to
// what this replica serves (index.Manager): the active version of a kind
// and the versions loaded for running experiments.
type ArmIndex interface {
	// ModelByVersion returns kind's version labelled version when this
	// replica serves it (active or loaded for an experiment), else false
	// (not loaded yet, failed to load, or unknown).
	ModelByVersion(kind lr.ModelKind, version string) (lr.ModelVersion, bool)
}

// ArmScorers resolves the reranker and NeuMF versions an arm names
// (Models).
type ArmScorers interface {
	// WeightsVersion returns the reranker model of version (active or
	// loaded for an experiment), else false.
	WeightsVersion(version string) (rerank.Model, bool)
	// NCFFor returns the NeuMF scorer of the NCF version with
	// embedding_models id modelID when one is loaded, else nil (rerank
	// then takes the GMF dot product).
	NCFFor(modelID int64) NCF
}
