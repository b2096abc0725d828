package events

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
)

// Bounds of a dead letter. A bad message can be as large as the broker
// allows (1 MB by default), and its copy plus the headers saying why would
// then be refused by the broker as too large: so a dead letter carries at
// most DeadLetterMaxValue bytes of the value and DeadLetterMaxKey of the
// key, and an error message of at most deadLetterMaxError bytes.
const (
	DeadLetterMaxValue = 64 << 10
	DeadLetterMaxKey   = 1 << 10
	deadLetterMaxError = 1 << 10
)

// A dead letter is the bad message's key and value (each cut to its bound)
// with these headers:
//
//	error             why the message was refused
//	source_topic      where it was read
//	source_partition
//	source_offset
//	source_timestamp  the record's timestamp, RFC 3339 (absent if it has none)
//	value_bytes       the length of the original value
//	truncated         "true" when the value or key was cut (absent otherwise)
//
// The source offset identifies the original, which stays in its topic for
// the topic's retention.
func deadLetter(msg kafka.Message, cause error) kafka.Message {
	out := kafka.Message{Key: msg.Key, Value: msg.Value}
	cut := false
	if len(out.Value) > DeadLetterMaxValue {
		out.Value, cut = out.Value[:DeadLetterMaxValue], true
	}
	if len(out.Key) > DeadLetterMaxKey {
		out.Key, cut = out.Key[:DeadLetterMaxKey], true
	}
	out.Headers = []kafka.Header{
		{Key: "error", Value: []byte(lr.Clip(cause.Error(), deadLetterMaxError))},
		{Key: "source_topic", Value: []byte(msg.Topic)},
		{Key: "source_partition", Value: []byte(strconv.Itoa(msg.Partition))},
		{Key: "source_offset", Value: []byte(strconv.FormatInt(msg.Offset, 10))},
		{Key: "value_bytes", Value: []byte(strconv.Itoa(len(msg.Value)))},
	}
	if !msg.Time.IsZero() {
		out.Headers = append(out.Headers, kafka.Header{Key: "source_timestamp", Value: []byte(msg.Time.UTC().Format(time.RFC3339Nano))})
	}
	if cut {
		out.Headers = append(out.Headers, kafka.Header{Key: "truncated", Value: []byte("true")})
	}
	return out
}

// withoutValue is what is sent when the broker refuses a dead letter as too
// large even so (a dead-letter topic whose max.message.bytes is below
// DeadLetterMaxValue): the headers alone, still naming the reason and the
// source offset.
func withoutValue(m kafka.Message) kafka.Message {
	m.Value = nil
	for _, h := range m.Headers {
		if h.Key == "truncated" {
			return m
		}
	}
	m.Headers = append(m.Headers[:len(m.Headers):len(m.Headers)], kafka.Header{Key: "truncated", Value: []byte("true")})
	return m
}

// deadLetterer writes dead letters synchronously: write returns once the
// broker acknowledged every one, so the sink commits a batch's offsets only
// after its bad messages are dead-lettered (see Sink).
type deadLetterer struct {
	w          *kafka.Writer
	topic      string
	log        *slog.Logger
	m          *Metrics
	maxBackoff time.Duration
}

func newDeadLetterer(brokers []string, topic string, log *slog.Logger, m *Metrics, maxBackoff time.Duration) *deadLetterer {
	return &deadLetterer{
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Topic:        topic,
			Balancer:     Partitioner(),
			BatchTimeout: 5 * time.Millisecond,
			RequiredAcks: kafka.RequireAll,
			WriteTimeout: 10 * time.Second,
			Transport:    newTransport(),
		},
		topic: topic, log: log, m: m, maxBackoff: maxBackoff,
	}
}

// write produces msgs (dead letters made by deadLetter) and retries what
// fails, with backoff, until all are acknowledged or ctx ends (then it
// returns ctx's error). A dead letter the broker refuses as too large is
// sent again without its value: something is always dead-lettered.
func (d *deadLetterer) write(ctx context.Context, msgs []kafka.Message) error {
	pending := msgs
	for attempt := 0; len(pending) > 0; attempt++ {
		err := d.w.WriteMessages(ctx, pending...)
		if err == nil {
			d.m.deadLettered.Add(float64(len(pending)))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var next []kafka.Message
		var we kafka.WriteErrors
		if errors.As(err, &we) && len(we) == len(pending) {
			for i, e := range we {
				if e != nil {
					next = append(next, retryable(pending[i], e))
				}
			}
		} else {
			for _, m := range pending {
				next = append(next, retryable(m, err))
			}
		}
		d.m.deadLettered.Add(float64(len(pending) - len(next)))
		d.m.deadLetterFailures.Add(float64(len(next)))
		wait := retryDelay(attempt, d.maxBackoff)
		d.log.Error("dead-letter write failed; retrying", "topic", d.topic, "messages", len(next), "err", err, "retry_in", wait)
		if backoff.Sleep(ctx, wait) != nil {
			return ctx.Err()
		}
		pending = next
	}
	return nil
}

// retryable returns m as it is to be sent again after err.
func retryable(m kafka.Message, err error) kafka.Message {
	// kafka-go's own size check (MessageTooLargeError) unwraps to the
	// broker's error code.
	if errors.Is(err, kafka.MessageSizeTooLarge) {
		return withoutValue(m)
	}
	return m
}

func (d *deadLetterer) close() { _ = closeWriter(d.w) }
