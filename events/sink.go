package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
)

// SinkStore writes a batch of events durably and idempotently by event id
// (postgres.DB.WriteEvents through a small adapter). It returns only once
// the batch is committed.
type SinkStore interface {
	WriteEvents(ctx context.Context, evs []lr.Event) error
}

// SinkStoreFunc adapts a function to SinkStore.
type SinkStoreFunc func(ctx context.Context, evs []lr.Event) error

// WriteEvents calls f.
func (f SinkStoreFunc) WriteEvents(ctx context.Context, evs []lr.Event) error { return f(ctx, evs) }

// SinkConfig configures a Sink.
type SinkConfig struct {
	Brokers []string
	Topics  []string // default [DefaultTopic]
	// GroupID is the consumer group; replicas of the sink share the
	// partitions. Default "liverecall-sink".
	GroupID         string
	DeadLetterTopic string // default DefaultDeadLetterTopic
	// BatchSize and BatchWait bound a batch: it is written when it holds
	// BatchSize messages or BatchWait after its first message.
	// Defaults 5000 and 500 ms.
	BatchSize  int
	BatchWait  time.Duration
	MaxFuture  time.Duration
	MaxBackoff time.Duration // default 5 s
	// SessionTimeout of the group membership. Default 10 s.
	SessionTimeout time.Duration
	Log            *slog.Logger
	Metrics        *Metrics
	// ImpressionTopic, if set, is read in the same group; its messages are
	// pages of impressions, decoded with DecodeImpressions and given to
	// Impressions (all of a batch's pages in one call) in the same step as
	// the batch's events, before the offsets commit. A message that does
	// not decode is dead-lettered whole.
	ImpressionTopic string
	Impressions     func(ctx context.Context, imps []lr.Impression) error
	// Tracer, if set, traces each batch ("sink.batch": decode, database
	// writes, dead letters and the offset commit), linked to the spans that
	// produced its messages (their traceparent headers); nil: off.
	Tracer trace.Tracer

	// afterWrite, if set, runs between the database commit and the offset
	// commit; an error from it stops Run without committing (tests use it
	// to simulate a crash there).
	afterWrite func() error
}

// Sink copies events from Kafka to Postgres as training data. It reads in a
// consumer group with FetchMessage, writes each batch in one database
// transaction, and commits the batch's offsets only after that transaction
// committed: a crash in between replays the batch, which the idempotent
// store drops. Bad messages are dead-lettered (see deadLetter), and the
// batch's offsets are committed only once the broker acknowledged its dead
// letters: the sink is the only writer of the dead-letter topic (replicas
// of serve count bad messages but leave them to it), so each bad message is
// dead-lettered once, by the group member that owns its partition, and
// again only if a sink stops between that acknowledgement and the offset
// commit (as the batch is replayed then).
type Sink struct {
	cfg   SinkConfig
	store SinkStore
	m     *Metrics
	dlq   *deadLetterer
}

// NewSink returns a Sink; Run starts it.
func NewSink(cfg SinkConfig, store SinkStore) (*Sink, error) {
	if len(cfg.Brokers) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "sink: no Kafka brokers configured")
	}
	if len(cfg.Topics) == 0 {
		cfg.Topics = []string{DefaultTopic}
	}
	if (cfg.ImpressionTopic == "") != (cfg.Impressions == nil) {
		return nil, lr.Errorf(lr.EINVALID, "sink: an impression topic needs an impression writer and the other way round")
	}
	if cfg.GroupID == "" {
		cfg.GroupID = "liverecall-sink"
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = DefaultDeadLetterTopic
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 5000
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = 500 * time.Millisecond
	}
	if cfg.MaxFuture <= 0 {
		cfg.MaxFuture = DefaultMaxFuture
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = newMetrics()
	}
	s := &Sink{cfg: cfg, store: store, m: cfg.Metrics}
	s.dlq = newDeadLetterer(cfg.Brokers, cfg.DeadLetterTopic, cfg.Log, s.m, cfg.MaxBackoff)
	return s, nil
}

// errCrash stops Run without committing (see afterWrite).
var errCrash = errors.New("sink stopped between database commit and offset commit")

// Run copies until ctx ends (then it returns nil) or the simulated crash of
// a test. Database and broker failures are retried with backoff; a batch is
// never skipped.
func (s *Sink) Run(ctx context.Context) error {
	defer s.dlq.close()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        s.cfg.Brokers,
		GroupID:        s.cfg.GroupID,
		GroupTopics:    s.topics(),
		StartOffset:    kafka.FirstOffset, // a new group starts from the oldest retained event
		MinBytes:       1,
		MaxBytes:       8 << 20,
		MaxWait:        200 * time.Millisecond,
		CommitInterval: 0, // synchronous commits, only when asked
		SessionTimeout: s.cfg.SessionTimeout,
		// HeartbeatInterval must stay well below SessionTimeout.
		HeartbeatInterval: s.cfg.SessionTimeout / 5,
		RebalanceTimeout:  s.cfg.SessionTimeout,
		ReadBackoffMax:    s.cfg.MaxBackoff,
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			s.cfg.Log.Debug("kafka sink reader: " + fmt.Sprintf(f, a...))
		}),
	})
	defer r.Close()
	b := &sinkBatch{msgs: make([]kafka.Message, 0, s.cfg.BatchSize), evs: make([]lr.Event, 0, s.cfg.BatchSize)}
	for {
		b.msgs, b.evs, b.imps, b.dead = b.msgs[:0], b.evs[:0], b.imps[:0], b.dead[:0]
		if err := s.fetch(ctx, r, &b.msgs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := s.batch(ctx, r, b); err != nil {
			if err == errCrash {
				return err
			}
			return nil // ctx ended while retrying
		}
	}
}

