package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
)

// DefaultImpressionTopic is where recall responses are logged.
const DefaultImpressionTopic = "liverecall.impressions"

// ImpressionConfig configures an ImpressionProducer.
type ImpressionConfig struct {
	Brokers []string
	Topic   string // default DefaultImpressionTopic
	// Buffer is how many impressions may wait for Kafka; beyond it new ones
	// are dropped and counted. Default 100,000.
	Buffer int
	Log    *slog.Logger
	// Registerer, if set, receives the producer's metrics.
	Registerer prometheus.Registerer
}

// ImpressionProducer writes impressions to Kafka in the background, keyed
// by user id. Log never blocks a response: when the buffer is full the
// impressions are dropped and counted. Close flushes what is buffered.
type ImpressionProducer struct {
	cfg     ImpressionConfig
	w       *kafka.Writer
	ch      chan lr.Impression
	done    chan struct{}
	once    sync.Once
	sent    prometheus.Counter
	dropped prometheus.Counter
	failed  prometheus.Counter
}

// NewImpressionProducer starts the background writer.
func NewImpressionProducer(cfg ImpressionConfig) *ImpressionProducer {
	if cfg.Topic == "" {
		cfg.Topic = DefaultImpressionTopic
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 100_000
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &ImpressionProducer{
		cfg: cfg,
		w: &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: Partitioner(),
			BatchTimeout: 20 * time.Millisecond, BatchSize: 2000, RequiredAcks: kafka.RequireOne, WriteTimeout: 10 * time.Second},
		ch:   make(chan lr.Impression, cfg.Buffer),
		done: make(chan struct{}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_sent_total",
			Help: "Impressions written to Kafka."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_dropped_total",
			Help: "Impressions dropped because the buffer was full."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_failed_total",
			Help: "Impressions Kafka did not accept after retries."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.sent, p.dropped, p.failed)
	}
	go p.run()
	return p
}

// Log queues imps without blocking.
func (p *ImpressionProducer) Log(imps []lr.Impression) {
	for _, im := range imps {
		select {
		case p.ch <- im:
		default:
			p.dropped.Inc()
		}
	}
}

func (p *ImpressionProducer) run() {
	defer close(p.done)
	batch := make([]kafka.Message, 0, 2000)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		var err error
		for attempt := 0; attempt < 3; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			err = p.w.WriteMessages(ctx, batch...)
			cancel()
			if err == nil {
				break
			}
			time.Sleep(backoff(attempt, time.Second))
		}
		if err != nil {
			p.failed.Add(float64(len(batch)))
			p.cfg.Log.Warn("impressions not written", "count", len(batch), "err", err)
		} else {
			p.sent.Add(float64(len(batch)))
		}
		batch = batch[:0]
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case im, ok := <-p.ch:
			if !ok {
				flush()
				return
			}
			b, _ := json.Marshal(im)
			batch = append(batch, kafka.Message{Key: []byte(strconv.FormatInt(int64(im.UserID), 10)), Value: b})
			if len(batch) == cap(batch) {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// Close stops accepting impressions, writes the buffered ones (bounded by
// ctx) and closes the connection. Log must not be called after Close.
func (p *ImpressionProducer) Close(ctx context.Context) error {
	p.once.Do(func() { close(p.ch) })
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return p.w.Close()
}

// DecodeImpression decodes one impression message strictly.
func DecodeImpression(b []byte) (lr.Impression, error) {
	var im lr.Impression
	if err := json.Unmarshal(b, &im); err != nil {
		return im, lr.Errorf(lr.EINVALID, "impression: %v", err)
	}
	if im.RequestID == "" || im.UserID <= 0 || im.StreamerID <= 0 || im.ShownAt.IsZero() || im.Position < 0 {
		return im, lr.Errorf(lr.EINVALID, "impression: request_id, user_id, streamer_id, position and shown_at are required")
	}
	return im, nil
}
