package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strconv"
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
// own pages. schemas/impression.schema.json publishes the format, and
// DecodeImpressions accepts exactly what it does.
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
	// impressionPartitionBatch is the writer's BatchSize: the most messages
	// of one produce request to a partition (more are sent in several).
	// kafka-go allocates room for that many messages for each partition's
	// batch; at 500 (the pages of a call) those were a tenth of a
	// replica's allocations at 2,000 req/s, where a 50 ms flush holds
	// about 100 pages over all partitions.
	impressionPartitionBatch = 64
	// shownPartitionBatch is the shown writer's: it writes what queued
	// while its last write (20 ms or so) went on, about 40 records over
	// all partitions at 2,000 req/s.
	shownPartitionBatch = 32
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
	// ShownTopic receives each page's shown record (DefaultShownTopic,
	// the default; "-": none are written). Its writes are best effort, on
	// a writer and a goroutine of their own: a failure is counted
	// (liverecall_shown_records_total{outcome="failed"}) and logged, never
	// retried, and never holds back the impressions.
	ShownTopic string
	// Buffer is how many pages (Log calls, one per recall response) may wait
	// for Kafka; beyond it a new page is dropped whole and its impressions
	// counted in liverecall_impressions_dropped_total. Default
	// DefaultImpressionBuffer.
	Buffer int
	// Replica, if set, is written to every message as the ReplicaHeader
	// header, so this replica's ShownConsumer skips its own records.
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
	ch      chan loggedPage
	headers []kafka.Header // of every message (read-only)
	done    chan struct{}
	once    sync.Once
	// ctx ends when Close gives up (its context ended): the write in
	// flight and the wait between retries end with it.
	ctx          context.Context
	cancel       context.CancelFunc
	writeTimeout time.Duration // of one WriteMessages call
	// shown, when the shown records are written, takes them from the
	// writer goroutine to runShown, which writes them with sw.
	shown     chan kafka.Message
	sw        *kafka.Writer
	shownDone chan struct{}
	shownOnce sync.Once
	shownOut  *prometheus.CounterVec
	// shownSent, shownFailed, shownDropped count the shown records.
	shownSent, shownFailed, shownDropped prometheus.Counter
	// free holds the values of written messages, emptied, for the next
	// pages to be encoded into (at most impressionBatchPages). Only the
	// background writer uses it.
	free    [][]byte
	sent    prometheus.Counter
	dropped prometheus.Counter
	failed  prometheus.Counter
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
	if cfg.ShownTopic == "" {
		cfg.ShownTopic = DefaultShownTopic
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
			BatchTimeout: 20 * time.Millisecond, BatchSize: impressionPartitionBatch, BatchBytes: maxImpressionPageBytes,
			RequiredAcks: kafka.RequireOne, WriteTimeout: 10 * time.Second, Transport: newTransport()},
		ch:           make(chan loggedPage, cfg.Buffer),
		free:         make([][]byte, 0, impressionBatchPages),
		done:         make(chan struct{}),
		writeTimeout: writeTimeout,
		sent: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_sent_total",
			Help: "Impressions written to Kafka."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_dropped_total",
			Help: "Impressions dropped because the buffer was full."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_impressions_failed_total",
			Help: "Impressions Kafka did not accept after retries, or that could not be encoded."}),
	}
	p.shownOut = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_shown_records_total",
		Help: "Shown records (one per page, for the other replicas' already-shown filters) by outcome: sent, failed (Kafka did not accept them: not retried), dropped (their buffer was full)."},
		[]string{"outcome"})
	p.shownSent, p.shownFailed, p.shownDropped = p.shownOut.WithLabelValues("sent"), p.shownOut.WithLabelValues("failed"), p.shownOut.WithLabelValues("dropped")
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(p.sent, p.dropped, p.failed, p.shownOut)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	if cfg.Replica != "" {
		p.headers = []kafka.Header{{Key: ReplicaHeader, Value: []byte(cfg.Replica)}}
	}
	if cfg.ShownTopic != "-" {
		p.shown = make(chan kafka.Message, cfg.Buffer)
		p.shownDone = make(chan struct{})
		p.sw = &kafka.Writer{Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.ShownTopic, Balancer: Partitioner(),
			BatchTimeout: 20 * time.Millisecond, BatchSize: shownPartitionBatch, RequiredAcks: kafka.RequireOne,
			WriteTimeout: 10 * time.Second, Transport: newTransport()}
		go p.runShown()
	}
	go p.run()
	return p
}

