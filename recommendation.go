package liverecall

import "time"

// The types of this file are the use case "recommend a page of live
// streamers" as its callers see it: recommend.Service takes and returns
// them, and the HTTP edge (api/) speaks only these, so it needs none of the
// packages that compose a recommendation.

// RecommendRequest asks for one page for one user.
type RecommendRequest struct {
	// RequestID names the page in impressions and logs; empty: the
	// recommender makes one.
	RequestID string
	User      UserID
	K         int          // page size, 1 or more
	Exclude   []StreamerID // never recommended in this page
	Debug     bool         // fill Page.Debug and PageItem.Debug
	// Context is what the caller says of the moment and the client
	// (all of it optional): the reranker's context features read it and
	// the impressions record it.
	Context RequestContext
	// SameLanguage keeps only the streamers whose language is the
	// context's (and those of unknown language), falling back to the
	// others when too few are left for the page (README, "Request
	// context"). Without a context language it does nothing.
	SameLanguage bool
	// Received is when the caller received the request (zero: when
	// Recommend is called); the time until Recommend starts is the
	// "decode" stage of the stage metrics and timings.
	Received time.Time
	// Arm, if set, overrides the user's experiment assignment (for an
	// operator's tests; the caller checks the admin token): "EXP/ARM"
	// serves arm ARM of experiment EXP alone, "EXP" (an interleaving
	// experiment) the interleaved page of its two arms. The experiment
	// must not be stopped; an unknown one is EINVALID. The page's
	// impressions name no experiment: an override is not part of the
	// experiment's randomised traffic.
	Arm string
}

// Page is one answered request: the items best first.
type Page struct {
	RequestID     string
	Items         []PageItem
	ModelVersions map[string]string // model kind -> version used (an interleaved page: the first arm's)
	// Assignments are the experiments whose arms served the page, in
	// layer order (none: the default configuration served it). An
	// interleaving experiment's has no Arm: the items say whose team
	// each is.
	Assignments []Assignment
	Debug       *PageDebug // only for debug requests
}

// PageItem is one recommended streamer.
type PageItem struct {
	StreamerID StreamerID
	StreamID   StreamID
	Score      float64
	Channels   []string
	// Team, on an interleaved page, is the arm whose ranking contributed
	// this position (its Score is that arm's reranker's).
	Team  string
	Debug *ItemDebug // only for debug requests
}

// ItemDebug explains one item.
type ItemDebug struct {
	Features map[string]float64 // the reranker's features by name
	Why      []Contribution     // the largest positive contributions to the score, largest first, then the negative ones, most negative first
	Live     LiveFeatures       // the stream's live features when recalled
	Notes    map[string]string  // e.g. "diversity": why it moved
}

// Contribution is one feature's part in a reranker score.
type Contribution struct {
	Feature string  `json:"feature"`
	Value   float64 `json:"value"`
	Effect  float64 `json:"effect"` // its part in the score: weight × value (logistic), path attribution (trees)
}

// LiveFeatures are a live stream's features as the live view computes them
// (the same fields as live.Features, which converts to it). The HTTP API
// shows them as api.LiveFeatures.
type LiveFeatures struct {
	StreamerID       StreamerID
	StreamID         StreamID
	Category         string
	Title            string
	Language         string // primary language subtag, lower-case; "" when unknown
	StartedAt        time.Time
	LastEventAt      time.Time
	Age              time.Duration
	Viewers          int
	Viewers5mAgo     int
	PeakViewers      int
	Gifts1m          int
	Gifts5m          int
	Gifts30m         int
	GiftValue1m      float64
	GiftValue5m      float64
	GiftValue30m     float64
	UniqueGifters30m int
}

// ChannelOutcome reports what one recall channel did for a request (the
// same fields as recall.Outcome, which converts to it). The HTTP API shows
// it as api.ChannelOutcome.
type ChannelOutcome struct {
	Channel    string
	Status     string // ok, timeout, late, error, skipped
	Candidates int
	Took       time.Duration
	Error      string
}

// PageDebug is the request-level explanation of a debug page.
type PageDebug struct {
	Channels     []ChannelOutcome
	Filtered     map[string]int     // candidates each filter removed
	TimingsMS    map[string]float64 // decode, recall, rerank, total
	UserKnown    bool               // the user has a vector in some model
	RerankFailed string             // why the page is in recall order, if it is
	Candidates   int                // candidates recall returned (an interleaved page: the first arm's recall, as Channels and Filtered)
	// Experiments is where the user falls in each experiment serving now
	// (those the user is outside of are left out), or the override.
	Experiments []ExperimentDebug
}

// ExperimentDebug is a debug page's account of one experiment's
// assignment.
type ExperimentDebug struct {
	Assignment
	// Fallback, when set, says why the arm did not serve here and the
	// default configuration did instead (e.g. "mf_version mf-2 does not
	// serve on this replica").
	Fallback string
	Override bool              // the request's arm override chose it
	Versions map[string]string // the model versions the arm served with (model kind, and "rerank")
}

// NeighborsRequest is an operator's neighbour query: the streamers nearest
// a user's or a streamer's vector under one model. Exactly one of User and
// Streamer is set.
type NeighborsRequest struct {
	Model    ModelKind
	User     UserID
	Streamer StreamerID
	K        int
	LiveOnly bool
}

// Neighbors answers a NeighborsRequest.
type Neighbors struct {
	Version   string // the model version searched
	Neighbors []Neighbor
	// User, for a user's query, holds the user's vectors under Version.
	User *NeighborsUser
}

// NeighborsUser is what a neighbour query knows of its user's vectors: the
// nightly one (the version's stored vector, nil for a user it does not
// know) and, for MF, the one folded in from the user's recent watches, if
// any. Searched says which the neighbours are of: "folded" when there is
// one (what the MF channel recalls with), else "nightly".
type NeighborsUser struct {
	Nightly  []float32
	Folded   *FoldedVector
	Searched string
}

// FoldedVector is a user's MF vector folded in from their recent watches
// against the fixed streamer factors of one MF version (see foldin/).
type FoldedVector struct {
	Model   int64     // the MF version's embedding_models id
	Vec     []float32 // shared: do not modify
	At      time.Time // when it was folded (the service's clock)
	Streams int       // streamers interacted with in the window
	Watches int       // watch sessions in the window
	// Expires is when the newest of those watches leaves the window; the
	// vector is not served after it.
	Expires time.Time
}

// Neighbor is one row of a neighbour query's answer.
type Neighbor struct {
	StreamerID StreamerID
	Score      float32
	Live       bool
	Features   *LiveFeatures // when live
}
