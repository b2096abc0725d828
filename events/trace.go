package events

import (
	"context"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/liverecall/liverecall/internal/spans"
)

// maxBatchLinks bounds the links a consume span keeps to the spans that
// produced its messages.
const maxBatchLinks = 32

// traceHeader returns the traceparent message header naming ctx's span, or
// false when ctx holds no valid span (tracing off).
func traceHeader(ctx context.Context) (kafka.Header, bool) {
	v := spans.FormatTraceparent(trace.SpanContextFromContext(ctx))
	if v == "" {
		return kafka.Header{}, false
	}
	return kafka.Header{Key: spans.Header, Value: []byte(v)}, true
}

// startConsume starts the span of one consumed batch of msgs (nil tracer:
// off, nothing built), linked to the producing spans named by the
// messages' traceparent headers (at most maxBatchLinks).
func startConsume(ctx context.Context, tracer trace.Tracer, name string, msgs []kafka.Message) (context.Context, trace.Span) {
	if tracer == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	var links []trace.Link
	seen := map[trace.SpanID]bool{}
	for i := range msgs {
		for _, h := range msgs[i].Headers {
			if h.Key != spans.Header || len(links) >= maxBatchLinks {
				continue
			}
			if sc, ok := spans.ParseTraceparent(string(h.Value)); ok && !seen[sc.SpanID()] {
				seen[sc.SpanID()] = true
				links = append(links, trace.Link{SpanContext: sc})
			}
		}
	}
	ctx, span := spans.Start(ctx, tracer, name, trace.WithSpanKind(trace.SpanKindConsumer), trace.WithLinks(links...))
	span.SetAttributes(attribute.String("messaging.system", "kafka"), attribute.Int("messaging.batch.message_count", len(msgs)))
	return ctx, span
}
