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
	var timer *time.Timer
	return func(e lr.Event) error {
		now := time.Now()
		if start.IsZero() {
			start = now
		}
		due := start.Add(time.Duration(float64(e.TS.Sub(origin)) / speed))
		if wait := due.Sub(now); wait > time.Millisecond {
			if flush != nil {
				if err := flush(); err != nil {
					return err
				}
			}
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return ctx.Err()
			}
		}
		return emit(e)
	}
}
