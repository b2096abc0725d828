package events_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
)

type shownRecord struct {
	user lr.UserID
	ids  []lr.StreamerID
	at   time.Time
}

type shownRecorder struct {
	mu  sync.Mutex
	got []shownRecord
}

func (r *shownRecorder) record(u lr.UserID, ids []lr.StreamerID, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, shownRecord{u, slices.Clone(ids), at})
}

func (r *shownRecorder) records() []shownRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// Every replica reads every partition of the shown topic, which the
// impression producers write a record of each page to, into its
// already-shown filter: the pages of other replicas from the window's
// start (older messages are not read), and new ones as they come, but not
// its own pages; a message that does not decode is counted and skipped.
func TestShownConsumerRecordsOtherReplicasPages(t *testing.T) {
	const partitions = 3
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: 2},
		kafkatest.Topic{Name: events.DefaultShownTopic, Partitions: partitions})
	now := time.Now().UTC()
	// Written an hour ago (the log time), before the window: never read.
	old := &kafka.Writer{Addr: kafka.TCP(c.Brokers()...), Topic: events.DefaultShownTopic, Balancer: events.Partitioner(), BatchTimeout: 5 * time.Millisecond}
	for u := 1; u <= 6; u++ {
		b, err := events.AppendShownRecord(nil, events.ShownRecord{UserID: lr.UserID(u), ShownAt: now.Add(-time.Hour), Streamers: []lr.StreamerID{900, 901, 902}})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.WriteMessages(context.Background(), kafka.Message{Key: []byte{byte('0' + u)}, Value: b, Time: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()

	other := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Replica: "other"})
	mine := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Replica: "mine"})
	// Pages before the consumer starts (within the window) ...
	for u := 1; u <= 6; u++ {
		other.Log(page("before", lr.UserID(u), 10*u, 4, now.Add(-time.Minute)))
		mine.Log(page("mine", lr.UserID(u), 500, 2, now))
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := other.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := mine.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// ... and a bad message.
	bad := &kafka.Writer{Addr: kafka.TCP(c.Brokers()...), Topic: events.DefaultShownTopic, Balancer: events.Partitioner(), BatchTimeout: 5 * time.Millisecond}
	// (the second is a record with a field the format does not have)
	unknown, err := events.AppendShownRecord(nil, events.ShownRecord{UserID: 1, ShownAt: now, Streamers: []lr.StreamerID{700}})
	if err != nil {
		t.Fatal(err)
	}
	unknown = bytes.Replace(unknown, []byte(`{`), []byte(`{"variant":"b",`), 1)
	if err := bad.WriteMessages(context.Background(), kafka.Message{Key: []byte("1"), Value: []byte(`{"not":"a shown record"`)},
		kafka.Message{Key: []byte("1"), Value: unknown}); err != nil {
		t.Fatal(err)
	}
	bad.Close()

	rec := &shownRecorder{}
	reg := prometheus.NewRegistry()
	sc, err := events.NewShownConsumer(events.ShownConfig{Brokers: c.Brokers(), Window: 10 * time.Minute, Replica: "mine", Record: rec.record,
		Registerer: reg, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor := func(what string, n int) []shownRecord {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := rec.records()
			if len(got) >= n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d pages recorded after 30 s, want %d: %+v", what, len(got), n, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the pages within the window", 6)
	// Pages written while it runs arrive too.
	later := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), Replica: "other"})
	later.Log(page("later", 3, 700, 2, now.Add(time.Second)))
	if err := later.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := waitFor("the page written while running", 7)
	byUser := map[lr.UserID][]shownRecord{}
	for _, r := range got {
		if r.ids[0] == 900 || r.ids[0] == 500 {
			t.Fatalf("recorded %+v: a page from before the window or of this replica", r)
		}
		byUser[r.user] = append(byUser[r.user], r)
	}
	for u := lr.UserID(1); u <= 6; u++ {
		rs := byUser[u]
		want := []lr.StreamerID{lr.StreamerID(10 * u), lr.StreamerID(10*u + 1), lr.StreamerID(10*u + 2), lr.StreamerID(10*u + 3)}
		if len(rs) == 0 || !slices.Equal(rs[0].ids, want) || !rs[0].at.Equal(now.Add(-time.Minute)) {
			t.Fatalf("user %d: recorded %+v, want %v at %v", u, rs, want, now.Add(-time.Minute))
		}
	}
	if rs := byUser[3]; len(rs) != 2 || !slices.Equal(rs[1].ids, []lr.StreamerID{700, 701}) {
		t.Fatalf("user 3: recorded %+v, want the later page second", rs)
	}
	// The counts settle once the own and bad messages are read too.
	want := `
# HELP liverecall_shown_pages_read_total Shown records (one per page) read from the shown topic into the already-shown filter, by outcome: recorded (another replica's), own (this replica's, skipped), bad (did not decode, skipped).
# TYPE liverecall_shown_pages_read_total counter
liverecall_shown_pages_read_total{outcome="bad"} 2
liverecall_shown_pages_read_total{outcome="own"} 6
liverecall_shown_pages_read_total{outcome="recorded"} 7
`
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "liverecall_shown_pages_read_total")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A shown record is what AppendShownRecord wrote; anything else is refused
// with a message naming the problem.
func TestShownRecordRoundTripAndRefusals(t *testing.T) {
	at := time.Date(2026, 12, 7, 1, 2, 3, 456789000, time.UTC)
	r := events.ShownRecord{UserID: 7, ShownAt: at, Streamers: []lr.StreamerID{3, 1, 2}}
	b, err := events.AppendShownRecord([]byte("x"), r)
	if err != nil {
		t.Fatal(err)
	}
	if want := `x{"user_id":7,"shown_at":"2026-12-07T01:02:03.456789Z","streamer_ids":[3,1,2]}`; string(b) != want {
		t.Fatalf("encoded %s, want %s", b, want)
	}
	got, err := events.DecodeShownRecord(b[1:])
	if err != nil || got.UserID != 7 || !got.ShownAt.Equal(at) || !slices.Equal(got.Streamers, r.Streamers) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, r)
	}
	for _, c := range []struct{ value, problem string }{
		{``, "empty message"},
		{`[1]`, "cannot unmarshal array"},
		{`{"user_id":7,"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[1],"variant":"b"}`, `unknown field "variant"`},
		{`{"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[1]}`, "no user_id"},
		{`{"user_id":0,"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[1]}`, "user_id 0 is not positive"},
		{`{"user_id":7,"streamer_ids":[1]}`, "no shown_at"},
		{`{"user_id":7,"shown_at":"yesterday","streamer_ids":[1]}`, "shown_at"},
		{`{"user_id":7,"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[]}`, "no streamer_ids"},
		{`{"user_id":7,"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[1,-4]}`, "streamer_ids[1] = -4"},
		{`{"user_id":7,"shown_at":"2026-12-07T01:02:03Z","streamer_ids":[1]} {}`, "more than one JSON value"},
	} {
		_, err := events.DecodeShownRecord([]byte(c.value))
		if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(err.Error(), c.problem) {
			t.Errorf("DecodeShownRecord(%s) = %v, want invalid: %s", c.value, err, c.problem)
		}
	}
}

