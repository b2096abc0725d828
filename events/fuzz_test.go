package events_test

import (
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
)

// FuzzDecode: any message either decodes to an event that validates and
// survives an encode/decode round trip unchanged, or is refused with an
// EINVALID error — never a panic.
func FuzzDecode(f *testing.F) {
	now := time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)
	for _, s := range []string{
		`{"id":"e1","type":"stream.started","ts":"2026-11-23T19:00:00Z","streamer_id":7,"stream_id":70,"category":"music","title":"hi","v":1}`,
		`{"id":"e2","type":"gift.sent","ts":"2026-11-23T19:00:00Z","streamer_id":7,"stream_id":70,"user_id":3,"amount":5.5,"v":1}`,
		`{"id":"e3","type":"viewer.joined","ts":"2026-11-23T19:00:00.123456789+02:00","streamer_id":7,"stream_id":70,"user_id":3,"v":1}`,
		`{"id":"e4","type":"follow.created","ts":"2026-11-23T19:00:00Z","streamer_id":7,"user_id":3,"v":1}`,
		`{"id":"e5","type":"gift.sent","ts":"2026-11-23T19:00:00Z","streamer_id":7,"stream_id":70,"user_id":3,"amount":-1,"v":1}`,
		`{"id":"e6","type":"nope","ts":"2026-11-23T19:00:00Z","streamer_id":7,"v":1}`,
		`{"id":"e7","type":"stream.ended","ts":"2099-01-01T00:00:00Z","streamer_id":7,"stream_id":70,"v":1}`,
		`{"id":"e8","type":"stream.ended","ts":"2026-11-23T19:00:00Z","streamer_id":7,"stream_id":70,"v":1,"extra":1}`,
		`{"id":"\u00e9\"\\","type":"stream.heartbeat","ts":"2026-11-23T19:00:00Z","streamer_id":9223372036854775807,"stream_id":1,"v":1}`,
		`{}`, `[]`, `null`, ``, `{"id":`, `{"id":"x","v":1e999}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := events.Decode(b, now, time.Hour)
		if err != nil {
			if lr.ErrorCode(err) != lr.EINVALID {
				t.Fatalf("%q: error %v has code %s, want invalid", b, err, lr.ErrorCode(err))
			}
			return
		}
		if err := e.Validate(now, time.Hour); err != nil {
			t.Fatalf("%q decoded to an event that does not validate: %v", b, err)
		}
		again, err := events.Decode(events.Encode(e), now, time.Hour)
		if err != nil {
			t.Fatalf("%q: re-encoded event does not decode: %v", b, err)
		}
		if !again.TS.Equal(e.TS) {
			t.Fatalf("%q: ts %v became %v", b, e.TS, again.TS)
		}
		again.TS = e.TS
		if again != e {
			t.Fatalf("%q: round trip changed %+v into %+v", b, e, again)
		}
	})
}
