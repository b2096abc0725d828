package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
	"github.com/liverecall/liverecall/internal/spans"
	"github.com/liverecall/liverecall/live"
)

// Applier receives decoded events; *live.State is one.
type Applier interface {
	// Apply applies a batch; each partition's events arrive in offset order.
	Apply(evs []lr.Event) live.ApplyStats
	// Expire ends streams that have been silent too long as of now.
	Expire(now time.Time) int
}

// LiveConfig configures a LiveConsumer.
type LiveConfig struct {
	Brokers []string
	// Topics are the live topics; every partition of each is read.
	// Default [DefaultTopic].
	Topics []string
	// DeadLetterTopic is not used: replicas count and log the messages
	// that do not decode but do not dead-letter them, the sink does, once
	// per source offset (every replica reads every partition again from
	// the lookback at each start, so replicas dead-lettering would write
	// each bad message once per replica and per start).
	DeadLetterTopic string
	// Lookback is how far back in time reading starts at start-up, so the
	// live state is rebuilt by replay. Keep it above the live state's
	// expiry. Default 1 h.
	Lookback time.Duration
	// MaxFuture: events whose ts is further ahead of their Kafka record's
	// timestamp are bad input (judged against the record, not the clock,
	// so every replica, live or replaying, agrees). Default
	// DefaultMaxFuture.
	MaxFuture time.Duration
	// BatchSize is the most events applied at once. Default 2048.
	BatchSize int
	// ExpireEvery is how often, once caught up, silent streams are expired
	// by the wall clock. Default 1 s.
	ExpireEvery time.Duration
	// LagEvery is how often the high-water marks are polled from the broker
	// (they also arrive with every fetch). Default 2 s.
	LagEvery time.Duration
	// MaxBackoff caps the wait between retries when the broker is
	// unreachable. Default 5 s.
	MaxBackoff time.Duration
	Log        *slog.Logger
	Metrics    *Metrics // NewLiveMetrics; nil creates unregistered ones
	Now        func() time.Time
	// Tracer, if set, traces each batch of events applied to the live
	// state ("live.apply"); nil: off.
	Tracer trace.Tracer
}

func (c *LiveConfig) defaults() {
	if len(c.Topics) == 0 {
		c.Topics = []string{DefaultTopic}
	}
	if c.Lookback <= 0 {
		c.Lookback = time.Hour
	}
	if c.MaxFuture <= 0 {
		c.MaxFuture = DefaultMaxFuture
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 2048
	}
	if c.ExpireEvery <= 0 {
		c.ExpireEvery = time.Second
	}
	if c.LagEvery <= 0 {
		c.LagEvery = 2 * time.Second
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = newMetrics()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// LiveConsumer reads every partition of the live topics (one kafka-go
// Reader per partition, no consumer group) from now - Lookback, decodes,
// and applies the events to an Applier from one goroutine. Every replica
// runs one and so holds the whole live set.
type LiveConsumer struct {
	cfg    LiveConfig
	app    Applier
	m      *Metrics
	client *kafka.Client
	tr     *kafka.Transport

	mu     sync.Mutex
	parts  []*partition // set once discovered
	caught atomic.Bool
	ready  chan struct{} // closed when caught up
	// clusterID is the cluster the partitions were discovered on.
	clusterID atomic.Value
	once      sync.Once

	polls struct {
		sync.Mutex
		q       []poll
		covered time.Time
	}
}

type partition struct {
	topic     string
	id        int
	label     string
	startMark int64        // high-water mark when the consumer started
	next      atomic.Int64 // next offset to apply: all below are applied
	hwm       atomic.Int64 // newest high-water mark seen
	caught    bool         // only the apply goroutine touches it
}

// PartitionLag is the progress of one partition.
type PartitionLag struct {
	Topic     string
	Partition int
	Next      int64 // next offset to apply
	HighWater int64 // newest high-water mark seen
	StartMark int64 // high-water mark at start; caught up once Next reaches it
	Lag       int64 // HighWater - Next
}

// NewLiveConsumer returns a consumer feeding app. Call Run to start it.
func NewLiveConsumer(cfg LiveConfig, app Applier) (*LiveConsumer, error) {
	cfg.defaults()
	if len(cfg.Brokers) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "live consumer: no Kafka brokers configured")
	}
	if app == nil {
		return nil, lr.Errorf(lr.EINVALID, "live consumer: no applier")
	}
	tr := newTransport()
	c := &LiveConsumer{
		cfg: cfg, app: app, m: cfg.Metrics, tr: tr,
		client: &kafka.Client{Addr: brokerAddr(cfg.Brokers), Timeout: 10 * time.Second, Transport: tr},
		ready:  make(chan struct{}),
	}
	return c, nil
}

