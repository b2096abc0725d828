package api

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// Limits of a recall request.
const (
	MaxK        = 200
	DefaultK    = 20
	MaxExclude  = 1000
	MaxCtxBytes = 4096
)

// ImpressionLogger takes a response's impressions. It must not block: an
// implementation buffers and drops (and counts) when full.
type ImpressionLogger interface {
	Log(imps []lr.Impression)
}

// RecallDeps is what the recall and debug routes need.
type RecallDeps struct {
	Engine      *recall.Engine
	State       *live.State
	Ordinals    *lr.Ordinals
	Index       recall.Index             // for the neighbours endpoint
	Weights     func() rerank.Weights    // the current reranker weights
	NCF         func() rerank.NCFScorer  // the current NeuMF scorer, may return nil
	Impressions ImpressionLogger         // may be nil
	Now         func() time.Time         // default time.Now
	stage       *prometheus.HistogramVec // set by RegisterRecall
	channels    *prometheus.CounterVec   // set by RegisterRecall
	rerankFails prometheus.Counter       // set by RegisterRecall
}

// RecallRequest is the body of POST /v1/recall.
type RecallRequest struct {
	UserID  int64           `json:"user_id"`
	K       *int            `json:"k,omitempty"`
	Exclude []int64         `json:"exclude,omitempty"`
	Context json.RawMessage `json:"context,omitempty"`
	Debug   bool            `json:"debug,omitempty"`
}

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
	Features map[string]float64    `json:"features"`
	Why      []rerank.Contribution `json:"why"`
	Live     live.Features         `json:"live"`
	Notes    map[string]string     `json:"notes,omitempty"`
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
	Channels     []recall.Outcome   `json:"channels"`
	Filtered     map[string]int     `json:"filtered"`
	TimingsMS    map[string]float64 `json:"timings_ms"`
	UserKnown    bool               `json:"user_known"`
	RerankFailed string             `json:"rerank_failed,omitempty"`
	Candidates   int                `json:"candidates"`
}

// RegisterRecall adds POST /v1/recall and its metrics.
func (s *Server) RegisterRecall(d *RecallDeps, reg prometheus.Registerer) {
	if d.Now == nil {
		d.Now = time.Now
	}
	d.stage = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "liverecall_recall_stage_seconds",
		Help:    "Time spent in each stage of a recall request.",
		Buckets: []float64{.0001, .00025, .0005, .001, .002, .004, .008, .016, .05},
	}, []string{"stage"})
	d.channels = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_recall_channel_outcomes_total",
		Help: "Recall channel outcomes (ok, timeout, error, skipped) by channel.",
	}, []string{"channel", "status"})
	d.rerankFails = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "liverecall_rerank_failures_total",
		Help: "Requests served in recall order because reranking failed.",
	})
	reg.MustRegister(d.stage, d.channels, d.rerankFails)
	s.e.POST("/v1/recall", func(c echo.Context) error { return s.recall(c, d) })
}

