package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
)

// The metrics the traffic sampler reads from the service's own registry.
const (
	requestMetric = "liverecall_http_request_duration_seconds"
	channelMetric = "liverecall_recall_channel_outcomes_total"
)

// ExperimentReports is what the console needs of the experiment reports:
// the reports of the experiments worth showing (running, paused or
// recently stopped), each with its per-arm Series. It is called on every
// GET /v1/admin/experiments, so an implementation answers from a cache it
// refreshes on its own; it may be called concurrently. Its coded errors
// become the response's status (lr.EUNAVAILABLE: 503).
type ExperimentReports interface {
	Reports(ctx context.Context) ([]experiment.Report, error)
}

// ExperimentsResponse is the body of GET /v1/admin/experiments.
type ExperimentsResponse struct {
	Experiments []experiment.Report `json:"experiments"`
	// Note says why the list is empty when this server has no source of
	// reports.
	Note string `json:"note,omitempty"`
}

// TrafficResponse is the body of GET /v1/admin/traffic: the serving
// routes' traffic (every /v1/ route but /v1/admin/ and /v1/debug/) as
// sampled from the service's own metrics.
type TrafficResponse struct {
	EveryS float64 `json:"every_s"` // the sampling interval
	// Points are the intervals between consecutive samples, oldest first
	// (at most the sampler's Keep).
	Points []TrafficPoint `json:"points"`
	// WindowS is the span the channel outcomes were counted over: the
	// newest sample against the oldest one at most the sampler's Window
	// before it (0 before the second sample).
	WindowS  float64          `json:"window_s"`
	Channels []ChannelTraffic `json:"channels"` // by channel name
	// GatherError is the newest sample's failure to read some metrics
	// (the figures are from those it could read).
	GatherError string `json:"gather_error,omitempty"`
}

// TrafficPoint is one interval between two samples.
type TrafficPoint struct {
	Time         time.Time `json:"t"`       // the interval's end
	Seconds      float64   `json:"seconds"` // its length
	Requests     uint64    `json:"requests"`
	RequestsPerS float64   `json:"requests_per_s"`
	ErrorsPerS   float64   `json:"errors_per_s"` // answered 5xx
	// Latency quantiles interpolated in the histogram's buckets, as
	// Prometheus's histogram_quantile does; null without requests.
	P50MS *float64 `json:"p50_ms"`
	P99MS *float64 `json:"p99_ms"`
}

// ChannelTraffic is one recall channel's outcomes over the window.
type ChannelTraffic struct {
	Channel  string           `json:"channel"`
	Outcomes map[string]int64 `json:"outcomes"` // by status: ok, timeout, late, error, skipped
}

// TrafficConfig configures a TrafficSampler.
type TrafficConfig struct {
	Every  time.Duration // between samples in Run; default 5 s
	Keep   int           // intervals kept; default 120 (10 minutes at 5 s)
	Window time.Duration // span of the channel outcomes; default 1 minute
	Now    func() time.Time
}

// TrafficSampler samples the service's request and channel counters from
// a prometheus.Gatherer into a ring of the last Keep intervals, for the
// operator console. It is safe for concurrent use.
type TrafficSampler struct {
	g   prometheus.Gatherer
	cfg TrafficConfig

	mu      sync.Mutex
	samples []trafficSample // oldest first, at most Keep+1
	lastErr string
}

type trafficSample struct {
	at       time.Time
	count    uint64             // requests of the serving routes
	errors   uint64             // of which 5xx
	buckets  map[float64]uint64 // cumulative count by upper bound
	channels map[[2]string]float64
}

