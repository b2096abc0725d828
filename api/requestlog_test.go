package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recall/recalltest"
	"github.com/liverecall/liverecall/recommend"
)

// syncBuffer is a log destination safe for the server's goroutines and
// the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the JSON log records written so far.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// requestLine waits for the request log line of request id rid: the line
// is written after the response, so it may trail the client's read.
func (s *syncBuffer) requestLine(t *testing.T, rid string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, m := range s.lines(t) {
			if m["msg"] == "request" && m["request_id"] == rid {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no request log line with request_id %q in:\n%s", rid, s.b.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// failing answers user 13 with an internal error and everyone else
// through next.
type failing struct{ next api.Recommender }

func (f failing) Recommend(ctx context.Context, req lr.RecommendRequest) (*lr.Page, error) {
	if req.User == 13 {
		return nil, errors.New("disk on fire")
	}
	return f.next.Recommend(ctx, req)
}

func (f failing) Neighbors(ctx context.Context, req lr.NeighborsRequest) (*lr.Neighbors, error) {
	return f.next.Neighbors(ctx, req)
}

// newTracedServer serves the recall route over a small world (streamers
// 1..6 live, user 7 known to MF) with tracer (nil: tracing off), logging
// JSON at level into the returned buffer.
func newTracedServer(t *testing.T, tracer trace.Tracer, level slog.Level) (*httptest.Server, *syncBuffer) {
	t.Helper()
	ords := lr.NewOrdinals()
	state := live.New(live.Config{Ordinals: ords, Clock: func() time.Time { return t0 }})
	idx := recalltest.New()
	idx.SetVersion(lr.ModelMF, "mf-1")
	for id := 1; id <= 6; id++ {
		v := make([]float32, 7)
		v[id] = 1
		idx.AddStreamer(lr.ModelMF, ords.Ordinal(lr.StreamerID(id)), v)
		state.Apply([]lr.Event{{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(100 + id), Category: "c", V: 1}})
	}
	u := make([]float32, 7)
	u[3] = 1
	idx.AddUser(lr.ModelMF, 7, u)
	now := func() time.Time { return t0 }
	engine := recall.New(recall.Config{Now: now, Budget: 10 * time.Second, ShownDisabled: true, Tracer: tracer}, state, ords, idx, idx, nil, nil)
	engine.RefreshRankings()
	svc := recommend.New(recommend.Config{Recall: engine, Users: state, Streams: state, Index: idx, UserStore: idx, Ordinals: ords, Now: now, Tracer: tracer})
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{Tracer: tracer}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: level})), reg, reg)
	srv.RegisterRecall(failing{svc})
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs, logs
}

// post sends a recall request with headers and returns the status, the
// response's X-Request-ID and the body.
func post(t *testing.T, url, body string, headers map[string]string) (int, string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("body is not JSON: %q", b)
	}
	return resp.StatusCode, resp.Header.Get("X-Request-ID"), out
}

func bodyRequestID(out map[string]any) any {
	if e, ok := out["error"].(map[string]any); ok {
		return e["request_id"]
	}
	return out["request_id"]
}

// Every response carries the request id in its X-Request-ID header and its
// body: the caller's when it is valid, else a generated one.
func TestRequestIDOnEveryResponse(t *testing.T) {
	hs, _ := newTracedServer(t, nil, slog.LevelInfo)
	recallURL := hs.URL + "/v1/recall"
	long := strings.Repeat("a", api.MaxRequestIDLen+1)
	for _, tc := range []struct {
		name, url, body, incoming string
		status                    int
		keep                      bool
	}{
		{"ok, caller's id", recallURL, `{"user_id": 7, "k": 2}`, "req-42_A.b:c", 200, true},
		{"ok, no id", recallURL, `{"user_id": 7, "k": 2}`, "", 200, false},
		{"invalid request", recallURL, `{"user_id": 0}`, "caller-400", 400, true},
		{"internal error", recallURL, `{"user_id": 13}`, "caller-500", 500, true},
		{"unknown route", hs.URL + "/v1/nope/123", `{}`, "caller-404", 404, true},
		{"id too long", recallURL, `{"user_id": 7}`, long, 200, false},
		{"id with a space", recallURL, `{"user_id": 7}`, "a b", 200, false},
		{"id with a quote", recallURL, `{"user_id": 7}`, `a"b`, 200, false},
		{"id with non-ASCII", recallURL, `{"user_id": 7}`, "é", 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.incoming != "" {
				h["X-Request-ID"] = tc.incoming
			}
			status, rid, out := post(t, tc.url, tc.body, h)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, out)
			}
			if rid == "" {
				t.Fatal("no X-Request-ID in the response")
			}
			if tc.keep && rid != tc.incoming {
				t.Errorf("X-Request-ID %q, want the caller's %q", rid, tc.incoming)
			}
			if !tc.keep && rid == tc.incoming {
				t.Errorf("invalid incoming X-Request-ID %q was used", rid)
			}
			if got := bodyRequestID(out); got != rid {
				t.Errorf("body request_id %v, header %q", got, rid)
			}
		})
	}
}

