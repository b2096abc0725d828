package experiment

import (
	"time"

	lr "github.com/liverecall/liverecall"
)

// Report is an experiment's online figures, joined from its impressions
// and the outcomes that followed them (see cmd/liverecall "experiment
// report"); the statistics are computed by this package.
type Report struct {
	Experiment  string              `json:"experiment"`
	Mode        lr.ExperimentMode   `json:"mode"`
	Status      lr.ExperimentStatus `json:"status"`
	GeneratedAt time.Time           `json:"generated_at"`
	// From and To bound the impressions read.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// WatchSeconds and WithinSeconds are how impressions were labelled:
	// watched after a watch of the streamer of at least WatchSeconds
	// that started within WithinSeconds of the impression.
	WatchSeconds  int `json:"watch_seconds"`
	WithinSeconds int `json:"within_seconds"`
	// Method names how intervals and p-values were computed, e.g.
	// "user-level bootstrap, 2000 resamples".
	Method string      `json:"method"`
	Arms   []ArmReport `json:"arms"`
	// SRM is the sample-ratio-mismatch check of the users per arm
	// against the arms' configured shares (ModeAB).
	SRM *SRM `json:"srm,omitempty"`
	// Interleaving is the win count of an interleaving experiment.
	Interleaving *Interleaving `json:"interleaving,omitempty"`
}

// ArmReport is one arm's figures (for ModeInterleave, one team's: its
// contributed positions).
type ArmReport struct {
	Arm         string  `json:"arm"`
	Control     bool    `json:"control,omitempty"`
	Share       float64 `json:"share"`
	Users       int64   `json:"users"`
	Impressions int64   `json:"impressions"`
	// Metrics by name: "watch_through_rate" (share of impressions
	// watched ≥ N s within M min), "watch_seconds_per_impression",
	// "gifts_per_1000_impressions", "follows_per_1000_impressions".
	Metrics map[string]float64 `json:"metrics"`
	// Diffs against control by metric name (absent for control).
	Diffs map[string]Diff `json:"diffs,omitempty"`
	// Series is the arm's figures per time bucket, oldest first (for the
	// dashboard's charts).
	Series []Point `json:"series,omitempty"`
}

// Diff is an arm's difference against control in one metric.
type Diff struct {
	Delta    float64 `json:"delta"`    // arm − control
	Relative float64 `json:"relative"` // delta ÷ control (NaN-free: 0 when control is 0)
	Low      float64 `json:"ci_low"`   // 95% interval of delta
	High     float64 `json:"ci_high"`
	P        float64 `json:"p"` // two-sided p-value of delta = 0
}

// Point is one time bucket of an arm's series.
type Point struct {
	Time        time.Time          `json:"t"`
	Impressions int64              `json:"impressions"`
	Metrics     map[string]float64 `json:"metrics"`
}

// SRM is a chi-square goodness-of-fit test of the users per arm against
// the configured shares; a small P means the assignment is broken.
type SRM struct {
	ChiSquare float64 `json:"chi_square"`
	DF        int     `json:"df"`
	P         float64 `json:"p"`
	// Mismatch is P < SRMThreshold: the users per arm are too far from
	// the shares to trust the differences.
	Mismatch bool `json:"mismatch"`
}

// SRMThreshold is the p-value under which SRM says Mismatch: strict,
// as the check runs on every report and a real mismatch gives tiny
// p-values (600 against 400 users of a 50/50 split: 2.5e-10).
const SRMThreshold = 0.001

// Interleaving is the outcome of an interleaving experiment: per page
// with any outcome, the team whose positions won more watches (ties
// apart), and the sign test of wins.
type Interleaving struct {
	Wins  map[string]int64   `json:"wins"` // by arm
	Ties  int64              `json:"ties"`
	Share map[string]float64 `json:"win_share"` // wins ÷ (wins of both)
	P     float64            `json:"p"`         // two-sided sign test
}
