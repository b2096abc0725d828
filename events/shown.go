package events

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
)

// ReplicaHeader is the header of an impressions or shown message that
// names the replica that produced it (ImpressionConfig.Replica), so a
// ShownConsumer can skip its own replica's records, which it recorded
// when it answered.
const ReplicaHeader = "liverecall_replica"

// NewReplicaID returns a random id for one run of a replica (a restarted
// replica is a new one: it reads its earlier pages back like any other's).
func NewReplicaID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ShownConfig configures a ShownConsumer.
type ShownConfig struct {
	Brokers []string
	// Topic is the shown topic (ImpressionConfig.ShownTopic); every
	// partition is read. Default DefaultShownTopic.
	Topic string
	// Window is how far back reading starts: the already-shown window (a
	// page older than it no longer matters). Required.
	Window time.Duration
	// Replica is this replica's id: messages whose ReplicaHeader equals it
	// are skipped. Empty: none is skipped.
	Replica string
	// Record receives every shown record read (of another replica): a
	// page's user, time and streamers (recall.Engine.RecordShown).
	// It is called from one goroutine per partition and must not keep ids.
	Record func(u lr.UserID, ids []lr.StreamerID, at time.Time)
	// MaxBackoff caps the wait between retries when the broker is
	// unreachable or the topic is missing. Default 5 s.
	MaxBackoff time.Duration
	Log        *slog.Logger
	// Registerer, if set, receives the consumer's metrics.
	Registerer prometheus.Registerer
	Now        func() time.Time
}

// ShownConsumer feeds the already-shown filter from the shown topic (see
// DefaultShownTopic), so that what any replica showed a user counts on
// every replica. It reads every partition (one kafka-go Reader per
// partition, no consumer group: every replica needs every record) from
// now - Window, decodes each record with DecodeShownRecord and gives it to
// Record, skipping the records this replica produced. A message that does
// not decode is counted and skipped (and logged, at most once a second):
// only the replicas write the topic, and every replica reads it, so
// dead-lettering it would store it once per replica. Partitions are
// discovered when Run starts (a partition added later is read after a
// restart).
type ShownConsumer struct {
	cfg    ShownConfig
	client *kafka.Client
	tr     *kafka.Transport
	read   *prometheus.CounterVec
	// recorded, own, bad count the pages by outcome.
	recorded, own, bad prometheus.Counter
	warnMu             sync.Mutex
	lastWarn           time.Time
}

// NewShownConsumer returns a consumer; Run starts it.
func NewShownConsumer(cfg ShownConfig) (*ShownConsumer, error) {
	if len(cfg.Brokers) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "shown consumer: no Kafka brokers configured")
	}
	if cfg.Record == nil {
		return nil, lr.Errorf(lr.EINVALID, "shown consumer: no Record function")
	}
	if cfg.Window <= 0 {
		return nil, lr.Errorf(lr.EINVALID, "shown consumer: the window must be positive, got %s", cfg.Window)
	}
	if cfg.Topic == "" {
		cfg.Topic = DefaultShownTopic
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tr := newTransport()
	c := &ShownConsumer{cfg: cfg, tr: tr, client: &kafka.Client{Addr: brokerAddr(cfg.Brokers), Timeout: 10 * time.Second, Transport: tr},
		read: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_shown_pages_read_total",
			Help: "Shown records (one per page) read from the shown topic into the already-shown filter, by outcome: recorded (another replica's), own (this replica's, skipped), bad (did not decode, skipped)."},
			[]string{"outcome"})}
	c.recorded, c.own, c.bad = c.read.WithLabelValues("recorded"), c.read.WithLabelValues("own"), c.read.WithLabelValues("bad")
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(c.read)
	}
	return c, nil
}

