package liverecall

import "time"

// ExperimentMode is how an experiment compares its arms on live traffic.
type ExperimentMode string

const (
	// ModeAB splits the experiment's users between its arms: each user
	// sees the pages of one arm for the experiment's life.
	ModeAB ExperimentMode = "ab"
	// ModeInterleave shows each user of the experiment one page merged
	// from two arms' rankings by team draft, recording which arm
	// contributed each position.
	ModeInterleave ExperimentMode = "interleave"
)

// ExperimentStatus is an experiment's lifecycle state: created as draft,
// running while started (and within its window), paused (its users get
// the default configuration, their assignment is kept), stopped (final).
type ExperimentStatus string

const (
	ExperimentDraft   ExperimentStatus = "draft"
	ExperimentRunning ExperimentStatus = "running"
	ExperimentPaused  ExperimentStatus = "paused"
	ExperimentStopped ExperimentStatus = "stopped"
)

// DefaultLayer is the layer of an experiment that names none.
const DefaultLayer = "default"

// Experiment is an online experiment: a named, salted split of traffic
// into arms, each a serving configuration. Two experiments whose windows
// overlap must be in different layers (and then set disjoint parameters):
// a user is in at most one experiment per layer.
type Experiment struct {
	ID     int64            `json:"id,omitempty"`
	Name   string           `json:"name"`
	Salt   string           `json:"salt"`  // hashed with the user id to assign arms
	Layer  string           `json:"layer"` // "" is DefaultLayer
	Mode   ExperimentMode   `json:"mode"`
	Status ExperimentStatus `json:"status,omitempty"`
	// Start and End bound when the experiment assigns traffic (End zero:
	// until stopped).
	Start time.Time `json:"start"`
	End   time.Time `json:"end,omitzero"`
	// Arms in order; for ModeAB the first is control unless one says
	// Control; ModeInterleave has exactly two (control first).
	Arms      []Arm     `json:"arms"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// Arm is one configuration of an experiment and its share of all traffic
// (0 < Share ≤ 1; the arms' shares sum to at most 1, the rest gets the
// default configuration). In ModeInterleave the two arms' shares sum to
// the experiment's traffic; each user in it sees both arms.
type Arm struct {
	Name    string    `json:"name"`
	Share   float64   `json:"share"`
	Control bool      `json:"control,omitempty"`
	Config  ArmConfig `json:"config"`
}

// ArmConfig is a full serving configuration; a zero field keeps the
// default (the active version, the configured channels and budgets).
type ArmConfig struct {
	MFVersion     string `json:"mf_version,omitempty"`     // embedding_models.version of kind mf
	NCFVersion    string `json:"ncf_version,omitempty"`    // embedding_models.version of kind ncf
	RerankVersion string `json:"rerank_version,omitempty"` // rerank_models.version
	// Disabled channels are skipped for the arm's users (recall.Channels
	// names); Enabled re-enables channels the service disables.
	Disabled []string `json:"disabled_channels,omitempty"`
	Enabled  []string `json:"enabled_channels,omitempty"`
	// Per-channel candidate counts, quotas and budgets (milliseconds).
	PerChannel      map[string]int     `json:"per_channel,omitempty"`
	Quota           map[string]int     `json:"quota,omitempty"`
	ChannelBudgetMS map[string]float64 `json:"channel_budget_ms,omitempty"`
}

// Assignment is where one request's user falls: the experiment and arm
// (ModeAB), or the experiment and both arms (ModeInterleave, Arm is "").
// The zero Assignment is the default configuration.
type Assignment struct {
	Experiment string         `json:"experiment,omitempty"`
	Mode       ExperimentMode `json:"mode,omitempty"`
	Arm        string         `json:"arm,omitempty"`
}
