package events

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
)

// Close with an ended context stops the background writer at once, even in
// the middle of a write to a broker that never answers, and counts the
// impressions not written as failed. (The producer once slept between
// retries with time.Sleep and wrote under a context of its own, so the
// writer went on for up to three write timeouts after Close returned.)
func TestImpressionCloseEndsAWriteInFlight(t *testing.T) {
	// A "broker" that accepts connections and never answers.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case accepted <- struct{}{}:
			default:
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()

	reg := prometheus.NewRegistry()
	// A write timeout far beyond the test's waits (eventually): only Close
	// can end the write.
	const writeTimeout = time.Hour
	p := newImpressionProducer(ImpressionConfig{Brokers: []string{ln.Addr().String()}, Log: slog.New(slog.DiscardHandler), Registerer: reg}, writeTimeout)
	p.Log([]lr.Impression{{RequestID: "r", UserID: 1, StreamerID: 2, StreamID: 3, ShownAt: time.Now()}})
	select {
	case <-accepted: // the write is in flight
	case <-time.After(eventually):
		t.Fatal("the producer did not connect to the broker")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- p.Close(ctx) }()
	select {
	case err := <-closed:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Close: %v, want context.Canceled", err)
		}
	case <-time.After(eventually):
		t.Fatalf("Close with an ended context did not return eventually %v", eventually)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("Close returned while the background writer still runs")
	}
	if n := testutil.ToFloat64(p.failed); n != 1 {
		t.Fatalf("failed impressions %v, want 1", n)
	}
}
