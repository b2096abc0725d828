package events

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// sinkScript returns events with known totals: per streamer one stream
// started and ended, viewers joining and leaving 10 s later, one gift of 1
// per viewer, one follow per viewer.
func sinkScript(streamers, viewers int, t0 time.Time) []lr.Event {
	var evs []lr.Event
	for s := 1; s <= streamers; s++ {
		sid := lr.StreamerID(s)
		st := lr.StreamID(1000 + s)
		at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
		id := func(kind string, n int) string { return fmt.Sprintf("%s-%d-%d", kind, s, n) }
		evs = append(evs, lr.Event{ID: id("start", 0), Type: lr.EventStreamStarted, TS: at(0), StreamerID: sid, StreamID: st, V: 1})
		for v := 1; v <= viewers; v++ {
			u := lr.UserID(v)
			evs = append(evs,
				lr.Event{ID: id("join", v), Type: lr.EventViewerJoined, TS: at(v), StreamerID: sid, StreamID: st, UserID: u, V: 1},
				lr.Event{ID: id("gift", v), Type: lr.EventGiftSent, TS: at(v + 1), StreamerID: sid, StreamID: st, UserID: u, Amount: 1, V: 1},
				lr.Event{ID: id("follow", v), Type: lr.EventFollowCreated, TS: at(v + 2), StreamerID: sid, UserID: u, V: 1},
				lr.Event{ID: id("left", v), Type: lr.EventViewerLeft, TS: at(v + 10), StreamerID: sid, StreamID: st, UserID: u, V: 1})
		}
		evs = append(evs, lr.Event{ID: id("end", 0), Type: lr.EventStreamEnded, TS: at(viewers + 20), StreamerID: sid, StreamID: st, V: 1})
	}
	return evs
}

// TestSinkKilledBetweenCommits stops the sink after a database commit and
// before the offset commit, restarts it, and checks that every row is there
// exactly once.
func TestSinkKilledBetweenCommits(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 3}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	db := pgtest.Open(t)
	ctx := context.Background()
	const streamers, viewers = 12, 8
	evs := sinkScript(streamers, viewers, time.Now().Add(-time.Hour).UTC())
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	if err := p.Publish(ctx, evs[:len(evs)/2]...); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteRaw(ctx, kafka.Message{Key: []byte("3"), Value: []byte(`{"id":"bad"}`)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, evs[len(evs)/2:]...); err != nil {
		t.Fatal(err)
	}

	var replayed, written atomic.Int64
	store := SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		r, err := db.WriteEvents(ctx, evs)
		replayed.Add(int64(r.Replayed))
		written.Add(int64(r.New))
		return err
	})
	cfg := SinkConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "sink-test",
		BatchSize: 40, BatchWait: 100 * time.Millisecond, SessionTimeout: 6 * time.Second}

	// Run 1 "crashes" after its third database commit.
	batches := 0
	cfg1 := cfg
	cfg1.afterWrite = func() error {
		batches++
		if batches == 3 {
			return errors.New("kill")
		}
		return nil
	}
	s1, err := NewSink(cfg1, store)
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := s1.Run(rctx); !errors.Is(err, errCrash) {
		t.Fatalf("run 1 ended with %v, want the simulated crash", err)
	}
	if written.Load() == 0 {
		t.Fatal("run 1 wrote nothing before the crash")
	}

	// Run 2 picks up from the last committed offsets.
	s2, err := NewSink(cfg, store)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s2.Run(ctx2) }()
	deadline := time.Now().Add(60 * time.Second)
	for written.Load() < int64(len(evs)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let any doubled write show
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("run 2: %v", err)
	}
	if replayed.Load() == 0 {
		t.Error("nothing was replayed: the crash did not happen between the two commits")
	}
	c, err := db.CountSinkRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := postgres.SinkCounts{Events: int64(len(evs)), Streams: streamers, Ended: streamers, Sessions: streamers * viewers,
		Pending: 0, Gifts: streamers * viewers, Follows: viewers * streamers, Seconds: streamers * viewers * 10, GiftValue: streamers * viewers}
	if c != want {
		t.Errorf("rows after crash and restart\n got %+v\nwant %+v", c, want)
	}
	t.Logf("written %d, replayed and dropped %d", written.Load(), replayed.Load())
}

