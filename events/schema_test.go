package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
)

// The JSON Schemas under schemas/ are the published contract of the events
// topic and the impressions topic. These tests hold the decoder and the
// schema to each other on the samples under schemas/testdata/: every valid
// sample validates and decodes; every invalid one is refused by both, the
// decoder with the exact message in its .want file (-update rewrites them),
// which names the field the schema's error names too.

var updateGolden = flag.Bool("update", false, "rewrite the .want files of schemas/testdata/{event,impression}/invalid")

// schemaNow is the time samples are judged against: their ts are a minute
// before it.
var schemaNow = time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)

// compileSchema compiles a schema file of schemas/ the way a strict
// consumer would: draft 2020-12 with format assertions on.
func compileSchema(t testing.TB, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	s, err := c.Compile(filepath.Join("..", "schemas", name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return s
}

// validate reports the schema's verdict on the JSON text b.
func validate(t testing.TB, s *jsonschema.Schema, b []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("sample %q is not JSON: %v", lr.Clip(string(b), 100), err)
	}
	return s.Validate(v)
}

func samples(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "schemas", "testdata", dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples in schemas/testdata/%s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

func TestValidEventSamplesPassSchemaAndDecoder(t *testing.T) {
	s := compileSchema(t, "event.schema.json")
	types := map[lr.EventType]bool{}
	optional := map[string]bool{}
	for path, b := range samples(t, "event/valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := validate(t, s, b); err != nil {
				t.Errorf("the schema refuses it: %v", err)
			}
			e, err := events.Decode(b, schemaNow, 0)
			if err != nil {
				t.Fatalf("the decoder refuses it: %v", err)
			}
			types[e.Type] = true
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			for k, v := range m {
				if v != nil {
					optional[k] = true
				}
			}
			// What the service itself writes validates too.
			if err := validate(t, s, events.Encode(e)); err != nil {
				t.Errorf("the schema refuses its re-encoding %s: %v", events.Encode(e), err)
			}
		})
	}
	for _, typ := range lr.EventTypes {
		if !types[typ] {
			t.Errorf("no valid sample of %s", typ)
		}
	}
	for _, f := range []string{"stream_id", "user_id", "amount", "category", "title", "language"} {
		if !optional[f] {
			t.Errorf("no valid sample gives %s", f)
		}
	}
}

// goTypeInMessage matches what Go type names look like in encoding/json's
// errors ("lr.EventType", "int64", "Go struct field").
var goTypeInMessage = regexp.MustCompile(`\blr\.|liverecall\.|\bGo\b|\bu?int(8|16|32|64)?\b|float(32|64)|EventType|StreamerID|2006-01-02`)

var fieldInMessage = regexp.MustCompile(`^field "([^"]+)": `)

func TestInvalidEventSamplesRefusedBySchemaAndDecoder(t *testing.T) {
	s := compileSchema(t, "event.schema.json")
	for path, b := range samples(t, "event/invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			serr := validate(t, s, b)
			if serr == nil {
				t.Errorf("the schema accepts it")
			}
			_, err := events.Decode(b, schemaNow, 0)
			if err == nil {
				t.Fatalf("the decoder accepts it")
			}
			if lr.ErrorCode(err) != lr.EINVALID {
				t.Errorf("code %s, want %s", lr.ErrorCode(err), lr.EINVALID)
			}
			msg := lr.ErrorMessage(err)
			checkGolden(t, path, msg)
			if goTypeInMessage.MatchString(msg) {
				t.Errorf("message %q names a Go type", msg)
			}
			if filepath.Base(path) == "not-an-object.json" {
				return
			}
			m := fieldInMessage.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("message %q does not start by naming the field", msg)
			}
			// The schema's error points at the same field: at its
			// location, or as the property missing or not allowed.
			if serr != nil && !strings.Contains(serr.Error(), "/"+m[1]+"'") && !strings.Contains(serr.Error(), "'"+m[1]+"'") {
				t.Errorf("decoder names field %q, the schema's error does not:\n%v", m[1], serr)
			}
		})
	}
}

