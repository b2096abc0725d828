package liverecall

import (
	"fmt"
	"time"
)

// EventVersion is the envelope version this build writes and accepts.
const EventVersion = 1

// EventType names what happened. The set is closed: a type not listed here is
// rejected by Validate (and by the decoder in events/).
type EventType string

const (
	EventStreamStarted   EventType = "stream.started"
	EventStreamEnded     EventType = "stream.ended"
	EventStreamHeartbeat EventType = "stream.heartbeat"
	EventViewerJoined    EventType = "viewer.joined"
	EventViewerLeft      EventType = "viewer.left"
	EventGiftSent        EventType = "gift.sent"
	EventFollowCreated   EventType = "follow.created"
	EventFollowDeleted   EventType = "follow.deleted"
)

// EventTypes lists every known type, in a stable order (for metrics labels).
var EventTypes = []EventType{
	EventStreamStarted, EventStreamEnded, EventStreamHeartbeat,
	EventViewerJoined, EventViewerLeft, EventGiftSent,
	EventFollowCreated, EventFollowDeleted,
}

// Event is one product event, as carried on the events topic. TS (event time,
// set by the producer) decides state, not arrival order. Every event is keyed
// by StreamerID so that one streamer's events are ordered within a partition.
//
// Which fields a type requires (beyond ID, Type, TS, StreamerID and V, which
// every event has):
//
//	stream.started, stream.ended, stream.heartbeat: StreamID
//	viewer.joined, viewer.left:                      StreamID, UserID
//	gift.sent:                                       StreamID, UserID, Amount > 0
//	follow.created, follow.deleted:                  UserID
//
// Category and Title are optional and only meaningful on stream.started.
type Event struct {
	ID         string
	Type       EventType
	TS         time.Time
	StreamerID StreamerID
	StreamID   StreamID
	UserID     UserID
	Amount     float64
	Category   string
	Title      string
	V          int
}

// KnownEventType reports whether t is one of EventTypes.
func KnownEventType(t EventType) bool {
	switch t {
	case EventStreamStarted, EventStreamEnded, EventStreamHeartbeat,
		EventViewerJoined, EventViewerLeft, EventGiftSent,
		EventFollowCreated, EventFollowDeleted:
		return true
	}
	return false
}

// NeedsStream reports whether events of type t must carry a stream id.
func (t EventType) NeedsStream() bool {
	return t != EventFollowCreated && t != EventFollowDeleted
}

// NeedsUser reports whether events of type t must carry a user id.
func (t EventType) NeedsUser() bool {
	switch t {
	case EventViewerJoined, EventViewerLeft, EventGiftSent, EventFollowCreated, EventFollowDeleted:
		return true
	}
	return false
}

// Validate checks e against the schema: known type, version, the fields its
// type requires, a positive gift amount, and a timestamp no more than
// maxFuture after now (maxFuture <= 0 disables that check). The error is an
// EINVALID *Error whose message names the offending field, e.g.
// `field "amount": must be positive, got -3`.
func (e *Event) Validate(now time.Time, maxFuture time.Duration) error {
	if e.V != EventVersion {
		if e.V == 0 {
			return fieldErr("v", "missing")
		}
		return fieldErr("v", "unsupported version %d (this build reads %d)", e.V, EventVersion)
	}
	if e.ID == "" {
		return fieldErr("id", "missing")
	}
	if len(e.ID) > 200 {
		return fieldErr("id", "longer than 200 bytes")
	}
	if e.Type == "" {
		return fieldErr("type", "missing")
	}
	if !KnownEventType(e.Type) {
		return fieldErr("type", "unknown event type %q", e.Type)
	}
	if e.TS.IsZero() {
		return fieldErr("ts", "missing")
	}
	if maxFuture > 0 && e.TS.After(now.Add(maxFuture)) {
		return fieldErr("ts", "%s is %s in the future (limit %s)", e.TS.UTC().Format(time.RFC3339Nano), e.TS.Sub(now).Round(time.Millisecond), maxFuture)
	}
	if e.StreamerID <= 0 {
		return fieldErr("streamer_id", "missing or not positive")
	}
	if e.Type.NeedsStream() && e.StreamID <= 0 {
		return fieldErr("stream_id", "missing or not positive (required by %s)", e.Type)
	}
	if e.Type.NeedsUser() && e.UserID <= 0 {
		return fieldErr("user_id", "missing or not positive (required by %s)", e.Type)
	}
	if e.Type == EventGiftSent {
		if e.Amount < 0 {
			return fieldErr("amount", "must be positive, got %v", e.Amount)
		}
		if e.Amount == 0 {
			return fieldErr("amount", "missing or zero (required by %s)", e.Type)
		}
	} else if e.Amount != 0 {
		return fieldErr("amount", "only allowed on %s, not %s", EventGiftSent, e.Type)
	}
	return nil
}

func fieldErr(field, format string, args ...any) error {
	return Errorf(EINVALID, "field %q: %s", field, fmt.Sprintf(format, args...))
}
