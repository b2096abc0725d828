// Package spans is what the service's packages need of tracing: starting a
// span only when tracing is on, and the W3C trace context's traceparent
// header, read and written. It depends on go.opentelemetry.io/otel/trace
// only; the SDK and the OTLP exporter are wired in internal/tracing.
//
// A nil trace.Tracer means tracing is off: Start then returns ctx unchanged
// and a span whose methods do nothing, without allocating, so the request
// path costs nothing more when tracing is off.
package spans

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/trace"
)

// off is the span returned while tracing is off: the non-recording span of
// an empty context (a package-level value; ending it does nothing).
var off = trace.SpanFromContext(context.Background())

// Start starts a span named name as a child of ctx's span when tracer is
// not nil; with a nil tracer it returns ctx and a span that does nothing.
// Callers guard attribute building with span.IsRecording() so that the
// attributes are not built while tracing is off.
func Start(ctx context.Context, tracer trace.Tracer, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, off
	}
	return tracer.Start(ctx, name, opts...)
}

// StartKind is Start for a span of the given kind (server, client,
// producer, consumer). Pass options through it rather than through Start:
// the options of a call to Start are built, and allocated, even when the
// tracer is nil; StartKind builds its one only when tracing is on.
func StartKind(ctx context.Context, tracer trace.Tracer, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, off
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(kind))
}

// Header is the W3C trace context header's name.
const Header = "traceparent"

// ParseTraceparent reads a W3C traceparent value (version 00:
// "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"; a later version
// may append fields after a '-'). It returns the remote span context, or
// false when v is not a valid traceparent (wrong length or format,
// upper-case hex, an all-zero id, or version ff), which the caller then
// ignores as the specification says.
func ParseTraceparent(v string) (trace.SpanContext, bool) {
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return trace.SpanContext{}, false
	}
	var ver, flags [1]byte
	var cfg trace.SpanContextConfig
	if !lowerHex(ver[:], v[0:2]) || ver[0] == 0xff || (ver[0] == 0 && len(v) != 55) || (len(v) > 55 && v[55] != '-') {
		return trace.SpanContext{}, false
	}
	if !lowerHex(cfg.TraceID[:], v[3:35]) || !lowerHex(cfg.SpanID[:], v[36:52]) || !lowerHex(flags[:], v[53:55]) {
		return trace.SpanContext{}, false
	}
	cfg.TraceFlags = trace.TraceFlags(flags[0]) & trace.FlagsSampled
	cfg.Remote = true
	sc := trace.NewSpanContext(cfg)
	if !sc.IsValid() {
		return trace.SpanContext{}, false
	}
	return sc, true
}

// FormatTraceparent writes sc as a version-00 traceparent value, or ""
// when sc is not valid.
func FormatTraceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	tid, sid := sc.TraceID(), sc.SpanID()
	b := make([]byte, 0, 55)
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, sid[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, []byte{byte(sc.TraceFlags() & trace.FlagsSampled)})
	return string(b)
}

// lowerHex decodes s, which must be lower-case hex (the specification
// refuses upper case) of exactly len(dst) bytes, into dst, allocating
// nothing: it runs for every request that carries a traceparent.
func lowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

// nibble is the value of the lower-case hex digit c.
func nibble(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