// CaughtUp reports whether every partition has been applied up to the
// high-water mark it had when the consumer started. It stays true once true.
func (c *LiveConsumer) CaughtUp() bool { return c.caught.Load() }

// Ready is closed once CaughtUp is true.
func (c *LiveConsumer) Ready() <-chan struct{} { return c.ready }

// Lag returns the progress of every partition, sorted by topic and
// partition; nil before the partitions are known (broker unreachable).
func (c *LiveConsumer) Lag() []PartitionLag {
	c.mu.Lock()
	parts := c.parts
	c.mu.Unlock()
	out := make([]PartitionLag, 0, len(parts))
	for _, p := range parts {
		n, h := p.next.Load(), p.hwm.Load()
		out = append(out, PartitionLag{Topic: p.topic, Partition: p.id, Next: n, HighWater: h, StartMark: p.startMark, Lag: max(0, h-n)})
	}
	return out
}

// TotalLag returns the sum of Lag over partitions, and false while the
// partitions are not known yet (broker unreachable since start).
func (c *LiveConsumer) TotalLag() (int64, bool) {
	c.mu.Lock()
	known := c.parts != nil
	c.mu.Unlock()
	var n int64
	for _, l := range c.Lag() {
		n += l.Lag
	}
	return n, known
}

// Run consumes until ctx ends, then returns nil. A broker that is down at
// start or goes away is retried with backoff; the Applier keeps its last
// state meanwhile, and Staleness, the staleness and broker_up metrics and
// Lag show it. Call Run once per LiveConsumer.
func (c *LiveConsumer) Run(ctx context.Context) error {
	defer c.tr.CloseIdleConnections()
	for {
		parts, err := c.start(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		// A round ends when ctx ends, or when the poller finds a different
		// cluster behind the brokers' addresses (a broker that lost its
		// data comes back as a new cluster): offsets from the old one mean
		// nothing there, so the next round starts again from the lookback.
		rctx, cancel := context.WithCancel(ctx)
		items := make(chan item, 4*c.cfg.BatchSize)
		var wg sync.WaitGroup
		for _, p := range parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.readPartition(rctx, p, items)
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.pollMarks(rctx, parts) {
				cancel()
			}
		}()
		c.checkCaught(parts)
		c.applyLoop(rctx, parts, items)
		cancel()
		wg.Wait()
		if ctx.Err() != nil {
			return nil
		}
		c.cfg.Log.Warn("the brokers now belong to another cluster (data lost or replaced); reading every partition again from the lookback")
	}
}

// start discovers the partitions and resolves where each starts, retrying
// until the broker answers or ctx ends.
func (c *LiveConsumer) start(ctx context.Context) ([]*partition, error) {
	for attempt := 0; ; attempt++ {
		parts, err := c.discover(ctx)
		if err == nil {
			c.mu.Lock()
			c.parts = parts
			c.mu.Unlock()
			for _, p := range parts {
				c.cfg.Log.Info("live consumer partition", "partition", p.label, "from", p.next.Load(), "high_water", p.startMark)
			}
			return parts, nil
		}
		c.m.brokerErrors.Inc()
		c.m.brokerUp.Set(0)
		d := retryDelay(attempt, c.cfg.MaxBackoff)
		c.cfg.Log.Warn("live consumer cannot start; retrying", "err", err, "retry_in", d)
		if backoff.Sleep(ctx, d) != nil {
			return nil, ctx.Err()
		}
	}
}

