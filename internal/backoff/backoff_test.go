package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Each delay lies in [d/2, d] for d = Initial doubled attempt times and
// capped at Max: it grows, it is capped, even at attempts whose doubling
// would overflow.
func TestDelayIsCappedAndBounded(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	for attempt := 0; attempt < 200; attempt++ {
		d := min(p.Max, p.Initial<<min(attempt, 16))
		for range 50 {
			if got := p.Delay(attempt); got < d/2 || got > d {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, got, d/2, d)
			}
		}
	}
	if got := (Policy{Initial: time.Second, Max: 100 * time.Millisecond}).Delay(0); got > 100*time.Millisecond {
		t.Fatalf("Max below Initial: %v, want at most Max", got)
	}
	if got := (Policy{}).Delay(3); got != 0 {
		t.Fatalf("zero policy: %v", got)
	}
}

// Delays are jittered: repeated draws for one attempt differ and spread
// over the range.
func TestDelayIsJittered(t *testing.T) {
	p := Policy{Initial: time.Second, Max: time.Minute}
	for _, attempt := range []int{0, 3, 100} {
		seen := map[time.Duration]bool{}
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 1000 {
			d := p.Delay(attempt)
			seen[d] = true
			lo, hi = min(lo, d), max(hi, d)
		}
		nominal := min(p.Max, p.Initial<<attempt)
		if attempt >= 10 {
			nominal = p.Max
		}
		// 1000 uniform draws over [n/2, n]: the extremes lie within a
		// tenth of the ends (failing by chance: 2·0.8^1000).
		if len(seen) < 900 || lo > nominal/2+nominal/10 || hi < nominal-nominal/10 {
			t.Fatalf("attempt %d: %d distinct delays in [%v, %v], want spread over [%v, %v]", attempt, len(seen), lo, hi, nominal/2, nominal)
		}
	}
}

// A cancelled context ends the wait at once, however long it was to be.
func TestSleepEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, time.Hour) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep: %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // "at once" against the hour asked for
		t.Fatal("Sleep(1h) did not return within a minute of its context's cancellation")
	}
	if err := Sleep(ctx, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep on an ended context: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("a full sleep: %v", err)
	}
}
