// Package kafkatest gives tests a broker that speaks the real Kafka protocol
// on 127.0.0.1: the embedded broker of events/embedded (franz-go's kfake)
// in the test's process, or, for tests that measure the service alone, in a
// child process (StartProcess). Tests talk to it over TCP with the same
// client code they use against a real cluster.
package kafkatest

import (
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/liverecall/liverecall/events/embedded"
)

// Topic is a topic to create with its partition count and, optionally,
// topic configs (e.g. "retention.ms").
type Topic = embedded.Topic

// Cluster is a running broker: in this process (Start, New) or in a child
// process (StartProcess).
type Cluster struct {
	b         *embedded.Broker
	child     *child
	addrs     []string // the child's
	closeOnce sync.Once
}

// Start runs a one-broker cluster on 127.0.0.1 (embedded.Start). port 0
// picks a free port; a fixed port lets a test stop the cluster and start
// another where the old one was. Topics are created before Start returns.
func Start(port int, topics ...Topic) (*Cluster, error) {
	b, err := embedded.Start(port, topics...)
	if err != nil {
		return nil, err
	}
	return &Cluster{b: b}, nil
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
	return c.b.Brokers()
}

// CreateTopic adds a topic to a running in-process cluster.
func (c *Cluster) CreateTopic(name string, partitions int32) error {
	if c.child != nil {
		return fmt.Errorf("kafkatest: CreateTopic on a broker process is not supported")
	}
	return c.b.CreateTopic(name, partitions)
}

// ApplyRetention drops the records older than each topic's retention.ms
// (kfake does not do it by itself).
func (c *Cluster) ApplyRetention() {
	if c.child != nil {
		_ = c.child.command("retention") // a dead child shows up in the test's own checks
		return
	}
	c.b.ApplyRetention()
}

// Close stops the broker; its data is gone. It is safe to call twice.
func (c *Cluster) Close() {
	if c.child != nil {
		c.closeOnce.Do(c.child.close)
		return
	}
	c.b.Close()
}

// Kfake exposes the underlying in-process cluster for fault injection (nil
// for a broker process).
func (c *Cluster) Kfake() *kfake.Cluster {
	if c.child != nil {
		return nil
	}
	return c.b.Kfake()
}