// ObserveChannel is the recall engine's observe hook (see recall.New).
func (d *RecallDeps) ObserveChannel(channel, status string, took time.Duration) {
	if d.channels != nil {
		d.channels.WithLabelValues(channel, status).Inc()
	}
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
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("content type must be application/json, got %q", ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return echo.NewHTTPError(http.StatusUnsupportedMediaType, fmt.Sprintf("charset must be utf-8, got %q", cs))
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

func (s *Server) recall(c echo.Context, d *RecallDeps) error {
	start := time.Now()
	var req RecallRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	k, err := req.Validate()
	if err != nil {
		return err
	}
	rid := newRequestID()
	c.Response().Header().Set(echo.HeaderXRequestID, rid)
	excl := make([]lr.StreamerID, len(req.Exclude))
	for i, id := range req.Exclude {
		excl[i] = lr.StreamerID(id)
	}
	tDecode := time.Since(start)

	var ncf rerank.NCFScorer
	if d.NCF != nil {
		ncf = d.NCF()
	}
	res, err := d.Engine.Recall(c.Request().Context(), recall.Request{User: lr.UserID(req.UserID), K: k, Exclude: excl, FullNCF: ncf != nil})
	if err != nil {
		return err
	}
	tRecall := time.Since(start) - tDecode

	items, rerankErr := rerankSafely(res.Candidates, d, ncf, lr.UserID(req.UserID), req.Debug, k)
	if rerankErr != nil {
		d.rerankFails.Inc()
		s.log.Warn("rerank failed, serving recall order", "request_id", rid, "err", rerankErr)
	}
	tRerank := time.Since(start) - tDecode - tRecall

	now := d.Now()
	resp := RecallResponse{RequestID: rid, ModelVersions: res.Versions, Items: make([]RecallItem, 0, len(items))}
	shown := make([]lr.StreamerID, 0, len(items))
	imps := make([]lr.Impression, 0, len(items))
	versions := versionString(res.Versions)
	// The impressions' feature vectors, one block for the page: they outlive
	// the request (the producer's buffer holds them).
	vecs := make([]float32, 0, len(items)*rerank.NumFeatures)
	for pos, it := range items {
		ri := RecallItem{StreamerID: int64(it.StreamerID), StreamID: int64(it.Features.StreamID), Score: it.Score, Channels: it.Channels}
		if req.Debug {
			fm := map[string]float64{}
			for j, v := range it.Vector {
				fm[rerank.FeatureNames[j]] = v
			}
			ri.Debug = &ItemDebug{Features: fm, Why: it.Why, Live: it.Features, Notes: it.Extra}
		}
		resp.Items = append(resp.Items, ri)
		shown = append(shown, it.StreamerID)
		imps = append(imps, lr.Impression{RequestID: rid, UserID: lr.UserID(req.UserID), StreamerID: it.StreamerID, StreamID: it.Features.StreamID,
			Position: pos, Score: it.Score, Channels: it.Channels, ModelVersions: versions, ShownAt: now, Features: appendFloat32(&vecs, it.Vector)})
	}
	// The items hold copies of the candidates they came from, and the
	// response and impressions copies of what they need from the items.
	nCands := len(res.Candidates)
	d.Engine.Release(res)
	rerank.Release(items)
	d.Engine.MarkShown(lr.UserID(req.UserID), shown)
	if d.Impressions != nil && len(imps) > 0 {
		d.Impressions.Log(imps)
	}
	d.stage.WithLabelValues("decode").Observe(tDecode.Seconds())
	d.stage.WithLabelValues("recall").Observe(tRecall.Seconds())
	d.stage.WithLabelValues("rerank").Observe(tRerank.Seconds())
	if req.Debug {
		resp.Debug = &ResponseDebug{Channels: res.Outcomes, Filtered: res.Filtered, UserKnown: res.UserKnown, Candidates: nCands,
			TimingsMS: map[string]float64{"decode": ms(tDecode), "recall": ms(tRecall), "rerank": ms(tRerank), "total": ms(time.Since(start))}}
		if rerankErr != nil {
			resp.Debug.RerankFailed = rerankErr.Error()
		}
	}
	return c.JSON(http.StatusOK, resp)
}

// appendFloat32 appends x, converted, to *block and returns the appended
// part (nil for nil x), capped so that appending to it cannot overwrite
// what follows in the block.
func appendFloat32(block *[]float32, x []float64) []float32 {
	if x == nil {
		return nil
	}
	start := len(*block)
	for _, v := range x {
		*block = append(*block, float32(v))
	}
	return (*block)[start:len(*block):len(*block)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func versionString(v map[string]string) string {
	var parts []string
	for _, k := range []string{"mf", "ncf"} {
		if v[k] != "" {
			parts = append(parts, k+"="+v[k])
		}
	}
	return strings.Join(parts, ",")
}

// rerankSafely reranks, and on any failure (a panic included) returns the
// recall order with the channels' scores.
func rerankSafely(cands []recall.Candidate, d *RecallDeps, ncf rerank.NCFScorer, u lr.UserID, explain bool, k int) (items []rerank.Item, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rerank panicked: %v", r)
			items = recallOrder(cands, k)
		}
	}()
	w := defaultWeights
	if d.Weights != nil {
		w = d.Weights()
	}
	if err := w.Validate(); err != nil {
		return recallOrder(cands, k), err
	}
	rc := &rerank.Context{User: u, History: d.State.History(u), Follows: d.State.Follows(u), Now: d.Now(), Explain: explain, NCF: ncf}
	return rerank.Rank(cands, w, rc, k), nil
}

// defaultWeights is rerank.DefaultWeights, built once (the rerank path must
// not treat it as writable).
var defaultWeights = rerank.DefaultWeights()

func recallOrder(cands []recall.Candidate, k int) []rerank.Item {
	n := min(k, len(cands))
	out := make([]rerank.Item, n)
	for i := 0; i < n; i++ {
		out[i] = rerank.Item{Candidate: cands[i], Score: float64(cands[i].ChanScore)}
	}
	return out
}
