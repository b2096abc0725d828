package events_test

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
)

// TestProducerToAClusterAtAReusedAddress: a producer to a cluster that
// listens where another one, with more partitions, just did writes every
// event. (With kafka-go's shared default Transport the second producer
// took the first cluster's partition count from its metadata cache and
// failed with "topic partition not found".)
func TestProducerToAClusterAtAReusedAddress(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	evs := make([]lr.Event, 64)
	for i := range evs {
		evs[i] = lr.Event{ID: "reuse-" + strconv.Itoa(i), Type: lr.EventStreamStarted, TS: time.Now().UTC(),
			StreamerID: lr.StreamerID(i + 1), StreamID: lr.StreamID(1000 + i)}
	}
	first, err := kafkatest.Start(0, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 8})
	if err != nil {
		t.Fatal(err)
	}
	addr := first.Brokers()[0]
	p1 := events.NewProducer(events.ProducerConfig{Brokers: first.Brokers()})
	if err := p1.Publish(ctx, evs...); err != nil {
		t.Fatalf("first cluster: %v", err)
	}
	p1.Close()
	first.Close()

	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	second, err := kafkatest.Start(port, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 2})
	if err != nil {
		t.Skipf("port %d not free again for the second cluster: %v", port, err)
	}
	defer second.Close()
	p2 := events.NewProducer(events.ProducerConfig{Brokers: second.Brokers()})
	defer p2.Close()
	if err := p2.Publish(ctx, evs...); err != nil {
		t.Fatalf("second cluster at the same address %s: %v", addr, err)
	}
}
