package liverecall

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
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
// Category, Title and Language are optional and only meaningful on
// stream.started. Language is the stream's language, a BCP 47 tag as
// ParseLocale reads it ("pt", "pt-BR"); the live view keeps its primary
// language subtag.
//
// Ids other than the required ones are zero when absent and positive when
// given. String fields are bounded (see MaxEventIDLen, MaxCategoryLen,
// MaxTitleLen) and must be valid UTF-8 without control characters (a
// title may hold tabs and line breaks).
//
// schemas/event.schema.json publishes these rules as a JSON Schema.
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
	Language   string
	V          int
}

// Limits of an event's string fields, in characters (Unicode code points,
// what JSON Schema's maxLength counts; a character is at most 4 bytes of
// UTF-8). A type is one of EventTypes and a ts an RFC 3339 time, so they
// are bounded too.
const (
	MaxEventIDLen  = 200
	MaxCategoryLen = 128
	MaxTitleLen    = 1024
	MaxLanguageLen = 64
)

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
		return fieldErr("id", "missing or empty")
	}
	if err := checkText("id", e.ID, MaxEventIDLen, false); err != nil {
		return err
	}
	if e.Type == "" {
		return fieldErr("type", "missing or empty")
	}
	if !KnownEventType(e.Type) {
		return fieldErr("type", "unknown event type %q", Clip(string(e.Type), 64))
	}
	if e.TS.IsZero() {
		return fieldErr("ts", "missing")
	}
	if maxFuture > 0 && e.TS.After(now.Add(maxFuture)) {
		return fieldErr("ts", "%s is %s in the future (limit %s)", e.TS.UTC().Format(time.RFC3339Nano), e.TS.Sub(now).Round(time.Millisecond), maxFuture)
	}
	if e.StreamerID < 0 {
		return fieldErr("streamer_id", "must be positive, got %d", e.StreamerID)
	}
	if e.StreamerID == 0 {
		return fieldErr("streamer_id", "missing")
	}
	if e.StreamID < 0 {
		return fieldErr("stream_id", "must be positive, got %d", e.StreamID)
	}
	if e.Type.NeedsStream() && e.StreamID == 0 {
		return fieldErr("stream_id", "missing (required by %s)", e.Type)
	}
	if e.UserID < 0 {
		return fieldErr("user_id", "must be positive, got %d", e.UserID)
	}
	if e.Type.NeedsUser() && e.UserID == 0 {
		return fieldErr("user_id", "missing (required by %s)", e.Type)
	}
	if e.Type == EventGiftSent {
		if e.Amount < 0 {
			return fieldErr("amount", "must be positive, got %v", e.Amount)
		}
		if e.Amount == 0 {
			return fieldErr("amount", "missing (required by %s)", e.Type)
		}
	} else if e.Amount != 0 {
		return fieldErr("amount", "only allowed on %s, not %s", EventGiftSent, e.Type)
	}
	if err := checkText("category", e.Category, MaxCategoryLen, false); err != nil {
		return err
	}
	if e.Language != "" {
		if len(e.Language) > MaxLanguageLen {
			return fieldErr("language", "%d bytes, longer than the limit of %d", len(e.Language), MaxLanguageLen)
		}
		if _, _, ok := ParseLocale(e.Language); !ok {
			return fieldErr("language", "%q is not a BCP 47 language tag (2 or 3 letters, then subtags of 1-8 letters or digits, e.g. \"pt\" or \"pt-BR\")", Clip(e.Language, 64))
		}
	}
	return checkText("title", e.Title, MaxTitleLen, true)
}

// checkText refuses a string field of more than maxLen characters, not valid UTF-8
// or holding a control character (tab, line feed and carriage return are
// allowed if multiline). U+FFFD, the replacement character, is refused too:
// it is what JSON decoders make of invalid UTF-8 and of lone surrogate
// escapes, so a field holding it was not valid text when produced.
func checkText(field, s string, maxLen int, multiline bool) error {
	if len(s) > maxLen { // a character is at least one byte
		if n := utf8.RuneCountInString(s); n > maxLen {
			return fieldErr(field, "%d characters, longer than the limit of %d", n, maxLen)
		}
	}
	for i, r := range s {
		switch {
		case r == utf8.RuneError:
			return fieldErr(field, "not valid UTF-8 at byte %d (invalid bytes, a lone surrogate escape or U+FFFD)", i)
		case multiline && (r == '\t' || r == '\n' || r == '\r'):
		case unicode.IsControl(r):
			return fieldErr(field, "control character %U at byte %d", r, i)
		}
	}
	return nil
}

// Clip returns s cut to at most n bytes (at a rune boundary) with "…"
// appended when it was cut, for quoting untrusted input in messages.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func fieldErr(field, format string, args ...any) error {
	return Errorf(EINVALID, "field %q: %s", field, fmt.Sprintf(format, args...))
}