// A shown topic the broker does not have fails only the shown records
// (counted, not retried): every impression is still written.
func TestMissingShownTopicHoldsNoImpressionBack(t *testing.T) {
	c := kafkatest.New(t, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: 2})
	reg := prometheus.NewRegistry()
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: c.Brokers(), ShownTopic: "liverecall.shown.missing", Registerer: reg})
	const pages = 20
	now := time.Now().UTC()
	for i := range pages {
		p.Log(page(fmt.Sprint("r", i), lr.UserID(1+i), 10*i+1, 3, now))
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if msgs := readImpressionTopic(t, c.Brokers(), events.DefaultImpressionTopic, 2); len(msgs) != pages {
		t.Fatalf("%d impression pages written, want %d", len(msgs), pages)
	}
	want := fmt.Sprintf(`
# HELP liverecall_shown_records_total Shown records (one per page, for the other replicas' already-shown filters) by outcome: sent, failed (Kafka did not accept them: not retried), dropped (their buffer was full).
# TYPE liverecall_shown_records_total counter
liverecall_shown_records_total{outcome="dropped"} 0
liverecall_shown_records_total{outcome="failed"} %d
liverecall_shown_records_total{outcome="sent"} 0
`, pages)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "liverecall_shown_records_total"); err != nil {
		t.Fatal(err)
	}
}
