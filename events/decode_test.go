package events

import (
	"bytes"
	"math/rand/v2"
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
		{"wrong json type", `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":"1","stream_id":1,"v":1}`, `field "streamer_id": want an integer, got string`},
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
	// String fields are bounded and must be valid text; the error names
	// the field without quoting the whole value.
	started := func(field, value string) string {
		return `{"id":"a","type":"stream.started","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":1,"v":1,` + `"` + field + `":` + value + `}`
	}
	big := strings.Repeat("x", 1_000_000)
	cases = append(cases, []struct{ name, in, want string }{
		{"title of a million characters", started("title", `"`+big+`"`), `field "title": 1000000 characters, longer than the limit of 1024`},
		{"long category", started("category", `"`+strings.Repeat("é", 129)+`"`), `field "category": 129 characters, longer than the limit of 128`},
		{"long id", strings.Replace(started("title", `"t"`), `"id":"a"`, `"id":"`+strings.Repeat("i", 201)+`"`, 1), `field "id": 201 characters, longer than the limit of 200`},
		{"invalid UTF-8 in id", strings.Replace(started("title", `"t"`), `"id":"a"`, "\"id\":\"a\xff\xfeb\"", 1), `field "id": not valid UTF-8 at byte 1`},
		{"lone surrogate in id", strings.Replace(started("title", `"t"`), `"id":"a"`, `"id":"a\ud800"`, 1), `field "id": not valid UTF-8`},
		{"invalid UTF-8 in title", started("title", "\"ok \xc3\""), `field "title": not valid UTF-8 at byte 3`},
		{"NUL in category", started("category", `"mu\u0000sic"`), `field "category": control character U+0000 at byte 2`},
		{"line break in id", strings.Replace(started("title", `"t"`), `"id":"a"`, `"id":"a\nb"`, 1), `field "id": control character U+000A`},
		{"escape in title", started("title", `"\u001b[31m"`), `field "title": control character U+001B`},
		{"huge type", strings.Replace(started("title", `"t"`), `"stream.started"`, `"`+big+`"`, 1), `field "type": unknown event type "xxxx`},
		{"huge unknown key", started(big, `1`), `: unknown field`},
		{"huge ts", strings.Replace(started("title", `"t"`), `"2026-11-23T17:00:00Z"`, `"`+big+`"`, 1), `is not an RFC 3339 time`},
		{"huge number", started("user_id", big[:0]+strings.Repeat("9", 100_000)), `field "user_id": want an integer, got number 9999`},
	}...)
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
				t.Fatalf("error %q does not contain %q", lr.Clip(err.Error(), 300), c.want)
			}
			if n := len(err.Error()); n > 300 {
				t.Fatalf("error of %d bytes: %q", n, lr.Clip(err.Error(), 300))
			}
			// The reference decoder refuses it too.
			if _, err := decodeStd([]byte(c.in), decodeNow, 0); err == nil {
				t.Fatalf("encoding/json path accepted it")
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

// TestParseMatchesEncodingJSON checks the hand-written parser against
// encoding/json on valid events, the bad cases and random corruptions of
// them: both accept or both reject, and accepted events are equal. The
// parser may only be stricter about key spelling (encoding/json matches
// keys case-insensitively), repeated keys and a top-level null.
func TestParseMatchesEncodingJSON(t *testing.T) {
	seeds := [][]byte{
		[]byte(`{"id":"g-1","type":"gift.sent","ts":"2026-11-23T17:59:00.5Z","streamer_id":42,"stream_id":7,"user_id":9,"amount":2.5,"v":1}`),
		[]byte(` { "id" : "s\u00e9-\"1\"" , "type":"stream.started","ts":"2026-11-23T17:59:00+01:00","streamer_id":1,"stream_id":2,"category":"m\\u","title":null,"v":1 } `),
		[]byte(`{"id":"f","type":"follow.deleted","ts":"2026-11-23T17:00:00Z","streamer_id":-0,"user_id":4,"v":1}`),
		[]byte(`{"id":"x","type":"gift.sent","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":3,"user_id":4,"amount":1e2,"v":1.0}`),
		[]byte(`{"id":"x","type":"gift.sent","ts":"2026-11-23T17:00:00Z","streamer_id":99999999999999999999,"stream_id":3,"user_id":4,"amount":1,"v":1}`),
		[]byte(`{"id":"x","type":"stream.ended","ts":"2026-11-23T17:00:00Z","streamer_id":01,"stream_id":3,"v":1}`),
		[]byte(`{"id":"x","type":"stream.ended","ts":"2026-11-23T17:00:00Z","streamer_id":1,"stream_id":3,"v":1}}`),
		[]byte(`{"id":"w","type":"gift.sent","ts":"2026-11-23T17:00:00Z","streamer_id":4.20e1,"stream_id":3.0,"user_id":40E-1,"amount":0.5e1,"v":1.0}`),
		[]byte(`{"id":"n","type":"follow.created","ts":"2026-11-23T17:00:00.000001-05:30","streamer_id":8,"stream_id":null,"user_id":9,"amount":null,"category":null,"v":1}`),
		[]byte(`{}`), []byte(`null`), []byte(`"x"`), []byte(`{"id":}`), []byte(`{"id":"a" "type":"x"}`),
	}
	for _, e := range []lr.Event{
		{ID: "a", Type: lr.EventViewerJoined, TS: decodeNow, StreamerID: 5, StreamID: 6, UserID: 7, V: 1},
		{ID: "b", Type: lr.EventStreamStarted, TS: decodeNow, StreamerID: 5, StreamID: 6, Title: "tab\there ☃", Category: "c", V: 1},
	} {
		seeds = append(seeds, Encode(e))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var inputs [][]byte
	for _, s := range seeds {
		inputs = append(inputs, s)
		for k := 0; k < 400; k++ {
			b := append([]byte(nil), s...)
			switch rng.IntN(4) {
			case 0:
				if len(b) > 0 {
					b[rng.IntN(len(b))] = "{}[]\":,0-9.eE \\nulltrueax"[rng.IntN(25)]
				}
			case 1:
				b = b[:rng.IntN(len(b)+1)]
			case 2:
				if len(b) > 0 {
					i := rng.IntN(len(b))
					b = append(b[:i], b[i+1:]...)
				}
			case 3:
				i := rng.IntN(len(b) + 1)
				b = append(b[:i], append([]byte{"{}\":,1 \\"[rng.IntN(8)]}, b[i:]...)...)
			}
			inputs = append(inputs, b)
		}
	}
	accepted := 0
	for _, in := range inputs {
		var got lr.Event
		var gts string
		gerr := parseEnvelope(in, &got, &gts)
		want, wts, werr := parseStd(in)
		switch {
		case gerr == nil && werr == nil:
			accepted++
			if gts != wts || got != want {
				t.Errorf("%q:\n got %+v\nwant %+v", in, got, want)
			}
		case gerr != nil && werr != nil:
		case gerr != nil && (strings.Contains(gerr.Error(), "unknown field") || strings.Contains(gerr.Error(), "given twice") || string(bytes.TrimSpace(in)) == "null"):
		default:
			t.Errorf("%q: parser error %v, encoding/json error %v", in, gerr, werr)
		}
	}
	if accepted < len(inputs)/10 {
		t.Errorf("only %d of %d inputs decoded: the corpus tests little", accepted, len(inputs))
	}
	t.Logf("%d inputs, %d accepted by both", len(inputs), accepted)
}

// wholeNumber judges a number with very many fraction digits and a very
// large exponent by its value: 0.<1,500,000 zeros>1 × 10^12,000,000 is a
// whole number far outside int64, not a fraction (an exponent bounded at a
// million called it one).
func TestWholeNumberLongFractionLargeExponent(t *testing.T) {
	tok := []byte("0." + strings.Repeat("0", 1_500_000) + "1e12000000")
	if _, whole, inRange := wholeNumber(tok); !whole || inRange {
		t.Fatalf("wholeNumber: whole %v, in range %v; want a whole number out of range", whole, inRange)
	}
	if _, whole, inRange := wholeNumber([]byte("1.25e1")); whole || inRange {
		t.Fatalf("wholeNumber(1.25e1): whole %v, in range %v; want a fraction", whole, inRange)
	}
}
