package main

import (
	"fmt"
	"time"

	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/embedded"
)

// impressionRetention is how long the benchmark's broker keeps the
// replica's impressions; the broker keeps them in segments of
// impressionSegmentBytes.
const (
	impressionRetention    = 2 * time.Second
	impressionSegmentBytes = 1 << 20
)

// startBroker starts the in-process broker the replica consumes its events
// from and logs its impressions to, keeping the impressions for retention:
// it trims the topic every retention/2 until stop is called (stop does not
// close the broker).
//
// The broker lives in the benchmark's process, which is also the load
// generator, and kfake keeps every record in memory until retention drops
// it, freeing memory by whole segments only (100 MiB by default). At 1,000
// req/s of k=20 the replica's impressions grew this process's heap by
// ~10 MB/s; its collections (marking hundreds of MB, with assists, on the
// cores it shares with the replica) stalled the load generator's requests
// and starved the replica's recall channels: warm p99 26–210 ms and
// hundreds to thousands of channel timeouts, while the replica's own
// handling stayed under 100 ms. Nothing reads the impressions here, so they
// are dropped after a short retention, in small segments.
func startBroker(retention time.Duration) (b *embedded.Broker, stop func(), err error) {
	b, err = embedded.Start(0,
		embedded.Topic{Name: events.DefaultTopic, Partitions: 8},
		embedded.Topic{Name: events.DefaultDeadLetterTopic, Partitions: 1},
		embedded.Topic{Name: events.DefaultImpressionTopic, Partitions: 4, Configs: map[string]string{
			"retention.ms":  fmt.Sprint(retention.Milliseconds()),
			"segment.bytes": fmt.Sprint(impressionSegmentBytes),
		}})
	if err != nil {
		return nil, nil, err
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(retention / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b.ApplyRetention()
			}
		}
	}()
	return b, func() { close(done); <-finished }, nil
}