func (c *LiveConsumer) discover(ctx context.Context) ([]*partition, error) {
	md, err := c.client.Metadata(ctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
	if err != nil {
		return nil, fmt.Errorf("reading metadata of %v: %w", c.cfg.Topics, err)
	}
	c.clusterID.Store(md.ClusterID)
	var parts []*partition
	since := c.cfg.Now().Add(-c.cfg.Lookback)
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Name, t.Error)
		}
		if len(t.Partitions) == 0 {
			return nil, fmt.Errorf("topic %s has no partitions", t.Name)
		}
		var last, at []kafka.OffsetRequest
		for _, p := range t.Partitions {
			last = append(last, kafka.LastOffsetOf(p.ID))
			at = append(at, kafka.TimeOffsetOf(p.ID, since))
		}
		lastRes, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.Name: last}})
		if err != nil {
			return nil, fmt.Errorf("reading the high-water marks of %s: %w", t.Name, err)
		}
		atRes, err := c.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.Name: at}})
		if err != nil {
			return nil, fmt.Errorf("reading the offsets of %s at %s: %w", t.Name, since.Format(time.RFC3339), err)
		}
		marks := map[int]int64{}
		for _, po := range lastRes.Topics[t.Name] {
			if po.Error != nil {
				return nil, fmt.Errorf("high-water mark of %s: %w", partKey(t.Name, po.Partition), po.Error)
			}
			marks[po.Partition] = po.LastOffset
		}
		starts := map[int]int64{}
		for _, po := range atRes.Topics[t.Name] {
			if po.Error != nil {
				return nil, fmt.Errorf("offset at %s of %s: %w", since.Format(time.RFC3339), partKey(t.Name, po.Partition), po.Error)
			}
			starts[po.Partition] = -1
			for off := range po.Offsets {
				starts[po.Partition] = off
			}
		}
		for _, p := range t.Partitions {
			mark, ok := marks[p.ID]
			if !ok {
				return nil, fmt.Errorf("no high-water mark for %s", partKey(t.Name, p.ID))
			}
			from, ok := starts[p.ID]
			if !ok || from < 0 || from > mark {
				from = mark // nothing newer than the lookback
			}
			pt := &partition{topic: t.Name, id: p.ID, label: partKey(t.Name, p.ID), startMark: mark}
			pt.next.Store(from)
			pt.hwm.Store(mark)
			parts = append(parts, pt)
		}
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].topic != parts[j].topic {
			return parts[i].topic < parts[j].topic
		}
		return parts[i].id < parts[j].id
	})
	return parts, nil
}

// item is one message on its way from a partition reader to the applier.
type item struct {
	p      *partition
	offset int64
	hwm    int64
	ok     bool // false: a bad message, already counted
	ev     lr.Event
}

func (c *LiveConsumer) readPartition(ctx context.Context, p *partition, out chan<- item) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Topic:     p.topic,
		Partition: p.id,
		MinBytes:  1,
		MaxBytes:  8 << 20,
		MaxWait:   500 * time.Millisecond,
		// kafka-go logs every retry; the consumer logs what matters.
		ErrorLogger: kafka.LoggerFunc(func(f string, a ...any) {
			c.cfg.Log.Debug("kafka reader: "+fmt.Sprintf(f, a...), "partition", p.label)
		}),
		ReadBackoffMax: c.cfg.MaxBackoff,
		// Report an offset beyond the log's end instead of waiting for
		// the log to grow back to it (see below).
		OffsetOutOfRangeError: true,
	})
	defer r.Close()
	if err := r.SetOffset(p.next.Load()); err != nil {
		c.cfg.Log.Error("live consumer cannot set offset", "partition", p.label, "err", err)
		return
	}
	attempt := 0
	for {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, kafka.OffsetOutOfRange) {
				// The log ends before our offset: the broker lost its data
				// or the topic was recreated. Waiting for the log to grow
				// back to the old offset would skip the new events, so
				// read the new log again from the lookback.
				c.cfg.Log.Warn("partition log ends before the consumer's offset (broker data lost or topic recreated); rereading from the lookback",
					"partition", p.label, "offset", p.next.Load())
				p.hwm.Store(0)
				if serr := r.SetOffsetAt(ctx, c.cfg.Now().Add(-c.cfg.Lookback)); serr == nil {
					continue
				} else {
					err = serr
				}
			}
			c.m.brokerErrors.Inc()
			d := retryDelay(attempt, c.cfg.MaxBackoff)
			attempt++
			c.cfg.Log.Warn("live consumer read failed; retrying", "partition", p.label, "err", err, "retry_in", d)
			if backoff.Sleep(ctx, d) != nil {
				return
			}
			continue
		}
		attempt = 0
		it := item{p: p, offset: msg.Offset, hwm: msg.HighWaterMark}
		ev, err := Decode(msg.Value, judgedAt(msg, c.cfg.Now), c.cfg.MaxFuture)
		if err != nil {
			c.bad(p, msg, err)
		} else {
			it.ok, it.ev = true, ev
			c.m.consumed(ev.Type)
		}
		select {
		case out <- it:
		case <-ctx.Done():
			return
		}
	}
}

