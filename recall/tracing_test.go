package recall_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/liverecall/liverecall/recall"
)

// BenchmarkRecallTracing compares a recall with tracing off (a nil tracer:
// the default) and on (the SDK recording every span in memory). Run with
// -benchmem: off allocates what the recall path allocated before tracing
// existed (internal/spans.Start with a nil tracer allocates nothing, see
// its TestStartOffAllocatesNothing); on adds the spans.
func BenchmarkRecallTracing(b *testing.B) {
	t := &testing.T{}
	w := newWorld(t, 200, 200)
	for _, bc := range []struct {
		name string
		cfg  recall.Config
	}{
		{"off", recall.Config{}},
		{"on", recall.Config{Tracer: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tracetest.NewSpanRecorder())).Tracer("bench")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := w.engine(bc.cfg, nil)
			b.ReportAllocs()
			for b.Loop() {
				res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 20})
				if err != nil {
					b.Fatal(err)
				}
				e.Release(res)
			}
		})
	}
}
