package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	lr "github.com/liverecall/liverecall"
)

// DecodeStrict decodes one JSON value from body into v, with an EINVALID
// error naming the problem in the client's terms (JSON keys, JSON types,
// never Go types). Beyond what encoding/json checks it refuses what it
// would otherwise take with a guessed meaning:
//   - a body that is not valid UTF-8;
//   - an object holding the same key twice, at any depth (encoding/json
//     keeps the last);
//   - a key that is not exactly one of the target struct's JSON field names
//     (encoding/json matches them case-insensitively, "USER_ID" and even
//     the Kelvin sign for "k"), at any depth of nested structs;
//   - unknown fields and data after the value.
func DecodeStrict(body []byte, v any) error {
	if !utf8.Valid(body) {
		return lr.Errorf(lr.EINVALID, "request body is not valid UTF-8")
	}
	t := reflect.TypeOf(v)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if err := checkKeys(body, shapeOf(t)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			return lr.Errorf(lr.EINVALID, "request body is empty")
		case errors.As(err, &se):
			return lr.Errorf(lr.EINVALID, "malformed JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return typeError(t, te)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return lr.Errorf(lr.EINVALID, "unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return lr.Errorf(lr.EINVALID, "malformed JSON: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return lr.Errorf(lr.EINVALID, "malformed JSON: data after the request object")
	}
	return nil
}

// typeError words encoding/json's type mismatch in JSON terms: the field as
// its JSON path and the type that was expected as a JSON type, in the
// words the event decoder uses too (`field "user_id": want an integer, got
// string`), never the Go type encoding/json names ("int64",
// "api.RecallRequest").
func typeError(root reflect.Type, te *json.UnmarshalTypeError) error {
	got := te.Value
	if got == "bool" {
		got = "boolean"
	}
	if te.Field == "" {
		return lr.Errorf(lr.EINVALID, "request body: want %s, got %s", article(jsonType(root)), got)
	}
	want := te.Type
	if ft := fieldType(root, te.Field); ft != nil {
		want = ft
		// encoding/json names the element's type when an element is wrong.
		if k := ft.Kind(); (k == reflect.Slice || k == reflect.Array) && ft.Elem() == te.Type && te.Type != ft {
			got += " in the array"
		}
	}
	wt := jsonType(want)
	if n, ok := strings.CutPrefix(got, "number "); ok && wt == "integer" && !strings.ContainsAny(n, ".eE") {
		got += " (out of range)"
	}
	return lr.Errorf(lr.EINVALID, "field %q: want %s, got %s", te.Field, article(wt), got)
}

// article puts "a" or "an" before a JSON type's name.
func article(s string) string {
	if s != "" && strings.ContainsRune("aeiou", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

// fieldType follows a dotted path of JSON field names from t; nil when the
// path leaves the structs.
func fieldType(t reflect.Type, path string) reflect.Type {
	for name := range strings.SplitSeq(path, ".") {
		s := shapeOf(t)
		if s.fields == nil {
			return nil
		}
		var ok bool
		if t, ok = s.types[name]; !ok {
			return nil
		}
	}
	return t
}

var (
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
)

// jsonType names the JSON type a Go type decodes from.
func jsonType(t reflect.Type) string {
	if t == rawMessageType {
		return "JSON value"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return jsonType(t.Elem())
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "string" // base64
		}
		return "array of " + plural(jsonType(t.Elem()))
	}
	return "JSON value"
}

func plural(s string) string {
	if strings.HasPrefix(s, "array of ") {
		return "arrays of " + strings.TrimPrefix(s, "array of ")
	}
	if s == "JSON value" {
		return "JSON values"
	}
	return s + "s"
}

// shape is what the key check knows of a Go type.
type shape struct {
	// opaque: the type holds no JSON object (a scalar or an array of
	// them); a value for it is skipped whole, and an object there is the
	// decoder's type error.
	opaque bool
	fields map[string]*shape       // a struct's fields by exact JSON name; nil otherwise
	types  map[string]reflect.Type // the same fields' Go types
	lower  map[string]string       // lower-cased field name -> field name, for the hint
	elem   *shape                  // a slice's, array's or map's elements
}

// Shapes of types with no fields to check: free-form JSON (json.RawMessage,
// any, custom unmarshalers), whose objects are checked for duplicate keys
// only, and opaque types.
var (
	free   = &shape{}
	opaque = &shape{opaque: true}
)

var shapes sync.Map // reflect.Type -> *shape

func shapeOf(t reflect.Type) *shape {
	if t == nil {
		return free
	}
	if s, ok := shapes.Load(t); ok {
		return s.(*shape)
	}
	s := buildShape(t, map[reflect.Type]*shape{})
	shapes.Store(t, s)
	return s
}

func buildShape(t reflect.Type, building map[reflect.Type]*shape) *shape {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if s, ok := building[t]; ok {
		return s // a recursive type
	}
	if t == rawMessageType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return free
	}
	switch t.Kind() {
	case reflect.Struct:
		s := &shape{fields: map[string]*shape{}, types: map[string]reflect.Type{}, lower: map[string]string{}}
		building[t] = s
		addFields(s, t, building)
		return s
	case reflect.Slice, reflect.Array, reflect.Map:
		s := &shape{}
		building[t] = s
		s.elem = buildShape(t.Elem(), building)
		switch {
		case s.elem.opaque && t.Kind() != reflect.Map:
			return opaque
		case s.elem == free:
			return free
		}
		return s
	case reflect.Interface:
		return free
	}
	return opaque
}

// addFields adds t's JSON fields to s, those of embedded structs included,
// with encoding/json's naming rules (tag name, else the Go name).
func addFields(s *shape, t reflect.Type, building map[reflect.Type]*shape) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(s, ft, building)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		s.fields[name] = buildShape(f.Type, building)
		s.types[name] = f.Type
		s.lower[strings.ToLower(name)] = name
	}
}