// bad counts and logs (once: this message is never read again by this
// consumer) a message that did not decode. The sink, which reads the same
// messages in a consumer group, dead-letters it (the same verdict: see
// judgedAt).
func (c *LiveConsumer) bad(p *partition, msg kafka.Message, err error) {
	c.m.decodeFailures.Inc()
	c.cfg.Log.Warn("bad event skipped", "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset,
		"key", lr.Clip(string(msg.Key), 64), "err", lr.Clip(err.Error(), deadLetterMaxError))
}

func (c *LiveConsumer) applyLoop(ctx context.Context, parts []*partition, items <-chan item) {
	expire := time.NewTicker(c.cfg.ExpireEvery)
	defer expire.Stop()
	batch := make([]lr.Event, 0, c.cfg.BatchSize)
	its := make([]item, 0, c.cfg.BatchSize)
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			if c.caught.Load() {
				c.app.Expire(c.cfg.Now())
			}
			c.updateLag(parts)
			continue
		case it := <-items:
			its = append(its[:0], it)
		}
	drain:
		for len(its) < c.cfg.BatchSize {
			select {
			case it := <-items:
				its = append(its, it)
			default:
				break drain
			}
		}
		batch = batch[:0]
		for _, it := range its {
			if it.ok {
				batch = append(batch, it.ev)
			}
		}
		if len(batch) > 0 {
			_, span := spans.StartKind(ctx, c.cfg.Tracer, "live.apply", trace.SpanKindConsumer)
			c.app.Apply(batch)
			if span.IsRecording() {
				span.SetAttributes(attribute.String("messaging.system", "kafka"), attribute.Int("messaging.batch.message_count", len(batch)))
			}
			span.End()
		}
		for _, it := range its {
			it.p.next.Store(it.offset + 1)
			if it.hwm > it.p.hwm.Load() {
				it.p.hwm.Store(it.hwm)
			}
		}
		if !c.caught.Load() {
			c.checkCaught(parts)
		}
	}
}

// checkCaught marks partitions that reached their start mark, and the
// consumer once all have. Only the apply goroutine calls it.
func (c *LiveConsumer) checkCaught(parts []*partition) {
	all := true
	for _, p := range parts {
		if !p.caught && p.next.Load() >= p.startMark {
			p.caught = true
		}
		all = all && p.caught
	}
	if all && !c.caught.Load() {
		// Streams that went silent during the replayed window end now,
		// before anyone is told the state is ready.
		c.app.Expire(c.cfg.Now())
		c.updateLag(parts)
		// Catching up means everything up to the marks read at start is
		// applied: that is the first moment the state is known fresh, and
		// staleness counts from it until a poll proves a later one.
		c.polls.Lock()
		if c.polls.covered.IsZero() {
			c.polls.covered = c.cfg.Now()
		}
		c.polls.Unlock()
		c.caught.Store(true)
		c.once.Do(func() { close(c.ready) })
		c.m.caughtUp.Set(1)
		c.cfg.Log.Info("live consumer caught up", "partitions", len(parts))
	}
}

