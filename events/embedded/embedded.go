// Package embedded is the default Kafka-protocol broker of `liverecall dev`:
// franz-go's kfake running in this process on 127.0.0.1, with seeded
// topics, for when no brokers are configured. Clients reach it over TCP
// with the same code they use against a real cluster. Its data lives in
// memory and is gone when it closes; it is a stand-in for a cluster on one
// machine, not a production broker.
//
// The tests' broker helpers (events/kafkatest) are built on it.
package embedded

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Topic is a topic to create with its partition count and, optionally,
// topic configs (e.g. "retention.ms").
type Topic struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

// Broker is a running one-broker cluster in this process.
type Broker struct {
	c *kfake.Cluster
}

// Start runs a one-broker cluster on 127.0.0.1. port 0 picks a free port;
// a fixed port lets a caller stop the broker and start another where the
// old one was. Topics are created before Start returns; other topics are
// created when first used.
func Start(port int, topics ...Topic) (*Broker, error) {
	// Like a real broker whose storage was formatted anew, every cluster
	// gets its own id (kfake's default is the same for all).
	var id [8]byte
	_, _ = rand.Read(id[:])
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation(),
		kfake.ClusterID("embedded-"+hex.EncodeToString(id[:])))
	if err != nil {
		return nil, fmt.Errorf("starting in-process Kafka broker: %w", err)
	}
	for _, t := range topics {
		if err := c.CreateTopic(t.Name, t.Partitions, t.Configs); err != nil {
			c.Close()
			return nil, fmt.Errorf("creating topic %s: %w", t.Name, err)
		}
	}
	return &Broker{c: c}, nil
}

// Brokers returns the bootstrap addresses ("127.0.0.1:port").
func (b *Broker) Brokers() []string { return b.c.ListenAddrs() }

// CreateTopic adds a topic.
func (b *Broker) CreateTopic(name string, partitions int32) error {
	return b.c.CreateTopic(name, partitions, nil)
}

// ApplyRetention drops the records older than each topic's retention.ms
// (kfake does not do it by itself). Their memory is freed by whole
// segments (segment.bytes, 100 MiB by default): a topic written to all the
// time needs small segments for its memory to stay bounded.
func (b *Broker) ApplyRetention() { b.c.ApplyRetention() }

// Close stops the broker; its data is gone. It is safe to call twice.
func (b *Broker) Close() { b.c.Close() }

// Kfake exposes the underlying cluster for fault injection.
func (b *Broker) Kfake() *kfake.Cluster { return b.c }
