package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/postgres"
)

// Kafka topic settings, shared by every subcommand that reads or writes events.
var (
	sEventsTopic     = defSetting(setting{"events-topic", "LIVERECALL_EVENTS_TOPIC", events.DefaultTopic, "comma-separated live event topics"})
	sDeadLetterTopic = defSetting(setting{"dead-letter-topic", "LIVERECALL_DEAD_LETTER_TOPIC", events.DefaultDeadLetterTopic, "topic to which the sink writes the messages that do not decode (serve only counts them)"})
	sSinkGroup       = defSetting(setting{"sink-group", "LIVERECALL_SINK_GROUP", "liverecall-sink", "consumer group of the sink"})
	sSinkBatch       = defSetting(setting{"sink-batch-size", "LIVERECALL_SINK_BATCH_SIZE", "5000", "most events the sink writes in one transaction"})
	sSinkWait        = defSetting(setting{"sink-batch-wait", "LIVERECALL_SINK_BATCH_WAIT", "500ms", "longest a sink batch waits to fill"})
	sSinkMetrics     = defSetting(setting{"sink-metrics-addr", "LIVERECALL_SINK_METRICS_ADDR", "", "address to serve the sink's /metrics, /healthz and /readyz on (empty: none)"})
)

func init() {
	register(&command{name: "sink", summary: "copy events from Kafka to Postgres (training data)", run: runSink})
}

// splitCommaList splits a comma-separated setting, dropping blanks.
func splitCommaList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// newSinkMetrics makes the sink process's registry: the process metrics
// (registerProcessMetrics) and the sink's Kafka metrics, nothing of serve.
func newSinkMetrics(db *postgres.DB) (*metricsRegistry, *events.Metrics) {
	reg := newMetricsRegistry()
	registerProcessMetrics(reg, db)
	return reg, events.NewSinkMetrics(reg)
}

func runSink(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "sink")
	dbURL, brokers, topics, dlq := f.String(sDatabaseURL), f.String(sKafkaBrokers), f.String(sEventsTopic), f.String(sDeadLetterTopic)
	group, batch, wait, metricsAddr := f.String(sSinkGroup), f.Int(sSinkBatch), f.Duration(sSinkWait), f.String(sSinkMetrics)
	impTopic, otlp := f.String(sImpressionsTopic), f.String(sOTLPEndpoint)
	if err := f.Parse(args); err != nil {
		return err
	}
	if len(splitCommaList(*brokers)) == 0 {
		return lr.Errorf(lr.EINVALID, "no Kafka brokers: set --kafka-brokers or LIVERECALL_KAFKA_BROKERS")
	}
	tp, err := setupTracing(app, *otlp, "sink")
	if err != nil {
		return err
	}
	defer shutdownTracing(app, tp)
	tracer := tp.Tracer(tracerName)
	db, err := postgres.Open(ctx, *dbURL, postgres.WithTracer(tracer))
	if err != nil {
		return err
	}
	defer db.Close()
	reg, m := newSinkMetrics(db)
	if *metricsAddr != "" {
		// Listen before anything else, so a bad address fails the start.
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return lr.Errorf(lr.EINVALID, "--%s %q: %v", sSinkMetrics.Flag, *metricsAddr, err)
		}
		srv := &http.Server{Handler: sinkHTTPHandler(reg, db.Ping), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				app.Log.Error("sink metrics server", "err", err)
			}
		}()
		defer srv.Close()
		app.Log.Info("sink serving /metrics, /healthz and /readyz", "addr", ln.Addr().String())
	}
	store := events.SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		r, err := db.WriteEvents(ctx, evs)
		if err != nil {
			return err
		}
		app.Log.Debug("sink batch", "new", r.New, "replayed", r.Replayed, "sessions", r.Sessions, "gifts", r.Gifts,
			"pending_leaves", r.PendingLeaves, "unpaired_leaves", r.Unpaired, "duplicate_joins", r.DuplicateJoins)
		m.SinkUnpaired(r.Unpaired, r.DuplicateJoins)
		if r.Unpaired > 0 || r.DuplicateJoins > 0 {
			app.Log.Warn("sink: viewer events without a session", "leaves_without_join", r.Unpaired, "duplicate_joins", r.DuplicateJoins)
		}
		return nil
	})
	s, err := events.NewSink(events.SinkConfig{Brokers: splitCommaList(*brokers), Topics: splitCommaList(*topics), DeadLetterTopic: *dlq,
		GroupID: *group, BatchSize: *batch, BatchWait: *wait, Log: app.Log, Metrics: m, Tracer: tracer,
		ImpressionTopic: *impTopic, Impressions: db.WriteImpressions}, store)
	if err != nil {
		return err
	}
	// Daily impression partitions a week ahead, checked every few hours.
	partitions := func() {
		if made, err := db.EnsureImpressionPartitions(ctx, 8); err != nil {
			app.Log.Warn("impression partitions not created; rows go to the default partition", "err", err)
		} else if made > 0 {
			app.Log.Info("created impression partitions", "count", made)
		}
	}
	partitions()
	go func() {
		t := time.NewTicker(6 * time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				partitions()
			}
		}
	}()
	app.Log.Info("sink running", "topics", *topics, "impressions", *impTopic, "group", *group)
	if err := s.Run(ctx); err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	return nil
}

// sinkHTTPHandler serves the sink's /metrics (from reg), /healthz (200 while
// the process answers) and /readyz: 200 while ping reaches PostgreSQL within
// dbPingTimeout, else 503 naming the problem (the sink cannot write without
// it; it retries meanwhile). The bodies are those of serve's routes.
func sinkHTTPHandler(reg prometheus.Gatherer, ping func(context.Context) error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), dbPingTimeout)
		defer cancel()
		if err := ping(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "checks": map[string]string{"database": lr.ErrorMessage(err)}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
