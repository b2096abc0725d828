// Package kafkatest starts an in-process broker that speaks the real Kafka
// protocol on 127.0.0.1 (franz-go's kfake), with seeded topics. Tests and
// `liverecall dev` talk to it over TCP with the same client code they use
// against a real cluster.
package kafkatest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Topic is a topic to create with its partition count and, optionally,
// topic configs (e.g. "retention.ms").
type Topic struct {
	Name       string
	Partitions int32
	Configs    map[string]string
}

// Cluster is a running broker: in this process (Start, New) or in a child
// process (StartProcess).
type Cluster struct {
	c         *kfake.Cluster
	child     *child
	addrs     []string // the child's
	closeOnce sync.Once
}

// Start runs a one-broker cluster on 127.0.0.1. port 0 picks a free port;
// a fixed port lets a test stop the cluster and start another where the old
// one was. Topics are created before Start returns.
func Start(port int, topics ...Topic) (*Cluster, error) {
	// Like a real broker whose storage was formatted anew, every cluster
	// gets its own id (kfake's default is the same for all).
	var id [8]byte
	_, _ = rand.Read(id[:])
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.AllowAutoTopicCreation(),
		kfake.ClusterID("kafkatest-"+hex.EncodeToString(id[:])))
	if err != nil {
		return nil, fmt.Errorf("starting in-process Kafka broker: %w", err)
	}
	for _, t := range topics {
		if err := c.CreateTopic(t.Name, t.Partitions, t.Configs); err != nil {
			c.Close()
			return nil, fmt.Errorf("creating topic %s: %w", t.Name, err)
		}
	}
	return &Cluster{c: c}, nil
}

// New starts a cluster for tb on a free port and closes it when tb ends.
func New(tb testing.TB, topics ...Topic) *Cluster {
	tb.Helper()
	c, err := Start(0, topics...)
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Brokers returns the bootstrap addresses ("127.0.0.1:port").
func (c *Cluster) Brokers() []string {
	if c.child != nil {
		return c.addrs
	}
	return c.c.ListenAddrs()
}

// CreateTopic adds a topic to a running in-process cluster.
func (c *Cluster) CreateTopic(name string, partitions int32) error {
	if c.child != nil {
		return fmt.Errorf("kafkatest: CreateTopic on a broker process is not supported")
	}
	return c.c.CreateTopic(name, partitions, nil)
}

// ApplyRetention drops the records older than each topic's retention.ms
// (kfake does not do it by itself).
func (c *Cluster) ApplyRetention() {
	if c.child != nil {
		_ = c.child.command("retention") // a dead child shows up in the test's own checks
		return
	}
	c.c.ApplyRetention()
}

// Close stops the broker; its data is gone. It is safe to call twice.
func (c *Cluster) Close() {
	if c.child != nil {
		c.closeOnce.Do(c.child.close)
		return
	}
	c.c.Close()
}

// Kfake exposes the underlying in-process cluster for fault injection (nil
// for a broker process).
func (c *Cluster) Kfake() *kfake.Cluster { return c.c }
