// Package tracing wires OpenTelemetry's SDK and its OTLP/HTTP exporter: the
// one package of the module that imports them. The rest of the code takes a
// go.opentelemetry.io/otel/trace.Tracer (nil: tracing off) and starts spans
// with internal/spans.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config says where spans go.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL (e.g.
	// http://otel-collector:4318); spans are posted to <Endpoint>/v1/traces.
	// Empty: the standard OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or
	// OTEL_EXPORTER_OTLP_ENDPOINT variables decide; with neither set,
	// tracing is off.
	Endpoint string
	// Service names the process in the spans' resource (service.name),
	// e.g. "liverecall-serve".
	Service string
	// Version is the release version (service.version).
	Version string
	// Getenv reads the environment; default os.Getenv.
	Getenv func(string) string
	// Log receives the exporter's errors (a collector that cannot be
	// reached: those spans are lost), at warn level. Default: discard.
	Log *slog.Logger
}

// Provider is a configured tracer provider. Its zero value (and a nil
// *Provider) is tracing off.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Setup returns the provider Config asks for: off (Tracer returns nil)
// when no endpoint is configured, else one exporting spans in batches over
// OTLP/HTTP. Nothing is sent until a span ends; an unreachable collector
// only loses spans, logged to cfg.Log (Setup sets OpenTelemetry's global
// error handler to it when tracing is on).
func Setup(cfg Config) (*Provider, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	// The endpoint: the signal-specific variable (a full URL) when set and
	// the endpoint is not given otherwise than by the general variable;
	// else the flag or the general variable (a base URL), as the
	// specification says. The exporter reads the other OTEL_EXPORTER_OTLP_*
	// variables (headers, timeout, compression) itself.
	general, traces := cfg.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT"), cfg.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	var endpoint, base string
	switch {
	case traces != "" && (cfg.Endpoint == "" || cfg.Endpoint == general):
		endpoint, base = traces, traces
	case cfg.Endpoint != "":
		endpoint, base = strings.TrimSuffix(cfg.Endpoint, "/")+"/v1/traces", cfg.Endpoint
	case general != "":
		endpoint, base = strings.TrimSuffix(general, "/")+"/v1/traces", general
	default:
		return &Provider{}, nil
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("OTLP endpoint %q: want a URL such as http://collector:4318", base)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}
	if cfg.Log != nil {
		log := cfg.Log
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: spans not exported", "err", err) }))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.Service)}
	if cfg.Version != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.Version))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		// A sampled incoming traceparent is followed; a request without one
		// starts a sampled trace.
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
	)
	return &Provider{tp: tp}, nil
}

// NewForTest returns a provider over tp (an SDK provider with, say, a
// tracetest.SpanRecorder).
func NewForTest(tp *sdktrace.TracerProvider) *Provider { return &Provider{tp: tp} }

// Enabled reports whether spans are exported.
func (p *Provider) Enabled() bool { return p != nil && p.tp != nil }

// Tracer returns the named tracer, or nil when tracing is off (what
// internal/spans.Start takes as off).
func (p *Provider) Tracer(name string) trace.Tracer {
	if !p.Enabled() {
		return nil
	}
	return p.tp.Tracer(name)
}

// Shutdown exports the spans still buffered, within ctx. A no-op when off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	return p.tp.Shutdown(ctx)
}
