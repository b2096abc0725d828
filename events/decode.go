package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
)

// DefaultMaxFuture is how far past its Kafka record's timestamp an event's
// ts may be before the event is rejected as bad input.
const DefaultMaxFuture = 5 * time.Minute

// judgedAt is the time an event read from Kafka is judged against: the
// record's own timestamp (set by its producer, or by the broker for a topic
// with message.timestamp.type=LogAppendTime), so a replica that reads the
// record live and one that replays it an hour later give it the same
// verdict. A record without a timestamp (the pre-0.10 format) is judged
// against now().
func judgedAt(msg kafka.Message, now func() time.Time) time.Time {
	if msg.Time.IsZero() {
		return now()
	}
	return msg.Time
}

// wire is the JSON envelope, version 1, as the reference decoder reads it:
//
//	{"id":"e-1","type":"gift.sent","ts":"2026-11-23T18:00:00.123Z",
//	 "streamer_id":42,"stream_id":7,"user_id":9,"amount":5,"v":1}
//
// ts is RFC 3339 with optional fractional seconds. category, title and
// language are optional (stream.started). Any other field is an error. Numbers are kept
// raw and converted by the parser's own rules (intValue, checkID,
// amountValue): encoding/json would refuse 12.0 for an integer, which JSON
// Schema's "integer" takes. schemas/event.schema.json is the published
// form of these rules.
type wire struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	TS         string          `json:"ts"`
	StreamerID json.RawMessage `json:"streamer_id"`
	StreamID   json.RawMessage `json:"stream_id,omitempty"`
	UserID     json.RawMessage `json:"user_id,omitempty"`
	Amount     json.RawMessage `json:"amount,omitempty"`
	Category   string          `json:"category,omitempty"`
	Title      string          `json:"title,omitempty"`
	Language   string          `json:"language,omitempty"`
	V          json.RawMessage `json:"v"`
}

// Decode parses and validates one message value. now is the time the
// event is judged against (consumers pass the record's timestamp, see
// judgedAt, never their own clock, so that every reader gives a record the
// same verdict) and maxFuture the tolerated skew between the event's ts and
// it (DefaultMaxFuture if <= 0). Decoding
// is strict: malformed JSON, trailing data, unknown or repeated fields, wrong
// JSON types, an unknown type, a missing required field, a non-positive gift
// amount or a ts too far in the future give an EINVALID *lr.Error naming the
// field. Decode is safe for concurrent use.
func Decode(b []byte, now time.Time, maxFuture time.Duration) (lr.Event, error) {
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	var e lr.Event
	var ts string
	if err := parseEnvelope(b, &e, &ts); err != nil {
		return lr.Event{}, err
	}
	return finish(e, ts, now, maxFuture)
}

// finish parses ts and validates e.
func finish(e lr.Event, ts string, now time.Time, maxFuture time.Duration) (lr.Event, error) {
	if ts != "" {
		t, err := parseTS(ts)
		if err != nil {
			return lr.Event{}, err
		}
		e.TS = t
	}
	if err := e.Validate(now, maxFuture); err != nil {
		return lr.Event{}, err
	}
	return e, nil
}

// decodeStd is the reference decoder on encoding/json (DisallowUnknownFields);
// tests check parseEnvelope against it.
func decodeStd(b []byte, now time.Time, maxFuture time.Duration) (lr.Event, error) {
	if maxFuture <= 0 {
		maxFuture = DefaultMaxFuture
	}
	e, ts, err := parseStd(b)
	if err != nil {
		return lr.Event{}, err
	}
	return finish(e, ts, now, maxFuture)
}

