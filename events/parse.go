package events

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	lr "github.com/liverecall/liverecall"
)

// parseEnvelope is the hot-path decoder of the v1 envelope: one flat JSON
// object with known keys, parsed in a single pass without reflection. It is
// as strict as encoding/json with DisallowUnknownFields (and a little
// stricter: a repeated key is an error) and is checked against it by
// TestParseMatchesEncodingJSON. Strings with escapes are handed to
// encoding/json.
func parseEnvelope(b []byte, e *lr.Event, ts *string) error {
	p := parser{b: b}
	p.ws()
	if !p.eat('{') {
		if p.i >= len(p.b) {
			return lr.Errorf(lr.EINVALID, "empty or truncated message")
		}
		if c := p.b[p.i]; c == '[' || c == '"' || c == 't' || c == 'f' || c == 'n' || c == '-' || (c >= '0' && c <= '9') {
			return lr.Errorf(lr.EINVALID, "event must be a JSON object")
		}
		return p.syntax("looking for beginning of object")
	}
	var seen uint16
	p.ws()
	if !p.eat('}') {
		for {
			p.ws()
			key, err := p.rawStr()
			if err != nil {
				return err
			}
			p.ws()
			if !p.eat(':') {
				return p.syntax("after object key")
			}
			p.ws()
			bit, err := p.field(key, e, ts)
			if err != nil {
				return err
			}
			if seen&bit != 0 {
				return lr.Errorf(lr.EINVALID, "field %q: given twice", lr.Clip(string(key), 64))
			}
			seen |= bit
			p.ws()
			if p.eat(',') {
				continue
			}
			if p.eat('}') {
				break
			}
			return p.syntax("after object key:value pair")
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return lr.Errorf(lr.EINVALID, "trailing data after the JSON object")
	}
	return nil
}

type parser struct {
	b []byte
	i int
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) syntax(where string) error {
	if p.i >= len(p.b) {
		return lr.Errorf(lr.EINVALID, "empty or truncated message")
	}
	return lr.Errorf(lr.EINVALID, "malformed JSON at byte %d: invalid character %q %s", p.i+1, p.b[p.i], where)
}

// rawStr returns the bytes of the JSON string at p.i without copying when
// it has no escapes.
func (p *parser) rawStr() ([]byte, error) {
	if !p.eat('"') {
		return nil, p.syntax("looking for beginning of string")
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], nil
		case c == '\\' || c >= utf8.RuneSelf:
			s, err := p.slowStr(start - 1)
			return []byte(s), err
		case c < 0x20:
			return nil, lr.Errorf(lr.EINVALID, "malformed JSON at byte %d: control character in string", p.i+1)
		}
		p.i++
	}
	return nil, lr.Errorf(lr.EINVALID, "empty or truncated message")
}

// str parses a JSON string at p.i.
func (p *parser) str() (string, error) {
	if !p.eat('"') {
		return "", p.syntax("looking for beginning of string")
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, nil
		case c == '\\':
			return p.slowStr(start - 1)
		case c < 0x20:
			return "", lr.Errorf(lr.EINVALID, "malformed JSON at byte %d: control character in string", p.i+1)
		case c >= utf8.RuneSelf:
			return p.slowStr(start - 1)
		}
		p.i++
	}
	return "", lr.Errorf(lr.EINVALID, "empty or truncated message")
}

// slowStr finds the end of the string starting at quote and decodes it with
// encoding/json (escapes, UTF-8).
func (p *parser) slowStr(quote int) (string, error) {
	i := quote + 1
	for i < len(p.b) {
		switch p.b[i] {
		case '\\':
			i += 2
			continue
		case '"':
			var s string
			if err := json.Unmarshal(p.b[quote:i+1], &s); err != nil {
				return "", lr.Errorf(lr.EINVALID, "malformed JSON string at byte %d: %v", quote+1, err)
			}
			p.i = i + 1
			return s, nil
		}
		i++
	}
	return "", lr.Errorf(lr.EINVALID, "empty or truncated message")
}

// kind of the JSON value at p.i, for type errors.
func (p *parser) kind() string {
	if p.i >= len(p.b) {
		return "nothing"
	}
	switch c := p.b[p.i]; {
	case c == '"':
		return "string"
	case c == '{':
		return "object"
	case c == '[':
		return "array"
	case c == 't' || c == 'f':
		return "bool"
	case c == 'n':
		return "null"
	case c == '-' || (c >= '0' && c <= '9'):
		return "number"
	}
	return "invalid"
}

