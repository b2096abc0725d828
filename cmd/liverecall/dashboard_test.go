package main

import (
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.yaml.in/yaml/v3"
	"google.golang.org/protobuf/proto"

	"github.com/liverecall/liverecall/recall"
)

// processMetrics are the metrics of the running serve (after one recall
// request, so that its histograms have series and a type) and of the sink
// (its registry as runSink makes it), by name with their type ("" while
// a vector has no series).
func processMetrics(t *testing.T) (serve, sink map[string]string) {
	t.Helper()
	e := startE2E(t)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.recall(1)
	reg, _ := newSinkMetrics(e.db)
	return e.svc.reg.metricNames(t), reg.metricNames(t)
}

// serve exports build_info, the pool's metrics and readiness and none of
// the sink's; the sink exports build_info and the pool's metrics and none
// of serve's.
func TestServeAndSinkMetricSets(t *testing.T) {
	serve, sink := processMetrics(t)
	for _, want := range []string{"liverecall_build_info", "liverecall_ready", "liverecall_db_pool_acquired_conns", "liverecall_db_pool_idle_conns",
		"liverecall_db_pool_total_conns", "liverecall_db_pool_acquires_total", "liverecall_db_pool_acquire_seconds_total", "liverecall_events_staleness_seconds"} {
		if _, ok := serve[want]; !ok {
			t.Errorf("serve does not export %s", want)
		}
	}
	for _, want := range []string{"liverecall_build_info", "liverecall_db_pool_acquired_conns", "liverecall_sink_batches_total", "liverecall_events_dead_lettered_total"} {
		if _, ok := sink[want]; !ok {
			t.Errorf("the sink does not export %s", want)
		}
	}
	for name := range serve {
		if strings.HasPrefix(name, "liverecall_sink_") || strings.HasPrefix(name, "liverecall_events_dead_letter") {
			t.Errorf("serve exports the sink's %s", name)
		}
	}
	for name := range sink {
		for _, p := range []string{"liverecall_http_", "liverecall_index_", "liverecall_recall_", "liverecall_live_", "liverecall_userstore_",
			"liverecall_impressions_", "liverecall_shown_", "liverecall_events_lag", "liverecall_events_staleness", "liverecall_events_caught_up", "liverecall_events_broker_up", "liverecall_ready"} {
			if strings.HasPrefix(name, p) {
				t.Errorf("the sink exports serve's %s", name)
			}
		}
	}
}

