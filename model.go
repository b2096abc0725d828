package liverecall

import (
	"encoding/json"
	"fmt"
	"time"
)

// UserID and StreamerID are the product's identifiers. They are sparse;
// live/ maps streamer ids to dense uint32 ordinals for the index and bitmaps.
type (
	UserID     int64
	StreamerID int64
	StreamID   int64
)

// ModelKind names an embedding model family.
type ModelKind string

const (
	ModelMF  ModelKind = "mf"  // matrix factorization (implicit ALS or BPR)
	ModelNCF ModelKind = "ncf" // NeuMF; retrieval vectors are the GMF tower's
)

// ParseModelKind validates s.
func ParseModelKind(s string) (ModelKind, error) {
	switch ModelKind(s) {
	case ModelMF, ModelNCF:
		return ModelKind(s), nil
	}
	return "", Errorf(EINVALID, "unknown model kind %q (want mf or ncf)", s)
}

// ModelStatus is the lifecycle state of a model version:
// staged → active → retired. At most one version per kind is active; the
// database enforces it.
type ModelStatus string

const (
	StatusStaged  ModelStatus = "staged"
	StatusActive  ModelStatus = "active"
	StatusRetired ModelStatus = "retired"
)

// ModelVersion describes one stored set of embeddings.
type ModelVersion struct {
	ID          int64
	Kind        ModelKind
	Version     string // human-readable, unique per kind, e.g. "mf-20261123T0200"
	Dim         int
	Status      ModelStatus
	Metrics     json.RawMessage // evaluation figures, free-form JSON object
	Params      json.RawMessage // hyper-parameters and, for NCF, the scorer weights
	CreatedAt   time.Time
	ActivatedAt *time.Time
}

func (m ModelVersion) String() string {
	return fmt.Sprintf("%s/%s (id %d, dim %d, %s)", m.Kind, m.Version, m.ID, m.Dim, m.Status)
}

// EmbeddingSide says whose vectors a row holds.
type EmbeddingSide string

const (
	SideUser     EmbeddingSide = "user"
	SideStreamer EmbeddingSide = "streamer"
)

// Embedding is one row of a model version: an id and its vector.
type Embedding struct {
	ID  int64
	Vec []float32
	// MLP is, for a user of an NCF version trained here, the user's NeuMF
	// MLP embedding, which the version's scorer needs besides Vec to score
	// the user; nil otherwise (MF, streamers, imported versions).
	MLP []float32
}
