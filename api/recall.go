package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	lr "github.com/liverecall/liverecall"
)

// Limits of a recall request.
const (
	MaxK        = 200
	DefaultK    = 20
	MaxExclude  = 1000
	MaxCtxBytes = 4096
)

// Recommender is what the recall and neighbours routes need: the
// recommendation use case (recommend.Service). Its errors are coded
// (lr.Error) and mapped to status codes by the server.
type Recommender interface {
	Recommend(ctx context.Context, req lr.RecommendRequest) (*lr.Page, error)
	Neighbors(ctx context.Context, req lr.NeighborsRequest) (*lr.Neighbors, error)
}

// RecallRequest is the body of POST /v1/recall.
type RecallRequest struct {
	UserID  int64   `json:"user_id"`
	K       *int    `json:"k,omitempty"`
	Exclude []int64 `json:"exclude,omitempty"`
	// Context is a JSON object: the keys of RecallContext are read, any
	// other is accepted and ignored.
	Context json.RawMessage `json:"context,omitempty"`
	Filter  *RecallFilter   `json:"filter,omitempty"`
	Debug   bool            `json:"debug,omitempty"`
	// Arm overrides the user's experiment assignment, for an operator's
	// tests: "EXPERIMENT/ARM" serves that arm alone, "EXPERIMENT" (an
	// interleaving experiment) its interleaved page. Only with the admin
	// bearer token (lr.RecommendRequest.Arm).
	Arm string `json:"arm,omitempty"`
}

// MaxArm bounds RecallRequest.Arm: two names of at most 63 characters
// and the slash.
const MaxArm = 127

// RecallItem is one recommended streamer.
type RecallItem struct {
	StreamerID int64      `json:"streamer_id"`
	StreamID   int64      `json:"stream_id"`
	Score      float64    `json:"score"`
	Channels   []string   `json:"channels"`
	Debug      *ItemDebug `json:"debug,omitempty"`
}

// ItemDebug explains one item (debug requests only).
type ItemDebug struct {
	Features map[string]float64 `json:"features"`
	Why      []lr.Contribution  `json:"why"`
	Live     LiveFeatures       `json:"live"`
	Notes    map[string]string  `json:"notes,omitempty"`
	// Team, on an interleaved page, is the experiment arm whose ranking
	// contributed this position.
	Team string `json:"team,omitempty"`
}

// LiveFeatures are a live stream's real-time features as the API shows
// them (lr.LiveFeatures in wire form): times are RFC 3339 and the stream's
// age is in seconds.
type LiveFeatures struct {
	StreamerID       int64     `json:"streamer_id"`
	StreamID         int64     `json:"stream_id"`
	Category         string    `json:"category"`
	Title            string    `json:"title"`
	StartedAt        time.Time `json:"started_at"`
	LastEventAt      time.Time `json:"last_event_at"`
	AgeS             float64   `json:"age_s"` // seconds since the stream started, as of the request
	Viewers          int       `json:"viewers"`
	Viewers5mAgo     int       `json:"viewers_5m_ago"`
	PeakViewers      int       `json:"peak_viewers"`
	Gifts1m          int       `json:"gifts_1m"`
	Gifts5m          int       `json:"gifts_5m"`
	Gifts30m         int       `json:"gifts_30m"`
	GiftValue1m      float64   `json:"gift_value_1m"`
	GiftValue5m      float64   `json:"gift_value_5m"`
	GiftValue30m     float64   `json:"gift_value_30m"`
	UniqueGifters30m int       `json:"unique_gifters_30m"`
}

// Age is AgeS as a duration.
func (f LiveFeatures) Age() time.Duration { return time.Duration(f.AgeS * float64(time.Second)) }

