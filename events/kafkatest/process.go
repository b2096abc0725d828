package kafkatest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// childEnv carries a child broker's topics (JSON) from StartProcess to
// ServeChildIfAsked.
const childEnv = "KAFKATEST_BROKER_CHILD"

// child is a broker running in another process (StartProcess).
type child struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex // one command at a time on the pipes
}

// StartProcess runs the broker in a child process, as a real broker runs
// on another machine: its heap, its garbage collector and its goroutines
// are not the test's, so a test that measures the service's heap or
// latency measures the service alone. The child is this test binary run
// again; the test package's TestMain must call ServeChildIfAsked before
// anything else. Brokers, ApplyRetention and Close work on the returned
// cluster; Kfake returns nil and CreateTopic fails. The broker stops when
// tb ends (or when the test process dies: the child exits when its stdin
// closes).
func StartProcess(tb testing.TB, topics ...Topic) *Cluster {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	spec, err := json.Marshal(topics)
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatalf("kafkatest: %v", err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("kafkatest: starting the broker process: %v", err)
	}
	ch := &child{cmd: cmd, in: in, out: bufio.NewReader(outPipe)}
	c := &Cluster{child: ch}
	tb.Cleanup(c.Close)
	line, err := ch.out.ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "kafkatest-broker ")
	if err != nil || !ok {
		tb.Fatalf("kafkatest: the broker process did not start (said %q, %v); does TestMain call kafkatest.ServeChildIfAsked?", line, err)
	}
	c.addrs = []string{addr}
	return c
}

// command sends one line to the child and waits for its "ok".
func (ch *child) command(cmd string) error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if _, err := fmt.Fprintln(ch.in, cmd); err != nil {
		return err
	}
	line, err := ch.out.ReadString('\n')
	if err != nil {
		return err
	}
	if l := strings.TrimSpace(line); l != "ok" {
		return fmt.Errorf("broker process: %s", l)
	}
	return nil
}

func (ch *child) close() {
	ch.in.Close()
	done := make(chan struct{})
	go func() { ch.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		ch.cmd.Process.Kill()
		<-done
	}
}

// ServeChildIfAsked makes this process a broker child of StartProcess when
// it was started as one, and returns otherwise. A child serves the topics
// it was given, reads commands ("retention") on stdin, and exits when stdin
// closes. Call it first in TestMain.
func ServeChildIfAsked() {
	spec := os.Getenv(childEnv)
	if spec == "" {
		return
	}
	var topics []Topic
	if err := json.Unmarshal([]byte(spec), &topics); err != nil {
		fmt.Fprintln(os.Stderr, "kafkatest child:", err)
		os.Exit(2)
	}
	c, err := Start(0, topics...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkatest child:", err)
		os.Exit(2)
	}
	fmt.Printf("kafkatest-broker %s\n", c.Brokers()[0])
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "retention":
			c.ApplyRetention()
			fmt.Println("ok")
		default:
			fmt.Printf("unknown command %q\n", sc.Text())
		}
	}
	c.Close()
	os.Exit(0)
}
