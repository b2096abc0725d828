package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The pool collector exports the pool's connections and acquires.
func TestPoolCollector(t *testing.T) {
	url := pgtest.NewEmpty(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(db.PoolCollector())
	conn, err := db.Pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	conn.Release()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	for name, min := range map[string]float64{
		"liverecall_db_pool_acquired_conns": 1, "liverecall_db_pool_total_conns": 1, "liverecall_db_pool_max_conns": 1,
		"liverecall_db_pool_acquires_total": 2, // Open's ping and ours
		"liverecall_db_pool_idle_conns":     0, "liverecall_db_pool_constructing_conns": 0, "liverecall_db_pool_acquire_seconds_total": 0,
		"liverecall_db_pool_empty_acquires_total": 0, "liverecall_db_pool_canceled_acquires_total": 0,
	} {
		v, ok := got[name]
		if !ok || v < min {
			t.Errorf("%s = %v (exported %v), want at least %v", name, v, ok, min)
		}
	}
	if n := testutil.CollectAndCount(db.PoolCollector()); n != 9 {
		t.Errorf("pool collector exports %d metrics, want 9", n)
	}
}

// WithTracer makes a client span per query, a child of the caller's span,
// with the statement and never its arguments; no tracer, no span.
func TestQuerySpans(t *testing.T) {
	url := pgtest.NewEmpty(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	db, err := postgres.Open(context.Background(), url, postgres.WithTracer(tracer))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, parent := tracer.Start(context.Background(), "parent")
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT $1::int + 1", 41).Scan(&n); err != nil || n != 42 {
		t.Fatalf("query: %v, %d", err, n)
	}
	_, err = db.Pool.Exec(ctx, "SELECT * FROM no_such_table")
	if err == nil {
		t.Fatal("query of a missing table succeeded")
	}
	parent.End()
	var queries []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "postgres.query" && s.Parent().SpanID() == parent.SpanContext().SpanID() {
			queries = append(queries, s)
		}
	}
	if len(queries) != 2 {
		t.Fatalf("%d query spans under the parent, want 2", len(queries))
	}
	attrs := func(s sdktrace.ReadOnlySpan) string {
		var b strings.Builder
		for _, a := range s.Attributes() {
			b.WriteString(string(a.Key) + "=" + a.Value.Emit() + " ")
		}
		return b.String()
	}
	if a := attrs(queries[0]); !strings.Contains(a, "db.query.text=SELECT $1::int + 1") || strings.Contains(a, "41") {
		t.Errorf("first query's attributes: %s", a)
	}
	if queries[1].Status().Code.String() != "Error" {
		t.Errorf("failed query's span status %v", queries[1].Status())
	}

	// Without a tracer the pool has no tracer hook.
	plain, err := postgres.Open(context.Background(), url, postgres.WithTracer(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.Pool.Config().ConnConfig.Tracer != nil {
		t.Error("WithTracer(nil) set a tracer hook")
	}
}