// liveFeatures is f in wire form.
func liveFeatures(f lr.LiveFeatures) LiveFeatures {
	return LiveFeatures{StreamerID: int64(f.StreamerID), StreamID: int64(f.StreamID), Category: f.Category, Title: f.Title,
		StartedAt: f.StartedAt, LastEventAt: f.LastEventAt, AgeS: f.Age.Seconds(), Viewers: f.Viewers, Viewers5mAgo: f.Viewers5mAgo,
		PeakViewers: f.PeakViewers, Gifts1m: f.Gifts1m, Gifts5m: f.Gifts5m, Gifts30m: f.Gifts30m, GiftValue1m: f.GiftValue1m,
		GiftValue5m: f.GiftValue5m, GiftValue30m: f.GiftValue30m, UniqueGifters30m: f.UniqueGifters30m}
}

// ChannelOutcome is what one recall channel did for a request
// (lr.ChannelOutcome in wire form; its time in milliseconds, like the
// response's timings_ms).
type ChannelOutcome struct {
	Channel    string  `json:"channel"`
	Status     string  `json:"status"` // ok, timeout, late, error, skipped
	Candidates int     `json:"candidates"`
	TookMS     float64 `json:"took_ms"`
	Error      string  `json:"error,omitempty"`
}

// RecallResponse is the body of a successful POST /v1/recall.
type RecallResponse struct {
	RequestID     string            `json:"request_id"`
	Items         []RecallItem      `json:"items"`
	ModelVersions map[string]string `json:"model_versions"`
	Debug         *ResponseDebug    `json:"debug,omitempty"`
}

// ResponseDebug is the request-level part of a debug response.
type ResponseDebug struct {
	Channels     []ChannelOutcome   `json:"channels"`
	Filtered     map[string]int     `json:"filtered"`
	TimingsMS    map[string]float64 `json:"timings_ms"`
	UserKnown    bool               `json:"user_known"`
	RerankFailed string             `json:"rerank_failed,omitempty"`
	Candidates   int                `json:"candidates"`
	Context      ContextDebug       `json:"context"`
	// Experiments says where the user falls in each experiment serving
	// now (or the arm override), and whether the arm served.
	Experiments []ExperimentDebug `json:"experiments,omitempty"`
}

// ExperimentDebug is one experiment's assignment on a debug response
// (lr.ExperimentDebug in wire form).
type ExperimentDebug struct {
	Experiment string `json:"experiment"`
	Mode       string `json:"mode"`          // ab, interleave
	Arm        string `json:"arm,omitempty"` // the arm assigned (none for interleaving: both arms serve)
	// Fallback says why the arm did not serve on this replica (the page
	// then has the default configuration for this experiment).
	Fallback string `json:"fallback,omitempty"`
	Override bool   `json:"override,omitempty"` // chosen by the request's "arm"
	// Versions are the model versions the arm serves with ("mf", "ncf",
	// "rerank"; for interleaving "ARM.mf" etc.).
	Versions map[string]string `json:"versions,omitempty"`
}

// RegisterRecall adds POST /v1/recall, answered by r.
func (s *Server) RegisterRecall(r Recommender) {
	s.e.POST("/v1/recall", func(c echo.Context) error { return s.recall(c, r) })
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// decodeJSON reads a JSON body strictly (see DecodeStrict). The content
// type must be application/json, with no charset or utf-8 (JSON is UTF-8,
// RFC 8259): anything else is 415.
func decodeJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return lr.Errorf(CodeUnsupportedMediaType, "content type must be application/json, got %q", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return lr.Errorf(CodeUnsupportedMediaType, "charset must be utf-8, got %q", cs)
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return lr.Errorf(lr.EINVALID, "cannot read the request body")
	}
	return DecodeStrict(body, v)
}

