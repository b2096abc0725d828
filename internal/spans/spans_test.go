package spans

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func TestParseTraceparent(t *testing.T) {
	const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, tc := range []struct {
		in      string
		ok      bool
		sampled bool
	}{
		{valid, true, true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true, false},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", true, true},  // a later version may add fields
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false, false}, // version 00 has none
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false, false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false, false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false, false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", false, false},
		{"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false, false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", false, false},
		{"", false, false},
	} {
		sc, ok := ParseTraceparent(tc.in)
		if ok != tc.ok {
			t.Errorf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		if sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || sc.SpanID().String() != "00f067aa0ba902b7" || !sc.IsRemote() || sc.IsSampled() != tc.sampled {
			t.Errorf("ParseTraceparent(%q) = %v %v remote %v sampled %v", tc.in, sc.TraceID(), sc.SpanID(), sc.IsRemote(), sc.IsSampled())
		}
	}
	sc, _ := ParseTraceparent(valid)
	if got := FormatTraceparent(sc); got != valid {
		t.Errorf("FormatTraceparent = %q, want %q", got, valid)
	}
}

// With tracing off (a nil tracer) starting, annotating and ending a span
// allocates nothing: the request path costs no more than without tracing.
func TestStartOffAllocatesNothing(t *testing.T) {
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		c, sp := Start(ctx, nil, "recall")
		if sp.IsRecording() {
			sp.SetAttributes(attribute.Int("k", 20))
		}
		sp.End()
		c2, sp2 := StartKind(ctx, nil, "live.apply", trace.SpanKindConsumer)
		sp2.End()
		if c != ctx || c2 != ctx {
			t.Fatal("Start with a nil tracer changed the context")
		}
	})
	if allocs != 0 {
		t.Errorf("Start with tracing off: %v allocations per span, want 0", allocs)
	}
}

// BenchmarkParseTraceparent reads a valid traceparent, as the request log
// does for every request that carries one.
func BenchmarkParseTraceparent(b *testing.B) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseTraceparent(tp); !ok {
			b.Fatal("not parsed")
		}
	}
}

// Reading a traceparent allocates nothing: the request log reads one for
// every request that carries it, tracing on or off.
func TestParseTraceparentAllocatesNothing(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	if n := testing.AllocsPerRun(100, func() { ParseTraceparent(tp) }); n != 0 {
		t.Fatalf("ParseTraceparent allocates %v times", n)
	}
}
