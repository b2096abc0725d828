package api_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/experiment"
)

// fakeReports serves fixed reports (the real source, computed from
// PostgreSQL, is wired in cmd/liverecall).
type fakeReports struct {
	mu      sync.Mutex
	reports []experiment.Report
	err     error
}

func (r *fakeReports) Reports(ctx context.Context) ([]experiment.Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports, r.err
}

func (r *fakeReports) set(reports []experiment.Report, err error) {
	r.mu.Lock()
	r.reports, r.err = reports, err
	r.mu.Unlock()
}

// sampleReports: "ranker-v2", an A/B test whose assignment is broken (SRM
// p 1e-6) over 6 hourly buckets, treatment ahead in watch-through; and
// "ncf-interleave", an interleaving experiment over 4 buckets.
func sampleReports() []experiment.Report {
	start := t0.Add(-6 * time.Hour)
	series := func(n int, base float64) []experiment.Point {
		var out []experiment.Point
		for i := range n {
			out = append(out, experiment.Point{Time: start.Add(time.Duration(i) * time.Hour), Impressions: int64(100 + i),
				Metrics: map[string]float64{"watch_through_rate": base + 0.01*float64(i), "watch_seconds_per_impression": 10 * base,
					"gifts_per_1000_impressions": 3, "follows_per_1000_impressions": 1.5}})
		}
		return out
	}
	metrics := func(wtr float64) map[string]float64 {
		return map[string]float64{"watch_through_rate": wtr, "watch_seconds_per_impression": 10 * wtr,
			"gifts_per_1000_impressions": 3, "follows_per_1000_impressions": 1.5}
	}
	return []experiment.Report{
		{Experiment: "ranker-v2", Mode: lr.ModeAB, Status: lr.ExperimentRunning, GeneratedAt: t0, From: start, To: t0,
			Method: "user-level bootstrap, 2000 resamples",
			Arms: []experiment.ArmReport{
				{Arm: "control", Control: true, Share: 0.05, Users: 1200, Impressions: 24000, Metrics: metrics(0.2), Series: series(6, 0.2)},
				{Arm: "treatment", Share: 0.05, Users: 1000, Impressions: 20000, Metrics: metrics(0.23), Series: series(6, 0.23),
					Diffs: map[string]experiment.Diff{"watch_through_rate": {Delta: 0.03, Relative: 0.15, Low: 0.01, High: 0.05, P: 0.004}}},
			},
			SRM: &experiment.SRM{ChiSquare: 24.5, DF: 1, P: 1e-6, Mismatch: true}},
		{Experiment: "ncf-interleave", Mode: lr.ModeInterleave, Status: lr.ExperimentRunning, GeneratedAt: t0, From: start, To: t0,
			Method: "sign test",
			Arms: []experiment.ArmReport{
				{Arm: "a", Control: true, Share: 0.02, Users: 300, Impressions: 3000, Metrics: metrics(0.2), Series: series(4, 0.2)},
				{Arm: "b", Share: 0.02, Users: 300, Impressions: 3000, Metrics: metrics(0.21), Series: series(4, 0.21)},
			},
			Interleaving: &experiment.Interleaving{Wins: map[string]int64{"a": 40, "b": 60}, Ties: 5,
				Share: map[string]float64{"a": 0.4, "b": 0.6}, P: 0.057}},
	}
}

