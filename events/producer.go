package events

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
)

// Default topic names. Every name is configurable; these are what the
// binary uses when nothing is set.
const (
	DefaultTopic           = "liverecall.events"
	DefaultDeadLetterTopic = "liverecall.events.dlq"
)

// Partitioner is the balancer every producer of liverecall uses: CRC-32
// (IEEE) of the key modulo the partition count, which is what librdkafka
// (and so kcat) does by default ("consistent_random" for keyed messages).
// Events are keyed by streamer id (Key), so a streamer's events stay ordered
// in one partition whichever client wrote them.
func Partitioner() kafka.Balancer { return &kafka.CRC32Balancer{} }

// PartitionOf returns the partition the producers put key in.
func PartitionOf(key []byte, partitions int) int {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	return Partitioner().Balance(kafka.Message{Key: key}, ps...)
}

// Producer writes events to one topic. It is safe for concurrent use.
type Producer struct {
	w     *kafka.Writer
	stamp func(lr.Event) time.Time
}

// ProducerConfig configures a Producer.
type ProducerConfig struct {
	Brokers []string
	Topic   string // default DefaultTopic
	// BatchTimeout bounds how long a message waits for a batch to fill.
	// Default 5 ms (kafka-go's own default, 1 s, would add a second of
	// latency to every event).
	BatchTimeout time.Duration
	// BatchSize is the largest batch per partition request. Default 1000.
	BatchSize int
	// Acks: the default waits for every in-sync replica (kafka.RequireAll);
	// kafka-go's own default is to wait for none.
	Acks kafka.RequiredAcks
	// Timestamp, if set, gives each event's Kafka record timestamp (the
	// time consumers seek by: a replica replays from now - its lookback by
	// record time). Default: the send time. A simulator replaying history
	// stamps each record with its event's ts, so that history is not
	// replayed as if it had just happened.
	Timestamp func(lr.Event) time.Time
}

// NewProducer returns a Producer; it connects lazily.
func NewProducer(cfg ProducerConfig) *Producer {
	if cfg.Topic == "" {
		cfg.Topic = DefaultTopic
	}
	if cfg.BatchTimeout <= 0 {
		cfg.BatchTimeout = 5 * time.Millisecond
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.Acks == 0 {
		cfg.Acks = kafka.RequireAll
	}
	return &Producer{stamp: cfg.Timestamp, w: &kafka.Writer{
		Addr:         kafka.TCP(cfg.Brokers...),
		Topic:        cfg.Topic,
		Balancer:     Partitioner(),
		BatchTimeout: cfg.BatchTimeout,
		BatchSize:    cfg.BatchSize,
		BatchBytes:   16 << 20,
		RequiredAcks: cfg.Acks,
		WriteTimeout: 10 * time.Second,
		Transport:    newTransport(),
	}}
}

// newTransport returns a kafka-go Transport of one writer or client.
// kafka-go's default Transport is shared by every writer of the process
// and keeps each broker address's metadata (the topics' partition counts)
// between refreshes, so a writer to another cluster at a reused address (a
// broker restarted with other topics, or another cluster on the port of one
// just closed) would send to partitions that do not exist there.
func newTransport() *kafka.Transport {
	return &kafka.Transport{DialTimeout: 5 * time.Second, MetadataTTL: 5 * time.Second}
}

// closeWriter closes w and its own Transport's connections.
func closeWriter(w *kafka.Writer) error {
	err := w.Close()
	if tr, ok := w.Transport.(*kafka.Transport); ok {
		tr.CloseIdleConnections()
	}
	return err
}

// Publish encodes evs and writes them, keyed by streamer id, and returns
// once the broker acknowledged all of them (or with the first error). It
// does not validate the events.
func (p *Producer) Publish(ctx context.Context, evs ...lr.Event) error {
	msgs := make([]kafka.Message, len(evs))
	for i, e := range evs {
		msgs[i] = kafka.Message{Key: Key(e), Value: Encode(e)}
		if p.stamp != nil {
			msgs[i].Time = p.stamp(e)
		}
	}
	return p.WriteRaw(ctx, msgs...)
}

// WriteRaw writes messages as given (tests use it for malformed input).
func (p *Producer) WriteRaw(ctx context.Context, msgs ...kafka.Message) error {
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		return lr.E("events.Publish", lr.EUNAVAILABLE, err)
	}
	return nil
}

// Close flushes pending writes and closes the connections.
func (p *Producer) Close() error { return closeWriter(p.w) }

// brokerAddr returns the first broker as a net.Addr for kafka.Client calls.
func brokerAddr(brokers []string) net.Addr { return kafka.TCP(brokers...) }

// partKey names a partition in logs and metric labels.
func partKey(topic string, partition int) string {
	return topic + "/" + strconv.Itoa(partition)
}
