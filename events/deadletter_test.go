package events

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// TestDeadLetterOncePerOffset runs a deployment twice over one topic with
// bad messages in it (two serve replicas' live consumers and a sink, then
// all of them restarted, replaying the lookback): the dead-letter topic
// holds each bad message exactly once, and a bad message near the broker's
// size limit (kfake enforces Kafka's default max.message.bytes, 1,048,588)
// is dead-lettered as a bounded copy with the reason and its source offset.
func TestDeadLetterOncePerOffset(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 1}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	db := pgtest.Open(t)
	ctx := context.Background()
	now := time.Now().UTC()
	good := sinkScript(3, 2, now.Add(-30*time.Minute))

	started := func(id, title string) []byte {
		return Encode(lr.Event{ID: id, Type: lr.EventStreamStarted, TS: now.Add(-time.Minute), StreamerID: 2, StreamID: 20, Title: title, V: 1})
	}
	const bigSize = 1_048_500
	big := started("big", "")
	big = started("big", strings.Repeat("t", bigSize-len(big)-len(`,"title":""`)))
	if len(big) != bigSize {
		t.Fatalf("big message of %d bytes, want %d", len(big), bigSize)
	}
	bad := []kafka.Message{
		{Key: []byte("1"), Value: []byte(`{not json`)},
		{Key: []byte("2"), Value: big},
		{Key: []byte("2"), Value: started("a\xffb", "t")},
		{Key: []byte("4"), Value: Encode(lr.Event{ID: "fut", Type: lr.EventStreamStarted, TS: now.Add(time.Hour), StreamerID: 4, StreamID: 40, V: 1})},
	}
	wantReasons := []string{`malformed JSON`, `field "title": 1048` /* characters, longer than the limit */, `field "id": not valid UTF-8`, `field "ts"`}
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	if err := p.Publish(ctx, good[:len(good)/2]...); err != nil {
		t.Fatal(err)
	}
	for _, m := range bad { // one at a time: the big one fills a produce request
		if err := p.WriteRaw(ctx, m); err != nil {
			t.Fatalf("producing a bad message of %d bytes: %v", len(m.Value), err)
		}
	}
	if err := p.Publish(ctx, good[len(good)/2:]...); err != nil {
		t.Fatal(err)
	}

	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	highWater := func(topic string) int64 {
		t.Helper()
		res, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Topics[topic][0].LastOffset
	}
	const group = "sink-dlq"
	const wait = 90 * time.Second
	store := SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		_, err := db.WriteEvents(ctx, evs)
		return err
	})
	// round runs two replicas and a sink until the sink has committed the
	// whole topic (after producing more, if given), then stops them.
	round := func(more ...kafka.Message) {
		t.Helper()
		var stops []func()
		for i := 0; i < 2; i++ {
			c, stop := startLive(t, brokers, live.New(live.Config{Ordinals: lr.NewOrdinals()}), nil)
			stops = append(stops, stop)
			waitReady(t, c, wait)
		}
		s, err := NewSink(SinkConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: group,
			BatchSize: 7, BatchWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second}, store)
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(sctx) }()
		if len(more) > 0 {
			if err := p.WriteRaw(ctx, more...); err != nil {
				t.Fatal(err)
			}
		}
		end := highWater(testTopic)
		deadline := time.Now().Add(wait)
		for {
			res, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{testTopic: {0}}})
			if err == nil && len(res.Topics[testTopic]) == 1 && res.Topics[testTopic][0].CommittedOffset >= end {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sink did not commit up to offset %d within %s (%+v, %v)", end, wait, res, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sink: %v", err)
		}
		for _, stop := range stops {
			stop()
		}
	}
	round()
	marker := kafka.Message{Key: []byte("5"), Value: []byte(`{"id":"marker"}`)}
	round(marker)
	wantReasons = append(wantReasons, `field "v": missing`)

	// Read the whole dead-letter topic.
	n := highWater(testDLQ)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: testDLQ, Partition: 0, MaxWait: 200 * time.Millisecond, MaxBytes: 8 << 20})
	defer r.Close()
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	type letter struct {
		offset int64
		msg    kafka.Message
		h      map[string]string
	}
	var letters []letter
	for i := int64(0); i < n; i++ {
		msg, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("reading dead letter %d of %d: %v", i, n, err)
		}
		h := map[string]string{}
		for _, x := range msg.Headers {
			h[x.Key] = string(x.Value)
		}
		off, err := strconv.ParseInt(h["source_offset"], 10, 64)
		if err != nil || h["source_topic"] != testTopic || h["source_partition"] != "0" || h["error"] == "" {
			t.Fatalf("dead letter %d: headers %v", i, h)
		}
		letters = append(letters, letter{off, msg, h})
	}
	sort.Slice(letters, func(i, j int) bool { return letters[i].offset < letters[j].offset })
	if len(letters) != len(wantReasons) {
		var offs []int64
		for _, l := range letters {
			offs = append(offs, l.offset)
		}
		t.Fatalf("%d dead letters (source offsets %v), want each of the %d bad messages once", len(letters), offs, len(wantReasons))
	}
	for i, l := range letters {
		if i > 0 && l.offset == letters[i-1].offset {
			t.Errorf("source offset %d dead-lettered twice", l.offset)
		}
		if !contains(l.h["error"], wantReasons[i]) {
			t.Errorf("dead letter %d (source offset %d): reason %q, want it to mention %s", i, l.offset, lr.Clip(l.h["error"], 200), wantReasons[i])
		}
		if len(l.h["error"]) > 2<<10 {
			t.Errorf("dead letter %d: reason of %d bytes", i, len(l.h["error"]))
		}
	}
	// The big one: a bounded copy of its start, saying how large it was.
	b := letters[1]
	if b.h["truncated"] != "true" || b.h["value_bytes"] != strconv.Itoa(bigSize) || len(b.msg.Value) != DeadLetterMaxValue ||
		string(b.msg.Value) != string(big[:DeadLetterMaxValue]) {
		t.Errorf("dead letter of the big message: %d bytes, headers %v", len(b.msg.Value), b.h)
	}
	for _, l := range letters[2:] {
		if l.h["truncated"] != "" || l.h["value_bytes"] != strconv.Itoa(len(l.msg.Value)) {
			t.Errorf("dead letter of source offset %d: %d bytes, headers %v", l.offset, len(l.msg.Value), l.h)
		}
	}
	// The good events all reached the database.
	c, err := db.CountHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.Watches != 3*2 {
		t.Errorf("%d watch sessions written, want 6", c.Watches)
	}
}