// num returns the number token at p.i.
func (p *parser) num() ([]byte, bool) {
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			p.i++
			continue
		}
		break
	}
	tok := p.b[start:p.i]
	if len(tok) == 0 || tok[0] == '+' || tok[0] == '.' {
		return nil, false
	}
	// JSON forbids leading zeros ("01") and a bare "-".
	d := tok
	if d[0] == '-' {
		d = d[1:]
	}
	if len(d) == 0 || d[0] < '0' || d[0] > '9' || (len(d) > 1 && d[0] == '0' && d[1] >= '0' && d[1] <= '9') {
		return nil, false
	}
	return tok, true
}

// null consumes a JSON null; encoding/json leaves the field as it was.
func (p *parser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

func (p *parser) field(key []byte, e *lr.Event, ts *string) (uint16, error) {
	var bit uint16
	var sp *string
	var ip *int64
	switch string(key) {
	case "id":
		bit, sp = 1, &e.ID
	case "type":
		bit = 2
		if p.null() {
			return bit, nil
		}
		if p.kind() != "string" {
			return bit, typeErr("type", "lr.EventType", p.kind())
		}
		raw, err := p.rawStr()
		if err != nil {
			return bit, err
		}
		e.Type = internType(raw)
		return bit, nil
	case "ts":
		bit, sp = 4, ts
	case "category":
		bit, sp = 8, &e.Category
	case "title":
		bit, sp = 16, &e.Title
	case "streamer_id":
		bit, ip = 32, (*int64)(&e.StreamerID)
	case "stream_id":
		bit, ip = 64, (*int64)(&e.StreamID)
	case "user_id":
		bit, ip = 128, (*int64)(&e.UserID)
	case "v":
		bit = 256
		var v int64
		if p.null() {
			return bit, nil
		}
		if err := p.int("v", "int", &v); err != nil {
			return bit, err
		}
		e.V = int(v)
		return bit, nil
	case "amount":
		bit = 512
		if p.null() {
			return bit, nil
		}
		if p.kind() != "number" {
			return bit, typeErr("amount", "float64", p.kind())
		}
		tok, ok := p.num()
		if !ok {
			return bit, p.syntax("in numeric literal")
		}
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil {
			return bit, typeErr("amount", "float64", "number "+lr.Clip(string(tok), 64))
		}
		e.Amount = f
		return bit, nil
	default:
		return 0, lr.Errorf(lr.EINVALID, "field %q: unknown field", lr.Clip(string(key), 64))
	}
	if p.null() {
		return bit, nil
	}
	if sp != nil {
		if p.kind() != "string" {
			return bit, typeErr(string(key), "string", p.kind())
		}
		s, err := p.str()
		*sp = s
		return bit, err
	}
	return bit, p.int(string(key), "int64", ip)
}

// internType returns the constant for a known type without allocating.
func internType(b []byte) lr.EventType {
	switch string(b) {
	case string(lr.EventStreamStarted):
		return lr.EventStreamStarted
	case string(lr.EventStreamEnded):
		return lr.EventStreamEnded
	case string(lr.EventStreamHeartbeat):
		return lr.EventStreamHeartbeat
	case string(lr.EventViewerJoined):
		return lr.EventViewerJoined
	case string(lr.EventViewerLeft):
		return lr.EventViewerLeft
	case string(lr.EventGiftSent):
		return lr.EventGiftSent
	case string(lr.EventFollowCreated):
		return lr.EventFollowCreated
	case string(lr.EventFollowDeleted):
		return lr.EventFollowDeleted
	}
	return lr.EventType(b)
}

func (p *parser) int(key, typ string, dst *int64) error {
	if p.kind() != "number" {
		return typeErr(key, typ, p.kind())
	}
	tok, ok := p.num()
	if !ok {
		return p.syntax("in numeric literal")
	}
	v, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil {
		return typeErr(key, typ, "number "+lr.Clip(string(tok), 64))
	}
	*dst = v
	return nil
}

func typeErr(key, want, got string) error {
	return lr.Errorf(lr.EINVALID, "field %q: want %s, got %s", key, want, got)
}

// parseTS parses the envelope's ts.
func parseTS(s string) (time.Time, error) {
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, lr.Errorf(lr.EINVALID, "field \"ts\": %q is not an RFC 3339 time", lr.Clip(s, 64))
	}
	return ts, nil
}
