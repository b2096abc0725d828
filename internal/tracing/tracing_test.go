package tracing

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// Tracing is off unless an endpoint is configured, by the flag or the
// standard variables; a malformed endpoint is refused.
func TestSetup(t *testing.T) {
	var posts atomic.Int32
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/traces" {
			posts.Add(1)
		}
	}))
	defer collector.Close()

	off, err := Setup(Config{Service: "x", Getenv: env(nil)})
	if err != nil || off.Enabled() || off.Tracer("t") != nil || off.Shutdown(context.Background()) != nil {
		t.Fatalf("no endpoint: enabled %v, err %v", off.Enabled(), err)
	}
	for _, bad := range []string{"collector:4318", "ftp://c:1", "http://"} {
		if _, err := Setup(Config{Endpoint: bad, Getenv: env(nil)}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	for name, cfg := range map[string]Config{
		"flag":            {Endpoint: collector.URL, Getenv: env(nil)},
		"general env":     {Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL})},
		"traces env":      {Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.URL + "/v1/traces"})},
		"traces env wins": {Endpoint: "http://unused.invalid:1", Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://unused.invalid:1", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": collector.URL + "/v1/traces"})},
	} {
		before := posts.Load()
		p, err := Setup(cfg)
		if err != nil || !p.Enabled() {
			t.Errorf("%s: enabled %v, err %v", name, p.Enabled(), err)
			continue
		}
		_, span := p.Tracer("t").Start(context.Background(), "s")
		span.End()
		if err := p.Shutdown(context.Background()); err != nil {
			t.Errorf("%s: shutdown: %v", name, err)
		}
		if posts.Load() == before {
			t.Errorf("%s: no span posted to the collector", name)
		}
	}
}