// TestSinkWritesEveryImpressionOnce: pages of many impressions (and a
// message in the format before pages) reach the impression writer once
// each, the events beside them are written, and a bad page is counted and
// dead-lettered whole: none of its impressions is written.
func TestSinkWritesEveryImpressionOnce(t *testing.T) {
	const impTopic = "imp"
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 2}, kafkatest.Topic{Name: impTopic, Partitions: 3},
		kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)

	type impKey struct {
		req string
		pos int
	}
	want := map[impKey]lr.StreamerID{}
	ip := NewImpressionProducer(ImpressionConfig{Brokers: brokers, Topic: impTopic})
	for i := 0; i < 60; i++ {
		imps := make([]lr.Impression, 1+i%25)
		for j := range imps {
			imps[j] = lr.Impression{RequestID: fmt.Sprintf("r%d", i), UserID: lr.UserID(1 + i%9), StreamerID: lr.StreamerID(100*i + j + 1),
				Position: j, Score: 0.5, Channels: []string{"mf"}, ShownAt: now, Features: []float32{1, 2}}
			want[impKey{imps[j].RequestID, j}] = imps[j].StreamerID
		}
		ip.Log(imps)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := ip.Close(cctx); err != nil {
		t.Fatal(err)
	}
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: impTopic})
	defer p.Close()
	const good = `{"request_id":"old","user_id":5,"streamer_id":77,"stream_id":0,"position":0,"score":0,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}`
	want[impKey{"old", 0}] = 77
	// A bad page is dead-lettered whole: an empty one, one whose second
	// impression lacks its streamer, and (refused since the reader follows
	// the schema) one impression object not in a page, one without
	// stream_id and one with a field the schema does not know.
	bad := []string{`[]`, `[` + strings.Replace(good, `"old"`, `"bad"`, 1) + `,{"request_id":"bad","user_id":5,"position":1,"shown_at":"2026-11-23T18:00:00Z"}]`,
		strings.Replace(good, `"old"`, `"single"`, 1),
		`[` + strings.Replace(strings.Replace(good, `"old"`, `"nostream"`, 1), `"stream_id":0,`, ``, 1) + `]`,
		`[` + strings.Replace(strings.Replace(good, `"old"`, `"extra"`, 1), `{`, `{"variant":"b",`, 1) + `]`}
	for _, v := range append([]string{`[` + good + `]`}, bad...) {
		if err := p.WriteRaw(ctx, kafka.Message{Key: []byte("5"), Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	evs := sinkScript(2, 3, now.Add(-time.Hour))
	ep := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer ep.Close()
	if err := ep.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[impKey]int{}
	var wrongStreamer []impKey
	var nEvents atomic.Int64
	store := SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		nEvents.Add(int64(len(evs)))
		return nil
	})
	m := newMetrics()
	s, err := NewSink(SinkConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "sink-imp",
		BatchSize: 7, BatchWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, Metrics: m, ImpressionTopic: impTopic,
		Impressions: func(ctx context.Context, imps []lr.Impression) error {
			mu.Lock()
			defer mu.Unlock()
			for _, im := range imps {
				k := impKey{im.RequestID, im.Position}
				got[k]++
				if want[k] != im.StreamerID {
					wrongStreamer = append(wrongStreamer, k)
				}
			}
			return nil
		}}, store)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) && nEvents.Load() >= int64(len(evs)) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let any doubled write show
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for k := range want {
		if got[k] != 1 {
			t.Errorf("impression %v written %d times, want once", k, got[k])
		}
	}
	for k, n := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("impression %v written %d times, want never (it is from a bad page)", k, n)
		}
	}
	if len(wrongStreamer) > 0 {
		t.Errorf("impressions with the wrong streamer: %v", wrongStreamer)
	}
	if nEvents.Load() != int64(len(evs)) {
		t.Errorf("%d events written, want %d", nEvents.Load(), len(evs))
	}
	if f := testutil.ToFloat64(m.decodeFailures); f != float64(len(bad)) {
		t.Errorf("%v decode failures, want %d", f, len(bad))
	}
	dr := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: testDLQ, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer dr.Close()
	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	defer dcancel()
	for i := range bad {
		msg, err := dr.ReadMessage(dctx)
		if err != nil {
			t.Fatalf("reading dead letter %d: %v", i, err)
		}
		h := map[string]string{}
		for _, x := range msg.Headers {
			h[x.Key] = string(x.Value)
		}
		if string(msg.Value) != bad[i] || h["source_topic"] != impTopic || h["source_offset"] == "" || h["error"] == "" {
			t.Errorf("dead letter %d: %s with headers %v, want %s whole, from %s", i, msg.Value, h, bad[i], impTopic)
		}
	}
}

