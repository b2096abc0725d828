package liverecall

import "time"

// Impression is one item shown in one recall response: the unit the
// reranker learns from and the record of what was recommended.
type Impression struct {
	RequestID     string     `json:"request_id"`
	UserID        UserID     `json:"user_id"`
	StreamerID    StreamerID `json:"streamer_id"`
	StreamID      StreamID   `json:"stream_id"`
	Position      int        `json:"position"`
	Score         float64    `json:"score"`
	Channels      []string   `json:"channels"`
	ModelVersions string     `json:"model_versions"`
	ShownAt       time.Time  `json:"shown_at"`
	// Features is the reranker's feature vector for this item when shown
	// (empty if the item was served in recall order).
	Features []float32 `json:"features,omitempty"`
	// Context is the request's context when it said anything (nil when
	// it said nothing): shared by the impressions of one page, not to be
	// modified.
	Context *RequestContext `json:"context,omitempty"`
	// Experiment and Arm name the experiment and arm that served the page
	// (empty: the default configuration); Team, in an interleaving
	// experiment, is the arm whose ranking contributed this position
	// (Arm is then empty).
	Experiment string `json:"experiment,omitempty"`
	Arm        string `json:"arm,omitempty"`
	Team       string `json:"team,omitempty"`
}