// TestDeadLetterTooLargeEvenBounded: a dead-letter topic whose
// max.message.bytes is below DeadLetterMaxValue still gets the dead letter,
// without the value but with the reason and the source offset.
func TestDeadLetterTooLargeEvenBounded(t *testing.T) {
	const topic = "small.dlq"
	cl := kafkatest.New(t, kafkatest.Topic{Name: topic, Partitions: 1, Configs: map[string]string{"max.message.bytes": "4096"}})
	m := newMetrics()
	d := newDeadLetterer(cl.Brokers(), topic, slog.New(slog.DiscardHandler), m, 100*time.Millisecond)
	defer d.close()
	src := kafka.Message{Topic: testTopic, Partition: 3, Offset: 77, Key: []byte("9"), Value: []byte(strings.Repeat("v", 20_000))}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := d.write(ctx, []kafka.Message{deadLetter(src, lr.Errorf(lr.EINVALID, "field \"title\": too long"))}); err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cl.Brokers(), Topic: topic, Partition: 0, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	msg, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h := map[string]string{}
	for _, x := range msg.Headers {
		h[x.Key] = string(x.Value)
	}
	if len(msg.Value) != 0 || h["truncated"] != "true" || h["source_offset"] != "77" || h["source_partition"] != "3" ||
		h["value_bytes"] != "20000" || !contains(h["error"], `field "title"`) {
		t.Errorf("dead letter of %d bytes, headers %v", len(msg.Value), h)
	}
	if testutil.ToFloat64(m.deadLettered) != 1 || testutil.ToFloat64(m.deadLetterFailures) != 1 {
		t.Errorf("dead-lettered %v, failed attempts %v; want 1 and 1", testutil.ToFloat64(m.deadLettered), testutil.ToFloat64(m.deadLetterFailures))
	}
}