// runShown writes the shown records p.shown brings, a batch at a time (what
// has queued while the last batch was written), each batch once: a record
// Kafka did not accept is counted and logged (at most once a minute), not
// retried; the already-shown filter is best effort.
func (p *ImpressionProducer) runShown() {
	defer close(p.shownDone)
	batch := make([]kafka.Message, 0, impressionBatchPages)
	var lastWarn time.Time
	for m := range p.shown {
		batch = append(batch[:0], m)
	more:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-p.shown:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.writeTimeout)
		err := p.sw.WriteMessages(ctx, batch...)
		cancel()
		failed := len(batch)
		if err == nil {
			failed = 0
		} else if werr, ok := errors.AsType[kafka.WriteErrors](err); ok && len(werr) == len(batch) {
			failed = werr.Count()
		}
		p.shownSent.Add(float64(len(batch) - failed))
		p.shownFailed.Add(float64(failed))
		if failed > 0 && time.Since(lastWarn) >= time.Minute {
			lastWarn = time.Now()
			p.cfg.Log.Warn("shown records not written (the other replicas will not know these pages were shown)", "topic", p.cfg.ShownTopic, "records", failed, "err", err)
		}
		clear(batch)
	}
}

// Log queues imps, one recall response's impressions, as one page without
// blocking; if the buffer is full the page is dropped and its impressions
// counted. All of imps are for one user: the message is keyed by the first
// one's user id. Log keeps imps without copying it, so the caller must not
// modify it afterwards. An empty page is ignored. Log is safe for concurrent
// use but must not be called after Close.
func (p *ImpressionProducer) Log(imps []lr.Impression) { p.LogThen(imps, nil) }

// LogThen is Log that hands imps back: release, if not nil, is called once
// (from another goroutine) when the producer no longer reads imps — the
// page encoded, or dropped — after which the caller may reuse imps and
// what they point to (recommend pools them: a replica's pages were an
// eighth of its allocations).
func (p *ImpressionProducer) LogThen(imps []lr.Impression, release func()) {
	if len(imps) == 0 {
		if release != nil {
			release()
		}
		return
	}
	select {
	case p.ch <- loggedPage{imps, release}:
	default:
		p.dropped.Add(float64(len(imps)))
		if release != nil {
			release()
		}
	}
}

// loggedPage is a page of impressions queued for the background writer.
type loggedPage struct {
	imps    []lr.Impression
	release func() // nil: nothing to hand back
}