// sinkBatch is one batch's messages and what they decode to, reused from
// batch to batch.
type sinkBatch struct {
	msgs []kafka.Message
	evs  []lr.Event
	imps []lr.Impression
	dead []kafka.Message
}

// batch writes one fetched batch (b.msgs, decoded into b's other slices),
// dead-letters its bad messages and commits its offsets. An error means
// ctx ended, or errCrash.
func (s *Sink) batch(ctx context.Context, r *kafka.Reader, b *sinkBatch) error {
	ctx, span := startConsume(ctx, s.cfg.Tracer, "sink.batch", b.msgs)
	defer span.End()
	msgs, evs, imps, dead := b.msgs, b.evs, b.imps, b.dead
	defer func() { b.evs, b.imps, b.dead = evs, imps, dead }()
	for _, msg := range msgs {
		if s.cfg.ImpressionTopic != "" && msg.Topic == s.cfg.ImpressionTopic {
			page, err := DecodeImpressions(msg.Value)
			if err != nil {
				s.m.decodeFailures.Inc()
				s.cfg.Log.Warn("bad impressions message skipped by sink", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
				dead = append(dead, deadLetter(msg, err))
				continue
			}
			imps = append(imps, page...)
			continue
		}
		ev, err := Decode(msg.Value, judgedAt(msg, time.Now), s.cfg.MaxFuture)
		if err != nil {
			s.m.decodeFailures.Inc()
			s.cfg.Log.Warn("bad event skipped by sink", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset, "err", err)
			dead = append(dead, deadLetter(msg, err))
			continue
		}
		s.m.consumed(ev.Type)
		evs = append(evs, ev)
	}
	t0 := time.Now()
	if err := s.write(ctx, evs); err != nil {
		return err // ctx ended while retrying
	}
	if len(imps) > 0 {
		if err := s.retry(ctx, "impressions", len(imps), func() error { return s.cfg.Impressions(ctx, imps) }); err != nil {
			return err
		}
	}
	s.m.sinkSeconds.Observe(time.Since(t0).Seconds())
	if err := s.dlq.write(ctx, dead); err != nil {
		return err // ctx ended while retrying
	}
	if s.cfg.afterWrite != nil {
		if err := s.cfg.afterWrite(); err != nil {
			return errCrash
		}
	}
	if err := s.commit(ctx, r, msgs); err != nil {
		return err
	}
	s.m.sinkBatches.Inc()
	s.m.sinkEvents.Add(float64(len(evs)))
	return nil
}

// fetch fills msgs with one batch: it blocks for the first message, then
// takes more until the batch is full or BatchWait has passed.
func (s *Sink) fetch(ctx context.Context, r *kafka.Reader, msgs *[]kafka.Message) error {
	attempt := 0
	for len(*msgs) == 0 {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.m.brokerErrors.Inc()
			d := retryDelay(attempt, s.cfg.MaxBackoff)
			attempt++
			s.cfg.Log.Warn("sink fetch failed; retrying", "err", err, "retry_in", d)
			if backoff.Sleep(ctx, d) != nil {
				return ctx.Err()
			}
			continue
		}
		*msgs = append(*msgs, msg)
	}
	bctx, cancel := context.WithTimeout(ctx, s.cfg.BatchWait)
	defer cancel()
	for len(*msgs) < s.cfg.BatchSize {
		msg, err := r.FetchMessage(bctx)
		if err != nil {
			break // the wait is over (or a fetch error: write what we have)
		}
		*msgs = append(*msgs, msg)
	}
	return nil
}

func (s *Sink) write(ctx context.Context, evs []lr.Event) error {
	if len(evs) == 0 {
		return nil
	}
	return s.retry(ctx, "events", len(evs), func() error { return s.store.WriteEvents(ctx, evs) })
}

// retry runs a database write until it succeeds or ctx ends: a batch is
// never skipped.
func (s *Sink) retry(ctx context.Context, what string, n int, write func() error) error {
	for attempt := 0; ; attempt++ {
		err := write()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := retryDelay(attempt, s.cfg.MaxBackoff)
		s.cfg.Log.Error("sink database write failed; retrying the batch", what, n, "err", err, "retry_in", d)
		if backoff.Sleep(ctx, d) != nil {
			return ctx.Err()
		}
	}
}

func (s *Sink) topics() []string {
	if s.cfg.ImpressionTopic == "" {
		return s.cfg.Topics
	}
	return append(append([]string(nil), s.cfg.Topics...), s.cfg.ImpressionTopic)
}

// commit commits the offsets of msgs, trying three times. If it still
// fails (e.g. the group rebalanced and another member owns the partition
// now), the batch will be read again and dropped by the idempotent store, so
// the sink goes on.
func (s *Sink) commit(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) error {
	for attempt := 0; ; attempt++ {
		err := r.CommitMessages(ctx, msgs...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if attempt == 2 {
			s.cfg.Log.Warn("sink offset commit failed; the batch will be replayed and dropped as already written", "err", err)
			return nil
		}
		s.m.brokerErrors.Inc()
		d := retryDelay(attempt, s.cfg.MaxBackoff)
		s.cfg.Log.Warn("sink offset commit failed; retrying", "err", err, "retry_in", d)
		if backoff.Sleep(ctx, d) != nil {
			return ctx.Err()
		}
	}
}