// The traffic route needs the token, takes no query parameter, and gives
// the serving routes' requests per interval between samples, their 5xx,
// latency quantiles, and the channel outcomes of those requests.
func TestTrafficRouteSamplesTheServingRoutes(t *testing.T) {
	f := newFixture(t)
	if code, body := f.do(t, "GET", "/v1/admin/traffic", "", "", ""); code != 401 || body["error"].(map[string]any)["code"] != "unauthorized" {
		t.Fatalf("without a token: %d %v", code, body)
	}
	if code, body := f.do(t, "GET", "/v1/admin/traffic?window=5m", "", "", token); code != 400 ||
		!strings.Contains(body["error"].(map[string]any)["message"].(string), `unknown query parameter "window"`) {
		t.Fatalf("with a query parameter: %d %v", code, body)
	}
	_, body := f.do(t, "GET", "/v1/admin/traffic", "", "", token)
	if pts := body["points"].([]any); len(pts) != 0 || len(body["channels"].([]any)) != 0 || body["every_s"] != 5.0 {
		t.Fatalf("before any sample: %v", body)
	}
	f.traffic.Sample()
	for range 3 {
		recallResp(t, f, `{"user_id":7,"k":3}`)
	}
	f.fail = errors.New("boom")
	if code, _ := f.do(t, "POST", "/v1/recall", "application/json", `{"user_id":7}`, ""); code != 500 {
		t.Fatalf("failing recall answered %d", code)
	}
	f.fail = nil
	f.do(t, "GET", "/v1/admin/status", "", "", token) // not a serving route
	f.traffic.Sample()
	_, body = f.do(t, "GET", "/v1/admin/traffic", "", "", token)
	pts := body["points"].([]any)
	if len(pts) != 1 {
		t.Fatalf("after two samples: %d points, want 1: %v", len(pts), body)
	}
	p := pts[0].(map[string]any)
	if p["requests"] != 4.0 || p["requests_per_s"].(float64) <= 0 || p["errors_per_s"].(float64) <= 0 ||
		math.Abs(p["errors_per_s"].(float64)*4-p["requests_per_s"].(float64)) > 1e-9*p["requests_per_s"].(float64) || p["p99_ms"] == nil || p["p50_ms"] == nil {
		t.Fatalf("point %v: want 4 requests of which 1 answered 5xx, with latencies", p)
	}
	channels := map[string]map[string]any{}
	for _, c := range body["channels"].([]any) {
		c := c.(map[string]any)
		channels[c["channel"].(string)] = c["outcomes"].(map[string]any)
	}
	if channels["mf"]["ok"] != 3.0 {
		t.Fatalf("channel outcomes %v: want mf ok 3 (the three recalls that reached the pipeline)", channels)
	}
	// An interval without requests has no latency (null, not 0).
	f.traffic.Sample()
	_, body = f.do(t, "GET", "/v1/admin/traffic", "", "", token)
	pts = body["points"].([]any)
	if len(pts) != 2 || pts[1].(map[string]any)["requests"] != 0.0 || pts[1].(map[string]any)["p99_ms"] != nil {
		t.Fatalf("idle interval: %v", pts)
	}
}

