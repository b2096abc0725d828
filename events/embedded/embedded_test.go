package embedded_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/liverecall/liverecall/events/embedded"
)

// The embedded broker is reached over TCP by kafka-go exactly as a real
// cluster would be: produce keyed messages to every partition, then read
// each partition back with its own reader.
func TestProduceConsumeOverTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := embedded.Start(0, embedded.Topic{Name: "t", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers()...),
		Topic:        "t",
		Balancer:     kafka.CRC32Balancer{},
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	defer w.Close()
	const n = 300
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte(fmt.Sprint(i % 17)), Value: []byte(fmt.Sprint(i))}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	seen := map[string]int{}
	keyPart := map[string]int{}
	for p := 0; p < 3; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", c.Brokers()[0], "t", p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers(), Topic: "t", Partition: p, MaxWait: 50 * time.Millisecond})
		for off := int64(0); off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			seen[string(m.Value)]++
			if prev, ok := keyPart[string(m.Key)]; ok && prev != p {
				t.Fatalf("key %s in partitions %d and %d", m.Key, prev, p)
			}
			keyPart[string(m.Key)] = p
		}
		r.Close()
	}
	if len(seen) != n {
		t.Fatalf("read %d distinct messages, want %d", len(seen), n)
	}
	if len(keyPart) != 17 {
		t.Fatalf("saw %d keys, want 17", len(keyPart))
	}
}
