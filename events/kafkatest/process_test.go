package kafkatest_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/liverecall/liverecall/events/kafkatest"
)

func TestMain(m *testing.M) {
	kafkatest.ServeChildIfAsked()
	os.Exit(m.Run())
}

// A broker in a child process serves over TCP, trims by retention.ms when
// told, and stops with Close.
func TestBrokerProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := kafkatest.StartProcess(t, kafkatest.Topic{Name: "t", Partitions: 1, Configs: map[string]string{"retention.ms": "500"}})
	if c.Kfake() != nil {
		t.Fatal("a broker process has no in-process cluster")
	}
	w := &kafka.Writer{Addr: kafka.TCP(c.Brokers()...), Topic: "t", BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("a")}, kafka.Message{Value: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	conn, err := kafka.DialLeader(ctx, "tcp", c.Brokers()[0], "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, last, err := conn.ReadOffsets()
	conn.Close()
	if err != nil || first != 0 || last != 2 {
		t.Fatalf("offsets %d..%d (%v), want 0..2", first, last, err)
	}
	time.Sleep(time.Second)
	c.ApplyRetention()
	conn, err = kafka.DialLeader(ctx, "tcp", c.Brokers()[0], "t", 0)
	if err != nil {
		t.Fatal(err)
	}
	first, _, err = conn.ReadOffsets()
	conn.Close()
	if err != nil || first != 2 {
		t.Fatalf("after retention the first offset is %d (%v), want 2", first, err)
	}
	c.Close()
	c.Close() // twice: no-op
	if conn, err := kafka.DialLeader(ctx, "tcp", c.Brokers()[0], "t", 0); err == nil {
		conn.Close()
		t.Fatal("the broker still answers after Close")
	}
}
