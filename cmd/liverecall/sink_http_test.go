package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The sink serves /healthz, /readyz and /metrics on --sink-metrics-addr,
// for the Kubernetes probes and Prometheus.
func TestSinkServesProbesAndMetrics(t *testing.T) {
	url := pgtest.New(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the sink listens here; another process taking the port in between fails the test loudly

	app, _, errb := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, app, []string{"sink", "--database-url", url, "--kafka-brokers", k.Brokers()[0], "--sink-metrics-addr", addr})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(stopWithin(0)):
			t.Errorf("sink did not stop within %v", stopWithin(0))
		}
	})

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(eventually)
	for {
		code, body := get("/readyz")
		if code == http.StatusOK && strings.Contains(body, `"ready"`) {
			break
		}
		select {
		case c := <-done:
			t.Fatalf("sink exited with %d: %s", c, errb)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d %s after %v", code, body, eventually)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, body := get("/healthz"); code != http.StatusOK || !strings.Contains(body, `"ok"`) {
		t.Errorf("/healthz: %d %s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "liverecall_") {
		t.Errorf("/metrics: %d %.200s", code, body)
	}
	if code, _ := get("/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}

// /readyz answers 503 naming the database when PostgreSQL does not answer.
func TestSinkReadyzWithoutTheDatabase(t *testing.T) {
	db, err := postgres.Open(context.Background(), pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	h := sinkHTTPHandler(prometheus.NewRegistry(), db.Ping)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}
	if rec := get("/readyz"); rec.Code != http.StatusOK {
		t.Fatalf("with the database: %d %s", rec.Code, rec.Body)
	}
	db.Close()
	rec := get("/readyz")
	var body struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Status != "not ready" || body.Checks["database"] == "" {
		t.Fatalf("without the database: %d %s", rec.Code, rec.Body)
	}
	if rec := get("/healthz"); rec.Code != http.StatusOK {
		t.Fatalf("/healthz without the database: %d", rec.Code)
	}
}

// A --sink-metrics-addr that cannot be listened on fails the start.
func TestSinkRefusesABadMetricsAddress(t *testing.T) {
	url := pgtest.New(t)
	app, _, errb := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	if code := Run(context.Background(), app, []string{"sink", "--database-url", url, "--kafka-brokers", "127.0.0.1:1", "--sink-metrics-addr", "nohost:notaport"}); code == 0 ||
		!strings.Contains(errb.String(), "sink-metrics-addr") {
		t.Fatalf("code %d, stderr %q", code, errb)
	}
}
