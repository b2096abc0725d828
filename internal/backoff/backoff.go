// Package backoff is liverecall's one wait between retries: exponential,
// capped, jittered, and cut short by a context. Every retry loop (the Kafka
// consumers, the sink, the dead-letter and impression producers, the
// PostgreSQL LISTEN reconnect) waits through it.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is how long to wait between attempts: about Initial before the
// first retry, about twice as long before each next one, never more than
// Max.
type Policy struct {
	Initial time.Duration
	Max     time.Duration
}

// Delay returns the wait before retry number attempt (0 before the first
// retry): a random duration in [d/2, d], where d is Initial doubled attempt
// times and capped at Max. The jitter keeps clients that failed together
// (replicas losing the same broker) from retrying in step; the floor of d/2
// keeps the wait from collapsing to nothing. Delay is safe for concurrent
// use.
func (p Policy) Delay(attempt int) time.Duration {
	d := p.Initial
	for i := 0; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return d - half + time.Duration(rand.Int64N(int64(half)+1))
}

// Sleep waits for d or until ctx ends, whichever comes first. It returns
// ctx's error if ctx ended (at once if it already had), else nil.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