// checkKeys scans body and refuses duplicate keys anywhere and keys of
// struct-shaped objects that are not exactly a field's JSON name. It is a
// single pass over the bytes that allocates only for escaped keys, paths of
// errors, objects of more than 8 keys and nesting deeper than 8. It returns
// nil at anything malformed (nesting deeper than encoding/json's limit
// included): the decoder reports that.
func checkKeys(body []byte, root *shape) error {
	var (
		stackA [8]keyFrame
		stack  = stackA[:0]
		keysA  [16][]byte
		keys   = keysA[:0] // the keys of the open objects, innermost last
	)
	p := scanner{b: body}
	s := root
	for {
		// The value at p.i, of shape s.
		p.ws()
		if p.i >= len(p.b) {
			return nil
		}
		switch c := p.b[p.i]; c {
		case '{', '[':
			if len(stack) == maxDepth {
				return nil
			}
			p.i++
			stack = append(stack, keyFrame{s: s, object: c == '{', keys: len(keys)})
		case '"':
			if _, _, ok := p.str(); !ok {
				return nil
			}
		default:
			if !p.scalar() {
				return nil
			}
		}
		// Where the value after it starts, and its shape.
	next:
		for {
			if len(stack) == 0 {
				return nil
			}
			top := &stack[len(stack)-1]
			p.ws()
			if p.i >= len(p.b) {
				return nil
			}
			c := p.b[p.i]
			if (top.object && c == '}') || (!top.object && c == ']') {
				p.i++
				keys = keys[:top.keys]
				stack = stack[:len(stack)-1]
				continue
			}
			if top.n > 0 {
				if c != ',' {
					return nil
				}
				p.i++
				p.ws()
			}
			top.n++
			if !top.object {
				s = elemOf(top.s)
				break next
			}
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil
			}
			start, end, ok := p.str()
			if !ok {
				return nil
			}
			key := p.b[start:end]
			if bytes.IndexByte(key, '\\') >= 0 {
				var k string
				if json.Unmarshal(p.b[start-1:end+1], &k) != nil {
					return nil
				}
				key = []byte(k)
			}
			p.ws()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil
			}
			p.i++
			top.key = key
			if top.s.opaque {
				s = opaque // a type error for the decoder to report
				break next
			}
			if top.seen != nil {
				if _, dup := top.seen[string(key)]; dup {
					return lr.Errorf(lr.EINVALID, "duplicate key %q", keyPath(stack, ""))
				}
				top.seen[string(key)] = struct{}{}
			} else {
				for _, k := range keys[top.keys:] {
					if bytes.Equal(k, key) {
						return lr.Errorf(lr.EINVALID, "duplicate key %q", keyPath(stack, ""))
					}
				}
				if keys = append(keys, key); len(keys)-top.keys > 8 {
					top.seen = make(map[string]struct{}, 32)
					for _, k := range keys[top.keys:] {
						top.seen[string(k)] = struct{}{}
					}
					keys = keys[:top.keys]
				}
			}
			if top.s.fields == nil {
				s = elemOf(top.s)
				break next
			}
			if s, ok = top.s.fields[string(key)]; !ok {
				if name, ok := top.s.lower[strings.ToLower(string(key))]; ok {
					return lr.Errorf(lr.EINVALID, "unknown field %q (field names are case-sensitive: did you mean %q?)", keyPath(stack, ""), keyPath(stack, name))
				}
				return lr.Errorf(lr.EINVALID, "unknown field %q", keyPath(stack, ""))
			}
			break next
		}
	}
}

// maxDepth is encoding/json's limit of nesting, past which checkKeys leaves
// the body to the decoder.
const maxDepth = 10000

// keyFrame is an open object or array of checkKeys.
type keyFrame struct {
	s      *shape
	object bool
	n      int                 // members or elements so far
	key    []byte              // an object's current key, unescaped
	keys   int                 // where its keys start in checkKeys' keys
	seen   map[string]struct{} // its keys, once there are more than 8
}

// keyPath names the value being read as a JSON path ("context.tags[2].name"),
// with the last key replaced by last if it is not empty.
func keyPath(stack []keyFrame, last string) string {
	var b strings.Builder
	for i, f := range stack {
		if !f.object {
			b.WriteString("[" + strconv.Itoa(f.n-1) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if i == len(stack)-1 && last != "" {
			b.WriteString(last)
		} else {
			b.Write(f.key)
		}
	}
	return b.String()
}

// scanner reads the lexical parts of JSON that checkKeys needs.
type scanner struct {
	b []byte
	i int
}

func (p *scanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// str reads the string at p.i (at its opening quote) and returns where its
// contents start and end.
func (p *scanner) str() (start, end int, ok bool) {
	start = p.i + 1
	for j := start; ; {
		q := bytes.IndexByte(p.b[j:], '"')
		if q < 0 {
			return 0, 0, false
		}
		end = j + q
		bs := 0 // backslashes right before the quote
		for k := end - 1; k >= start && p.b[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			p.i = end + 1
			return start, end, true
		}
		j = end + 1
	}
}

// scalar reads a number or literal; false if there is none at p.i.
func (p *scanner) scalar() bool {
	start := p.i
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ',', ']', '}', ':', ' ', '\t', '\n', '\r', '"', '{', '[':
			return p.i > start
		}
		p.i++
	}
	return p.i > start
}

// elemOf is the shape of the values inside a container of shape s.
func elemOf(s *shape) *shape {
	if s.elem != nil {
		return s.elem
	}
	if s.opaque {
		return opaque
	}
	return free
}