// TestSinkPairsViewerEventsOncePerSession sends, through the broker and in
// small batches, a user's same-second leave and join (at another stream,
// and at the same stream with the join written first), a leave before its
// join, a duplicate join and a leave whose join never comes: every session
// is written exactly once, and the events without a session are counted in
// liverecall_sink_unpaired_events_total.
func TestSinkPairsViewerEventsOncePerSession(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 3}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	db := pgtest.Open(t)
	ctx := context.Background()
	t0 := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	n := 0
	ev := func(typ lr.EventType, sec int, stream, user int64) lr.Event {
		n++
		return lr.Event{ID: fmt.Sprintf("v%02d", n), Type: typ, TS: t0.Add(time.Duration(sec) * time.Second),
			StreamerID: lr.StreamerID(stream / 10), StreamID: lr.StreamID(stream), UserID: lr.UserID(user), V: 1}
	}
	const a, b, c = 10, 20, 30 // streams of streamers 1, 2, 3
	evs := []lr.Event{
		ev(lr.EventStreamStarted, 0, a, 0), ev(lr.EventStreamStarted, 0, b, 0), ev(lr.EventStreamStarted, 0, c, 0),
		ev(lr.EventViewerJoined, 1, a, 1), ev(lr.EventViewerJoined, 60, b, 1), // b's join at a's leave
		ev(lr.EventViewerLeft, 60, a, 1), ev(lr.EventViewerLeft, 120, b, 1),
		ev(lr.EventViewerJoined, 2, c, 1), ev(lr.EventViewerJoined, 30, c, 1), // rejoin written before the leave
		ev(lr.EventViewerLeft, 30, c, 1), ev(lr.EventViewerLeft, 90, c, 1),
		ev(lr.EventViewerLeft, 50, a, 2), ev(lr.EventViewerJoined, 10, a, 2), // leave before join
		ev(lr.EventViewerJoined, 5, a, 3), ev(lr.EventViewerJoined, 20, a, 3), ev(lr.EventViewerLeft, 40, a, 3), // duplicate join
		ev(lr.EventViewerLeft, 30, b, 4), // no join ever
		ev(lr.EventViewerJoined, 15, a, 6), ev(lr.EventStreamEnded, 100, a, 0),
		ev(lr.EventStreamHeartbeat, 1800, b, 0), // the watermark passes user 4's leave
	}
	want := []string{"u1 s10 1-60", "u1 s20 60-120", "u1 s30 2-30", "u1 s30 30-90", "u2 s10 10-50", "u3 s10 5-40", "u6 s10 15-100"}
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	if err := p.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}

	m := newMetrics()
	var seen atomic.Int64
	// The adapter of the sink subcommand (cmd/liverecall/cmd_sink.go).
	store := SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		r, err := db.WriteEvents(ctx, evs)
		if err != nil {
			return err
		}
		m.SinkUnpaired(r.Unpaired, r.DuplicateJoins)
		seen.Add(int64(r.New + r.Replayed))
		return nil
	})
	s, err := NewSink(SinkConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "sink-pairs",
		BatchSize: 4, BatchWait: 50 * time.Millisecond, SessionTimeout: 6 * time.Second, Metrics: m}, store)
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	deadline := time.Now().Add(eventually)
	for seen.Load() < int64(len(evs)) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if seen.Load() != int64(len(evs)) {
		t.Fatalf("the sink wrote %d events, want %d", seen.Load(), len(evs))
	}

	rows, err := db.Pool.Query(ctx, `SELECT user_id, stream_id, started_at, ended_at FROM watch_sessions`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var u, st int64
		var from, to time.Time
		if err := rows.Scan(&u, &st, &from, &to); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("u%d s%d %d-%d", u, st, int(from.Sub(t0)/time.Second), int(to.Sub(t0)/time.Second)))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("sessions\n%q\nwant each once\n%q", got, want)
	}
	for kind, want := range map[string]float64{"leave_without_join": 1, "duplicate_join": 1} {
		if f := testutil.ToFloat64(m.sinkUnpaired.WithLabelValues(kind)); f != want {
			t.Errorf("unpaired %s: %v, want %v", kind, f, want)
		}
	}
}
