package api_test

import (
	"regexp"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
)

// goTypeNames matches what Go type names look like in encoding/json's
// errors; a client must never see them.
var goTypeNames = regexp.MustCompile(`api\.|RecallRequest|\bGo\b|int64|\bint\b|\bstruct\b|\bbool\b|\bstring into\b|json\.RawMessage|\[\]`)

// quoted matches the quoted parts of an error message: what the client sent.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// namesGoType reports whether an error message, outside what it quotes from
// the request, names a Go type.
func namesGoType(msg string) bool { return goTypeNames.MatchString(quoted.ReplaceAllString(msg, `""`)) }

// Request bodies that encoding/json takes but whose meaning is ambiguous
// (duplicate keys, keys that match a field only case-insensitively), bodies
// in another charset, and type errors: each is refused with a status and a
// JSON message in client terms.
func TestRecallRefusesAmbiguousBodiesInClientTerms(t *testing.T) {
	f := newFixture(t)
	const ct = "application/json"
	cases := []struct {
		name, ctype, body string
		status            int
		want              string
	}{
		{"duplicate key", ct, `{"user_id":1,"k":0,"k":5}`, 400, `duplicate key "k"`},
		{"duplicate key, last valid", ct, `{"user_id":7,"k":500,"k":5}`, 400, `duplicate key "k"`},
		{"duplicate key spelled with an escape", ct, `{"user_id":7,"k":5,"\u006b":6}`, 400, `duplicate key "k"`},
		{"duplicate user_id", ct, `{"user_id":7,"user_id":8}`, 400, `duplicate key "user_id"`},
		{"duplicate key inside context", ct, `{"user_id":7,"context":{"app":"ios","app":"web"}}`, 400, `duplicate key "context.app"`},
		{"duplicate key deep inside context", ct, `{"user_id":7,"context":{"x":[{"a":1},{"a":1,"a":2}]}}`, 400, `duplicate key "context.x[1].a"`},
		{"duplicate key after 8 others", ct, `{"user_id":7,"context":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"b":0}}`, 400, `duplicate key "context.b"`},
		{"duplicate key after a nested object", ct, `{"user_id":7,"context":{"a":{"b":1,"c":2},"b":{"a":1},"a":3}}`, 400, `duplicate key "context.a"`},
		{"key in upper case", ct, `{"USER_ID":7}`, 400, `unknown field "USER_ID" (field names are case-sensitive: did you mean "user_id"?)`},
		{"key in mixed case", ct, `{"user_id":7,"Debug":true}`, 400, `unknown field "Debug"`},
		{"key with the Kelvin sign for k", ct, `{"user_id":7,"\u212a":5}`, 400, `unknown field "` + "\u212a" + `"`},
		{"charset utf-16", ct + "; charset=utf-16", `{"user_id":7}`, 415, `charset must be utf-8, got "utf-16"`},
		{"charset latin1", ct + "; charset=ISO-8859-1", `{"user_id":7}`, 415, `charset must be utf-8`},
		{"other media type", "text/plain", `{"user_id":7}`, 415, `content type must be application/json, got "text/plain"`},
		{"no content type", "", `{"user_id":7}`, 415, `content type must be application/json`},
		{"invalid utf-8", ct, "{\"user_id\":7,\"context\":{\"a\":\"\xff\"}}", 400, "not valid UTF-8"},
		{"array body", ct, `[1]`, 400, `request body: want an object, got array`},
		{"string body", ct, `"x"`, 400, `request body: want an object, got string`},
		{"boolean for an integer", ct, `{"user_id":true}`, 400, `field "user_id": want an integer, got boolean`},
		{"fraction for an integer", ct, `{"user_id":7,"k":1.5}`, 400, `field "k": want an integer, got number 1.5`},
		{"integer out of range", ct, `{"user_id":99999999999999999999}`, 400, `field "user_id": want an integer, got number 99999999999999999999 (out of range)`},
		{"number for a boolean", ct, `{"user_id":7,"debug":1}`, 400, `field "debug": want a boolean, got number`},
		{"string in exclude", ct, `{"user_id":7,"exclude":[1,"a"]}`, 400, `field "exclude": want an array of integers, got string in the array`},
		{"object for exclude", ct, `{"user_id":7,"exclude":{}}`, 400, `field "exclude": want an array of integers, got object`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.do(t, "POST", "/v1/recall", c.ctype, c.body, "")
			e, _ := body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if status != c.status || e == nil || !strings.Contains(msg, c.want) {
				t.Fatalf("status %d body %v; want %d with message containing %q", status, body, c.status, c.want)
			}
			if namesGoType(msg) {
				t.Fatalf("message %q names a Go type", msg)
			}
		})
	}
	// What stays accepted: the same key in different objects, a utf-8
	// charset in any case, a key escaped but exact.
	for _, c := range []struct{ ctype, body string }{
		{ct, `{"user_id":7,"context":{"a":{"a":1},"b":[{"a":1},{"a":2}]}}`},
		{ct + "; charset=UTF-8", `{"user_id":7}`},
		{ct + `; charset="utf-8"`, `{"user_id":7}`},
		{ct, `{"user_\u0069d":7,"k":3}`},
		{ct, `{"user_id":7,"context":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9}}}`},
	} {
		if status, body := f.do(t, "POST", "/v1/recall", c.ctype, c.body, ""); status != 200 {
			t.Errorf("%s with %q: status %d %v, want 200", c.body, c.ctype, status, body)
		}
	}
}

