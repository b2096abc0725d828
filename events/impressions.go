package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
	"github.com/liverecall/liverecall/internal/spans"
)

// DefaultImpressionTopic is where recall responses are logged.
//
// Message format: one message per recall response (a "page"), keyed by the
// decimal user id and placed with Partitioner, so one user's pages share a
// partition. The value is a JSON array of the page's impressions, each the
// JSON form of lr.Impression:
//
//	[{"request_id":"r-1","user_id":9,"streamer_id":42,"stream_id":7,"position":0,
//	  "score":0.93,"channels":["mf","follow"],"model_versions":"mf=v3",
//	  "shown_at":"2026-11-23T18:00:00.123Z","features":[0.5,1]}, ...]
//
// A message carries the ReplicaHeader header naming the replica that
// produced it (when ImpressionConfig.Replica is set): every replica's
// ShownConsumer reads the topic into its already-shown filter and skips its
// own pages. Producers before the page format wrote one impression per
// message, as a single JSON object; DecodeImpressions reads both.
const DefaultImpressionTopic = "liverecall.impressions"

// DefaultImpressionBuffer is the default ImpressionConfig.Buffer: 5,000
// pages, 2.5 s of responses at 2,000 per second and, at the default page of
// 20 items, the 100,000 impressions the buffer held when it counted
// impressions.
const DefaultImpressionBuffer = 5_000

const (
	// impressionBatchPages bounds the messages handed to one WriteMessages
	// call (the writer is also flushed every impressionFlushEvery).
	impressionBatchPages = 500
	impressionFlushEvery = 50 * time.Millisecond
	// maxImpressionPageBytes is the writer's BatchBytes and the largest page
	// written: 1 MiB, the broker's default message.max.bytes. kafka-go
	// refuses a whole WriteMessages call holding a bigger message, so such a
	// page is counted as failed on its own instead. (A MaxK page of 200 items
	// is about 120 KB.)
	maxImpressionPageBytes = 1 << 20
)

// ImpressionConfig configures an ImpressionProducer.
type ImpressionConfig struct {
	Brokers []string
	Topic   string // default DefaultImpressionTopic
	// Buffer is how many pages (Log calls, one per recall response) may wait
	// for Kafka; beyond it a new page is dropped whole and its impressions
	// counted in liverecall_impressions_dropped_total. Default
	// DefaultImpressionBuffer.
	Buffer int
	// Replica, if set, is written to every message as the ReplicaHeader
	// header, so this replica's ShownConsumer skips its own pages.
	Replica string
	Log     *slog.Logger
	// Registerer, if set, receives the producer's metrics.
	Registerer prometheus.Registerer
	// Tracer, if set, traces each write to Kafka ("kafka.produce") and
	// names that span in each message's traceparent header, so the sink's
	// batch span links to it; nil: off.
	Tracer trace.Tracer
}

// ImpressionProducer writes impressions to Kafka in the background, one
// message per page (see DefaultImpressionTopic). Log never blocks a
// response: when the buffer is full the page is dropped and counted. Close
// flushes what is buffered. The metrics count impressions, not pages.
type ImpressionProducer struct {
	cfg     ImpressionConfig
	w       *kafka.Writer
	ch      chan []lr.Impression
	headers []kafka.Header // of every message (read-only)
	done    chan struct{}
	once    sync.Once
	// ctx ends when Close gives up (its context ended): the write in
	// flight and the wait between retries end with it.
	ctx          context.Context
	cancel       context.CancelFunc
	writeTimeout time.Duration // of one WriteMessages call
	sent         prometheus.Counter
	dropped      prometheus.Counter
	failed       prometheus.Counter
}

// impressionWriteTimeout bounds one attempt to write a batch.
const impressionWriteTimeout = 15 * time.Second

// NewImpressionProducer starts the background writer.
func NewImpressionProducer(cfg ImpressionConfig) *ImpressionProducer {
	return newImpressionProducer(cfg, impressionWriteTimeout)
}