// Rules the schema cannot state, which the decoder alone enforces (the
// README lists them): a key given twice (JSON Schema sees the parsed
// object, with one of the two values), a ts too far ahead of the record's
// timestamp (the schema has no clock), and, for a validator that does not
// assert formats, a date that does not exist.
func TestDecoderRulesBeyondTheSchema(t *testing.T) {
	s := compileSchema(t, "event.schema.json")
	lax := jsonschema.NewCompiler() // formats as annotations, the 2020-12 default
	laxSchema, err := lax.Compile(filepath.Join("..", "schemas", "event.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, in, want string
		schema         *jsonschema.Schema
	}{
		{"key twice", `{"id":"d","type":"stream.ended","ts":"2026-11-23T17:59:00Z","streamer_id":42,"stream_id":7,"stream_id":8,"v":1}`,
			`field "stream_id": given twice`, s},
		{"ts an hour ahead", `{"id":"d","type":"stream.ended","ts":"2026-11-23T19:00:00Z","streamer_id":42,"stream_id":7,"v":1}`,
			`field "ts": 2026-11-23T19:00:00Z is 1h0m0s in the future (limit 5m0s)`, s},
		{"February 30 without format assertion", `{"id":"d","type":"stream.ended","ts":"2026-02-30T17:59:00Z","streamer_id":42,"stream_id":7,"v":1}`,
			`field "ts": "2026-02-30T17:59:00Z" is not an RFC 3339 time (day out of range)`, laxSchema},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := validate(t, c.schema, []byte(c.in)); err != nil {
				t.Fatalf("the schema refuses it (move it to the invalid samples): %v", err)
			}
			_, err := events.Decode([]byte(c.in), schemaNow, 0)
			if err == nil || lr.ErrorMessage(err) != c.want {
				t.Fatalf("decoder: %v, want %q", err, c.want)
			}
		})
	}
}