// NewTrafficSampler returns a sampler reading g. It takes no sample
// until Sample or Run is called.
func NewTrafficSampler(g prometheus.Gatherer, cfg TrafficConfig) *TrafficSampler {
	if cfg.Every <= 0 {
		cfg.Every = 5 * time.Second
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 120
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &TrafficSampler{g: g, cfg: cfg}
}

// Run samples every Every until ctx ends (the first sample at once).
func (t *TrafficSampler) Run(ctx context.Context) {
	tick := time.NewTicker(t.cfg.Every)
	defer tick.Stop()
	for {
		t.Sample()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// servingRoute reports whether a route template is one of the serving
// routes the console counts.
func servingRoute(route string) bool {
	return strings.HasPrefix(route, "/v1/") && !strings.HasPrefix(route, "/v1/admin/") && !strings.HasPrefix(route, "/v1/debug/")
}

// Sample reads the metrics now and appends a sample. A failure to gather
// some metrics keeps the figures of those read and is reported in the
// response's gather_error.
func (t *TrafficSampler) Sample() {
	fams, err := t.g.Gather()
	s := trafficSample{at: t.cfg.Now(), buckets: map[float64]uint64{}, channels: map[[2]string]float64{}}
	for _, f := range fams {
		switch f.GetName() {
		case requestMetric:
			for _, m := range f.GetMetric() {
				l := labels(m)
				h := m.GetHistogram()
				if h == nil || !servingRoute(l["route"]) {
					continue
				}
				s.count += h.GetSampleCount()
				if strings.HasPrefix(l["code"], "5") {
					s.errors += h.GetSampleCount()
				}
				for _, b := range h.GetBucket() {
					s.buckets[b.GetUpperBound()] += b.GetCumulativeCount()
				}
				s.buckets[math.Inf(1)] += h.GetSampleCount()
			}
		case channelMetric:
			for _, m := range f.GetMetric() {
				l := labels(m)
				s.channels[[2]string{l["channel"], l["status"]}] += m.GetCounter().GetValue()
			}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastErr = ""
	if err != nil {
		t.lastErr = err.Error()
	}
	t.samples = append(t.samples, s)
	if over := len(t.samples) - (t.cfg.Keep + 1); over > 0 {
		t.samples = slices.Delete(t.samples, 0, over)
	}
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// Traffic returns the sampled intervals and the channel outcomes over the
// window; empty lists before the second sample.
func (t *TrafficSampler) Traffic() TrafficResponse {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := TrafficResponse{EveryS: t.cfg.Every.Seconds(), Points: []TrafficPoint{}, Channels: []ChannelTraffic{}, GatherError: t.lastErr}
	for i := 1; i < len(t.samples); i++ {
		a, b := t.samples[i-1], t.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		if dt <= 0 {
			continue
		}
		p := TrafficPoint{Time: b.at.UTC(), Seconds: dt, Requests: sub(b.count, a.count)}
		p.RequestsPerS = float64(p.Requests) / dt
		p.ErrorsPerS = float64(sub(b.errors, a.errors)) / dt
		if p.Requests > 0 {
			p.P50MS = quantileMS(0.5, a.buckets, b.buckets)
			p.P99MS = quantileMS(0.99, a.buckets, b.buckets)
		}
		out.Points = append(out.Points, p)
	}
	if len(t.samples) < 2 {
		return out
	}
	last := t.samples[len(t.samples)-1]
	first := t.samples[len(t.samples)-2]
	for i := len(t.samples) - 2; i >= 0 && last.at.Sub(t.samples[i].at) <= t.cfg.Window; i-- {
		first = t.samples[i]
	}
	out.WindowS = last.at.Sub(first.at).Seconds()
	byChannel := map[string]map[string]int64{}
	for k, v := range last.channels {
		d := int64(math.Round(v - first.channels[k]))
		if d <= 0 {
			continue
		}
		if byChannel[k[0]] == nil {
			byChannel[k[0]] = map[string]int64{}
		}
		byChannel[k[0]][k[1]] = d
	}
	for _, ch := range slices.Sorted(maps.Keys(byChannel)) {
		out.Channels = append(out.Channels, ChannelTraffic{Channel: ch, Outcomes: byChannel[ch]})
	}
	return out
}

// sub is b − a for counters, 0 if a counter went back (a reset).
func sub(b, a uint64) uint64 {
	if b < a {
		return 0
	}
	return b - a
}

// quantileMS is the q-quantile of the observations between two cumulative
// bucket sets, in milliseconds, interpolated linearly within its bucket
// (the lowest bucket from 0); in the +Inf bucket, the highest finite bound.
func quantileMS(q float64, a, b map[float64]uint64) *float64 {
	bounds := make([]float64, 0, len(b))
	for ub := range b {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	total := float64(sub(b[math.Inf(1)], a[math.Inf(1)]))
	if total == 0 {
		return nil
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, ub := range bounds {
		n := float64(sub(b[ub], a[ub]))
		if n >= rank {
			v := lower // in the +Inf bucket: the highest finite bound
			if !math.IsInf(ub, 1) && n > below {
				v = lower + (ub-lower)*(rank-below)/(n-below)
			}
			v *= 1000
			return &v
		}
		if !math.IsInf(ub, 1) {
			lower = ub
		}
		below = n
	}
	return nil
}

// RegisterConsole adds the operator console's data routes behind the
// bearer token: GET /v1/admin/traffic, from t, and GET
// /v1/admin/experiments, from reports (nil: an empty list with a note
// saying reports are not connected). The console page itself is /debug
// (RegisterDebug).
func (s *Server) RegisterConsole(t *TrafficSampler, reports ExperimentReports, token string) {
	auth := requireToken(token)
	s.e.GET("/v1/admin/traffic", func(c echo.Context) error {
		if err := noQuery(c); err != nil {
			return err
		}
		return c.JSON(http.StatusOK, t.Traffic())
	}, auth)
	s.e.GET("/v1/admin/experiments", func(c echo.Context) error {
		if err := noQuery(c); err != nil {
			return err
		}
		if reports == nil {
			return c.JSON(http.StatusOK, ExperimentsResponse{Experiments: []experiment.Report{},
				Note: "this server has no source of experiment reports"})
		}
		rs, err := reports.Reports(c.Request().Context())
		if err != nil {
			return err
		}
		if rs == nil {
			rs = []experiment.Report{}
		}
		return c.JSON(http.StatusOK, ExperimentsResponse{Experiments: rs})
	}, auth)
}

// noQuery refuses any query parameter (the routes take none).
func noQuery(c echo.Context) error {
	for name := range c.QueryParams() {
		return lr.Errorf(lr.EINVALID, "unknown query parameter %q: this route takes none", name)
	}
	return nil
}

// pageCSP is the Content-Security-Policy of an HTML page of ours: nothing
// but its own inline script and style (allowed by their SHA-256, so no
// other inline code runs), and requests to this server only.
func pageCSP(html []byte) string {
	hashes := func(tag string) string {
		var out []string
		rest := html
		for {
			_, after, ok := bytes.Cut(rest, []byte("<"+tag+">"))
			if !ok {
				break
			}
			body, tail, ok := bytes.Cut(after, []byte("</"+tag+">"))
			if !ok {
				break
			}
			sum := sha256.Sum256(body)
			out = append(out, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
			rest = tail
		}
		if len(out) == 0 {
			return "'none'"
		}
		return strings.Join(out, " ")
	}
	return "default-src 'none'; script-src " + hashes("script") + "; style-src " + hashes("style") +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}