// The sampler's figures from a registry with known observations and a
// known clock: requests per second, the quantiles interpolated within
// buckets as histogram_quantile does, admin routes left out, channel
// outcomes over the window only, and the ring bounded by Keep.
func TestTrafficSamplerFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "liverecall_http_request_duration_seconds",
		Buckets: []float64{.001, .002, .004}}, []string{"route", "method", "code"})
	ch := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_recall_channel_outcomes_total"}, []string{"channel", "status"})
	reg.MustRegister(h, ch)
	now := t0
	tr := api.NewTrafficSampler(reg, api.TrafficConfig{Keep: 3, Window: time.Minute, Now: func() time.Time { return now }})
	tr.Sample()
	for range 99 {
		h.WithLabelValues("/v1/recall", "POST", "200").Observe(.0015)
	}
	h.WithLabelValues("/v1/recall", "POST", "503").Observe(.003)
	h.WithLabelValues("/v1/admin/status", "GET", "200").Observe(1) // not counted
	ch.WithLabelValues("mf", "ok").Add(10)
	now = now.Add(2 * time.Second)
	tr.Sample()
	got := tr.Traffic()
	if len(got.Points) != 1 {
		t.Fatalf("points %+v", got.Points)
	}
	p := got.Points[0]
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	// p99: rank 99 of 100 falls at the top of the (1, 2] ms bucket; p50:
	// rank 50 within it, 1 + 50/99 ms.
	if p.Requests != 100 || !near(p.RequestsPerS, 50) || !near(p.ErrorsPerS, 0.5) || p.P99MS == nil || !near(*p.P99MS, 2) ||
		p.P50MS == nil || !near(*p.P50MS, 1+50.0/99) || p.Seconds != 2 || !p.Time.Equal(now) {
		t.Fatalf("point %+v (p50 %v, p99 %v)", p, deref(p.P50MS), deref(p.P99MS))
	}
	// Over the last finite bound: the highest finite bound.
	h.WithLabelValues("/v1/recall", "POST", "200").Observe(10)
	ch.WithLabelValues("mf", "ok").Add(5)
	ch.WithLabelValues("mf", "timeout").Add(1)
	now = now.Add(59 * time.Second)
	tr.Sample()
	ch.WithLabelValues("mf", "ok").Add(2)
	now = now.Add(30 * time.Second)
	tr.Sample()
	got = tr.Traffic()
	if len(got.Points) != 3 || got.Points[1].P99MS == nil || *got.Points[1].P99MS != 4 || got.Points[2].P99MS != nil {
		t.Fatalf("points %+v", got.Points)
	}
	// The window: the newest sample against the oldest within a minute of
	// it (59 s earlier is outside: 30 s earlier).
	if got.WindowS != 30 || len(got.Channels) != 1 || got.Channels[0].Channel != "mf" || got.Channels[0].Outcomes["ok"] != 2 || len(got.Channels[0].Outcomes) != 1 {
		t.Fatalf("window %v s, channels %+v", got.WindowS, got.Channels)
	}
	// Keep 3: a fifth sample drops the oldest interval.
	now = now.Add(time.Second)
	tr.Sample()
	if got = tr.Traffic(); len(got.Points) != 3 || !got.Points[0].Time.Equal(t0.Add(61*time.Second)) {
		t.Fatalf("after the ring filled: %+v", got.Points)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// The experiments route needs the token and gives the reports as the
// source has them; the source's coded errors keep their status; a server
// without a source answers an empty list with a note.
func TestExperimentsRoute(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.do(t, "GET", "/v1/admin/experiments", "", "", "wrong"); code != 401 {
		t.Fatalf("wrong token: %d", code)
	}
	if code, body := f.do(t, "GET", "/v1/admin/experiments", "", "", token); code != 200 || len(body["experiments"].([]any)) != 0 || body["note"] != nil {
		t.Fatalf("no reports: %d %v", code, body)
	}
	f.reports.set(sampleReports(), nil)
	code, body := f.do(t, "GET", "/v1/admin/experiments", "", "", token)
	exps := body["experiments"].([]any)
	if code != 200 || len(exps) != 2 {
		t.Fatalf("%d %v", code, body)
	}
	e := exps[0].(map[string]any)
	arm := e["arms"].([]any)[1].(map[string]any)
	diff := arm["diffs"].(map[string]any)["watch_through_rate"].(map[string]any)
	if e["experiment"] != "ranker-v2" || e["srm"].(map[string]any)["p"] != 1e-6 || diff["ci_low"] != 0.01 || diff["p"] != 0.004 ||
		len(arm["series"].([]any)) != 6 || arm["series"].([]any)[0].(map[string]any)["t"] != "2026-11-23T14:00:00Z" {
		t.Fatalf("report %v", e)
	}
	if w := exps[1].(map[string]any)["interleaving"].(map[string]any); w["wins"].(map[string]any)["b"] != 60.0 || w["win_share"] == nil {
		t.Fatalf("interleaving %v", w)
	}
	f.reports.set(nil, lr.Errorf(lr.EUNAVAILABLE, "experiment reports not computed yet"))
	if code, body := f.do(t, "GET", "/v1/admin/experiments", "", "", token); code != 503 ||
		body["error"].(map[string]any)["message"] != "experiment reports not computed yet" {
		t.Fatalf("source unavailable: %d %v", code, body)
	}
	f.reports.set(nil, errors.New("disk on fire"))
	if code, body := f.do(t, "GET", "/v1/admin/experiments", "", "", token); code != 500 || strings.Contains(body["error"].(map[string]any)["message"].(string), "disk") {
		t.Fatalf("source failed: %d %v (internal details must not leak)", code, body)
	}
	if code, _ := f.do(t, "GET", "/v1/admin/experiments?name=x", "", "", token); code != 400 {
		t.Fatalf("query parameter: %d", code)
	}

	reg := prometheus.NewRegistry()
	bare := api.New(api.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	bare.RegisterConsole(api.NewTrafficSampler(reg, api.TrafficConfig{}), nil, token)
	srv := httptest.NewServer(bare.Handler())
	defer srv.Close()
	g := &fixture{srv: srv, seen: map[string]map[int]bool{}}
	if code, body := g.do(t, "GET", "/v1/admin/experiments", "", "", token); code != 200 || len(body["experiments"].([]any)) != 0 ||
		!strings.Contains(body["note"].(string), "no source of experiment reports") {
		t.Fatalf("without a source: %d %v", code, body)
	}
}

// A registry that cannot gather some metrics: the sample keeps the
// figures it read and the response says what failed.
func TestTrafficSamplerReportsGatherErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "liverecall_http_request_duration_seconds"}, []string{"route", "method", "code"})
	reg.MustRegister(h, failingCollector{prometheus.NewDesc("broken", "a collector that fails", nil, nil)})
	tr := api.NewTrafficSampler(reg, api.TrafficConfig{})
	tr.Sample()
	h.WithLabelValues("/v1/recall", "POST", "200").Observe(.001)
	tr.Sample()
	got := tr.Traffic()
	if !strings.Contains(got.GatherError, "collector broken") || len(got.Points) != 1 || got.Points[0].Requests != 1 {
		t.Fatalf("%+v", got)
	}
}