func (c *LiveConsumer) updateLag(parts []*partition) {
	c.m.staleness.Set(c.staleness(c.cfg.Now()).Seconds())
	for _, p := range parts {
		c.m.lag.WithLabelValues(p.topic, strconv.Itoa(p.id)).Set(float64(max(0, p.hwm.Load()-p.next.Load())))
	}
}

// pollMarks refreshes the high-water marks so lag shows even when no
// message arrives (a broker that went away shows as failing polls and a
// lag that stops shrinking).
func (c *LiveConsumer) pollMarks(ctx context.Context, parts []*partition) (clusterChanged bool) {
	byTopic := map[string][]kafka.OffsetRequest{}
	idx := map[string]*partition{}
	for _, p := range parts {
		byTopic[p.topic] = append(byTopic[p.topic], kafka.LastOffsetOf(p.id))
		idx[p.label] = p
	}
	t := time.NewTicker(c.cfg.LagEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, c.cfg.LagEvery)
		md, err := c.client.Metadata(qctx, &kafka.MetadataRequest{Topics: c.cfg.Topics})
		if err == nil && md.ClusterID != "" && md.ClusterID != c.clusterID.Load() {
			cancel()
			c.cfg.Log.Warn("cluster id changed", "was", c.clusterID.Load(), "now", md.ClusterID)
			return true
		}
		var res *kafka.ListOffsetsResponse
		if err == nil {
			res, err = c.client.ListOffsets(qctx, &kafka.ListOffsetsRequest{Topics: byTopic})
		}
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.m.brokerErrors.Inc()
				c.m.brokerUp.Set(0)
			}
			continue
		}
		c.m.brokerUp.Set(1)
		marks := make(map[*partition]int64, len(parts))
		for topic, pos := range res.Topics {
			for _, po := range pos {
				p := idx[partKey(topic, po.Partition)]
				if p == nil || po.Error != nil {
					continue
				}
				marks[p] = po.LastOffset
				if po.LastOffset > p.hwm.Load() {
					p.hwm.Store(po.LastOffset)
				}
			}
		}
		c.polls.Lock()
		c.polls.q = append(c.polls.q, poll{at: c.cfg.Now(), marks: marks})
		if len(c.polls.q) > 1000 {
			c.polls.q = c.polls.q[1:]
		}
		c.polls.Unlock()
	}
}

// poll is one successful reading of the high-water marks.
type poll struct {
	at    time.Time
	marks map[*partition]int64
}

// staleness returns how far behind the broker the applied state is in
// time: now minus the time of the newest high-water-mark poll whose marks
// have all been applied. It grows while the broker is unreachable (no new
// polls) or while the consumer falls behind; when healthy it stays near
// LagEvery. Zero before the first poll.
func (c *LiveConsumer) staleness(now time.Time) time.Duration {
	c.polls.Lock()
	defer c.polls.Unlock()
	for len(c.polls.q) > 0 {
		p := c.polls.q[0]
		covered := true
		for pt, m := range p.marks {
			if pt.next.Load() < m {
				covered = false
				break
			}
		}
		if !covered {
			break
		}
		c.polls.covered = p.at
		c.polls.q = c.polls.q[1:]
	}
	if c.polls.covered.IsZero() {
		return 0
	}
	return now.Sub(c.polls.covered)
}

// Staleness is how far behind the broker the applied state is, in time
// (see the liverecall_events_staleness_seconds metric): near the
// high-water-mark poll interval when healthy, growing while the broker is
// unreachable or the consumer falls behind.
func (c *LiveConsumer) Staleness() time.Duration { return c.staleness(c.cfg.Now()) }

// retryDelay is the wait before retry number attempt of a broker or
// database call: from about 100 ms, doubling, up to maxD, jittered (see
// internal/backoff).
func retryDelay(attempt int, maxD time.Duration) time.Duration {
	return backoff.Policy{Initial: 100 * time.Millisecond, Max: maxD}.Delay(attempt)
}