// Each request leaves one log line with the route template, status,
// duration and request id; the user id only at debug level; the trace id
// of an incoming traceparent even with tracing off.
func TestRequestLog(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	hs, logs := newTracedServer(t, nil, slog.LevelInfo)
	post(t, hs.URL+"/v1/recall", `{"user_id": 7, "k": 2}`, map[string]string{"X-Request-ID": "log-1", "traceparent": tp})
	l := logs.requestLine(t, "log-1")
	if l["level"] != "INFO" || l["method"] != "POST" || l["route"] != "/v1/recall" || l["status"] != 200.0 || l["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("request log line %v", l)
	}
	if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
		t.Errorf("duration_ms %v", l["duration_ms"])
	}
	if _, ok := l["user_id"]; ok {
		t.Errorf("user_id logged at info level: %v", l)
	}

	// A path that matches no route is logged as such, not as its raw path.
	post(t, hs.URL+"/v1/users/12345/secret", `{}`, map[string]string{"X-Request-ID": "log-2"})
	if l := logs.requestLine(t, "log-2"); l["route"] != "unmatched" || l["status"] != 404.0 || strings.Contains(fmt.Sprint(l), "/v1/users") {
		t.Errorf("unmatched route logged as %v", l)
	}
	// A malformed traceparent is ignored.
	post(t, hs.URL+"/v1/recall", `{"user_id": 7}`, map[string]string{"X-Request-ID": "log-3", "traceparent": "00-zz-00f067aa0ba902b7-01"})
	if l := logs.requestLine(t, "log-3"); l["trace_id"] != nil || l["status"] != 200.0 {
		t.Errorf("request with a bad traceparent logged as %v", l)
	}

	// A body refused before the handler is logged with the status sent.
	status, _, _ := post(t, hs.URL+"/v1/recall", `{"user_id": 7, "context": {"pad": "`+strings.Repeat("x", 1<<20)+`"}}`, map[string]string{"X-Request-ID": "log-5"})
	if l := logs.requestLine(t, "log-5"); status != 413 || l["status"] != 413.0 {
		t.Errorf("oversized body answered %d, logged as %v", status, l)
	}

	hs, logs = newTracedServer(t, nil, slog.LevelDebug)
	post(t, hs.URL+"/v1/recall", `{"user_id": 7, "k": 2}`, map[string]string{"X-Request-ID": "log-4"})
	if l := logs.requestLine(t, "log-4"); l["user_id"] != 7.0 {
		t.Errorf("user_id not logged at debug level: %v", l)
	}
}

// With tracing on, one recall request is one trace continuing the
// caller's traceparent: the HTTP server span is the child of the caller's
// span, recall and rerank are children of it, and each recall channel a
// child of recall.
func TestRecallSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	hs, _ := newTracedServer(t, tp.Tracer("test"), slog.LevelInfo)
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	status, _, out := post(t, hs.URL+"/v1/recall", `{"user_id": 7, "k": 2}`, map[string]string{"traceparent": "00-" + traceID + "-" + parent + "-01"})
	if status != 200 {
		t.Fatalf("status %d: %v", status, out)
	}
	// The server span ends after the response is written.
	var ended []sdktrace.ReadOnlySpan
	deadline := time.Now().Add(30 * time.Second)
	for {
		ended = rec.Ended()
		if hasSpan(ended, "POST /v1/recall") || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range ended {
		if s.SpanContext().TraceID().String() != traceID {
			t.Errorf("span %s in trace %s, want the caller's %s", s.Name(), s.SpanContext().TraceID(), traceID)
		}
		byName[s.Name()] = s
	}
	httpSpan, ok := byName["POST /v1/recall"]
	if !ok {
		t.Fatalf("no HTTP span among %v", names(ended))
	}
	if httpSpan.Parent().SpanID().String() != parent || !httpSpan.Parent().IsRemote() || httpSpan.SpanKind() != trace.SpanKindServer {
		t.Errorf("HTTP span's parent %v (remote %v), kind %v", httpSpan.Parent().SpanID(), httpSpan.Parent().IsRemote(), httpSpan.SpanKind())
	}
	childOf := func(child, parent string) {
		c, ok1 := byName[child]
		p, ok2 := byName[parent]
		if !ok1 || !ok2 {
			t.Errorf("missing span %s or %s among %v", child, parent, names(ended))
			return
		}
		if c.Parent().SpanID() != p.SpanContext().SpanID() {
			t.Errorf("%s's parent is %v, want %s (%v)", child, c.Parent().SpanID(), parent, p.SpanContext().SpanID())
		}
	}
	childOf("recall", "POST /v1/recall")
	childOf("rerank", "POST /v1/recall")
	for _, ch := range []string{recall.ChanMF, recall.ChanTrending, recall.ChanFresh} {
		childOf("recall."+ch, "recall")
	}
}

func hasSpan(ss []sdktrace.ReadOnlySpan, name string) bool {
	for _, s := range ss {
		if s.Name() == name {
			return true
		}
	}
	return false
}

func names(ss []sdktrace.ReadOnlySpan) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name()
	}
	return out
}

// liverecall_ready follows the readiness checks at each scrape.
func TestReadyGauge(t *testing.T) {
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{}, slog.New(slog.DiscardHandler), reg, reg)
	var notReady error = errors.New("no index")
	srv.AddReadinessCheck("index", func() error { return notReady })
	srv.AddReadinessCheck("live", func() error { return nil })
	value := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "liverecall_ready" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("liverecall_ready not exported")
		return 0
	}
	if v := value(); v != 0 {
		t.Errorf("liverecall_ready = %v with a failing check, want 0", v)
	}
	notReady = nil
	if v := value(); v != 1 {
		t.Errorf("liverecall_ready = %v with every check passing, want 1", v)
	}
}