func (p *ImpressionProducer) run() {
	defer close(p.done)
	batch := make([]kafka.Message, 0, impressionBatchPages)
	counts := make([]int, 0, impressionBatchPages) // impressions per message of batch
	flush := func() {
		batch, counts = p.write(batch, counts)
	}
	var ids []lr.StreamerID    // shownRecords' scratch
	queueShown := p.queueShown // one method value, not one a page
	var unwritable int         // pages not encoded since lastWarn
	var lastWarn time.Time
	tick := time.NewTicker(impressionFlushEvery)
	defer tick.Stop()
	for {
		select {
		case pg, ok := <-p.ch:
			if !ok {
				flush()
				return
			}
			b, err := AppendImpressions(p.buffer(pg.imps), pg.imps)
			n, user := len(pg.imps), pg.imps[0].UserID
			if p.shown != nil {
				ids = shownRecords(pg.imps, ids, queueShown)
			}
			if pg.release != nil {
				pg.release() // pg.imps is the caller's again
			}
			if err == nil && len(b) > maxImpressionPageBytes-1024 {
				err = fmt.Errorf("page of %d bytes is larger than a Kafka message may be", len(b))
			}
			if err != nil {
				// A systematic fault (a NaN feature on every response)
				// is logged once a second, not once a response.
				p.failed.Add(float64(n))
				if unwritable++; time.Since(lastWarn) >= time.Second {
					p.cfg.Log.Warn("impression pages not encodable", "pages", unwritable, "err", err)
					unwritable, lastWarn = 0, time.Now()
				}
				continue
			}
			batch = append(batch, kafka.Message{Key: strconv.AppendInt(nil, int64(user), 10), Value: b, Headers: p.headers})
			counts = append(counts, n)
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
			// Every message was written and the writer holds none of
			// them: their values take the next pages. (After an error
			// it may still hold some: their values are left to the
			// collector.)
			for i := range batch {
				if len(p.free) < cap(p.free) {
					p.free = append(p.free, batch[i].Value[:0])
				}
			}
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

// queueShown encodes r and queues it for runShown, or drops it (counted)
// when runShown is that far behind.
func (p *ImpressionProducer) queueShown(r ShownRecord) {
	v, err := AppendShownRecord(make([]byte, 0, 64+12*len(r.Streamers)), r)
	if err != nil {
		p.shownFailed.Inc()
		return
	}
	select {
	case p.shown <- kafka.Message{Key: strconv.AppendInt(nil, int64(r.UserID), 10), Value: v, Headers: p.headers}:
	default:
		p.shownDropped.Inc()
	}
}

// buffer returns an empty buffer to encode imps into: a written page's
// when there is one (a replica's pages are of about one size, and at 2,000
// a second they were a third of its allocations), else a new one.
func (p *ImpressionProducer) buffer(imps []lr.Impression) []byte {
	n := len(p.free)
	if n == 0 {
		return make([]byte, 0, encodedSize(imps))
	}
	b := p.free[n-1]
	p.free[n-1] = nil
	p.free = p.free[:n-1]
	return b
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
		p.closeShown(ctx)
		return ctx.Err()
	}
	if !p.closeShown(ctx) {
		return ctx.Err()
	}
	p.cancel()
	err := closeWriter(p.w)
	if p.sw != nil {
		if serr := closeWriter(p.sw); err == nil {
			err = serr
		}
	}
	return err
}

// closeShown, once the writer goroutine has ended, lets runShown write the
// shown records queued and waits for it; when ctx ends first it gives up
// (the rest fail at once) and returns false.
func (p *ImpressionProducer) closeShown(ctx context.Context) bool {
	if p.shown == nil {
		return true
	}
	p.shownOnce.Do(func() { close(p.shown) }) // run, the only sender, has returned
	select {
	case <-p.shownDone:
		return true
	case <-ctx.Done():
		p.cancel()
		<-p.shownDone
		return false
	}
}

// EncodeImpressions returns the message value of a page: the JSON array of
// imps, each impression with the fields and values encoding/json would give
// lr.Impression, written without reflection. It does not validate; it fails
// with EINVALID only for what JSON cannot carry: a NaN or infinite score or
// feature, or a shown_at outside years 0-9999.
func EncodeImpressions(imps []lr.Impression) ([]byte, error) {
	return AppendImpressions(make([]byte, 0, encodedSize(imps)), imps)
}

// encodedSize is about the bytes EncodeImpressions takes for imps.
func encodedSize(imps []lr.Impression) int {
	return 64 + len(imps)*(256+16*len(firstFeatures(imps)))
}

// AppendImpressions is EncodeImpressions appending to dst (the producer
// encodes into the buffers of pages it has written).
func AppendImpressions(dst []byte, imps []lr.Impression) ([]byte, error) {
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
	if im.Context != nil {
		dst = append(dst, `,"context":`...)
		dst = im.Context.AppendJSON(dst)
	}
	if im.Experiment != "" {
		dst = append(dst, `,"experiment":`...)
		dst = appendPlainString(dst, im.Experiment)
	}
	if im.Arm != "" {
		dst = append(dst, `,"arm":`...)
		dst = appendPlainString(dst, im.Arm)
	}
	if im.Team != "" {
		dst = append(dst, `,"team":`...)
		dst = appendPlainString(dst, im.Team)
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

// DecodeImpressions decodes one message of the impressions topic: a page,
// the JSON array of at least one impression object that EncodeImpressions
// writes. It is exactly as strict as schemas/impression.schema.json, the
// published contract: every field of an impression is required but
// features (left out when there are none, so never an empty array),
// context (left out when the request said nothing) and experiment, arm
// and team (left out for the default configuration; each a name as
// experiment.Check accepts, arm and team each with experiment, never
// both), no other field is allowed (names are case-sensitive), request_id is a
// non-empty string, user_id and streamer_id positive and stream_id and
// position non-negative integers within int64 (in any JSON notation of a
// whole number, as JSON Schema's "integer"), score a number within
// float64's range and each feature within float32's, channels an array of
// strings or null, model_versions a string and shown_at an RFC 3339 time
// like the envelope's ts, and context, when given, an object as
// requestContext reads it. Beyond what a schema can state, a field given
// twice in one impression is refused. Anything else (malformed JSON,
// trailing data, a value that is not an array) is refused too, always with
// an EINVALID *lr.Error whose message names the impression and the field
// ("impression 2: field \"stream_id\": missing") in JSON terms, never Go's.
// The impressions of a message are all returned or none. DecodeImpressions
// is safe for concurrent use.
//
// Until 2026-11-23 the producer wrote one impression object per message;
// no release ever did, and the reader no longer takes that form.
func DecodeImpressions(b []byte) ([]lr.Impression, error) {
	p := parser{b: b}
	p.ws()
	if !p.eat('[') {
		switch k := p.kind(); k {
		case "nothing":
			return nil, lr.Errorf(lr.EINVALID, "impressions: empty message")
		case "invalid":
			return nil, lr.Errorf(lr.EINVALID, "impressions: %s", lr.ErrorMessage(p.syntax("looking for beginning of value")))
		default:
			return nil, lr.Errorf(lr.EINVALID, "impressions: want a JSON array of impressions, got %s", withArticle(k))
		}
	}
	p.ws()
	if p.eat(']') {
		return nil, lr.Errorf(lr.EINVALID, "impressions: empty array (a page has at least one impression)")
	}
	var imps []lr.Impression
	for {
		p.ws()
		i := len(imps)
		imps = append(imps, lr.Impression{})
		if err := p.impression(&imps[i]); err != nil {
			return nil, lr.Errorf(lr.EINVALID, "impression %d: %s", i, lr.ErrorMessage(err))
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			break
		}
		return nil, lr.Errorf(lr.EINVALID, "impressions: after impression %d: %s", i, lr.ErrorMessage(p.syntax("after array element")))
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, lr.Errorf(lr.EINVALID, "impressions: trailing data after the JSON array")
	}
	return imps, nil
}

// impressionFields are the fields of an impression in the schema's order;
// field i has bit 1<<i in impression's set of fields seen.
var impressionFields = [...]string{"request_id", "user_id", "streamer_id", "stream_id", "position", "score",
	"channels", "model_versions", "shown_at", "features", "context", "experiment", "arm", "team"}

// impressionRequired has the bits of every field but features, context,
// experiment, arm and team (the first nine).
const impressionRequired = 1<<9 - 1

// The bits of experiment, arm and team in impression's set of fields seen.
const (
	bitExperiment = 1 << 11
	bitArm        = 1 << 12
	bitTeam       = 1 << 13
)

// Limits of the magnitude of score and of each feature, as the schema
// writes them (JSON Schema compares numbers exactly, so the decoder
// compares the decimal text, see withinLimit): the shortest decimals of
// math.MaxFloat64 and math.MaxFloat32, as EncodeImpressions writes those.
// Every number up to them rounds to a finite float64 or float32.
const (
	maxScoreText   = "1.7976931348623157e+308"
	maxFeatureText = "3.4028235e+38"
)

// impression parses one impression object at p.i into im.
func (p *parser) impression(im *lr.Impression) error {
	if k := p.kind(); k != "object" {
		if k == "nothing" || k == "invalid" {
			return p.syntax("looking for beginning of value")
		}
		return lr.Errorf(lr.EINVALID, "want a JSON object, got %s", withArticle(k))
	}
	p.eat('{')
	var seen uint16
	err := p.members(func(key []byte) error {
		// The field is known and new before its value is read: a field
		// given twice is refused whatever its values.
		bit := impressionFieldBit(key)
		if bit == 0 {
			return lr.Errorf(lr.EINVALID, "field %q: unknown field", lr.Clip(string(key), 64))
		}
		if seen&bit != 0 {
			return lr.Errorf(lr.EINVALID, "field %q: given twice", lr.Clip(string(key), 64))
		}
		seen |= bit
		return p.impressionField(key, im)
	})
	if err != nil {
		return err
	}
	if missing := impressionRequired &^ seen; missing != 0 {
		return lr.Errorf(lr.EINVALID, "field %q: missing", impressionFields[bits.TrailingZeros16(missing)])
	}
	switch {
	case seen&bitArm != 0 && seen&bitExperiment == 0:
		return lr.Errorf(lr.EINVALID, "field \"experiment\": missing (required with arm)")
	case seen&bitTeam != 0 && seen&bitExperiment == 0:
		return lr.Errorf(lr.EINVALID, "field \"experiment\": missing (required with team)")
	case seen&bitArm != 0 && seen&bitTeam != 0:
		return lr.Errorf(lr.EINVALID, "field \"team\": not allowed with arm (an interleaved position has a team, an A/B page an arm)")
	}
	return nil
}

// impressionFieldBit returns the bit of field key, 0 if there is no such
// field.
func impressionFieldBit(key []byte) uint16 {
	for i, f := range impressionFields {
		if string(key) == f {
			return 1 << i
		}
	}
	return 0
}

// impressionField parses the value of field key, a known field, into im.
func (p *parser) impressionField(key []byte, im *lr.Impression) error {
	if k := p.kind(); k == "nothing" || k == "invalid" {
		return p.syntax("looking for beginning of value")
	}
	switch string(key) {
	case "request_id":
		s, err := p.stringField("request_id")
		if err == nil && s == "" {
			err = lr.Errorf(lr.EINVALID, "field \"request_id\": must not be empty")
		}
		im.RequestID = s
		return err
	case "user_id":
		var v int64
		if err := p.int("user_id", &v); err != nil {
			return err
		}
		im.UserID = lr.UserID(v)
		return checkID("user_id", v)
	case "streamer_id":
		var v int64
		if err := p.int("streamer_id", &v); err != nil {
			return err
		}
		im.StreamerID = lr.StreamerID(v)
		return checkID("streamer_id", v)
	case "stream_id":
		var v int64
		if err := p.int("stream_id", &v); err != nil {
			return err
		}
		im.StreamID = lr.StreamID(v)
		return checkNotNegative("stream_id", v)
	case "position":
		var v int64
		if err := p.int("position", &v); err != nil {
			return err
		}
		if int64(int(v)) != v {
			return typeErr("position", "an integer", "number "+strconv.FormatInt(v, 10)+" (out of range)")
		}
		im.Position = int(v)
		return checkNotNegative("position", v)
	case "score":
		if p.kind() != "number" {
			return typeErr("score", "a number", p.kind())
		}
		f, err := p.boundedNumber("score", -1, maxScoreText)
		im.Score = f
		return err
	case "channels":
		if p.null() {
			im.Channels = nil
			return nil
		}
		if p.kind() != "array" {
			return typeErr("channels", "an array of strings", p.kind())
		}
		im.Channels = []string{}
		return p.array(func() error {
			if p.kind() != "string" {
				return elemErr("channels", len(im.Channels), "a string", p.kind())
			}
			s, err := p.str()
			im.Channels = append(im.Channels, s)
			return err
		})
	case "model_versions":
		s, err := p.stringField("model_versions")
		im.ModelVersions = s
		return err
	case "shown_at":
		s, err := p.stringField("shown_at")
		if err != nil {
			return err
		}
		t, err := parseTime("shown_at", s)
		im.ShownAt = t
		return err
	case "features":
		if p.kind() != "array" {
			return typeErr("features", "an array of numbers", p.kind())
		}
		im.Features = im.Features[:0]
		err := p.array(func() error {
			if p.kind() != "number" {
				return elemErr("features", len(im.Features), "a number", p.kind())
			}
			f, err := p.boundedNumber("features", len(im.Features), maxFeatureText)
			// Within the limit, f rounds to a float32 of at most
			// math.MaxFloat32 in magnitude; the clamp makes sure.
			f = math.Max(-math.MaxFloat32, math.Min(math.MaxFloat32, f))
			im.Features = append(im.Features, float32(f))
			return err
		})
		if err == nil && len(im.Features) == 0 {
			err = lr.Errorf(lr.EINVALID, "field \"features\": empty array (leave the field out when there are none)")
		}
		return err
	case "context":
		c, err := p.requestContext()
		im.Context = c
		return err
	case "experiment", "arm", "team":
		s, err := p.stringField(string(key))
		if err != nil {
			return err
		}
		if !validExperimentName(s) {
			return lr.Errorf(lr.EINVALID, "field %q: %q is not an experiment or arm name (1-63 of a-z, 0-9, _, . and -, starting with a letter or digit)", key, lr.Clip(s, 64))
		}
		switch key[0] {
		case 'e':
			im.Experiment = s
		case 'a':
			im.Arm = s
		default:
			im.Team = s
		}
	}
	return nil
}

// validExperimentName says whether s is a name experiment.Check accepts
// for an experiment or an arm: ^[a-z0-9][a-z0-9_.-]{0,62}$.
func validExperimentName(s string) bool {
	if len(s) < 1 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || i > 0 && (c == '_' || c == '.' || c == '-')) {
			return false
		}
	}
	return true
}

// contextFields are the members of an impression's context; member i has
// bit 1<<i in requestContext's set of members seen.
var contextFields = [...]string{"hour", "weekday", "device", "language", "country"}

// requestContext parses an impression's context object at p.i: every
// member optional, hour (0-23) and weekday (0-6) both or neither, device
// one of lr.Devices, language and country as lr.ParseLocale returns them
// (lr.ValidLanguage, lr.ValidCountry), no other member.
func (p *parser) requestContext() (*lr.RequestContext, error) {
	if k := p.kind(); k != "object" {
		return nil, typeErr("context", "an object", k)
	}
	p.eat('{')
	var c lr.RequestContext
	var seen uint8
	err := p.members(func(key []byte) error {
		bit := uint8(0)
		for i, f := range contextFields {
			if string(key) == f {
				bit = 1 << i
			}
		}
		path := "context/" + lr.Clip(string(key), 64) // the member as a JSON Pointer below the impression
		if bit == 0 {
			return lr.Errorf(lr.EINVALID, "field %q: unknown field", path)
		}
		if seen&bit != 0 {
			return lr.Errorf(lr.EINVALID, "field %q: given twice", path)
		}
		seen |= bit
		switch bit {
		case 1, 2:
			var v int64
			if err := p.int(path, &v); err != nil {
				return err
			}
			hi := int64(23)
			if bit == 2 {
				hi = 6
			}
			if v < 0 || v > hi {
				return lr.Errorf(lr.EINVALID, "field %q: must be between 0 and %d, got %d", path, hi, v)
			}
			if bit == 1 {
				c.Hour = int(v)
			} else {
				c.Weekday = time.Weekday(v)
			}
			return nil
		}
		s, err := p.stringField(path)
		if err != nil {
			return err
		}
		switch bit {
		case 4:
			if d, ok := lr.ParseDevice(s); !ok || string(d) != s {
				return lr.Errorf(lr.EINVALID, "field %q: %q is not a device class (mobile, tablet, desktop, tv, other)", path, lr.Clip(s, 64))
			}
			c.Device = lr.Device(s)
		case 8:
			if !lr.ValidLanguage(s) {
				return lr.Errorf(lr.EINVALID, "field %q: %q is not a language (2 or 3 lower-case letters)", path, lr.Clip(s, 64))
			}
			c.Language = s
		case 16:
			if !lr.ValidCountry(s) {
				return lr.Errorf(lr.EINVALID, "field %q: %q is not a country (2 upper-case letters or 3 digits)", path, lr.Clip(s, 64))
			}
			c.Country = s
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	switch seen & 3 {
	case 1:
		return nil, lr.Errorf(lr.EINVALID, "field \"context/weekday\": missing (required with hour)")
	case 2:
		return nil, lr.Errorf(lr.EINVALID, "field \"context/hour\": missing (required with weekday)")
	case 3:
		c.LocalTime = true
	}
	return &c, nil
}

// stringField parses the JSON string at p.i, the value of field key.
func (p *parser) stringField(key string) (string, error) {
	if p.kind() != "string" {
		return "", typeErr(key, "a string", p.kind())
	}
	return p.str()
}

// array parses the JSON array at p.i, calling elem at each element.
func (p *parser) array(elem func() error) error {
	p.eat('[')
	p.ws()
	if p.eat(']') {
		return nil
	}
	for {
		p.ws()
		if k := p.kind(); k == "nothing" || k == "invalid" {
			return p.syntax("looking for beginning of value")
		}
		if err := elem(); err != nil {
			return err
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat(']') {
			return nil
		}
		return p.syntax("after array element")
	}
}

// boundedNumber parses the JSON number at p.i, field key's value or (elem
// >= 0) its array's element elem, and refuses it if its magnitude is above
// the decimal limit.
func (p *parser) boundedNumber(key string, elem int, limit string) (float64, error) {
	tok, ok := p.num()
	if !ok {
		return 0, p.syntax("in numeric literal")
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.Abs(f) >= 1e38 && !withinLimit(tok, limit) {
		got := "number " + lr.Clip(string(tok), 64) + " (out of range)"
		if elem >= 0 {
			return 0, elemErr(key, elem, "a number", got)
		}
		return 0, typeErr(key, "a number", got)
	}
	return f, nil
}

// elemErr words a wrong element i of the array of field key as typeErr
// does a wrong field.
func elemErr(key string, i int, want, got string) error {
	if got == "bool" {
		got = "boolean"
	}
	return lr.Errorf(lr.EINVALID, "field %q: element %d: want %s, got %s", key, i, want, got)
}

// checkNotNegative refuses a negative value of field key.
func checkNotNegative(key string, v int64) error {
	if v < 0 {
		return lr.Errorf(lr.EINVALID, "field %q: must not be negative, got %d", key, v)
	}
	return nil
}

// withArticle names the JSON kind k (parser.kind) with its article.
func withArticle(k string) string {
	switch k {
	case "object", "array":
		return "an " + k
	case "string", "number":
		return "a " + k
	case "bool":
		return "a boolean"
	}
	return k
}

// withinLimit reports whether the magnitude of the JSON number tok is at
// most that of the JSON number limit, comparing their decimal values
// exactly (as JSON Schema's maximum does), not their float64 roundings.
func withinLimit(tok []byte, limit string) bool {
	td, te := decimalDigits(tok)
	ld, le := decimalDigits([]byte(limit))
	if len(td) == 0 {
		return true
	}
	// Compare the number of digits before the point, then the digits.
	if a, b := len(td)+te, len(ld)+le; a != b {
		return a < b
	}
	return string(td) <= string(ld)
}

// decimalDigits returns the significant digits of the JSON number tok
// (without sign, leading or trailing zeros) and the exponent e such that
// its magnitude is digits×10^e. Exponents are bounded, so "1e999999999"
// costs no more than "1e9" (wholeNumber and withinLimit both read numbers
// through it).
func decimalDigits(tok []byte) (digits []byte, exp int) {
	if len(tok) > 0 && tok[0] == '-' {
		tok = tok[1:]
	}
	i := 0
	for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
		i++
	}
	digits = append(digits, tok[:i]...)
	if i < len(tok) && tok[i] == '.' {
		j := i + 1
		for j < len(tok) && tok[j] >= '0' && tok[j] <= '9' {
			j++
		}
		digits = append(digits, tok[i+1:j]...)
		exp = -(j - i - 1)
		i = j
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		neg := false
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			neg = tok[i] == '-'
			i++
		}
		e := 0
		for ; i < len(tok); i++ {
			if e < 1_000_000_000 {
				e = e*10 + int(tok[i]-'0')
			}
		}
		if neg {
			e = -e
		}
		exp += e
	}
	for len(digits) > 0 && digits[0] == '0' {
		digits = digits[1:]
	}
	for len(digits) > 0 && digits[len(digits)-1] == '0' {
		digits = digits[:len(digits)-1]
		exp++
	}
	return digits, exp
}