// Nesting deeper than encoding/json takes is refused as malformed, as
// before the key checks, without them holding a frame per level.
func TestDecodeStrictRefusesDeepNesting(t *testing.T) {
	for _, body := range []string{
		strings.Repeat("[", 1<<20),
		`{"user_id":7,"context":{"a":` + strings.Repeat(`{"a":`, 20000) + `1` + strings.Repeat("}", 20001) + `}`,
	} {
		var req api.RecallRequest
		err := api.DecodeStrict([]byte(body), &req)
		if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(lr.ErrorMessage(err), "exceeded max depth") {
			t.Fatalf("body of %d bytes nested deep: %v", len(body), err)
		}
	}
}

// Type errors, golden: the field as its JSON path and the JSON type wanted,
// with the article, the same words the event decoder uses; never a Go type
// (encoding/json's own message says "cannot unmarshal string into Go struct
// field RecallRequest.user_id of type int64").
func TestDecodeStrictTypeErrorsGolden(t *testing.T) {
	type item struct {
		Score float64           `json:"score"`
		Tags  map[string]string `json:"tags"`
	}
	type doc struct {
		Name  string  `json:"name"`
		Ratio float32 `json:"ratio"`
		Count *uint8  `json:"count"`
		Items []item  `json:"items"`
		Grid  [][]int `json:"grid"`
		Inner struct {
			On bool `json:"on"`
		} `json:"inner"`
	}
	for _, c := range []struct {
		body string
		into any
		want string
	}{
		{`{"user_id":"7"}`, &api.RecallRequest{}, `field "user_id": want an integer, got string`},
		{`{"user_id":7,"k":"3"}`, &api.RecallRequest{}, `field "k": want an integer, got string`},
		{`{"user_id":7,"k":1e3}`, &api.RecallRequest{}, `field "k": want an integer, got number 1e3`},
		{`{"user_id":7,"debug":"yes"}`, &api.RecallRequest{}, `field "debug": want a boolean, got string`},
		{`{"user_id":7,"exclude":[true]}`, &api.RecallRequest{}, `field "exclude": want an array of integers, got boolean in the array`},
		{`{"user_id":7,"exclude":5}`, &api.RecallRequest{}, `field "exclude": want an array of integers, got number`},
		{`7`, &api.RecallRequest{}, `request body: want an object, got number`},
		{`{"name":5}`, &doc{}, `field "name": want a string, got number`},
		{`{"ratio":"x"}`, &doc{}, `field "ratio": want a number, got string`},
		{`{"count":300}`, &doc{}, `field "count": want an integer, got number 300 (out of range)`},
		{`{"count":-1}`, &doc{}, `field "count": want an integer, got number -1 (out of range)`},
		{`{"items":[{"score":"high"}]}`, &doc{}, `field "items.score": want a number, got string`},
		{`{"items":[{"tags":[]}]}`, &doc{}, `field "items.tags": want an object, got array`},
		{`{"items":{}}`, &doc{}, `field "items": want an array of objects, got object`},
		{`{"grid":[[1],["a"]]}`, &doc{}, `field "grid": want an array of arrays of integers, got string`},
		{`{"inner":{"on":0}}`, &doc{}, `field "inner.on": want a boolean, got number`},
		{`{"inner":[]}`, &doc{}, `field "inner": want an object, got array`},
		{`[]`, &doc{}, `request body: want an object, got array`},
	} {
		err := api.DecodeStrict([]byte(c.body), c.into)
		if got := lr.ErrorMessage(err); lr.ErrorCode(err) != lr.EINVALID || got != c.want {
			t.Errorf("%s:\n got %s %q\nwant %q", c.body, lr.ErrorCode(err), got, c.want)
		}
		if namesGoType(lr.ErrorMessage(err)) {
			t.Errorf("%s: %q names a Go type", c.body, lr.ErrorMessage(err))
		}
	}
}