// The schema states the same closed set of types, required fields and
// limits as the Go code (lr.EventTypes, NeedsStream, NeedsUser, the Max*Len
// constants, EventVersion).
func TestEventSchemaMatchesTheCode(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "schemas", "event.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	type prop struct {
		Enum      []string `json:"enum"`
		MaxLength int      `json:"maxLength"`
		Const     *int     `json:"const"`
	}
	var doc struct {
		Required   []string        `json:"required"`
		Properties map[string]prop `json:"properties"`
		Defs       map[string]struct {
			Required []string `json:"required"`
		} `json:"$defs"`
		AllOf []struct {
			If struct {
				Properties struct {
					Type struct {
						Const string `json:"const"`
					} `json:"type"`
				} `json:"properties"`
			} `json:"if"`
			Then struct {
				Ref string `json:"$ref"`
			} `json:"then"`
		} `json:"allOf"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, typ := range lr.EventTypes {
		types = append(types, string(typ))
	}
	if got := doc.Properties["type"].Enum; !slices.Equal(got, types) {
		t.Errorf("schema's types %v, code's %v", got, types)
	}
	if !slices.Equal(doc.Required, []string{"id", "type", "ts", "streamer_id", "v"}) {
		t.Errorf("required by every type: %v", doc.Required)
	}
	for field, n := range map[string]int{"id": lr.MaxEventIDLen, "category": lr.MaxCategoryLen, "title": lr.MaxTitleLen, "language": lr.MaxLanguageLen} {
		if got := doc.Properties[field].MaxLength; got != n {
			t.Errorf("%s: maxLength %d, code's limit %d", field, got, n)
		}
	}
	if c := doc.Properties["v"].Const; c == nil || *c != lr.EventVersion {
		t.Errorf("v: const %v, want %d", c, lr.EventVersion)
	}
	if len(doc.AllOf) != len(lr.EventTypes) {
		t.Errorf("%d type rules, %d types", len(doc.AllOf), len(lr.EventTypes))
	}
	for _, r := range doc.AllOf {
		typ := lr.EventType(r.If.Properties.Type.Const)
		if r.Then.Ref != "#/$defs/"+string(typ) {
			t.Errorf("the rule for %s refers to %s", typ, r.Then.Ref)
		}
		var want []string
		if typ.NeedsStream() {
			want = append(want, "stream_id")
		}
		if typ.NeedsUser() {
			want = append(want, "user_id")
		}
		if typ == lr.EventGiftSent {
			want = append(want, "amount")
		}
		if got := doc.Defs[string(typ)].Required; !slices.Equal(got, want) {
			t.Errorf("%s requires %v in the schema, %v in the code", typ, got, want)
		}
	}
}

// Every event the service's encoder writes validates: one of each type,
// with every field it may carry.
func TestEncodedEventsValidateAgainstSchema(t *testing.T) {
	s := compileSchema(t, "event.schema.json")
	for _, typ := range lr.EventTypes {
		e := lr.Event{ID: "enc-" + string(typ), Type: typ, TS: schemaNow.Add(-time.Second), StreamerID: math.MaxInt64, V: lr.EventVersion}
		if typ.NeedsStream() {
			e.StreamID = 7
		}
		if typ.NeedsUser() {
			e.UserID = 9
		}
		if typ == lr.EventGiftSent {
			e.Amount = 0.01
		}
		if typ == lr.EventStreamStarted {
			e.Category, e.Title, e.Language = "music", "é \"q\" \t\n"+strings.Repeat("😀", lr.MaxTitleLen-8), "zh-Hant-TW"
		}
		if err := e.Validate(schemaNow, 0); err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if err := validate(t, s, events.Encode(e)); err != nil {
			t.Errorf("%s: the schema refuses %s: %v", typ, lr.Clip(string(events.Encode(e)), 200), err)
		}
	}
}

// Impression pages as the producer encodes them (EncodeImpressions is what
// ImpressionProducer writes to the topic) validate against
// impression.schema.json, and so does the golden page; what the schema
// refuses the service does not write.
func TestImpressionPagesValidateAgainstSchema(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	shown := time.Date(2026, 11, 23, 18, 0, 0, 123456789, time.UTC)
	pages := [][]lr.Impression{
		{
			{RequestID: "r-1", UserID: 9, StreamerID: 42, StreamID: 7, Position: 0, Score: 0.93, Channels: []string{"mf", "follow"},
				ModelVersions: "mf=v3,ncf=v1,rerank=w2", ShownAt: shown, Features: []float32{0.5, 1, -2.25e-7, 3.4e38}},
			{RequestID: "r-1", UserID: 9, StreamerID: 43, StreamID: 0, Position: 1, Score: -1e300, Channels: []string{"trending"},
				ModelVersions: "mf=v3,ncf=v1,rerank=w2", ShownAt: shown},
		},
		{{RequestID: "r-é\"2\"", UserID: math.MaxInt64, StreamerID: 1, Position: 0, Score: 0, Channels: nil, ShownAt: shown.In(time.FixedZone("", -5*3600-1800))}},
		{{RequestID: "r-3", UserID: 1, StreamerID: 1, Position: 199, Score: 1, Channels: []string{}, ShownAt: shown.Truncate(time.Second)}},
		// The extremes of the number types: what they encode to is within
		// the schema's limits.
		{{RequestID: "r-4", UserID: 1, StreamerID: 1, StreamID: math.MaxInt64, Score: math.MaxFloat64, ShownAt: shown,
			Features: []float32{math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32}},
			{RequestID: "r-4", UserID: 1, StreamerID: 2, Position: 1, Score: -math.MaxFloat64, ShownAt: shown, Features: []float32{0}}},
		// Pages served by an experiment's arm, and interleaved by team draft.
		{{RequestID: "r-5", UserID: 3, StreamerID: 1, ShownAt: shown, Experiment: "mf-v2", Arm: "treatment"}},
		{{RequestID: "r-6", UserID: 3, StreamerID: 1, ShownAt: shown, Experiment: "il.1", Team: "control"},
			{RequestID: "r-6", UserID: 3, StreamerID: 2, Position: 1, ShownAt: shown, Experiment: "il.1", Team: "treatment"}},
	}
	for i, p := range pages {
		b, err := events.EncodeImpressions(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(t, s, b); err != nil {
			t.Errorf("page %d: the schema refuses %s: %v", i, b, err)
		}
		if got, err := events.DecodeImpressions(b); err != nil || !samePage(got, p) {
			t.Errorf("page %d: %s reads back as %+v, %v; want %+v", i, b, got, err, p)
		}
	}
	golden, err := os.ReadFile("testdata/impressions/page.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, s, golden); err != nil {
		t.Errorf("testdata/impressions/page.json: %v", err)
	}
	for _, bad := range []string{
		`[]`, `{"request_id":"r"}`,
		`[{"request_id":"","user_id":1,"streamer_id":1,"stream_id":0,"position":0,"score":0,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}]`,
		`[{"request_id":"r","user_id":0,"streamer_id":1,"stream_id":0,"position":0,"score":0,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}]`,
		`[{"request_id":"r","user_id":1,"streamer_id":1,"stream_id":0,"position":-1,"score":0,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}]`,
		`[{"request_id":"r","user_id":1,"streamer_id":1,"stream_id":0,"position":0,"score":0,"channels":null,"model_versions":"","shown_at":"yesterday"}]`,
	} {
		if validate(t, s, []byte(bad)) == nil {
			t.Errorf("the schema accepts %s", bad)
		}
		if _, err := events.DecodeImpressions([]byte(bad)); err == nil {
			t.Errorf("the service's reader accepts %s", bad)
		}
	}
}

// Schema and decoder give the same verdict on every event made from a
// valid sample by setting one field to a value from a pool of the awkward
// values of every JSON type (or removing it, or adding an unknown one), and
// on every pair of such changes to two fields. The decoder is given a
// future limit of a century here: the limit depends on the record's
// timestamp, which the schema cannot see.
func TestSchemaAndDecoderAgree(t *testing.T) {
	s := compileSchema(t, "event.schema.json")
	pool := []string{
		`null`, `true`, `false`, `0`, `-0`, `-1`, `1`, `7`, `1.5`, `2.0`, `1e2`, `-1e2`, `1e-2`, `1e400`, `0.0`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `2`,
		`""`, `"x"`, `"7"`, `"a\u0000b"`, `"a\tb"`, `"a\nb"`, `"a\u007fb"`, `"a\u0085b"`, `"\ufffd"`, `"\ud800"`, `"☃😀"`,
		`"` + strings.Repeat("é", 128) + `"`, `"` + strings.Repeat("é", 129) + `"`, `"` + strings.Repeat("i", 200) + `"`,
		`"` + strings.Repeat("i", 201) + `"`, `"` + strings.Repeat("t", 1024) + `"`, `"` + strings.Repeat("t", 1025) + `"`,
		`"2026-11-23T17:59:00Z"`, `"2026-11-23T17:59:00.5+01:00"`, `"2026-11-23T17:59:00,5Z"`, `"2026-11-23 17:59:00Z"`,
		`"2026-13-01T00:00:00Z"`, `"2026-04-31T00:00:00Z"`, `"2026-11-23T17:59:00-23:59"`, `"2026-11-23T17:59:00Z "`,
		`[]`, `[1]`, `{}`, `{"a":1}`,
		// BCP 47 tags and near misses (language).
		`"pt"`, `"pt-BR"`, `"PT_br"`, `"zh-Hant-TW"`, `"es-419"`, `"en-US-x-twain"`, `"p"`, `"port"`, `"pt-"`, `"pt--BR"`, `"-pt"`,
		`"pt-abcdefghi"`, `"pt BR"`, `"pt-Bé"`, `"1t"`, `"` + strings.Repeat("en-", 21) + `e"`, `"` + strings.Repeat("en-", 21) + `en"`,
	}
	for _, typ := range lr.EventTypes {
		pool = append(pool, `"`+string(typ)+`"`)
	}
	fields := []string{"id", "type", "ts", "streamer_id", "stream_id", "user_id", "amount", "category", "title", "language", "v", "extra", "Type"}
	const remove = "(remove)"
	values := append([]string{remove}, pool...)
	bases := samples(t, "event/valid")
	n, accepted := 0, 0
	check := func(base map[string]json.RawMessage, edits map[string]string) {
		b := edited(t, base, edits, remove)
		n++
		serr := validate(t, s, b)
		_, derr := events.Decode(b, schemaNow, 100*365*24*time.Hour)
		if (serr == nil) != (derr == nil) {
			t.Errorf("%s:\n schema: %v\ndecoder: %v", lr.Clip(string(b), 300), serr, derr)
		}
		if derr == nil {
			accepted++
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, raw := range bases {
		var base map[string]json.RawMessage
		if err := json.Unmarshal(raw, &base); err != nil {
			t.Fatal(err)
		}
		for _, f := range fields {
			for _, v := range values {
				check(base, map[string]string{f: v})
			}
		}
		for range 300 {
			f1, f2 := fields[rng.IntN(len(fields))], fields[rng.IntN(len(fields))]
			check(base, map[string]string{f1: values[rng.IntN(len(values))], f2: values[rng.IntN(len(values))]})
		}
	}
	if accepted < n/20 {
		t.Errorf("only %d of %d events valid: the test compares little", accepted, n)
	}
	t.Logf("%d events, %d valid to both", n, accepted)
}

// An impression page with one field set to a value of the wrong type or
// out of range is refused by the schema and by the service's reader, whose
// message names the field and no Go type.
func TestInvalidImpressionFieldsRefusedBySchemaAndReader(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	const base = `{"request_id":"r","user_id":1,"streamer_id":2,"stream_id":3,"position":0,"score":0.5,"channels":["mf"],"model_versions":"mf=v1","shown_at":"2026-11-23T18:00:00Z","features":[1,2]}`
	for _, tc := range []struct{ field, value string }{
		{"request_id", `""`}, {"request_id", `7`}, {"request_id", `null`},
		{"user_id", `0`}, {"user_id", `-1`}, {"user_id", `"1"`}, {"user_id", `1.5`}, {"user_id", `9223372036854775808`},
		{"streamer_id", `0`}, {"streamer_id", `true`}, {"streamer_id", `[]`},
		{"stream_id", `-1`}, {"stream_id", `"3"`}, {"stream_id", `2.5`},
		{"position", `-1`}, {"position", `"0"`}, {"position", `0.5`},
		{"score", `"high"`}, {"score", `{}`},
		{"channels", `"mf"`}, {"channels", `[1]`},
		{"model_versions", `1`}, {"model_versions", `["mf=v1"]`},
		{"shown_at", `"yesterday"`}, {"shown_at", `1700000000`}, {"shown_at", `"2026-02-30T18:00:00Z"`}, {"shown_at", `null`},
		{"features", `"1,2"`}, {"features", `["x"]`},
	} {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(base), &m); err != nil {
			t.Fatal(err)
		}
		m[tc.field] = json.RawMessage(tc.value)
		obj, _ := json.Marshal(m)
		page := []byte("[" + string(obj) + "]")
		if validate(t, s, page) == nil {
			t.Errorf("%s = %s: the schema accepts it", tc.field, tc.value)
		}
		_, err := events.DecodeImpressions(page)
		if err == nil {
			t.Errorf("%s = %s: the reader accepts it", tc.field, tc.value)
			continue
		}
		msg := lr.ErrorMessage(err)
		if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(msg, tc.field) || goTypeInMessage.MatchString(msg) {
			t.Errorf("%s = %s: %s %q, want invalid naming the field and no Go type", tc.field, tc.value, lr.ErrorCode(err), msg)
		}
	}
}

// checkGolden compares the decoder's message msg on the sample at path
// with the sample's .want file (-update rewrites it).
func checkGolden(t *testing.T, path, msg string) {
	t.Helper()
	wantFile := strings.TrimSuffix(path, ".json") + ".want"
	if *updateGolden {
		if err := os.WriteFile(wantFile, []byte(msg+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(wantFile)
	if err != nil {
		t.Fatalf("%v (go test ./events -run Schema -update writes it)", err)
	}
	if msg != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("decoder says\n\t%s\nwant (%s)\n\t%s", msg, filepath.Base(wantFile), want)
	}
}

// Every valid impression page passes the schema and the service's reader,
// and what the service writes of it again (EncodeImpressions) passes both
// and reads back the same.
func TestValidImpressionSamplesPassSchemaAndDecoder(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	for path, b := range samples(t, "impression/valid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if err := validate(t, s, b); err != nil {
				t.Errorf("the schema refuses it: %v", err)
			}
			imps, err := events.DecodeImpressions(b)
			if err != nil {
				t.Fatalf("the reader refuses it: %v", err)
			}
			enc, err := events.EncodeImpressions(imps)
			if err != nil {
				t.Fatal(err)
			}
			if err := validate(t, s, enc); err != nil {
				t.Errorf("the schema refuses its re-encoding %s: %v", enc, err)
			}
			again, err := events.DecodeImpressions(enc)
			if err != nil || !samePage(again, imps) {
				t.Errorf("re-encoded %s reads back as %+v, %v; want %+v", enc, again, err, imps)
			}
		})
	}
}

// impressionFieldInMessage matches the start of the reader's message on
// an impression's field: the impression's index and the field.
var impressionFieldInMessage = regexp.MustCompile(`^impression (\d+): field "([^"]+)": `)

