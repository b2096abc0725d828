package events_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
)

func TestImpressionProducerWritesEverythingOnClose(t *testing.T) {
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: 1})
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Registerer: prometheus.NewRegistry()})
	now := time.Now().UTC()
	const n = 500
	for i := 0; i < n; i += 5 {
		batch := make([]lr.Impression, 5)
		for j := range batch {
			batch[j] = lr.Impression{RequestID: fmt.Sprint("r", i), UserID: 1, StreamerID: lr.StreamerID(i + j + 1), Position: j, ShownAt: now}
		}
		p.Log(batch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers(), Topic: events.DefaultImpressionTopic, Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	seen := map[lr.StreamerID]bool{}
	for len(seen) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("after %d impressions: %v", len(seen), err)
		}
		im, err := events.DecodeImpression(m.Value)
		if err != nil {
			t.Fatal(err)
		}
		seen[im.StreamerID] = true
	}
}

// With no broker reachable and a tiny buffer, Log still returns at once and
// counts what it drops.
func TestImpressionProducerNeverBlocks(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: []string{"127.0.0.1:1"}, Buffer: 10, Registerer: reg})
	start := time.Now()
	for i := 0; i < 1000; i++ {
		p.Log([]lr.Impression{{RequestID: "r", UserID: 1, StreamerID: 1, ShownAt: start}})
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("1000 Log calls took %v", took)
	}
	mfs, _ := reg.Gather()
	var dropped float64
	for _, mf := range mfs {
		if mf.GetName() == "liverecall_impressions_dropped_total" {
			dropped = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if dropped < 900 {
		t.Fatalf("dropped %v, want at least 900 of 1000 with a buffer of 10", dropped)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = p.Close(ctx) // gives up at the deadline instead of hanging
}
