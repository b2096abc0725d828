package events

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

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
