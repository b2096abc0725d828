package events

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/internal/spans"
	"github.com/liverecall/liverecall/live"
)

// With tracing on, the impressions producer names its kafka.produce span
// in each message's traceparent header, and the sink's batch span links
// to it; the sink's database writes are children of the batch span.
func TestKafkaSpansLinkProducerAndSink(t *testing.T) {
	const topic = "trace-impressions"
	cl := kafkatest.New(t, kafkatest.Topic{Name: topic, Partitions: 1}, kafkatest.Topic{Name: testTopic, Partitions: 1},
		kafkatest.Topic{Name: testDLQ, Partitions: 1})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	tracer := tp.Tracer("test")
	ip := NewImpressionProducer(ImpressionConfig{Brokers: cl.Brokers(), Topic: topic, Tracer: tracer})
	ip.Log([]lr.Impression{{RequestID: "r1", UserID: 1, StreamerID: 2, ShownAt: time.Now().UTC()}})
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ip.Close(cctx); err != nil {
		t.Fatal(err)
	}
	var produce sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "kafka.produce" {
			produce = s
		}
	}
	if produce == nil {
		t.Fatal("no kafka.produce span")
	}

	var wrote atomic.Bool
	s, err := NewSink(SinkConfig{Brokers: cl.Brokers(), Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "trace-sink",
		BatchWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, ImpressionTopic: topic, Tracer: tracer,
		Impressions: func(ctx context.Context, imps []lr.Impression) error {
			_, child := spans.Start(ctx, tracer, "db.write")
			child.End()
			wrote.Store(true)
			return nil
		}}, SinkStoreFunc(func(context.Context, []lr.Event) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	var batch sdktrace.ReadOnlySpan
	deadline := time.Now().Add(eventually)
	for batch == nil && time.Now().Before(deadline) {
		for _, sp := range rec.Ended() {
			if sp.Name() == "sink.batch" && wrote.Load() {
				batch = sp
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	if batch == nil {
		t.Fatal("no sink.batch span after the impressions were written")
	}
	linked := false
	for _, l := range batch.Links() {
		linked = linked || (l.SpanContext.SpanID() == produce.SpanContext().SpanID() && l.SpanContext.TraceID() == produce.SpanContext().TraceID())
	}
	if !linked {
		t.Errorf("sink.batch links %v, want the kafka.produce span %v", batch.Links(), produce.SpanContext().SpanID())
	}
	var dbWrite sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.Name() == "db.write" {
			dbWrite = sp
		}
	}
	if dbWrite == nil || dbWrite.Parent().SpanID() != batch.SpanContext().SpanID() {
		t.Errorf("the write's span is not a child of sink.batch")
	}
}

// With tracing on, each batch the live consumer applies to the live view
// is a consumer span, live.apply, counting the batch's events.
func TestLiveConsumerApplySpan(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 1}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	st := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	c, err := NewLiveConsumer(LiveConfig{Brokers: cl.Brokers(), Topics: []string{testTopic}, DeadLetterTopic: testDLQ,
		LagEvery: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Tracer: tp.Tracer("test")}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	p := NewProducer(ProducerConfig{Brokers: cl.Brokers(), Topic: testTopic})
	defer p.Close()
	if err := p.Publish(context.Background(), lr.Event{ID: "a", Type: lr.EventStreamStarted, TS: time.Now(), StreamerID: 5, StreamID: 50, V: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(eventually)
	for {
		for _, s := range rec.Ended() {
			if s.Name() != "live.apply" {
				continue
			}
			if s.SpanKind() != trace.SpanKindConsumer {
				t.Errorf("live.apply kind %v, want consumer", s.SpanKind())
			}
			n := 0
			for _, a := range s.Attributes() {
				if a.Key == "messaging.batch.message_count" {
					n = int(a.Value.AsInt64())
				}
			}
			if n != 1 {
				t.Errorf("live.apply counts %d messages, want 1: %v", n, s.Attributes())
			}
			if _, ok := st.FeaturesOf(5); !ok {
				t.Error("live.apply ended before the event was applied")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no live.apply span among %v", rec.Ended())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
