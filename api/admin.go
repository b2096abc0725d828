package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	lr "github.com/liverecall/liverecall"
)

// Admin is what the admin routes need from the service.
type Admin interface {
	// Reload rebuilds the indexes from the active model versions now and
	// says what it did per model kind; it blocks until done or ctx ends.
	Reload(ctx context.Context) ([]KindReload, error)
	// Status describes index versions, live count, consumer lag and the last
	// reload.
	Status() Status
}

// KindReload is what a reload did for one model kind (the body of POST
// /v1/admin/reload is a list of them; index.ReloadResult converts to it).
type KindReload struct {
	Kind         lr.ModelKind `json:"kind"`
	ModelID      int64        `json:"model_id,omitempty"`
	Version      string       `json:"version,omitempty"`
	Outcome      string       `json:"outcome"` // "swapped", "snapshot", "unchanged", "no active model", "refused", "failed", "cancelled"
	Vectors      int          `json:"vectors,omitempty"`
	Users        int64        `json:"users,omitempty"` // user vectors the store holds for the version (the index holds none)
	Seconds      float64      `json:"seconds,omitempty"`
	SelfCheck    float64      `json:"self_check_recall,omitempty"`
	Error        string       `json:"error,omitempty"`
	ServingModel string       `json:"serving,omitempty"` // version serving afterwards
}

// Status is the body of GET /v1/admin/status (fields in the order of their
// JSON names).
type Status struct {
	CaughtUp    bool           `json:"caught_up"`    // the live view caught up with the event topics
	ConsumerLag []PartitionLag `json:"consumer_lag"` // per event-topic partition
	Index       []IndexStatus  `json:"index"`
	Kafka       bool           `json:"kafka"`  // brokers are configured
	Live        int            `json:"live"`   // streamers live now
	Rerank      string         `json:"rerank"` // the reranker weights' version
	// Scorers lists the reranker and NeuMF versions serving: the active
	// ones, those loaded for experiments, and those that failed to load.
	Scorers []ScorerStatus `json:"scorers"`
	// StalenessS is how far behind the live view is, in seconds (absent
	// without brokers).
	StalenessS *float64 `json:"staleness_s,omitempty"`
	UptimeS    int      `json:"uptime_s"`
	// UserCache is the user store's in-process cache of user vectors.
	UserCache *UserCacheStatus `json:"user_cache,omitempty"`
	Users     int              `json:"users"` // users with live state
}

// UserCacheStatus describes the cache of user vectors (userstore.Stats).
type UserCacheStatus struct {
	Entries  int   `json:"entries"`   // users' rows held
	Bytes    int64 `json:"bytes"`     // their estimated size
	MaxBytes int64 `json:"max_bytes"` // the configured bound
	// Lookups since start: answered from the cache (a known user's row, or
	// the remembered absence of an unknown one), and misses read from the
	// database.
	Hits         uint64 `json:"hits"`
	NegativeHits uint64 `json:"negative_hits"`
	Misses       uint64 `json:"misses"`
}

// PartitionLag is one event partition's progress (events.PartitionLag
// converts to it).
type PartitionLag struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	Next      int64  `json:"next"`       // next offset to apply
	HighWater int64  `json:"high_water"` // newest high-water mark seen
	StartMark int64  `json:"start_mark"` // high-water mark at start; caught up once Next reaches it
	Lag       int64  `json:"lag"`        // HighWater - Next
}

// IndexStatus describes one kind's serving index (index.KindStatus
// converts to it).
type IndexStatus struct {
	Kind            lr.ModelKind `json:"kind"`
	ModelID         int64        `json:"model_id,omitempty"`
	Version         string       `json:"version,omitempty"`
	Vectors         int          `json:"vectors"`
	Users           int64        `json:"users"` // user vectors the store held for the version at load (-1: not counted)
	LiveVectors     int          `json:"live_vectors"`
	BuildSeconds    float64      `json:"build_seconds,omitempty"`
	SelfCheck       float64      `json:"self_check_recall,omitempty"`
	LastReload      *time.Time   `json:"last_reload,omitempty"`
	LastError       string       `json:"last_error,omitempty"`
	PreviousVersion string       `json:"previous_version,omitempty"`
	// The plan of the serving index (index.PlanSummary): "measured" (by
	// the self-check's recall table and costs) or "threshold", the recall
	// target, the ef of unfiltered searches (0: exact scans), and per
	// measured accepted share ("1": no filter) the ef chosen (0: exact
	// scans) and the recall@10 measured there.
	Plan         string             `json:"plan,omitempty"`
	RecallTarget float64            `json:"recall_target,omitempty"`
	SearchEf     int                `json:"search_ef"`
	PlanEf       map[string]int     `json:"plan_ef,omitempty"`
	PlanRecall   map[string]float64 `json:"plan_recall,omitempty"`
	// Versions lists every version of the kind serving (the active one
	// first, then those loaded for experiments) or wanted by a running or
	// paused experiment and not serving (loading, or failed with the
	// error: its arms get the default configuration).
	Versions []IndexVersion `json:"versions"`
}

// IndexVersion is one version of a kind in IndexStatus (index.VersionStatus
// converts to it).
type IndexVersion struct {
	Version     string     `json:"version"`
	ModelID     int64      `json:"model_id,omitempty"`
	Role        string     `json:"role"` // "active", "experiment", "loading", "failed"
	Vectors     int        `json:"vectors,omitempty"`
	LiveVectors int        `json:"live_vectors,omitempty"`
	SelfCheck   float64    `json:"self_check_recall,omitempty"`
	Error       string     `json:"error,omitempty"`
	FailedAt    *time.Time `json:"failed_at,omitempty"`
	// The version's plan (see IndexStatus): the ef of unfiltered searches
	// (0: exact scans, or not loaded), and per measured accepted share the
	// ef chosen (0: exact scans) and the recall@10 measured there.
	SearchEf   int                `json:"search_ef,omitempty"`
	PlanEf     map[string]int     `json:"plan_ef,omitempty"`
	PlanRecall map[string]float64 `json:"plan_recall,omitempty"`
}

// ScorerStatus is one reranker or NeuMF version in Status
// (recommend.ScorerStatus converts to it).
type ScorerStatus struct {
	Kind     string     `json:"kind"` // "rerank" or "neumf"
	Version  string     `json:"version"`
	ModelID  int64      `json:"model_id,omitempty"` // embedding_models id (neumf)
	Role     string     `json:"role"`               // "active", "experiment", "failed"
	Algo     string     `json:"algo,omitempty"`     // reranker: "logistic" or "gbdt"
	Error    string     `json:"error,omitempty"`
	FailedAt *time.Time `json:"failed_at,omitempty"`
}

// RegisterAdmin adds POST /v1/admin/reload and GET /v1/admin/status behind
// the bearer token.
func (s *Server) RegisterAdmin(a Admin, token string) {
	auth := requireToken(token)
	s.e.POST("/v1/admin/reload", func(c echo.Context) error {
		out, err := a.Reload(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}, auth)
	s.e.GET("/v1/admin/status", func(c echo.Context) error { return c.JSON(http.StatusOK, a.Status()) }, auth)
}
