package events

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/live"
)

// kcatPath finds kcat (Debian package "kcat", which pulls in librdkafka1).
// Its absence fails the test: it checks interoperability that nothing else
// checks.
func kcatPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat is not installed; it is needed to check that an independent client (librdkafka) and liverecall agree on keys and partitioning. Install it with: apt-get install -y kcat")
	}
	return p
}

// TestKcatInterop produces keyed events with kcat and consumes them with the
// live consumer, and produces with liverecall's producer and consumes with
// kcat: both sides put every key on the same partition.
func TestKcatInterop(t *testing.T) {
	kcat := kcatPath(t)
	const topic, parts = "kc", 6
	cl := kafkatest.New(t, kafkatest.Topic{Name: topic, Partitions: parts}, kafkatest.Topic{Name: testDLQ, Partitions: 1})
	broker := cl.Brokers()[0]
	now := time.Now().UTC().Add(-time.Minute)
	const streamers = 40

	// kcat → liverecall.
	var in bytes.Buffer
	for s := 1; s <= streamers; s++ {
		e := lr.Event{ID: fmt.Sprintf("kc-%d", s), Type: lr.EventStreamStarted, TS: now, StreamerID: lr.StreamerID(s * 7919), StreamID: lr.StreamID(s), V: 1}
		fmt.Fprintf(&in, "%s|%s\n", Key(e), Encode(e))
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat, "-P", "-b", broker, "-t", topic, "-K", "|", "-X", "topic.request.required.acks=-1")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v\n%s", err, out)
	}
	seen := 0
	for p := 0; p < parts; p++ {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		last, err := readLast(ctx, broker, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < last; off++ {
			msg, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("partition %d offset %d: %v", p, off, err)
			}
			if want := PartitionOf(msg.Key, parts); want != p {
				t.Errorf("kcat put key %s on partition %d; liverecall's partitioner says %d", msg.Key, p, want)
			}
			e, err := Decode(msg.Value, time.Now(), 0)
			if err != nil {
				t.Errorf("event from kcat at %d/%d: %v", p, off, err)
			} else if string(Key(e)) != string(msg.Key) {
				t.Errorf("key %s but streamer %d", msg.Key, e.StreamerID)
			}
			seen++
		}
		r.Close()
	}
	if seen != streamers {
		t.Fatalf("read %d messages produced by kcat, want %d", seen, streamers)
	}
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	c, err := NewLiveConsumer(LiveConfig{Brokers: []string{broker}, Topics: []string{topic}, DeadLetterTopic: testDLQ}, st)
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(cctx) }()
	waitReady(t, c, eventually)
	if n := st.Snapshot().GetCardinality(); n != streamers {
		t.Errorf("%d streamers live from kcat's events, want %d", n, streamers)
	}
	ccancel()
	<-done

	// liverecall → kcat.
	const topic2 = "kc2"
	if err := cl.CreateTopic(topic2, parts); err != nil {
		t.Fatal(err)
	}
	pr := NewProducer(ProducerConfig{Brokers: []string{broker}, Topic: topic2})
	defer pr.Close()
	var evs []lr.Event
	for s := 1; s <= streamers; s++ {
		evs = append(evs, lr.Event{ID: fmt.Sprintf("lr-%d", s), Type: lr.EventStreamHeartbeat, TS: now, StreamerID: lr.StreamerID(s * 104729), StreamID: lr.StreamID(s), V: 1})
	}
	if err := pr.Publish(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", broker, "-t", topic2, "-o", "beginning", "-e", "-q", "-f", "%k %p %s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat -C: %v\n%s", err, out)
	}
	got := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) != 3 {
			t.Fatalf("kcat output line %q", sc.Text())
		}
		p, _ := strconv.Atoi(f[1])
		if want := PartitionOf([]byte(f[0]), parts); p != want {
			t.Errorf("liverecall put key %s on partition %d; CRC32 says %d", f[0], p, want)
		}
		if _, err := Decode([]byte(f[2]), time.Now(), 0); err != nil {
			t.Errorf("kcat read back %q: %v", f[2], err)
		}
		got++
	}
	if got != streamers {
		t.Fatalf("kcat read %d messages, want %d:\n%s", got, streamers, out)
	}
}

func readLast(ctx context.Context, broker, topic string, p int) (int64, error) {
	conn, err := kafka.DialLeader(ctx, "tcp", broker, topic, p)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return conn.ReadLastOffset()
}