// Every invalid impression page (one per rule of the schema) is refused by
// the schema and by the service's reader, whose exact message is in the
// sample's .want file and names the impression and the field the schema's
// error points at; page-*.json break a rule of the page itself.
func TestInvalidImpressionSamplesRefusedBySchemaAndDecoder(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	for path, b := range samples(t, "impression/invalid") {
		t.Run(filepath.Base(path), func(t *testing.T) {
			serr := validate(t, s, b)
			if serr == nil {
				t.Errorf("the schema accepts it")
			}
			imps, err := events.DecodeImpressions(b)
			if err == nil || imps != nil {
				t.Fatalf("the reader accepts it: %+v, %v", imps, err)
			}
			if lr.ErrorCode(err) != lr.EINVALID {
				t.Errorf("code %s, want %s", lr.ErrorCode(err), lr.EINVALID)
			}
			msg := lr.ErrorMessage(err)
			checkGolden(t, path, msg)
			if goTypeInMessage.MatchString(msg) {
				t.Errorf("message %q names a Go type", msg)
			}
			if strings.HasPrefix(filepath.Base(path), "page-") {
				return
			}
			m := impressionFieldInMessage.FindStringSubmatch(msg)
			if m == nil {
				t.Fatalf("message %q does not start by naming the impression and the field", msg)
			}
			// The schema's error points at the same impression and field:
			// at its location, or as the property missing or not allowed.
			if serr == nil {
				return
			}
			at, field := "'/"+m[1], m[2]
			if dir, member, ok := strings.Cut(field, "/"); ok { // a member of an object field (context/hour)
				at, field = at+"/"+dir, member
			}
			e := serr.Error()
			if !strings.Contains(e, at+"/"+field+"'") && !strings.Contains(e, at+"/"+field+"/") && !(strings.Contains(e, at+"'") && strings.Contains(e, "'"+field+"'")) {
				t.Errorf("reader names impression %s field %q, the schema's error does not:\n%v", m[1], field, serr)
			}
		})
	}
}

