package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
)

// heapAlloc is the live heap after a full collection.
func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// While impressions keep arriving, the benchmark's broker holds only about
// a retention's worth of them: its process's heap stays small. (kfake
// frees whole segments only, once all their records are past retention:
// with its default segment size of 100 MiB a topic that is written to
// all the time keeps everything, and this fails.)
func TestBrokerDropsImpressionsUnderLoad(t *testing.T) {
	const retention = 500 * time.Millisecond
	b, stop, err := startBroker(retention)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	defer stop()

	const (
		total = 100 << 20             // bytes of impressions written, at most 20 MB/s
		every = 20 * time.Millisecond // a batch of 400 KB
		slack = 32 << 20              // what the broker may hold: the last retention's records (≤ 15 MB) and the partitions' segments
	)
	pad := strings.Repeat("x", 4<<10)
	base := heapAlloc()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	prod := events.NewProducer(events.ProducerConfig{Brokers: b.Brokers(), Topic: events.DefaultImpressionTopic})
	defer prod.Close()
	batch := make([]lr.Event, 100) // 400 KB: below the broker's max.message.bytes (1 MiB)
	written := 0
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; written < total; i++ {
		<-tick.C
		for j := range batch {
			batch[j] = lr.Event{ID: fmt.Sprint(i, "-", j, pad), Type: lr.EventViewerJoined, TS: time.Now(), UserID: lr.UserID(j + 1), V: lr.EventVersion}
		}
		if err := prod.Publish(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		written += len(batch) * len(pad)
	}
	// Still writing: the newest segments are in use.
	if h := heapAlloc(); h > base+slack {
		t.Fatalf("live heap %d MB after %d MB of impressions (%d MB before): the broker keeps them", h>>20, total>>20, base>>20)
	}
}

// The test binary serves as the broker's process too, as the benchmark's
// does (startBrokerProcess starts this executable with brokerFlag).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == brokerFlag {
		serveBroker()
		return
	}
	os.Exit(m.Run())
}

// The broker's process gives its address, takes events on it, and stops
// when told.
func TestBrokerProcess(t *testing.T) {
	b, err := startBrokerProcess()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := publishLive(ctx, b.brokers, 100, 3, 10); err != nil {
		b.Close()
		t.Fatalf("publishing to the broker's process at %v: %v", b.brokers, err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("stopping the broker's process: %v", err)
	}
}
