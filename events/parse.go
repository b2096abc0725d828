package events

import (
	"encoding/json"
	"strconv"
	"strings"
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
	err := p.members(func(key []byte) error {
		bit, err := p.field(key, e, ts)
		if err != nil {
			return err
		}
		if seen&bit != 0 {
			return lr.Errorf(lr.EINVALID, "field %q: given twice", lr.Clip(string(key), 64))
		}
		seen |= bit
		return nil
	})
	if err != nil {
		return err
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

// members reads the members of the object whose '{' p has just passed, up
// to and including its '}': for each, the key and the ':', then value(key)
// reads the value.
func (p *parser) members(value func(key []byte) error) error {
	p.ws()
	if p.eat('}') {
		return nil
	}
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
		if err := value(key); err != nil {
			return err
		}
		p.ws()
		if p.eat(',') {
			continue
		}
		if p.eat('}') {
			return nil
		}
		return p.syntax("after object key:value pair")
	}
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
	return tok, validNumber(tok)
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
	var name string // an id's key as a constant: string(key) would allocate
	switch string(key) {
	case "id":
		bit, sp = 1, &e.ID
	case "type":
		bit = 2
		if p.null() {
			return bit, nil
		}
		if p.kind() != "string" {
			return bit, typeErr("type", "a string", p.kind())
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
	case "language":
		bit, sp = 1024, &e.Language
	case "streamer_id":
		bit, ip, name = 32, (*int64)(&e.StreamerID), "streamer_id"
	case "stream_id":
		bit, ip, name = 64, (*int64)(&e.StreamID), "stream_id"
	case "user_id":
		bit, ip, name = 128, (*int64)(&e.UserID), "user_id"
	case "v":
		bit = 256
		var v int64
		if p.null() {
			return bit, nil
		}
		if err := p.int("v", &v); err != nil {
			return bit, err
		}
		if err := checkVersion(v); err != nil {
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
			return bit, typeErr("amount", "a number", p.kind())
		}
		tok, ok := p.num()
		if !ok {
			return bit, p.syntax("in numeric literal")
		}
		f, err := amountValue(tok)
		if err != nil {
			return bit, err
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
			return bit, typeErr(string(key), "a string", p.kind())
		}
		s, err := p.str()
		*sp = s
		return bit, err
	}
	if err := p.int(name, ip); err != nil {
		return bit, err
	}
	return bit, checkID(name, *ip)
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

// int parses the JSON number at p.i into dst; it must denote an integer in
// int64's range (see intValue).
func (p *parser) int(key string, dst *int64) error {
	if p.kind() != "number" {
		return typeErr(key, "an integer", p.kind())
	}
	tok, ok := p.num()
	if !ok {
		return p.syntax("in numeric literal")
	}
	v, err := intValue(key, tok)
	if err != nil {
		return err
	}
	*dst = v
	return nil
}

// typeErr words a JSON type mismatch in JSON terms: the field, the JSON type
// it takes (with its article: "a string", "an integer") and what was sent.
func typeErr(key, want, got string) error {
	if got == "bool" {
		got = "boolean"
	}
	return lr.Errorf(lr.EINVALID, "field %q: want %s, got %s", lr.Clip(key, 64), want, got)
}

// checkID refuses an id given as zero or negative: ids are positive, and an
// id that is not there is left out (or null), not written as 0.
func checkID(key string, v int64) error {
	if v <= 0 {
		return lr.Errorf(lr.EINVALID, "field %q: must be positive, got %d", key, v)
	}
	return nil
}

// checkVersion refuses a v given as another version than EventVersion
// (absent, it is Validate's "missing").
func checkVersion(v int64) error {
	if v != lr.EventVersion {
		return lr.Errorf(lr.EINVALID, "field \"v\": unsupported version %d (this build reads %d)", v, lr.EventVersion)
	}
	return nil
}

// amountValue parses a gift amount: a JSON number greater than zero that
// float64 can hold.
func amountValue(tok []byte) (float64, error) {
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil {
		return 0, typeErr("amount", "a number", "number "+lr.Clip(string(tok), 64)+" (out of range)")
	}
	if f <= 0 {
		return 0, lr.Errorf(lr.EINVALID, "field \"amount\": must be positive, got %s", lr.Clip(string(tok), 64))
	}
	return f, nil
}

// intValue converts the JSON number tok (valid JSON number syntax) to an
// int64. JSON has one number type and JSON Schema's "integer" is any number
// whose value is whole, so 12, 12.0 and 1.2e1 all give 12; a fraction or a
// value outside int64 is refused with an error naming key.
func intValue(key string, tok []byte) (int64, error) {
	if v, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
		return v, nil
	}
	v, whole, inRange := wholeNumber(tok)
	switch {
	case !whole:
		return 0, typeErr(key, "an integer", "number "+lr.Clip(string(tok), 64))
	case !inRange:
		return 0, typeErr(key, "an integer", "number "+lr.Clip(string(tok), 64)+" (out of range)")
	}
	return v, nil
}

// wholeNumber reads a JSON number token exactly, without floating point:
// whole reports that its value has no fractional part, inRange that it
// also fits an int64 (then v is the value). Exponents are bounded, so
// "1e999999999" costs no more than "1e9".
func wholeNumber(tok []byte) (v int64, whole, inRange bool) {
	neg := len(tok) > 0 && tok[0] == '-'
	if neg {
		tok = tok[1:]
	}
	digits, exp := decimalDigits(tok)
	if len(digits) == 0 {
		return 0, true, true // a zero
	}
	if exp < 0 {
		return 0, false, false // the last significant digit is after the point
	}
	if len(digits)+exp > 19 {
		return 0, true, false
	}
	s := make([]byte, 0, 21)
	if neg {
		s = append(s, '-')
	}
	s = append(s, digits...)
	for range exp {
		s = append(s, '0')
	}
	n, err := strconv.ParseInt(string(s), 10, 64)
	return n, true, err == nil
}

// validNumber reports whether tok is a JSON number:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(tok []byte) bool {
	i := 0
	digits := func() int {
		j := i
		for i < len(tok) && tok[i] >= '0' && tok[i] <= '9' {
			i++
		}
		return i - j
	}
	if i < len(tok) && tok[i] == '-' {
		i++
	}
	if i < len(tok) && tok[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(tok) && tok[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(tok) && (tok[i] == 'e' || tok[i] == 'E') {
		i++
		if i < len(tok) && (tok[i] == '+' || tok[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(tok)
}

// parseTS parses the envelope's ts: an RFC 3339 date-time in the shape
// the JSON Schema's pattern gives it (upper-case T and Z, a period before
// the fraction, an offset within ±23:59), a real date and time.
// time.Parse alone takes more ("7:00:00" for the hour, a comma before the
// fraction, an offset of +24:00).
func parseTS(s string) (time.Time, error) { return parseTime("ts", s) }

// parseTime parses the RFC 3339 time s of field key (the envelope's ts,
// an impression's shown_at) as parseTS describes.
func parseTime(key, s string) (time.Time, error) {
	if !tsShape(s) {
		return time.Time{}, lr.Errorf(lr.EINVALID, "field %q: %q is not an RFC 3339 time like 2026-11-23T18:00:00.123Z", key, lr.Clip(s, 64))
	}
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, lr.Errorf(lr.EINVALID, "field %q: %q is not an RFC 3339 time (%s)", key, lr.Clip(s, 64), tsProblem(err))
	}
	return ts, nil
}

// tsProblem is what time.Parse found wrong with a ts of the right shape,
// without the Go layout its message quotes ("day out of range").
func tsProblem(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "not a real date"
}

// tsShape reports whether s is dddd-dd-ddTdd:dd:dd[.d+](Z|±dd:dd) with
// month 01-12, day 01-31, hour 00-23, minute and second 00-59 and an
// offset hour 00-23.
func tsShape(s string) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(shape)+1 {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if c := s[i]; shape[i] == 'd' && (c < '0' || c > '9') || shape[i] != 'd' && c != shape[i] {
			return false
		}
	}
	two := func(i int) int { return int(s[i]-'0')*10 + int(s[i+1]-'0') }
	if m, d := two(5), two(8); m < 1 || m > 12 || d < 1 || d > 31 || two(11) > 23 || two(14) > 59 || two(17) > 59 {
		return false
	}
	rest := s[len(shape):]
	if rest[0] == '.' {
		j := 1
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 1 {
			return false
		}
		rest = rest[j:]
	}
	if rest == "Z" {
		return true
	}
	if len(rest) != 6 || (rest[0] != '+' && rest[0] != '-') || rest[3] != ':' {
		return false
	}
	for _, i := range [4]int{1, 2, 4, 5} {
		if rest[i] < '0' || rest[i] > '9' {
			return false
		}
	}
	return two(len(s)-5) <= 23 && two(len(s)-2) <= 59
}
