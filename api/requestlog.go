package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/liverecall/liverecall/internal/spans"
)

// MaxRequestIDLen bounds an incoming X-Request-ID; a longer one, or one
// with a character outside [A-Za-z0-9._:-], is replaced by a generated id.
const MaxRequestIDLen = 128

// ctxUserID is the key of the request's user id in the echo context, set
// by a handler only when the logger is at debug level (the only time the
// request log reads it): with the default level a request stores nothing
// in the context, which would allocate its map.
const ctxUserID = "liverecall.user_id"

// validRequestID reports whether an incoming X-Request-ID can be used as
// the request's id: 1 to MaxRequestIDLen characters, each a letter, digit,
// '.', '_', ':' or '-', so it is safe in a header, a log line and JSON
// without escaping.
func validRequestID(id string) bool {
	if id == "" || len(id) > MaxRequestIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// requestID is the id of c's request: the response's X-Request-ID, which
// requestLog sets before anything else runs.
func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// quietRoutes are logged at debug level: probes and scrapes, which would
// otherwise drown the log.
var quietRoutes = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// requestLog is the outermost middleware. It gives each request its id
// (a valid incoming X-Request-ID, else a new one), sets it as the
// response's X-Request-ID before anything is written, reads an incoming
// W3C traceparent (with tracing on the request's span continues that
// trace; with tracing off its trace id is still logged), and after the
// response logs one line: method, route template, status, duration in
// milliseconds, request id, trace id when known, and the user id only
// when the logger is at debug level.
func (s *Server) requestLog(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		req := c.Request()
		rid := req.Header.Get(echo.HeaderXRequestID)
		if !validRequestID(rid) {
			rid = newRequestID()
		}
		c.Response().Header().Set(echo.HeaderXRequestID, rid)

		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		// The trace: the caller's (an invalid traceparent is ignored),
		// continued by the request's span when tracing is on. With
		// tracing off nothing is built for it.
		sc, _ := spans.ParseTraceparent(req.Header.Get(spans.Header))
		var span trace.Span
		if s.cfg.Tracer != nil {
			ctx := req.Context()
			if sc.IsValid() {
				ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
			}
			ctx, span = s.cfg.Tracer.Start(ctx, req.Method+" "+route, trace.WithSpanKind(trace.SpanKindServer))
			sc = span.SpanContext()
			if span.IsRecording() {
				span.SetAttributes(attribute.String("http.request.method", req.Method), attribute.String("http.route", route),
					attribute.String("liverecall.request_id", rid))
			}
			c.SetRequest(req.WithContext(ctx))
		}

		if err := next(c); err != nil {
			// Answered here, not by echo after the middleware, so that
			// the status logged is the one sent (observe answers most
			// errors itself, but not a body refused before the handler).
			c.Error(err)
		}

		status := c.Response().Status
		if span != nil {
			if span.IsRecording() {
				span.SetAttributes(attribute.Int("http.response.status_code", status))
				if status >= 500 {
					span.SetStatus(codes.Error, "")
				}
			}
			span.End()
		}
		level := slog.LevelInfo
		if quietRoutes[route] {
			level = slog.LevelDebug
		}
		if !s.log.Enabled(context.Background(), level) {
			return nil
		}
		attrs := make([]slog.Attr, 0, 7)
		attrs = append(attrs, slog.String("method", req.Method), slog.String("route", route), slog.Int("status", status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000), slog.String("request_id", rid))
		if sc.IsValid() {
			attrs = append(attrs, slog.String("trace_id", sc.TraceID().String()))
		}
		if uid, ok := c.Get(ctxUserID).(int64); ok {
			attrs = append(attrs, slog.Int64("user_id", uid))
		}
		s.log.LogAttrs(context.Background(), level, "request", attrs...)
		return nil
	}
}

// readyGauge is liverecall_ready: 1 while every readiness check passes
// (what /readyz answers 200 for), else 0, evaluated at each scrape.
func (s *Server) readyGauge() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_ready",
		Help: "1 while the replica is ready to serve (every /readyz check passes), else 0."}, func() float64 {
		for _, check := range s.checks {
			if check() != nil {
				return 0
			}
		}
		return 1
	})
}
