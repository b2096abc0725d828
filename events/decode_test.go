package events

import (
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

var decodeNow = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

func TestDecodeValid(t *testing.T) {
	in := `{"id":"g-1","type":"gift.sent","ts":"2026-11-23T17:59:00.5Z","streamer_id":42,"stream_id":7,"user_id":9,"amount":2.5,"v":1}`
	e, err := Decode([]byte(in), decodeNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := lr.Event{ID: "g-1", Type: lr.EventGiftSent, TS: time.Date(2026, 11, 23, 17, 59, 0, 5e8, time.UTC),
		StreamerID: 42, StreamID: 7, UserID: 9, Amount: 2.5, V: 1}
	if !e.TS.Equal(want.TS) {
		t.Fatalf("ts: got %v want %v", e.TS, want.TS)
	}
	e.TS = want.TS
	if e != want {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	evs := []lr.Event{
		{ID: "s-1", Type: lr.EventStreamStarted, TS: decodeNow.Add(-time.Second), StreamerID: 1, StreamID: 10, Category: "music", Title: "hé \"quoted\" \n", V: 1},
		{ID: "j-1", Type: lr.EventViewerJoined, TS: decodeNow.Add(-time.Millisecond), StreamerID: 1, StreamID: 10, UserID: 5, V: 1},
		{ID: "g-1", Type: lr.EventGiftSent, TS: decodeNow, StreamerID: 1, StreamID: 10, UserID: 5, Amount: 0.1, V: 1},
		{ID: "f-1", Type: lr.EventFollowDeleted, TS: decodeNow, StreamerID: 1, UserID: 5, V: 1},
	}
	for _, want := range evs {
		b := Encode(want)
		got, err := Decode(b, decodeNow, 0)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if !got.TS.Equal(want.TS) {
			t.Fatalf("%s: ts %v want %v", b, got.TS, want.TS)
		}
		got.TS = want.TS
		if got != want {
			t.Fatalf("round trip of %s:\n got %+v\nwant %+v", b, got, want)
		}
	}
}

// TestDecodeBad pairs each bad input with the part of the error that must
// name the problem.
func TestDecodeBad(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"not json", `hello`, "malformed JSON"},
		{"empty", ``, "empty or truncated"},
		{"truncated", `{"id":"x",`, "truncated"},
		{"array", `[1,2]`, "JSON object"},
		{"trailing", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":1} {}`, "trailing data"},
		{"unknown field", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":1,"colour":"red"}`, `field "colour": unknown field`},
		{"wrong json type", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":"1","stream_id":1,"v":1}`, `field "streamer_id": want int64`},
		{"unknown type", `{"id":"a","type":"stream.paused","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":1}`, `field "type": unknown event type "stream.paused"`},
		{"missing id", `{"type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":1}`, `field "id": missing`},
		{"missing v", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1}`, `field "v": missing`},
		{"version 2", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":2}`, `field "v": unsupported version 2`},
		{"bad ts", `{"id":"a","type":"stream.started","ts":"yesterday","streamer_id":1,"stream_id":1,"v":1}`, `field "ts": "yesterday" is not an RFC 3339 time`},
		{"missing ts", `{"id":"a","type":"stream.started","streamer_id":1,"stream_id":1,"v":1}`, `field "ts": missing`},
		{"future ts", `{"id":"a","type":"stream.started","ts":"2026-11-24T17:00:00Z","streamer_id":1,"stream_id":1,"v":1}`, `field "ts": 2026-11-24T17:00:00Z is 23h0m0s in the future`},
		{"missing stream", `{"id":"a","type":"viewer.joined","ts":"2026-11-23T17:00:00Z","streamer_id":1,"user_id":3,"v":1}`, `field "stream_id": missing`},
		{"missing user", `{"id":"a","type":"viewer.left","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":3,"v":1}`, `field "user_id": missing`},
		{"negative gift", `{"id":"a","type":"gift.sent","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":3,"user_id":4,"amount":-5,"v":1}`, `field "amount": must be positive, got -5`},
		{"missing streamer", `{"id":"a","type":"follow.created","ts":"2026-11-23T17:00:00Z","user_id":4,"v":1}`, `field "streamer_id"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode([]byte(c.in), decodeNow, 0)
			if err == nil {
				t.Fatalf("want error containing %q, got nil", c.want)
			}
			if lr.ErrorCode(err) != lr.EINVALID {
				t.Errorf("code %s, want %s", lr.ErrorCode(err), lr.EINVALID)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	in := Encode(lr.Event{ID: "g-123456", Type: lr.EventGiftSent, TS: decodeNow, StreamerID: 42, StreamID: 7, UserID: 9, Amount: 2.5, V: 1})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(in, decodeNow, 0); err != nil {
			b.Fatal(err)
		}
	}
}
