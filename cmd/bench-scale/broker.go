package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/embedded"
)

// impressionRetention is how long the benchmark's broker keeps the
// replica's impressions; the broker keeps them in segments of
// impressionSegmentBytes.
const (
	impressionRetention    = 2 * time.Second
	impressionSegmentBytes = 1 << 20
)

// startBroker starts the in-process broker the replica consumes its events
// from and logs its impressions to, keeping the impressions for retention:
// it trims the topic every retention/2 until stop is called (stop does not
// close the broker).
//
// The broker runs in a process of its own (startBrokerProcess), and kfake
// keeps every record in memory until retention drops it, freeing memory by
// whole segments only (100 MiB by default). At 1,000 req/s of k=20 the
// replica's impressions grew the broker's heap by ~10 MB/s; its
// collections (marking hundreds of MB, with assists, on the cores it
// shares with the replica) stalled the load generator's requests (it then
// shared their process) and starved the replica's recall channels: warm
// p99 26–210 ms and hundreds to thousands of channel timeouts, while the
// replica's own handling stayed under 100 ms. Nothing reads the
// impressions here, so they are dropped after a short retention, in small
// segments.
func startBroker(retention time.Duration) (b *embedded.Broker, stop func(), err error) {
	b, err = embedded.Start(0,
		embedded.Topic{Name: events.DefaultTopic, Partitions: 8},
		embedded.Topic{Name: events.DefaultDeadLetterTopic, Partitions: 1},
		embedded.Topic{Name: events.DefaultImpressionTopic, Partitions: 4, Configs: map[string]string{
			"retention.ms":  fmt.Sprint(retention.Milliseconds()),
			"segment.bytes": fmt.Sprint(impressionSegmentBytes),
		}},
		embedded.Topic{Name: events.DefaultShownTopic, Partitions: 4, Configs: map[string]string{
			"retention.ms":  fmt.Sprint(retention.Milliseconds()),
			"segment.bytes": fmt.Sprint(impressionSegmentBytes),
		}})
	if err != nil {
		return nil, nil, err
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(retention / 2)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				b.ApplyRetention()
			}
		}
	}()
	return b, func() { close(done); <-finished }, nil
}

// brokerFlag, as the first argument, makes this program the broker's
// process (serveBroker) instead of the benchmark.
const brokerFlag = "-serve-broker"

// serveBroker runs the broker (startBroker) in this process, writes its
// addresses to stdout on one line ("brokers host:port,…"), and runs until
// stdin ends.
func serveBroker() {
	b, stop, err := startBroker(impressionRetention)
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
	fmt.Printf("brokers %s\n", strings.Join(b.Brokers(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	stop()
	b.Close()
}

// brokerProcess is the broker running in a process of its own: this
// program started with brokerFlag.
type brokerProcess struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	brokers []string
}

// startBrokerProcess starts the broker in a child process. The broker used
// to share this process with the load generator: its work (the replica's
// impressions, 40,000 records/s at 2,000 req/s) then ran on the same Go
// scheduler as the goroutines that send the requests and time their
// answers, and delayed them; in a process of its own it competes for the
// cores only, as PostgreSQL and the replica do.
func startBrokerProcess() (*brokerProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, brokerFlag)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "brokers ")
	if err != nil || !ok || addrs == "" {
		in.Close()
		_ = cmd.Wait()
		return nil, errors.Join(fmt.Errorf("the broker's process did not give its address (got %q)", line), err)
	}
	return &brokerProcess{cmd: cmd, stdin: in, brokers: strings.Split(addrs, ",")}, nil
}

// pid is the broker process's id.
func (b *brokerProcess) pid() int { return b.cmd.Process.Pid }

// Close stops the broker's process and waits for it.
func (b *brokerProcess) Close() error {
	b.stdin.Close()
	return b.cmd.Wait()
}
