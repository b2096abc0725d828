package sim

import (
	"context"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Pace wraps emit so that events are passed on at speed times real time:
// an event of time ts goes out no earlier than wall-clock start +
// (ts - origin) / speed, where start is the wall-clock time of the first
// call. Events already due (including any before origin) go out at once.
// speed <= 0 disables pacing. Before each wait, flush (if not nil) is
// called so a batching writer sends what it holds. A wait ends early with
// ctx's error.
//
// With origin = time.Now() and speed 1, simulated event times track the
// wall clock, as a live service expects of its events; a higher speed
// replays history faster (its event times then run ahead of the clock).
func Pace(ctx context.Context, origin time.Time, speed float64, emit func(lr.Event) error, flush func() error) func(lr.Event) error {
	if speed <= 0 {
		return emit
	}
	var start time.Time
	var w Waiter
	return func(e lr.Event) error {
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		if err := w.Until(ctx, start.Add(time.Duration(float64(e.TS.Sub(origin))/speed)), flush); err != nil {
			return err
		}
		return emit(e)
	}
}

// Waiter waits for wall-clock times with one reusable timer; the zero value
// is ready. Not for concurrent use.
type Waiter struct{ timer *time.Timer }

// Until returns once due has come (at once when it is less than a
// millisecond away), calling flush (if not nil) first so a batching writer
// sends what it holds; it returns flush's error, or ctx's when ctx ends
// first.
func (w *Waiter) Until(ctx context.Context, due time.Time, flush func() error) error {
	wait := time.Until(due)
	if wait <= time.Millisecond {
		return nil
	}
	if flush != nil {
		if err := flush(); err != nil {
			return err
		}
	}
	if w.timer == nil {
		w.timer = time.NewTimer(wait)
	} else {
		w.timer.Reset(wait)
	}
	select {
	case <-w.timer.C:
		return nil
	case <-ctx.Done():
		w.timer.Stop()
		return ctx.Err()
	}
}