func newImpressionProducer(cfg ImpressionConfig, writeTimeout time.Duration) *ImpressionProducer {
	if cfg.Topic == "" {
		cfg.Topic = DefaultImpressionTopic
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = DefaultImpressionBuffer
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	p := &ImpressionProducer{
		cfg: cfg,
		w: &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: Partitioner(),
			BatchTimeout: 20 * time.Millisecond, BatchSize: impressionBatchPages, BatchBytes: maxImpressionPageBytes,
			RequiredAcks: kafka.RequireOne, WriteTimeout: 10 * time.Second},
		ch:           make(chan []lr.Impression, cfg.Buffer),
		done:         make(chan struct{}),
		writeTimeout: writeTimeout,
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_sent_total",
			Help: "Impressions written to Kafka."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_dropped_total",
			Help: "Impressions dropped because the buffer was full."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_failed_total",
			Help: "Impressions Kafka did not accept after retries, or that could not be encoded."}),
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.sent, p.dropped, p.failed)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.Replica != "" {
		p.headers = []kafka.Header{{Key: ReplicaHeader, Value: []byte(cfg.Replica)}}
	}
	go p.run()
	return p
}

// Log queues imps, one recall response's impressions, as one page without
// blocking; if the buffer is full the page is dropped and its impressions
// counted. All of imps are for one user: the message is keyed by the first
// one's user id. Log keeps imps without copying it, so the caller must not
// modify it afterwards. An empty page is ignored. Log is safe for concurrent
// use but must not be called after Close.
func (p *ImpressionProducer) Log(imps []lr.Impression) {
	if len(imps) == 0 {
		return
	}
	select {
	case p.ch <- imps:
	default:
		p.dropped.Add(float64(len(imps)))
	}
}

