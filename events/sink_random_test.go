package events

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The sink is stopped again and again at random points — while fetching,
// in the middle of a database transaction (its context ends), between the
// database commit and the offset commit — and restarted each time. When the
// runs are done, every row is there exactly once.
func TestSinkKilledAtRandomPoints(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 3}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	db := pgtest.Open(t)
	ctx := context.Background()
	const streamers, viewers = 40, 12
	evs := sinkScript(streamers, viewers, time.Now().Add(-time.Hour).UTC())
	p := NewProducer(ProducerConfig{Brokers: cl.Brokers(), Topic: testTopic})
	defer p.Close()
	if err := p.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	want := postgres.SinkCounts{Events: int64(len(evs)), Streams: streamers, Ended: streamers, Sessions: streamers * viewers,
		Pending: 0, Gifts: streamers * viewers, Follows: viewers * streamers, Seconds: streamers * viewers * 10, GiftValue: streamers * viewers}

	var writes, interrupted atomic.Int64
	store := SinkStoreFunc(func(ctx context.Context, evs []lr.Event) error {
		writes.Add(1)
		_, err := db.WriteEvents(ctx, evs)
		if err != nil && ctx.Err() != nil {
			interrupted.Add(1) // the transaction was cut by the kill
		}
		return err
	})
	rng := rand.New(rand.NewPCG(11, 13))
	kills := map[string]int{}
	for run := 1; ; run++ {
		if run > 200 {
			t.Fatalf("not done after 200 runs (kills %v)", kills)
		}
		cfg := SinkConfig{Brokers: cl.Brokers(), Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "sink-random",
			BatchSize: 1 + rng.IntN(8), BatchWait: 20 * time.Millisecond, SessionTimeout: 6 * time.Second}
		crashAt := 1 + rng.IntN(4)
		n := 0
		if rng.IntN(2) == 0 {
			cfg.afterWrite = func() error {
				if n++; n == crashAt {
					return errors.New("kill")
				}
				return nil
			}
		}
		s, err := NewSink(cfg, store)
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithTimeout(ctx, time.Duration(200+rng.IntN(700))*time.Millisecond)
		err = s.Run(rctx)
		cancel()
		switch {
		case errors.Is(err, errCrash):
			kills["between commits"]++
		case err == nil:
			kills["context ended"]++
		default:
			t.Fatalf("run %d: %v", run, err)
		}
		c, err := db.CountSinkRows(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if c == want {
			t.Logf("all rows after %d runs: kills %v, %d database writes (%d cut mid-transaction)", run, kills, writes.Load(), interrupted.Load())
			if kills["between commits"] == 0 || kills["context ended"] == 0 {
				t.Fatalf("the runs did not stop at both kinds of points: %v", kills)
			}
			break
		}
		if c.Events > want.Events || c.Sessions > want.Sessions || c.Gifts > want.Gifts {
			t.Fatalf("run %d: rows doubled: %+v, want %+v", run, c, want)
		}
	}
	// One more run changes nothing.
	s, _ := NewSink(SinkConfig{Brokers: cl.Brokers(), Topics: []string{testTopic}, DeadLetterTopic: testDLQ, GroupID: "sink-random",
		BatchWait: 20 * time.Millisecond, SessionTimeout: 6 * time.Second}, store)
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	s.Run(rctx)
	cancel()
	if c, _ := db.CountSinkRows(ctx); c != want {
		t.Fatalf("after a final run: %+v, want %+v", c, want)
	}
}
