package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/liverecall/liverecall/internal/spans"
)

// Option changes how Open sets up the pool.
type Option func(*pgxpool.Config)

// WithTracer traces every query and COPY of the pool as a client span
// ("postgres.query", "postgres.copy") under the caller's span; a nil
// tracer leaves tracing off.
func WithTracer(t trace.Tracer) Option {
	return func(cfg *pgxpool.Config) {
		if t != nil {
			cfg.ConnConfig.Tracer = queryTracer{t}
		}
	}
}

// WithDefaultMaxConns sizes the pool at n connections unless the database
// URL sets pool_max_conns (pgxpool's own default is max(4, cores)). A
// serving replica needs more than that default: its LISTEN holds one for
// good, the user store's batch queries up to four, the users' loads two,
// and reloads, refreshes and the NeuMF scorer's load more; with four, a
// cold start's loads and the scorer's load left the user store's queries
// waiting seconds for one. n < 1 changes nothing.
func WithDefaultMaxConns(n int32) Option {
	return func(cfg *pgxpool.Config) {
		if n >= 1 && !strings.Contains(cfg.ConnString(), "pool_max_conns") {
			cfg.MaxConns = n
		}
	}
}

// maxStatementAttr bounds the statement text put in a span.
const maxStatementAttr = 1024

// queryTracer is pgx's tracer hook (pgx.QueryTracer, pgx.CopyFromTracer)
// making spans. Only the statement text is recorded, never its arguments.
type queryTracer struct{ t trace.Tracer }

func (q queryTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	ctx, span := q.t.Start(ctx, "postgres.query", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		sql := data.SQL
		if len(sql) > maxStatementAttr {
			sql = sql[:maxStatementAttr]
		}
		span.SetAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.query.text", sql))
	}
	return ctx
}

func (q queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.SetStatus(codes.Error, data.Err.Error())
	} else if span.IsRecording() {
		span.SetAttributes(attribute.Int64("db.response.returned_rows", data.CommandTag.RowsAffected()))
	}
	span.End()
}

func (q queryTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	ctx, span := spans.Start(ctx, q.t, "postgres.copy", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.collection.name", data.TableName.Sanitize()))
	}
	return ctx
}

func (q queryTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	span := trace.SpanFromContext(ctx)
	if data.Err != nil {
		span.SetStatus(codes.Error, data.Err.Error())
	}
	span.End()
}

// poolCollector exports the pool's statistics (pgxpool.Stat) at each scrape.
type poolCollector struct {
	pool                                               *pgxpool.Pool
	acquired, idle, total, max, constructing           *prometheus.Desc
	acquires, acquireSeconds, emptyAcquires, cancelled *prometheus.Desc
}

// PoolCollector returns a Prometheus collector of the pool's connections
// (liverecall_db_pool_*: acquired, idle, total and maximum connections,
// acquires, the time spent acquiring, acquires that had to wait for a
// connection and acquires cancelled), read from pool.Stat() at each scrape.
func (db *DB) PoolCollector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("liverecall_db_pool_"+name, help, nil, nil)
	}
	return &poolCollector{pool: db.Pool,
		acquired:       d("acquired_conns", "Connections of the PostgreSQL pool in use."),
		idle:           d("idle_conns", "Idle connections of the PostgreSQL pool."),
		total:          d("total_conns", "Connections of the PostgreSQL pool (acquired, idle and being opened)."),
		max:            d("max_conns", "Most connections the PostgreSQL pool opens."),
		constructing:   d("constructing_conns", "Connections of the PostgreSQL pool being opened."),
		acquires:       d("acquires_total", "Connections acquired from the PostgreSQL pool."),
		acquireSeconds: d("acquire_seconds_total", "Time spent acquiring connections from the PostgreSQL pool (divide by acquires_total for the mean)."),
		emptyAcquires:  d("empty_acquires_total", "Acquires that waited for a connection because none was idle."),
		cancelled:      d("canceled_acquires_total", "Acquires cancelled by their context before a connection was free."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.constructing, c.acquires, c.acquireSeconds, c.emptyAcquires, c.cancelled} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stat()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.acquired, float64(st.AcquiredConns()))
	gauge(c.idle, float64(st.IdleConns()))
	gauge(c.total, float64(st.TotalConns()))
	gauge(c.max, float64(st.MaxConns()))
	gauge(c.constructing, float64(st.ConstructingConns()))
	counter(c.acquires, float64(st.AcquireCount()))
	counter(c.acquireSeconds, st.AcquireDuration().Seconds())
	counter(c.emptyAcquires, float64(st.EmptyAcquireCount()))
	counter(c.cancelled, float64(st.CanceledAcquireCount()))
}