// Run reads until ctx ends, then returns nil. A broker that is down or a
// topic that does not exist yet is retried with backoff.
func (c *ShownConsumer) Run(ctx context.Context) error {
	defer c.tr.CloseIdleConnections()
	parts, err := c.partitions(ctx)
	if err != nil {
		return nil // ctx ended
	}
	since := c.cfg.Now().Add(-c.cfg.Window)
	c.cfg.Log.Info("shown consumer reading", "topic", c.cfg.Topic, "partitions", len(parts), "since", since)
	var wg sync.WaitGroup
	for _, p := range parts {
		wg.Go(func() { c.readPartition(ctx, p, since) })
	}
	wg.Wait()
	return nil
}

// partitions returns the topic's partition ids, retrying until the broker
// answers with the topic or ctx ends.
func (c *ShownConsumer) partitions(ctx context.Context) ([]int, error) {
	for attempt := 0; ; attempt++ {
		md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{c.cfg.Topic}})
		if err == nil {
			for _, t := range md.Topics {
				switch {
				case t.Name != c.cfg.Topic:
				case t.Error != nil:
					err = fmt.Errorf("topic %s: %w", t.Name, t.Error)
				case len(t.Partitions) == 0:
					err = fmt.Errorf("topic %s has no partitions", t.Name)
				default:
					ids := make([]int, 0, len(t.Partitions))
					for _, p := range t.Partitions {
						ids = append(ids, p.ID)
					}
					sort.Ints(ids)
					return ids, nil
				}
			}
			if err == nil {
				err = fmt.Errorf("topic %s not in the metadata", c.cfg.Topic)
			}
		}
		d := retryDelay(attempt, c.cfg.MaxBackoff)
		c.cfg.Log.Warn("shown consumer cannot read the impressions topic's partitions; retrying", "topic", c.cfg.Topic, "err", err, "retry_in", d)
		if backoff.Sleep(ctx, d) != nil {
			return nil, ctx.Err()
		}
	}
}

// readPartition reads partition id from the first offset at or after since
// until ctx ends.
func (c *ShownConsumer) readPartition(ctx context.Context, id int, since time.Time) {
	label := partKey(c.cfg.Topic, id)
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     c.cfg.Topic,
		Partition: id,
		MinBytes:  1,
		MaxBytes:  8 << 20,
		MaxWait:   500 * time.Millisecond,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.cfg.Log.Debug("kafka reader: "+fmt.Sprintf(f, a...), "partition", label)
		}),
		ReadBackoffMax:        c.cfg.MaxBackoff,
		OffsetOutOfRangeError: true,
	})
	defer r.Close()
	// Without a consumer group the reader starts at the first offset
	// unless told: find the window's start (the end when nothing is newer).
	seek := true
	for attempt := 0; ctx.Err() == nil; {
		var err error
		if seek {
			if err = r.SetOffsetAt(ctx, since); err == nil {
				seek = false
			}
		}
		var msg kafka.Message
		if err == nil {
			msg, err = r.ReadMessage(ctx)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, kafka.OffsetOutOfRange) {
				// The log was truncated or recreated: from the window again.
				seek, since = true, c.cfg.Now().Add(-c.cfg.Window)
			}
			d := retryDelay(attempt, c.cfg.MaxBackoff)
			attempt++
			c.cfg.Log.Warn("shown consumer read failed; retrying", "partition", label, "err", err, "retry_in", d)
			if backoff.Sleep(ctx, d) != nil {
				return
			}
			continue
		}
		attempt = 0
		c.page(msg)
	}
}

// page records one message's shown record, unless this replica produced it.
func (c *ShownConsumer) page(msg kafka.Message) {
	if c.cfg.Replica != "" {
		for _, h := range msg.Headers {
			if h.Key == ReplicaHeader && string(h.Value) == c.cfg.Replica {
				c.own.Inc()
				return
			}
		}
	}
	r, err := DecodeShownRecord(msg.Value)
	if err != nil {
		c.bad.Inc()
		c.warnMu.Lock()
		defer c.warnMu.Unlock()
		if time.Since(c.lastWarn) >= time.Second {
			c.lastWarn = time.Now()
			c.cfg.Log.Warn("shown record skipped", "partition", msg.Partition, "offset", msg.Offset, "err", err)
		}
		return
	}
	c.cfg.Record(r.UserID, r.Streamers, r.ShownAt)
	c.recorded.Inc()
}