func (p *ImpressionProducer) run() {
	defer close(p.done)
	batch := make([]kafka.Message, 0, impressionBatchPages)
	counts := make([]int, 0, impressionBatchPages) // impressions per message of batch
	flush := func() {
		batch, counts = p.write(batch, counts)
	}
	var unwritable int // pages not encoded since lastWarn
	var lastWarn time.Time
	tick := time.NewTicker(impressionFlushEvery)
	defer tick.Stop()
	for {
		select {
		case imps, ok := <-p.ch:
			if !ok {
				flush()
				return
			}
			b, err := EncodeImpressions(imps)
			if err == nil && len(b) > maxImpressionPageBytes-1024 {
				err = fmt.Errorf("page of %d bytes is larger than a Kafka message may be", len(b))
			}
			if err != nil {
				// A systematic fault (a NaN feature on every response)
				// is logged once a second, not once a response.
				p.failed.Add(float64(len(imps)))
				if unwritable++; time.Since(lastWarn) >= time.Second {
					p.cfg.Log.Warn("impression pages not encodable", "pages", unwritable, "err", err)
					unwritable, lastWarn = 0, time.Now()
				}
				continue
			}
			batch = append(batch, kafka.Message{Key: strconv.AppendInt(nil, int64(imps[0].UserID), 10), Value: b, Headers: p.headers})
			counts = append(counts, len(imps))
			if len(batch) == cap(batch) {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}

// write writes batch, retrying the messages Kafka did not accept up to
// three attempts in all (fewer if Close gives up meanwhile), counts the
// impressions sent and failed and returns batch and counts emptied.
func (p *ImpressionProducer) write(batch []kafka.Message, counts []int) ([]kafka.Message, []int) {
	sum := func(ns []int) (s int) {
		for _, n := range ns {
			s += n
		}
		return s
	}
	if len(batch) == 0 {
		return batch, counts
	}
	// The span's context derives from p.ctx, so that Close giving up ends
	// the write in flight.
	sctx, span := spans.StartKind(p.ctx, p.cfg.Tracer, "kafka.produce", trace.SpanKindProducer)
	defer span.End()
	if span.IsRecording() {
		span.SetAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", p.cfg.Topic),
			attribute.Int("messaging.batch.message_count", len(batch)))
	}
	if h, ok := traceHeader(sctx); ok {
		for i := range batch {
			batch[i].Headers = append(batch[i].Headers[:len(batch[i].Headers):len(batch[i].Headers)], h)
		}
	}
	for attempt := 0; len(batch) > 0; attempt++ {
		ctx, cancel := context.WithTimeout(sctx, p.writeTimeout)
		err := p.w.WriteMessages(ctx, batch...)
		cancel()
		if err == nil {
			p.sent.Add(float64(sum(counts)))
			break
		}
		// On a partial failure keep only the messages that failed.
		var werr kafka.WriteErrors
		if errors.As(err, &werr) && len(werr) == len(batch) {
			keep := 0
			for i := range batch {
				if werr[i] == nil {
					p.sent.Add(float64(counts[i]))
					continue
				}
				batch[keep], counts[keep] = batch[i], counts[i]
				keep++
			}
			clear(batch[keep:])
			batch, counts = batch[:keep], counts[:keep]
		}
		if attempt == 2 || backoff.Sleep(p.ctx, retryDelay(attempt, time.Second)) != nil {
			n := sum(counts)
			p.failed.Add(float64(n))
			span.SetStatus(codes.Error, err.Error())
			p.cfg.Log.Warn("impressions not written", "count", n, "pages", len(batch), "err", err)
			break
		}
	}
	clear(batch)
	return batch[:0], counts[:0]
}

// Close stops accepting impressions, writes the buffered ones and closes
// the connection. If ctx ends first, Close gives up: the write in flight
// and the wait between retries end, the impressions not written are
// counted as failed, and Close returns ctx's error once the background
// writer has stopped. Log must not be called after Close.
func (p *ImpressionProducer) Close(ctx context.Context) error {
	p.once.Do(func() { close(p.ch) })
	select {
	case <-p.done:
	case <-ctx.Done():
		// Give up: the write in flight and any wait between retries end
		// now, and what is left is counted as failed.
		p.cancel()
		<-p.done
		return ctx.Err()
	}
	p.cancel()
	return p.w.Close()
}

// EncodeImpressions returns the message value of a page: the JSON array of
// imps, each impression with the fields and values encoding/json would give
// lr.Impression, written without reflection. It does not validate; it fails
// with EINVALID only for what JSON cannot carry: a NaN or infinite score or
// feature, or a shown_at outside years 0-9999.
func EncodeImpressions(imps []lr.Impression) ([]byte, error) {
	dst := make([]byte, 0, 64+len(imps)*(256+16*len(firstFeatures(imps))))
	dst = append(dst, '[')
	for i := range imps {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = appendImpression(dst, &imps[i]); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression %d of %d: %v", i, len(imps), err)
		}
	}
	return append(dst, ']'), nil
}

func firstFeatures(imps []lr.Impression) []float32 {
	if len(imps) == 0 {
		return nil
	}
	return imps[0].Features
}

// appendImpression appends the JSON object of im; the field names and order
// are lr.Impression's json tags.
func appendImpression(dst []byte, im *lr.Impression) ([]byte, error) {
	dst = append(dst, `{"request_id":`...)
	dst = appendPlainString(dst, im.RequestID)
	dst = append(dst, `,"user_id":`...)
	dst = strconv.AppendInt(dst, int64(im.UserID), 10)
	dst = append(dst, `,"streamer_id":`...)
	dst = strconv.AppendInt(dst, int64(im.StreamerID), 10)
	dst = append(dst, `,"stream_id":`...)
	dst = strconv.AppendInt(dst, int64(im.StreamID), 10)
	dst = append(dst, `,"position":`...)
	dst = strconv.AppendInt(dst, int64(im.Position), 10)
	dst = append(dst, `,"score":`...)
	if math.IsNaN(im.Score) || math.IsInf(im.Score, 0) {
		return nil, fmt.Errorf("score %v is not a JSON number", im.Score)
	}
	dst = strconv.AppendFloat(dst, im.Score, 'g', -1, 64)
	dst = append(dst, `,"channels":`...)
	if im.Channels == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		for j, c := range im.Channels {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendPlainString(dst, c)
		}
		dst = append(dst, ']')
	}
	dst = append(dst, `,"model_versions":`...)
	dst = appendPlainString(dst, im.ModelVersions)
	dst = append(dst, `,"shown_at":"`...)
	dst, err := im.ShownAt.AppendText(dst)
	if err != nil {
		return nil, fmt.Errorf("shown_at: %v", err)
	}
	dst = append(dst, '"')
	if len(im.Features) > 0 {
		dst = append(dst, `,"features":[`...)
		for j, f := range im.Features {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return nil, fmt.Errorf("feature %d: %v is not a JSON number", j, f)
			}
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendFloat(dst, float64(f), 'g', -1, 32)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

// appendPlainString appends s as a JSON string: as it is when it is
// printable ASCII without quote or backslash (ids, channel names, model
// versions), else through appendString.
func appendPlainString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return appendString(dst, s)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// DecodeImpressions decodes one message of the impressions topic: a JSON
// array of impressions (a page) or, as written before pages, a single JSON
// impression object. Fields not in lr.Impression are ignored, as they always
// were (a newer producer may add some). Anything else is refused with an
// EINVALID *lr.Error naming the problem and, for an array, the element:
// malformed JSON, trailing data, a value that is neither array nor object,
// an empty array, a field of the wrong JSON type, or an impression without
// request_id, a positive user_id and streamer_id, shown_at, or with a
// negative stream_id or position. The impressions of a message are all returned or none.
// DecodeImpressions is safe for concurrent use.
func DecodeImpressions(b []byte) ([]lr.Impression, error) {
	switch t := bytes.TrimLeft(b, " \t\r\n"); {
	case len(t) == 0:
		return nil, lr.Errorf(lr.EINVALID, "impressions: empty message")
	case t[0] == '{':
		var im lr.Impression
		if err := json.Unmarshal(b, &im); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression: %v", impressionJSONErr(err))
		}
		if err := validateImpression(&im); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression: %v", err)
		}
		return []lr.Impression{im}, nil
	case t[0] != '[':
		return nil, lr.Errorf(lr.EINVALID, "impressions: want a JSON array of impressions or one impression object, got %s", jsonKind(t[0]))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // the '['
		return nil, lr.Errorf(lr.EINVALID, "impressions: %v", err)
	}
	var imps []lr.Impression
	for dec.More() {
		i := len(imps)
		imps = append(imps, lr.Impression{})
		if err := dec.Decode(&imps[i]); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression %d: %v", i, impressionJSONErr(err))
		}
		if err := validateImpression(&imps[i]); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression %d: %v", i, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the ']'
		return nil, lr.Errorf(lr.EINVALID, "impressions: after element %d: %v", len(imps), decodeErr(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, lr.Errorf(lr.EINVALID, "impressions: trailing data after the JSON array")
	}
	if len(imps) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "impressions: empty array (a page has at least one impression)")
	}
	return imps, nil
}