// Validate checks a decoded request and returns k.
func (r *RecallRequest) Validate() (int, error) {
	if r.UserID <= 0 {
		return 0, lr.Errorf(lr.EINVALID, "field \"user_id\": required and must be positive")
	}
	k := DefaultK
	if r.K != nil {
		k = *r.K
		if k < 1 || k > MaxK {
			return 0, lr.Errorf(lr.EINVALID, "field \"k\": must be between 1 and %d, got %d", MaxK, k)
		}
	}
	if len(r.Arm) > MaxArm {
		return 0, lr.Errorf(lr.EINVALID, "field \"arm\": longer than %d bytes", MaxArm)
	}
	if len(r.Exclude) > MaxExclude {
		return 0, lr.Errorf(lr.EINVALID, "field \"exclude\": at most %d ids, got %d", MaxExclude, len(r.Exclude))
	}
	if len(r.Context) > 0 {
		if len(r.Context) > MaxCtxBytes {
			return 0, lr.Errorf(lr.EINVALID, "field \"context\": larger than %d bytes", MaxCtxBytes)
		}
		if t := bytes.TrimSpace(r.Context); len(t) == 0 || (t[0] != '{' && string(t) != "null") {
			return 0, lr.Errorf(lr.EINVALID, "field \"context\": must be an object")
		}
	}
	return k, nil
}

func (s *Server) recall(c echo.Context, r Recommender) error {
	start := time.Now()
	var req RecallRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	k, err := req.Validate()
	if err != nil {
		return err
	}
	if req.Arm != "" {
		// Checked before anything is served: an override without the
		// token changes nothing (no page, nothing marked shown).
		if err := checkToken(c, s.cfg.AdminToken, "field \"arm\" needs the admin bearer token: "); err != nil {
			return err
		}
	}
	rid := requestID(c)
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		c.Set(ctxUserID, req.UserID) // for the request log (see ctxUserID)
	}
	rc, ignored, err := parseContext(req.Context, start)
	if err != nil {
		return err
	}
	for _, k := range ignored {
		s.ctxIgnored.WithLabelValues(k).Inc()
	}
	excl := make([]lr.StreamerID, len(req.Exclude))
	for i, id := range req.Exclude {
		excl[i] = lr.StreamerID(id)
	}
	page, err := r.Recommend(c.Request().Context(), lr.RecommendRequest{RequestID: rid, User: lr.UserID(req.UserID), K: k, Exclude: excl,
		Debug: req.Debug, Received: start, Context: rc, SameLanguage: req.Filter != nil && req.Filter.SameLanguage, Arm: req.Arm})
	if err != nil {
		return err
	}
	resp := recallResponse(page)
	if resp.Debug != nil {
		resp.Debug.Context = ContextDebug{Read: contextRead(rc.Clean()), Ignored: ignored}
	}
	return c.JSON(http.StatusOK, resp)
}

// recallResponse is page as the body of POST /v1/recall.
func recallResponse(page *lr.Page) RecallResponse {
	resp := RecallResponse{RequestID: page.RequestID, ModelVersions: page.ModelVersions, Items: make([]RecallItem, 0, len(page.Items))}
	for _, it := range page.Items {
		ri := RecallItem{StreamerID: int64(it.StreamerID), StreamID: int64(it.StreamID), Score: it.Score, Channels: it.Channels}
		if d := it.Debug; d != nil {
			ri.Debug = &ItemDebug{Features: d.Features, Why: d.Why, Live: liveFeatures(d.Live), Notes: d.Notes, Team: it.Team}
		}
		resp.Items = append(resp.Items, ri)
	}
	if d := page.Debug; d != nil {
		chans := make([]ChannelOutcome, len(d.Channels))
		for i, o := range d.Channels {
			chans[i] = ChannelOutcome{Channel: o.Channel, Status: o.Status, Candidates: o.Candidates, TookMS: float64(o.Took) / float64(time.Millisecond), Error: o.Error}
		}
		resp.Debug = &ResponseDebug{Channels: chans, Filtered: d.Filtered, TimingsMS: d.TimingsMS, UserKnown: d.UserKnown,
			RerankFailed: d.RerankFailed, Candidates: d.Candidates}
		for _, x := range d.Experiments {
			resp.Debug.Experiments = append(resp.Debug.Experiments, ExperimentDebug{Experiment: x.Experiment, Mode: string(x.Mode), Arm: x.Arm,
				Fallback: x.Fallback, Override: x.Override, Versions: x.Versions})
		}
	}
	return resp
}
