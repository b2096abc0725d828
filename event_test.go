package liverecall

import (
	"strings"
	"testing"
	"time"
)

func TestEventValidate(t *testing.T) {
	now := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	ok := func(typ EventType) Event {
		return Event{ID: "e1", Type: typ, TS: now, StreamerID: 1, StreamID: 2, UserID: 3, V: 1}
	}
	gift := ok(EventGiftSent)
	gift.Amount = 5
	follow := ok(EventFollowCreated)
	follow.StreamID = 0
	cases := []struct {
		name  string
		mod   func(e *Event)
		base  Event
		field string // "" means valid
	}{
		{"started ok", func(e *Event) {}, ok(EventStreamStarted), ""},
		{"gift ok", func(e *Event) {}, gift, ""},
		{"follow without stream ok", func(e *Event) {}, follow, ""},
		{"missing v", func(e *Event) { e.V = 0 }, ok(EventStreamStarted), `"v"`},
		{"future v", func(e *Event) { e.V = 2 }, ok(EventStreamStarted), `"v"`},
		{"missing id", func(e *Event) { e.ID = "" }, ok(EventStreamStarted), `"id"`},
		{"unknown type", func(e *Event) { e.Type = "stream.paused" }, ok(EventStreamStarted), `"type"`},
		{"missing ts", func(e *Event) { e.TS = time.Time{} }, ok(EventStreamStarted), `"ts"`},
		{"ts in the future", func(e *Event) { e.TS = now.Add(time.Hour) }, ok(EventStreamStarted), `"ts"`},
		{"ts slightly ahead ok", func(e *Event) { e.TS = now.Add(time.Minute) }, ok(EventStreamStarted), ""},
		{"missing streamer", func(e *Event) { e.StreamerID = 0 }, ok(EventViewerJoined), `"streamer_id"`},
		{"missing stream", func(e *Event) { e.StreamID = 0 }, ok(EventViewerJoined), `"stream_id"`},
		{"missing user", func(e *Event) { e.UserID = 0 }, ok(EventViewerLeft), `"user_id"`},
		{"negative gift", func(e *Event) { e.Amount = -3 }, gift, `"amount": must be positive`},
		{"zero gift", func(e *Event) { e.Amount = 0 }, gift, `"amount"`},
		{"amount on join", func(e *Event) { e.Amount = 1 }, ok(EventViewerJoined), `"amount"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := c.base
			c.mod(&e)
			err := e.Validate(now, 5*time.Minute)
			if c.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want an error naming %s, got nil", c.field)
			}
			if ErrorCode(err) != EINVALID || !strings.Contains(err.Error(), c.field) {
				t.Fatalf("want EINVALID naming %s, got %s: %v", c.field, ErrorCode(err), err)
			}
		})
	}
}
