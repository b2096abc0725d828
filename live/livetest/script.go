// Package livetest holds a scripted sequence of events with known outcomes,
// shared by the tests of live/ (applied directly) and events/ (produced to a
// broker and consumed).
package livetest

import (
	"fmt"
	"time"

	lr "github.com/liverecall/liverecall"
)

// T0 is the start of the script. Callers that validate ts against a clock
// should shift the script (see Shift) so that it ends near their now.
var T0 = time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC)

// Now is when the script is evaluated: 40 minutes after T0. Expire(Now) with
// the default 10-minute expiry ends streamer 4 only.
var Now = T0.Add(40 * time.Minute)

// Script returns the events in the order they are produced. Duplicates
// repeat an earlier event's id; late events come after newer ones.
//
// Outcome at Now, after Expire(Now): live streamers {1, 2}.
//
//   - streamer 1 (stream 101, "music"): viewers 3 (11, 13, 14), 5 min ago 2,
//     peak 4; gifts 1m: 2 worth 4, 5m: 3 worth 6, 30m: 4 worth 11 (the gift
//     exactly 30 min old is out), unique gifters 30m: 3; age 40m.
//   - streamer 2 (stream 201): live despite a late end of its older stream
//     200 and an end of 201 dated before 201 started; age 39m.
//   - streamer 3: ended at T0+10m (its end is also sent twice).
//   - streamer 4: no event after T0+6m, ended by expiry.
//   - streamer 5: started and ended; a late join after its end is ignored.
//   - user 11 follows streamer 1 only (2 was unfollowed; a late follow of 2
//     is older than the unfollow).
//   - user 12 watched 101 from T0+2m to T0+34m.
func Script() []lr.Event {
	var evs []lr.Event
	n := 0
	add := func(typ lr.EventType, min float64, streamer, stream, user int64, amount float64) lr.Event {
		n++
		e := lr.Event{ID: fmt.Sprintf("s-%03d", n), Type: typ, TS: T0.Add(time.Duration(min * float64(time.Minute))),
			StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(stream), UserID: lr.UserID(user), Amount: amount, V: 1}
		if typ == lr.EventFollowCreated || typ == lr.EventFollowDeleted {
			e.StreamID = 0
		}
		evs = append(evs, e)
		return e
	}
	start := func(min float64, streamer, stream int64) lr.Event {
		add(lr.EventStreamStarted, min, streamer, stream, 0, 0)
		evs[len(evs)-1].Category = "music"
		return evs[len(evs)-1]
	}
	start(0, 1, 101)
	start(1, 2, 201)
	start(2, 3, 301)
	start(5, 4, 401)
	join := func(min float64, user int64) { add(lr.EventViewerJoined, min, 1, 101, user, 0) }
	leave := func(min float64, user int64) { add(lr.EventViewerLeft, min, 1, 101, user, 0) }
	join(1, 11)
	join(2, 12)
	join(3, 13)
	join(4, 15)
	add(lr.EventViewerJoined, 5.5, 4, 401, 16, 0)
	add(lr.EventStreamHeartbeat, 6, 4, 401, 0, 0)
	add(lr.EventStreamEnded, 0.5, 2, 200, 0, 0) // late end of streamer 2's older stream
	add(lr.EventStreamEnded, 0, 2, 201, 0, 0)   // an end dated before 201 started
	end3 := add(lr.EventStreamEnded, 10, 3, 301, 0, 0)
	add(lr.EventGiftSent, 10, 1, 101, 11, 100)
	add(lr.EventGiftSent, 15, 1, 101, 12, 5)
	leave(20, 15)
	add(lr.EventFollowCreated, 1, 1, 0, 11, 0)
	add(lr.EventFollowCreated, 2, 2, 0, 11, 0)
	add(lr.EventFollowDeleted, 3, 2, 0, 11, 0)
	add(lr.EventFollowCreated, 2.5, 2, 0, 11, 0) // late: older than the unfollow
	start(30, 5, 501)
	add(lr.EventStreamEnded, 31, 5, 501, 0, 0)
	add(lr.EventViewerJoined, 30.5, 5, 501, 17, 0) // late join after the end
	leave(34, 12)
	add(lr.EventStreamHeartbeat, 35, 1, 101, 0, 0)
	add(lr.EventStreamHeartbeat, 35, 2, 201, 0, 0)
	join(36, 14)
	g := add(lr.EventGiftSent, 36, 1, 101, 13, 2)
	join(37, 11) // already present: changes nothing
	add(lr.EventGiftSent, 39.5, 1, 101, 13, 1)
	add(lr.EventGiftSent, 39.75, 1, 101, 11, 3)
	evs = append(evs, g, end3) // duplicates
	return evs
}

// Shift returns evs with every ts moved by d.
func Shift(evs []lr.Event, d time.Duration) []lr.Event {
	out := make([]lr.Event, len(evs))
	for i, e := range evs {
		e.TS = e.TS.Add(d)
		out[i] = e
	}
	return out
}
