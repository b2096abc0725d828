package events

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/live"
)

// TestFutureVerdictSameLiveAndReplayed: an event stamped further in the
// future than MaxFuture is refused by a replica that reads it live and by
// one that replays it half an hour later, and one stamped within MaxFuture
// is accepted by both (and by a replica whose clock is behind): every
// reader judges the ts against the record's own timestamp.
func TestFutureVerdictSameLiveAndReplayed(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 2}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	const maxFuture = 5 * time.Minute
	const wait = 60 * time.Second
	run := func(name string, clock time.Duration, produce func()) {
		t.Helper()
		m := newMetrics()
		now := func() time.Time { return time.Now().Add(clock) }
		c, err := NewLiveConsumer(LiveConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ,
			Lookback: 2 * time.Hour, MaxFuture: maxFuture, Metrics: m, Now: now, LagEvery: 200 * time.Millisecond},
			live.New(live.Config{Ordinals: lr.NewOrdinals()}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("%s: Run: %v", name, err)
			}
		}()
		waitReady(t, c, wait)
		if produce != nil {
			produce()
		}
		deadline := time.Now().Add(wait)
		for testutil.ToFloat64(m.decodeFailures)+testutil.ToFloat64(m.consumedBy[lr.EventStreamStarted]) < 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the 2 events not read within %s; lag %+v", name, wait, c.Lag())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if f, ok := testutil.ToFloat64(m.decodeFailures), testutil.ToFloat64(m.consumedBy[lr.EventStreamStarted]); f != 1 || ok != 1 {
			t.Errorf("%s: %v refused and %v accepted, want the event 10 min ahead refused and the one 3 min ahead accepted", name, f, ok)
		}
	}
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	run("live", 0, func() {
		now := time.Now()
		if err := p.Publish(context.Background(),
			lr.Event{ID: "near", Type: lr.EventStreamStarted, TS: now.Add(3 * time.Minute), StreamerID: 1, StreamID: 10, V: 1},
			lr.Event{ID: "far", Type: lr.EventStreamStarted, TS: now.Add(10 * time.Minute), StreamerID: 2, StreamID: 20, V: 1}); err != nil {
			t.Fatal(err)
		}
	})
	run("replayed 30 min later", 30*time.Minute, nil)
	run("replayed by a clock 10 min behind", -10*time.Minute, nil)
}