// validateImpression checks the fields every stored impression needs; the
// error names those missing.
func validateImpression(im *lr.Impression) error {
	var bad []string
	if im.RequestID == "" {
		bad = append(bad, "request_id")
	}
	if im.UserID <= 0 {
		bad = append(bad, "user_id (positive)")
	}
	if im.StreamerID <= 0 {
		bad = append(bad, "streamer_id (positive)")
	}
	if im.StreamID < 0 {
		bad = append(bad, "stream_id (not negative)")
	}
	if im.Position < 0 {
		bad = append(bad, "position (not negative)")
	}
	if im.ShownAt.IsZero() {
		bad = append(bad, "shown_at")
	}
	if len(bad) > 0 {
		return fmt.Errorf("missing or invalid %s", strings.Join(bad, ", "))
	}
	return nil
}

// impressionFieldTypes is the JSON type of each field of an impression.
var impressionFieldTypes = map[string]string{
	"request_id": "a string", "user_id": "an integer", "streamer_id": "an integer", "stream_id": "an integer",
	"position": "an integer", "score": "a number", "channels": "an array of strings", "model_versions": "a string",
	"shown_at": "a string", "features": "an array of numbers",
}

// impressionJSONErr words encoding/json's errors decoding an impression in
// JSON terms (the field and the JSON type it takes), never Go's
// ("Go struct field Impression.user_id of type liverecall.UserID").
func impressionJSONErr(err error) error {
	var te *json.UnmarshalTypeError
	var pe *time.ParseError
	switch {
	case errors.As(err, &te):
		got := te.Value
		if got == "bool" {
			got = "boolean"
		}
		want, ok := impressionFieldTypes[te.Field]
		if !ok {
			return fmt.Errorf("want an object, got %s", got)
		}
		if strings.HasPrefix(want, "an array") && te.Type != nil && te.Type.Kind() != reflect.Slice {
			got += " in the array"
		}
		if n, ok := strings.CutPrefix(got, "number "); ok && want == "an integer" && !strings.ContainsAny(n, ".eE") {
			got += " (out of range)"
		}
		return fmt.Errorf("field %q: want %s, got %s", te.Field, want, got)
	case errors.As(err, &pe):
		return fmt.Errorf("field \"shown_at\": %q is not an RFC 3339 time", lr.Clip(pe.Value, 64))
	case strings.HasPrefix(err.Error(), "Time.UnmarshalJSON"):
		return errors.New(`field "shown_at": want a string`)
	}
	return decodeErr(err)
}

// decodeErr turns io.EOF and io.ErrUnexpectedEOF of a json.Decoder into
// words.
func decodeErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("truncated JSON")
	}
	return err
}

// jsonKind names the JSON value starting with c.
func jsonKind(c byte) string {
	switch {
	case c == '"':
		return "a string"
	case c == 'n':
		return "null"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == '-' || c >= '0' && c <= '9':
		return "a number"
	}
	return fmt.Sprintf("%q", c)
}
