package events

import (
	"context"
	"net"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/live/livetest"
)

const (
	testTopic = "ev"
	testDLQ   = "ev.dlq"
)

func startLive(t *testing.T, brokers []string, st *live.State, m *Metrics) (*LiveConsumer, func()) {
	t.Helper()
	c, err := NewLiveConsumer(LiveConfig{Brokers: brokers, Topics: []string{testTopic}, DeadLetterTopic: testDLQ,
		Metrics: m, LagEvery: 200 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(eventually):
			t.Errorf("Run did not return after cancel")
		}
	}
	return c, stop
}

// eventually is the deadline of a wait for something that takes
// milliseconds on a quiet machine (a consumer catching up, a message
// arriving): the condition ends the wait, so the deadline only has to
// outlast a loaded machine running -race.
const eventually = 2 * time.Minute

func waitReady(t *testing.T, c *LiveConsumer, d time.Duration) {
	t.Helper()
	select {
	case <-c.Ready():
	case <-time.After(d):
		t.Fatalf("consumer not caught up after %s; lag %+v", d, c.Lag())
	}
}

func liveIDs(ords *lr.Ordinals, s *live.Snapshot) []lr.StreamerID {
	var out []lr.StreamerID
	for _, o := range s.Ordinals() {
		id, _ := ords.ID(o)
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// TestLiveConsumerScript produces the scripted sequence with bad messages
// mixed in, consumes it over TCP from every partition, and checks the
// outcome, and that a restart from the lookback rebuilds the identical
// state.
func TestLiveConsumerScript(t *testing.T) {
	cl := kafkatest.New(t, kafkatest.Topic{Name: testTopic, Partitions: 4}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	brokers := cl.Brokers()
	now := time.Now().UTC()
	shift := now.Sub(livetest.Now)
	script := livetest.Shift(livetest.Script(), shift)
	evalAt := livetest.Now.Add(shift)

	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	ctx := context.Background()
	bad := []kafka.Message{
		{Key: []byte("1"), Value: []byte(`{not json`)},
		{Key: []byte("1"), Value: Encode(lr.Event{ID: "neg", Type: lr.EventGiftSent, TS: now, StreamerID: 1, StreamID: 101, UserID: 3, Amount: -1})},
		{Key: []byte("2"), Value: []byte(`{"id":"x","type":"stream.paused","ts":"` + now.Format(time.RFC3339) + `","streamer_id":2,"stream_id":201,"v":1}`)},
		{Key: []byte("4"), Value: Encode(lr.Event{ID: "fut", Type: lr.EventStreamStarted, TS: now.Add(time.Hour), StreamerID: 4, StreamID: 999})},
	}
	half := len(script) / 2
	if err := p.Publish(ctx, script[:half]...); err != nil {
		t.Fatal(err)
	}
	if err := p.WriteRaw(ctx, bad...); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, script[half:]...); err != nil {
		t.Fatal(err)
	}

	// What the state must be: the script applied directly.
	want := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	want.Apply(script)
	want.Expire(evalAt)
	wantDump := want.Dump(evalAt)

	ords := lr.NewOrdinals()
	reg := prometheus.NewRegistry()
	m := NewLiveMetrics(reg)
	st := live.New(live.Config{Ordinals: ords})
	c, stop := startLive(t, brokers, st, m)
	waitReady(t, c, eventually)
	if got := liveIDs(ords, st.Snapshot()); !reflect.DeepEqual(got, []lr.StreamerID{1, 2}) {
		t.Errorf("live set %v, want [1 2]", got)
	}
	if got := st.Dump(evalAt); got != wantDump {
		t.Errorf("state from Kafka differs from the script applied directly:\n%s\n--- want\n%s", got, wantDump)
	}
	if n := testutil.ToFloat64(m.decodeFailures); n != 4 {
		t.Errorf("decode failures %v, want 4", n)
	}
	if n := testutil.ToFloat64(m.consumedBy[lr.EventStreamStarted]); n != 5 {
		t.Errorf("stream.started consumed %v, want 5", n)
	}
	lags := c.Lag()
	if len(lags) != 4 {
		t.Fatalf("lag of %d partitions, want 4: %+v", len(lags), lags)
	}
	total := int64(0)
	if s := c.Staleness(); s > 5*time.Second {
		t.Errorf("staleness %v when caught up and healthy", s)
	}
	for _, l := range lags {
		if l.Lag != 0 || l.Next != l.StartMark {
			t.Errorf("partition %d: %+v, want no lag", l.Partition, l)
		}
		total += l.StartMark
	}
	if total != int64(len(script)+len(bad)) {
		t.Errorf("start marks sum to %d, want %d messages", total, len(script)+len(bad))
	}

	// Replicas count bad messages but leave dead-lettering to the sink
	// (TestDeadLetterOncePerOffset).
	if n := testutil.ToFloat64(m.deadLettered) + testutil.ToFloat64(m.deadLetterFailures); n != 0 {
		t.Errorf("the live consumer tried to dead-letter %v messages", n)
	}
	stop()

	// Restart: a new state rebuilt from the lookback is identical.
	st2 := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	c2, stop2 := startLive(t, brokers, st2, nil)
	defer stop2()
	waitReady(t, c2, eventually)
	if a, b := st.Dump(evalAt), st2.Dump(evalAt); a != b {
		t.Errorf("restart from lookback rebuilt a different state:\n%s\n--- first run\n%s", b, a)
	}

	// New events after catching up are applied within a fraction of a second.
	if err := p.Publish(ctx, lr.Event{ID: "late-start", Type: lr.EventStreamStarted, TS: time.Now(), StreamerID: 77, StreamID: 7700, V: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := st2.FeaturesOf(77); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("streamer 77 not live 10 s after its start was produced; lag %+v", c2.Lag())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

// TestLiveConsumerBrokerLate starts the consumer before the broker exists:
// it retries, is not caught up meanwhile, and catches up once the broker
// comes.
func TestLiveConsumerBrokerLate(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	brokers := []string{"127.0.0.1:" + strconv.Itoa(port)}
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	m := newMetrics()
	c, stop := startLive(t, brokers, st, m)
	defer stop()
	time.Sleep(700 * time.Millisecond)
	if c.CaughtUp() {
		t.Fatal("caught up with no broker")
	}
	if testutil.ToFloat64(m.brokerErrors) == 0 {
		t.Error("no broker errors counted while the broker was down")
	}
	cl, err := kafkatest.Start(port, kafkatest.Topic{Name: testTopic, Partitions: 2}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	defer p.Close()
	if err := p.Publish(context.Background(), lr.Event{ID: "a", Type: lr.EventStreamStarted, TS: time.Now(), StreamerID: 5, StreamID: 50, V: 1}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, c, eventually)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := st.FeaturesOf(5); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("streamer 5 not live after the broker came up")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLiveConsumerBrokerGoesAway closes the broker under a caught-up
// consumer: the state keeps serving, the broker metrics show the outage,
// and Run still stops promptly when asked.
func TestLiveConsumerBrokerGoesAway(t *testing.T) {
	cl, err := kafkatest.Start(0, kafkatest.Topic{Name: testTopic, Partitions: 2}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	brokers := cl.Brokers()
	p := NewProducer(ProducerConfig{Brokers: brokers, Topic: testTopic})
	if err := p.Publish(context.Background(), lr.Event{ID: "a", Type: lr.EventStreamStarted, TS: time.Now(), StreamerID: 9, StreamID: 90, V: 1}); err != nil {
		t.Fatal(err)
	}
	p.Close()
	reg := prometheus.NewRegistry()
	m := NewLiveMetrics(reg)
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), Registerer: reg})
	c, stop := startLive(t, brokers, st, m)
	waitReady(t, c, eventually)
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(m.brokerUp) != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if testutil.ToFloat64(m.brokerUp) != 1 {
		t.Fatal("broker_up never became 1")
	}
	cl.Close()
	deadline = time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(m.brokerUp) != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if testutil.ToFloat64(m.brokerUp) != 0 || testutil.ToFloat64(m.brokerErrors) == 0 {
		t.Errorf("broker gone: broker_up %v, errors %v", testutil.ToFloat64(m.brokerUp), testutil.ToFloat64(m.brokerErrors))
	}
	if _, ok := st.FeaturesOf(9); !ok || st.Snapshot().GetCardinality() != 1 {
		t.Error("the live state was lost when the broker went away")
	}
	// Staleness grows while the broker is away.
	s1 := c.Staleness()
	time.Sleep(600 * time.Millisecond)
	if s2 := c.Staleness(); s2 < s1+500*time.Millisecond || s1 <= 0 {
		t.Errorf("staleness %v then %v with the broker gone, want it growing", s1, s2)
	}
	// Every metric of the live side is registered in one registry (the
	// sink's, dead letters among them, are not: TestMetricsPerProcess).
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"liverecall_events_consumed_total", "liverecall_events_decode_failures_total",
		"liverecall_live_dedupe_hits_total", "liverecall_events_lag_messages",
		"liverecall_live_apply_seconds", "liverecall_live_streamers", "liverecall_events_caught_up", "liverecall_events_staleness_seconds"} {
		if !names[n] {
			t.Errorf("metric %s not registered", n)
		}
	}
	stop()
}