// A rule of the reader the schema cannot state: a field given twice in one
// impression (JSON Schema sees the parsed object, with one of the values).
func TestImpressionReaderRulesBeyondTheSchema(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	const in = `[{"request_id":"r","user_id":1,"streamer_id":2,"stream_id":3,"position":0,"position":1,"score":0.5,"channels":null,"model_versions":"","shown_at":"2026-11-23T18:00:00Z"}]`
	if err := validate(t, s, []byte(in)); err != nil {
		t.Fatalf("the schema refuses it (make it an invalid sample): %v", err)
	}
	if _, err := events.DecodeImpressions([]byte(in)); err == nil || lr.ErrorMessage(err) != `impression 0: field "position": given twice` {
		t.Fatalf("reader: %v", err)
	}
}

// Schema and reader give the same verdict on every page made from a valid
// sample by setting one field of an impression to a value from a pool of
// the awkward values of every JSON type (or removing it, or adding an
// unknown one), and on random pairs of such changes; the changed
// impression is alone or second in its page.
func TestImpressionSchemaAndDecoderAgree(t *testing.T) {
	s := compileSchema(t, "impression.schema.json")
	pool := []string{
		`null`, `true`, `false`, `0`, `-0`, `-1`, `1`, `7`, `1.5`, `2.0`, `1e2`, `-1e2`, `1e-2`, `1e-400`, `1e400`, `0.0`, `-0.0`,
		`9223372036854775807`, `9223372036854775808`, `-9223372036854775808`, `92233720368547758070e-1`,
		`1.7976931348623157e308`, `1.7976931348623158e308`, `-1.7976931348623157e+308`, `1.79769313486231570001e308`,
		`3.4028235e38`, `3.40282350001e38`, `3.4028234663852886e38`, `-3.4028235E+38`,
		`""`, `"x"`, `"7"`, `"mf=v3"`, `"a\u0000b"`, `"\ud800"`, `"☃😀"`,
		`"2026-11-23T17:59:00Z"`, `"2026-11-23T17:59:00.5+01:00"`, `"2026-11-23T17:59:00,5Z"`, `"2026-11-23 17:59:00Z"`,
		`"0000-01-01T00:00:00Z"`, `"2026-13-01T00:00:00Z"`, `"2026-04-31T00:00:00Z"`, `"2026-11-23T17:59:00-23:59"`, `"2026-11-23t17:59:00z"`,
		`[]`, `[1]`, `["mf"]`, `["mf",null]`, `[1,-2.5]`, `[3.4028236e38]`, `[1e-50]`, `[[]]`, `{}`, `{"a":1}`,
		// contexts (context)
		`{"hour":0,"weekday":0}`, `{"hour":23,"weekday":6,"device":"tv","language":"pt","country":"BR"}`, `{"hour":24,"weekday":0}`,
		`{"hour":1}`, `{"weekday":1}`, `{"hour":1.0,"weekday":2e0}`, `{"hour":-1,"weekday":0}`, `{"weekday":7,"hour":0}`,
		`{"device":"mobile"}`, `{"device":"Mobile"}`, `{"device":null}`, `{"language":"pt"}`, `{"language":"PT"}`, `{"language":"p"}`,
		`{"language":"port"}`, `{"country":"BR"}`, `{"country":"419"}`, `{"country":"BRA"}`, `{"country":"br"}`, `{"hour":"1","weekday":1}`,
		// experiment, arm and team names
		`"e1"`, `"control"`, `"mf-v2.test_1"`, `"E1"`, `"-x"`, `"_x"`, `"a b"`, `"` + strings.Repeat("a", 63) + `"`, `"` + strings.Repeat("a", 64) + `"`,
	}
	fields := []string{"request_id", "user_id", "streamer_id", "stream_id", "position", "score", "channels", "model_versions",
		"shown_at", "features", "context", "experiment", "arm", "team", "extra", "User_id"}
	const remove = "(remove)"
	values := append([]string{remove}, pool...)
	n, accepted := 0, 0
	check := func(base map[string]json.RawMessage, edits map[string]string, second bool) {
		b := edited(t, base, edits, remove)
		if second {
			first, _ := json.Marshal(base)
			b = []byte("[" + string(first) + "," + string(b) + "]")
		} else {
			b = []byte("[" + string(b) + "]")
		}
		n++
		serr := validate(t, s, b)
		_, derr := events.DecodeImpressions(b)
		if (serr == nil) != (derr == nil) {
			t.Errorf("%s:\n schema: %v\n reader: %v", lr.Clip(string(b), 400), serr, derr)
		}
		if derr == nil {
			accepted++
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, raw := range samples(t, "impression/valid") {
		var page []map[string]json.RawMessage
		if err := json.Unmarshal(raw, &page); err != nil {
			t.Fatal(err)
		}
		base := page[0]
		for _, f := range fields {
			for _, v := range values {
				check(base, map[string]string{f: v}, false)
			}
		}
		for i := range 300 {
			f1, f2 := fields[rng.IntN(len(fields))], fields[rng.IntN(len(fields))]
			check(base, map[string]string{f1: values[rng.IntN(len(values))], f2: values[rng.IntN(len(values))]}, i%2 == 1)
		}
	}
	if accepted < n/20 {
		t.Errorf("only %d of %d pages valid: the test compares little", accepted, n)
	}
	t.Logf("%d pages, %d valid to both", n, accepted)
}

// edited returns base with edits applied, as JSON: each edit sets a key to
// a raw JSON value, or deletes it when the value is remove.
func edited(t *testing.T, base map[string]json.RawMessage, edits map[string]string, remove string) []byte {
	t.Helper()
	m := make(map[string]json.RawMessage, len(base)+1)
	for k, v := range base {
		m[k] = v
	}
	for k, v := range edits {
		if v == remove {
			delete(m, k)
		} else {
			m[k] = json.RawMessage(v)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
