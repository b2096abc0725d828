package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/liverecall/liverecall/api"
)

// snakeCase is the form of every JSON key the API writes.
var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// durationWord is a JSON name that holds a duration, which must then
// name its unit (durationUnit).
var (
	durationWord = regexp.MustCompile(`(^|_)(age|took|uptime|staleness|duration|elapsed|latency|timeout|wait)(_|$)`)
	durationUnit = regexp.MustCompile(`(_s|_ms|seconds)$`)
)

// durationType is time.Duration, which encoding/json writes as a count of
// nanoseconds.
var durationType = reflect.TypeOf(time.Duration(0))

// checkWireType walks typ and every type it contains, failing t for any
// struct field that has no explicit snake_case JSON name, holds a
// time.Duration (nanoseconds on the wire), is named in nanoseconds, or
// names a duration without its unit.
func checkWireType(t *testing.T, typ reflect.Type, path string, seen map[reflect.Type]bool) {
	t.Helper()
	switch typ.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array:
		checkWireType(t, typ.Elem(), path+"[]", seen)
		return
	case reflect.Map:
		checkWireType(t, typ.Elem(), path+"{}", seen)
		return
	case reflect.Struct:
	default:
		if typ == durationType {
			t.Errorf("%s is a time.Duration: it goes out in nanoseconds (use seconds as float64, or a time)", path)
		}
		return
	}
	if typ == reflect.TypeOf(time.Time{}) || seen[typ] {
		return // RFC 3339 on the wire
	}
	seen[typ] = true
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		where := fmt.Sprintf("%s.%s (%s)", path, f.Name, typ)
		switch {
		case name == "-":
			continue
		case name == "":
			t.Errorf("%s has no JSON name: it would go out as %q", where, f.Name)
		case !snakeCase.MatchString(name):
			t.Errorf("%s: JSON name %q is not snake_case", where, name)
		case strings.HasSuffix(name, "_ns"):
			t.Errorf("%s: JSON name %q is in nanoseconds; use seconds or milliseconds", where, name)
		case durationWord.MatchString(name) && !durationUnit.MatchString(name):
			t.Errorf("%s: JSON name %q holds a duration without naming its unit (_s, _ms, seconds)", where, name)
		}
		checkWireType(t, f.Type, path+"."+name, seen)
	}
}

// Every type the API writes as JSON names its fields explicitly in
// snake_case and writes no duration in nanoseconds.
func TestResponseTypesAreSnakeCaseWithoutNanoseconds(t *testing.T) {
	seen := map[reflect.Type]bool{}
	for _, v := range []any{api.RecallRequest{}, api.RecallResponse{}, api.NeighborsResponse{}, api.Status{}, []api.KindReload{}, api.ErrorBody{}} {
		typ := reflect.TypeOf(v)
		checkWireType(t, typ, typ.String(), seen)
	}
}

// checkKeys fails t for any object key in v that is not snake_case or is
// in nanoseconds, and counts the keys it saw.
func checkKeys(t *testing.T, where string, v any, keys map[string]bool) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if !snakeCase.MatchString(k) || strings.HasSuffix(k, "_ns") {
				t.Errorf("%s: key %q is not snake_case, or is in nanoseconds", where, k)
			}
			keys[k] = true
			checkKeys(t, where+"."+k, x, keys)
		}
	case []any:
		for _, x := range v {
			checkKeys(t, where+"[]", x, keys)
		}
	}
}

// The responses of a running server, debug and admin ones included, have
// only snake_case keys, and durations in seconds or milliseconds.
func TestResponsesAreSnakeCaseWithoutNanoseconds(t *testing.T) {
	f := newFixture(t)
	get := func(method, path, body, auth string) any {
		t.Helper()
		req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
		return v
	}
	keys := map[string]bool{}
	recall := get("POST", "/v1/recall", `{"user_id":7,"k":3,"debug":true}`, "")
	for _, s := range []struct {
		name string
		v    any
	}{
		{"recall", recall},
		{"neighbors", get("GET", "/v1/debug/neighbors?user_id=7&k=3", "", token)},
		{"status", get("GET", "/v1/admin/status", "", token)},
		{"reload", get("POST", "/v1/admin/reload", "", token)},
		{"readyz", get("GET", "/readyz", "", "")},
		{"healthz", get("GET", "/healthz", "", "")},
		{"error", get("GET", "/v1/nothing", "", "")},
	} {
		checkKeys(t, s.name, s.v, keys)
	}
	// The samples hold the keys that used to be Go names or nanoseconds.
	for _, k := range []string{"age_s", "started_at", "viewers_5m_ago", "took_ms", "high_water", "start_mark", "staleness_s"} {
		if !keys[k] {
			t.Errorf("no response held %q", k)
		}
	}
	// The age is in seconds: the fixture's streams started an hour ago.
	item := recall.(map[string]any)["items"].([]any)[0].(map[string]any)
	live := item["debug"].(map[string]any)["live"].(map[string]any)
	if live["age_s"] != 3600.0 {
		t.Errorf("live.age_s = %v, want 3600 (seconds)", live["age_s"])
	}
	if _, err := time.Parse(time.RFC3339, live["started_at"].(string)); err != nil {
		t.Errorf("live.started_at: %v", err)
	}
}
