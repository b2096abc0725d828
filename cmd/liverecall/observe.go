package main

import (
	"context"
	"regexp"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/liverecall/liverecall/internal/tracing"
	"github.com/liverecall/liverecall/postgres"
)

// sOTLPEndpoint turns tracing on. Its environment variable is the
// standard OpenTelemetry one; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (a full
// URL) is read by the exporter when this is empty.
var sOTLPEndpoint = defSetting(setting{"otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "",
	"base URL of an OTLP/HTTP collector to export traces to, e.g. http://otel-collector:4318 (empty: tracing off unless OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set)"})

// tracerName names the service's tracer (the instrumentation scope).
const tracerName = "github.com/liverecall/liverecall"

// setupTracing returns the tracer provider of a process named service
// (serve, sink): off when no endpoint is configured.
func setupTracing(app *App, endpoint, service string) (*tracing.Provider, error) {
	tp, err := tracing.Setup(tracing.Config{Endpoint: endpoint, Service: "liverecall-" + service,
		Version: releaseVersion(Version, readBuildInfo()), Getenv: app.Getenv, Log: app.Log})
	if err != nil {
		return nil, err
	}
	if tp.Enabled() {
		app.Log.Info("tracing on: exporting spans over OTLP/HTTP")
	}
	return tp, nil
}

// shutdownTracing flushes the spans still buffered, for at most 5 s.
func shutdownTracing(app *App, tp *tracing.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		app.Log.Warn("spans not all exported at shutdown", "err", err)
	}
}

// registerProcessMetrics registers what every long-running process
// exports: the Go runtime and process collectors, liverecall_build_info
// and the PostgreSQL pool's statistics (liverecall_db_pool_*). The Go
// collector adds to its defaults the runtime's histogram of how long
// goroutines ready to run waited for a processor
// (go_sched_latencies_seconds): a replica short of CPU (a busy node, a
// low CPU limit) shows there before its requests time out.
func registerProcessMetrics(reg prometheus.Registerer, db *postgres.DB) {
	reg.MustRegister(goCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoGauge(Version, readBuildInfo()), db.PoolCollector())
}

// goCollector is the Go runtime's collector with its default metrics and
// go_sched_latencies_seconds.
func goCollector() prometheus.Collector {
	return collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(
		collectors.GoRuntimeMetricsRule{Matcher: regexp.MustCompile(`^/sched/latencies:seconds$`)}))
}

// buildInfoGauge is liverecall_build_info, always 1, whose labels say
// which build runs: version (as `liverecall version` prints it), commit
// (the VCS revision, "unknown" when the build did not stamp one) and
// go_version.
func buildInfoGauge(release string, b buildInfo) prometheus.Collector {
	commit := b.commit
	if commit == "" {
		commit = "unknown"
	} else if b.modified {
		commit += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_build_info",
		Help:        "Always 1; the labels name the running build: release version, VCS commit and Go version.",
		ConstLabels: prometheus.Labels{"version": releaseVersion(release, b), "commit": commit, "go_version": runtime.Version()}})
	g.Set(1)
	return g
}

// metricsRegistry is a Prometheus registry that remembers the collectors
// registered with it, so that every metric a process can export, observed
// yet or not, can be listed from their descriptions (the tests check the
// dashboard and the alert rules against them).
type metricsRegistry struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func newMetricsRegistry() *metricsRegistry {
	return &metricsRegistry{Registry: prometheus.NewRegistry()}
}

// Register implements prometheus.Registerer.
func (r *metricsRegistry) Register(c prometheus.Collector) error {
	if err := r.Registry.Register(c); err != nil {
		return err
	}
	r.collectors = append(r.collectors, c)
	return nil
}

// MustRegister implements prometheus.Registerer.
func (r *metricsRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// descs returns the descriptions of every metric registered. Not safe
// for use concurrent with Register.
func (r *metricsRegistry) descs() []*prometheus.Desc {
	ch := make(chan *prometheus.Desc)
	go func() {
		for _, c := range r.collectors {
			c.Describe(ch)
		}
		close(ch)
	}()
	var out []*prometheus.Desc
	for d := range ch {
		out = append(out, d)
	}
	return out
}
