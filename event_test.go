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
		{"title at the limit ok", func(e *Event) { e.Title = strings.Repeat("t", MaxTitleLen) }, ok(EventStreamStarted), ""},
		{"title at the limit in 4-byte characters ok", func(e *Event) { e.Title = strings.Repeat("😀", MaxTitleLen) }, ok(EventStreamStarted), ""},
		{"negative stream on a follow", func(e *Event) { e.StreamID = -4 }, follow, `"stream_id": must be positive, got -4`},
		{"negative user on a stream event", func(e *Event) { e.UserID = -1 }, ok(EventStreamEnded), `"user_id": must be positive, got -1`},
		{"multiline title ok", func(e *Event) { e.Title = "a\tb\r\nc ☃" }, ok(EventStreamStarted), ""},
		{"title too long", func(e *Event) { e.Title = strings.Repeat("t", MaxTitleLen+1) }, ok(EventStreamStarted), `"title": 1025 characters, longer than the limit of 1024`},
		{"category too long", func(e *Event) { e.Category = strings.Repeat("é", MaxCategoryLen+1) }, ok(EventStreamStarted), `"category": 129 characters`},
		{"id too long", func(e *Event) { e.ID = strings.Repeat("i", MaxEventIDLen+1) }, ok(EventStreamStarted), `"id"`},
		{"invalid UTF-8 id", func(e *Event) { e.ID = "a\xffb" }, ok(EventStreamStarted), `"id": not valid UTF-8`},
		{"replacement character in title", func(e *Event) { e.Title = "a\uFFFD" }, ok(EventStreamStarted), `"title": not valid UTF-8`},
		{"NUL in title", func(e *Event) { e.Title = "a\x00" }, ok(EventStreamStarted), `"title": control character U+0000`},
		{"tab in category", func(e *Event) { e.Category = "a\tb" }, ok(EventStreamStarted), `"category": control character`},
		{"DEL in id", func(e *Event) { e.ID = "a\x7f" }, ok(EventStreamStarted), `"id": control character U+007F`},
		{"huge unknown type", func(e *Event) { e.Type = EventType(strings.Repeat("x", 1<<20)) }, ok(EventStreamStarted), `"type": unknown event type "xxx`},
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
				t.Fatalf("want EINVALID naming %s, got %s: %v", c.field, ErrorCode(err), Clip(err.Error(), 300))
			}
			if len(err.Error()) > 300 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
		})
	}
}