// parseStd is the JSON step of decodeStd.
func parseStd(b []byte) (lr.Event, string, error) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return lr.Event{}, "", jsonErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return lr.Event{}, "", lr.Errorf(lr.EINVALID, "trailing data after the JSON object")
	}
	e := lr.Event{ID: w.ID, Type: lr.EventType(w.Type), Category: w.Category, Title: w.Title, Language: w.Language}
	for _, f := range []struct {
		key string
		raw json.RawMessage
		dst *int64
		id  bool
	}{
		{"streamer_id", w.StreamerID, (*int64)(&e.StreamerID), true},
		{"stream_id", w.StreamID, (*int64)(&e.StreamID), true},
		{"user_id", w.UserID, (*int64)(&e.UserID), true},
	} {
		if err := rawInt(f.key, f.raw, f.dst); err != nil {
			return lr.Event{}, "", err
		}
		if f.raw != nil && string(f.raw) != "null" {
			if err := checkID(f.key, *f.dst); err != nil {
				return lr.Event{}, "", err
			}
		}
	}
	var v int64
	if err := rawInt("v", w.V, &v); err != nil {
		return lr.Event{}, "", err
	}
	if w.V != nil && string(w.V) != "null" {
		if err := checkVersion(v); err != nil {
			return lr.Event{}, "", err
		}
	}
	e.V = int(v)
	if w.Amount != nil && string(w.Amount) != "null" {
		if w.Amount[0] != '-' && (w.Amount[0] < '0' || w.Amount[0] > '9') {
			return lr.Event{}, "", typeErr("amount", "a number", jsonKindName(w.Amount[0]))
		}
		f, err := amountValue(w.Amount)
		if err != nil {
			return lr.Event{}, "", err
		}
		e.Amount = f
	}
	return e, w.TS, nil
}

// rawInt converts a raw JSON value of the reference decoder to an integer;
// absent and null leave dst as it is.
func rawInt(key string, raw json.RawMessage, dst *int64) error {
	if raw == nil || string(raw) == "null" {
		return nil
	}
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return typeErr(key, "an integer", jsonKindName(raw[0]))
	}
	v, err := intValue(key, raw)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// jsonKindName names the JSON value starting with c.
func jsonKindName(c byte) string {
	switch c {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "boolean"
	}
	return "null"
}

func jsonErr(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return lr.Errorf(lr.EINVALID, "event must be a JSON object, got %s", te.Value)
		}
		// Every field not kept raw is a string.
		return typeErr(te.Field, "a string", lr.Clip(te.Value, 72))
	case errors.As(err, &se):
		return lr.Errorf(lr.EINVALID, "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return lr.Errorf(lr.EINVALID, "empty or truncated message")
	}
	// encoding/json reports unknown fields as `json: unknown field "x"`.
	msg := err.Error()
	const p = "json: unknown field "
	if len(msg) > len(p) && msg[:len(p)] == p {
		return lr.Errorf(lr.EINVALID, "field %s: unknown field", lr.Clip(msg[len(p):], 66))
	}
	return lr.Errorf(lr.EINVALID, "cannot decode event: %v", err)
}

// Encode returns the JSON envelope of e (it does not validate; producers
// call e.Validate first if the event comes from outside). V defaults to
// lr.EventVersion.
func Encode(e lr.Event) []byte {
	return AppendEncode(nil, e)
}

// AppendEncode appends the JSON envelope of e to dst.
func AppendEncode(dst []byte, e lr.Event) []byte {
	v := e.V
	if v == 0 {
		v = lr.EventVersion
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"type":`...)
	dst = appendString(dst, string(e.Type))
	dst = append(dst, `,"ts":"`...)
	dst = e.TS.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","streamer_id":`...)
	dst = strconv.AppendInt(dst, int64(e.StreamerID), 10)
	if e.StreamID != 0 {
		dst = append(dst, `,"stream_id":`...)
		dst = strconv.AppendInt(dst, int64(e.StreamID), 10)
	}
	if e.UserID != 0 {
		dst = append(dst, `,"user_id":`...)
		dst = strconv.AppendInt(dst, int64(e.UserID), 10)
	}
	if e.Amount != 0 {
		dst = append(dst, `,"amount":`...)
		dst = strconv.AppendFloat(dst, e.Amount, 'g', -1, 64)
	}
	if e.Category != "" {
		dst = append(dst, `,"category":`...)
		dst = appendString(dst, e.Category)
	}
	if e.Title != "" {
		dst = append(dst, `,"title":`...)
		dst = appendString(dst, e.Title)
	}
	if e.Language != "" {
		dst = append(dst, `,"language":`...)
		dst = appendString(dst, e.Language)
	}
	dst = append(dst, `,"v":`...)
	dst = strconv.AppendInt(dst, int64(v), 10)
	return append(dst, '}')
}

// appendString appends s as a JSON string. For printable ASCII, Go quoting
// and JSON quoting agree; anything else goes through encoding/json.
func appendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	return strconv.AppendQuote(dst, s)
}

// Key is the message key of e: the decimal streamer id. All of one
// streamer's events share it, so they land on one partition in order.
func Key(e lr.Event) []byte {
	return strconv.AppendInt(nil, int64(e.StreamerID), 10)
}
