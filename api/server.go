package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
)

// ReadinessCheck reports nil when the part it checks is ready to serve, or an
// error saying what is missing (for example "index not loaded").
type ReadinessCheck func() error

// Config is the HTTP edge's configuration.
type Config struct {
	// MaxBodyBytes bounds request bodies; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// Tracer, if set, traces each request (a server span continuing an
	// incoming traceparent); nil: tracing off (internal/spans).
	Tracer trace.Tracer
	// AdminToken is the bearer token a recall request needs to carry an
	// experiment arm override ("arm"); empty: every override is refused.
	AdminToken string
}

// Server is the HTTP API. Build it with New, add routes with its Register*
// methods, then serve Handler(). It is safe for concurrent requests.
type Server struct {
	e        *echo.Echo
	log      *slog.Logger
	cfg      Config
	checks   map[string]ReadinessCheck
	warnings map[string]ReadinessCheck
	reqDur   *prometheus.HistogramVec
	gatherer prometheus.Gatherer
	// ctxIgnored counts the request context values not understood, by key.
	ctxIgnored *prometheus.CounterVec
}

// New returns a server with /healthz, /readyz and /metrics. Metrics are
// registered on reg and served from gatherer.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{e: e, log: log, cfg: cfg, checks: map[string]ReadinessCheck{}, warnings: map[string]ReadinessCheck{}, gatherer: gatherer}
	s.reqDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "liverecall_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status code.",
		Buckets: []float64{.0005, .001, .002, .004, .006, .008, .01, .015, .025, .05, .1, .25, 1},
	}, []string{"route", "method", "code"})
	s.ctxIgnored = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "liverecall_context_ignored_total",
		Help: "Request context values of the right JSON type that the service did not understand (unknown device, locale, time zone, offset out of range), ignored, by key.",
	}, []string{"field"})
	reg.MustRegister(s.reqDur, s.readyGauge(), s.ctxIgnored)
	e.HTTPErrorHandler = s.handleError
	e.Use(s.requestLog, s.observe)
	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.readyz)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	e.GET("/openapi.json", func(c echo.Context) error {
		b, err := staticFS.ReadFile("static/openapi.json")
		if err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, b)
	})
	return s
}

// Handler returns the http.Handler serving every route.
func (s *Server) Handler() http.Handler { return s.e }

// Echo gives route-registering code in this package access to the router.
func (s *Server) Echo() *echo.Echo { return s.e }

// AddReadinessCheck makes /readyz depend on check under name. Not safe to
// call once serving has started.
func (s *Server) AddReadinessCheck(name string, check ReadinessCheck) { s.checks[name] = check }

// AddReadinessWarning reports check's error in /readyz's body under
// "warnings" without making the service unready: for degradations during
// which serving the last state is better than serving nothing (a stale live
// view while the broker is away). Not safe to call once serving has started.
func (s *Server) AddReadinessWarning(name string, check ReadinessCheck) { s.warnings[name] = check }

func (s *Server) readyz(c echo.Context) error {
	notReady, warn := map[string]string{}, map[string]string{}
	for name, check := range s.checks {
		if err := check(); err != nil {
			notReady[name] = err.Error()
		}
	}
	for name, check := range s.warnings {
		if err := check(); err != nil {
			warn[name] = err.Error()
		}
	}
	body := map[string]any{"status": "ready"}
	if len(warn) > 0 {
		body["warnings"] = warn
	}
	if len(notReady) > 0 {
		body["status"], body["checks"] = "not ready", notReady
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	return c.JSON(http.StatusOK, body)
}

func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if c.Request().ContentLength > s.cfg.MaxBodyBytes {
			return lr.Errorf(lr.EINVALID, "request body larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, s.cfg.MaxBodyBytes)
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.reqDur.WithLabelValues(route, c.Request().Method, strconv.Itoa(c.Response().Status)).Observe(time.Since(start).Seconds())
		return nil
	}
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		RequestID string `json:"request_id,omitempty"`
	} `json:"error"`
}

// statusOf is the one place where error codes become HTTP status codes.
func statusOf(code string) int {
	switch code {
	case lr.EINVALID:
		return http.StatusBadRequest
	case lr.ENOTFOUND:
		return http.StatusNotFound
	case lr.ECONFLICT:
		return http.StatusConflict
	case lr.EUNAUTHORIZED:
		return http.StatusUnauthorized
	case lr.EUNAVAILABLE:
		return http.StatusServiceUnavailable
	case CodeMethodNotAllowed:
		return http.StatusMethodNotAllowed
	case CodeUnsupportedMediaType:
		return http.StatusUnsupportedMediaType
	}
	return http.StatusInternalServerError
}

func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var body ErrorBody
	status := http.StatusInternalServerError
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		status, body.Error.Code, body.Error.Message = http.StatusRequestEntityTooLarge, lr.EINVALID, "request body larger than "+strconv.FormatInt(mbe.Limit, 10)+" bytes"
	case errors.As(err, &he):
		status, body.Error.Code, body.Error.Message = he.Code, codeOfStatus(he.Code), routerMessage(c, he)
	default:
		code := lr.ErrorCode(err)
		status, body.Error.Code, body.Error.Message = statusOf(code), code, lr.ErrorMessage(err)
		if code == lr.EINVALID && c.Request().ContentLength > s.cfg.MaxBodyBytes {
			status = http.StatusRequestEntityTooLarge
		}
	}
	body.Error.RequestID = requestID(c)
	if status >= 500 {
		s.log.Error("request failed", "route", c.Path(), "request_id", body.Error.RequestID, "err", err)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, body)
}