// liverecall_build_info is 1 with the version, commit and Go version.
func TestBuildInfoMetric(t *testing.T) {
	reg := newMetricsRegistry()
	reg.MustRegister(buildInfoGauge("v1.2.3", buildInfo{commit: "abc123", modified: true}), buildInfoGauge("", buildInfo{module: "(devel)"}))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if mf.GetName() != "liverecall_build_info" || m.GetGauge().GetValue() != 1 {
				t.Errorf("%s = %v", mf.GetName(), m.GetGauge().GetValue())
			}
			got = append(got, l)
		}
	}
	want := []map[string]string{
		{"version": "unreleased", "commit": "unknown", "go_version": runtime.Version()},
		{"version": "v1.2.3", "commit": "abc123-modified", "go_version": runtime.Version()},
	}
	slices.SortFunc(got, func(a, b map[string]string) int { return strings.Compare(a["version"], b["version"]) })
	if len(got) != 2 || !maps2Equal(got[0], want[0]) || !maps2Equal(got[1], want[1]) {
		t.Errorf("build_info series %v, want %v", got, want)
	}
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// ruleExprs reads the alert rules of the PrometheusRule manifest.
func ruleExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/kubernetes/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name   string            `yaml:"name"`
			Labels map[string]string `yaml:"labels"`
		} `yaml:"metadata"`
		Spec struct {
			Groups []struct {
				Name  string `yaml:"name"`
				Rules []struct {
					Alert       string            `yaml:"alert"`
					Expr        string            `yaml:"expr"`
					For         string            `yaml:"for"`
					Labels      map[string]string `yaml:"labels"`
					Annotations map[string]string `yaml:"annotations"`
				} `yaml:"rules"`
			} `yaml:"groups"`
		} `yaml:"spec"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&pr); err != nil {
		t.Fatalf("prometheusrule.yaml: %v", err)
	}
	if pr.APIVersion != "monitoring.coreos.com/v1" || pr.Kind != "PrometheusRule" {
		t.Errorf("prometheusrule.yaml is %s %s", pr.APIVersion, pr.Kind)
	}
	out := map[string]string{}
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %+v: want an alert name, an expression, a severity and a summary", r)
			}
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// dashboardExprs reads every query of the Grafana dashboard.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/liverecall.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("dashboard without uid or panels")
	}
	out := map[string]string{}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			out[p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	return out
}

// Every expression of the dashboard and the alert rules names only
// metrics that serve or the sink export, taken from their registries; the
// alerts cover what an operator must be woken for.
func TestDashboardAndAlertsUseExportedMetrics(t *testing.T) {
	serve, sink := processMetrics(t)
	exported := map[string]string{}
	for _, m := range []map[string]string{serve, sink} {
		for k, v := range m {
			exported[k] = v
		}
	}
	known := func(name string) bool {
		if _, ok := exported[name]; ok {
			return true
		}
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				// A histogram's or summary's series; a vector without
				// series yet has no type to check.
				if typ, ok := exported[base]; ok && (typ == "HISTOGRAM" || typ == "SUMMARY" || typ == "") {
					return true
				}
			}
		}
		return false
	}
	rules := ruleExprs(t)
	for what, exprs := range map[string]map[string]string{"alert": rules, "dashboard panel": dashboardExprs(t)} {
		for name, expr := range exprs {
			metrics, err := promqlMetricNames(expr)
			if err != nil {
				t.Errorf("%s %s: %v", what, name, err)
				continue
			}
			if len(metrics) == 0 {
				t.Errorf("%s %s names no metric: %q", what, name, expr)
			}
			for _, m := range metrics {
				if !known(m) {
					t.Errorf("%s %s: %s is exported by neither serve nor the sink (%q)", what, name, m, expr)
				}
			}
		}
	}
	// What the alerts must cover, by the metric that shows it.
	for topic, metric := range map[string]string{
		"readiness": "liverecall_ready", "p99 over budget": "liverecall_http_request_duration_seconds_bucket",
		"channel timeouts": "liverecall_recall_channel_outcomes_total", "live view staleness": "liverecall_events_staleness_seconds",
		"consumer lag": "liverecall_events_lag_messages", "reload failures": "liverecall_index_reload_failures_total",
		"impressions dropped": "liverecall_impressions_dropped_total", "DLQ rate": "liverecall_events_dead_lettered_total",
	} {
		found := false
		for _, expr := range rules {
			if names, _ := promqlMetricNames(expr); slices.Contains(names, metric) {
				found = true
			}
		}
		if !found {
			t.Errorf("no alert on %s (%s)", topic, metric)
		}
	}
	// promtool, when installed, checks the rules' syntax too.
	if pt, err := exec.LookPath("promtool"); err == nil {
		b, _ := os.ReadFile("../../deploy/kubernetes/prometheusrule.yaml")
		var pr struct {
			Spec yaml.Node `yaml:"spec"`
		}
		if err := yaml.Unmarshal(b, &pr); err != nil {
			t.Fatal(err)
		}
		out, _ := yaml.Marshal(&pr.Spec)
		f := filepath.Join(t.TempDir(), "rules.yaml")
		os.WriteFile(f, out, 0o644)
		if b, err := exec.Command(pt, "check", "rules", f).CombinedOutput(); err != nil {
			t.Errorf("promtool check rules: %v\n%s", err, b)
		}
	}
}

// otlpReceiver is an OTLP/HTTP trace receiver: it decodes each export
// request (protobuf, gzip or not) and keeps the spans.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want protobuf on /v1/traces", http.StatusBadRequest)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ex collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &ex); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range ex.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

// trace returns the spans received of trace id (hex).
func (r *otlpReceiver) trace(id string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

// With --otlp-endpoint the service exports, over OTLP/HTTP, the spans of
// a recall request as one trace continuing the caller's traceparent: the
// HTTP span is the child of the caller's span, recall and rerank its
// children, the channels children of recall.
func TestRecallTraceExportedOverOTLP(t *testing.T) {
	rcv := &otlpReceiver{}
	collector := httptest.NewServer(rcv)
	t.Cleanup(collector.Close)
	e := startE2E(t, "--otlp-endpoint", collector.URL)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })

	const traceID, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/v1/recall", strings.NewReader(`{"user_id": 1, "k": 5}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parent+"-01")
	if code, b := do(t, req); code != 200 {
		t.Fatalf("recall: %d %s", code, b)
	}
	byName := map[string]*tracepb.Span{}
	e.waitFor("the request's spans at the collector", eventually, func() bool {
		for _, s := range rcv.trace(traceID) {
			byName[s.GetName()] = s
		}
		return byName["POST /v1/recall"] != nil && byName["recall"] != nil && byName["rerank"] != nil
	})
	id := func(b []byte) string { return hex.EncodeToString(b) }
	httpSpan := byName["POST /v1/recall"]
	if id(httpSpan.GetParentSpanId()) != parent || httpSpan.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("HTTP span's parent %s kind %v, want the caller's %s, server", id(httpSpan.GetParentSpanId()), httpSpan.GetKind(), parent)
	}
	for _, child := range []string{"recall", "rerank"} {
		if got := id(byName[child].GetParentSpanId()); got != id(httpSpan.GetSpanId()) {
			t.Errorf("%s span's parent %s, want the HTTP span %s", child, got, id(httpSpan.GetSpanId()))
		}
	}
	channels := 0
	for name, s := range byName {
		if ch, ok := strings.CutPrefix(name, "recall."); ok {
			channels++
			if !slices.Contains(recall.Channels, ch) {
				t.Errorf("span %s names no channel", name)
			}
			if id(s.GetParentSpanId()) != id(byName["recall"].GetSpanId()) {
				t.Errorf("%s's parent is not the recall span", name)
			}
		}
	}
	if channels == 0 {
		t.Errorf("no channel span in %v", keysOf(byName))
	}
	// PostgreSQL is traced too (the index load at start, at least).
	rcv.mu.Lock()
	var pg bool
	for _, s := range rcv.spans {
		pg = pg || s.GetName() == "postgres.query" || s.GetName() == "postgres.copy"
	}
	rcv.mu.Unlock()
	if !pg {
		t.Error("no PostgreSQL span exported")
	}
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
