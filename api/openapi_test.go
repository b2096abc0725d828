package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/api"
)

type openapiDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

// The served OpenAPI document lists exactly the routes the server has, and
// its schemas have exactly the JSON fields of the Go types.
func TestOpenAPIMatchesRoutesAndTypes(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc openapiDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for m := range ops {
			documented[strings.ToUpper(m)+" "+path] = true
		}
	}
	served := map[string]bool{}
	for _, r := range f.routes {
		served[r] = true
	}
	for r := range served {
		if !documented[r] {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for r := range documented {
		if !served[r] {
			t.Errorf("openapi.json documents %s, which the server does not serve", r)
		}
	}
	for name, typ := range map[string]any{
		"RecallRequest": api.RecallRequest{}, "RecallResponse": api.RecallResponse{}, "RecallItem": api.RecallItem{},
		"ItemDebug": api.ItemDebug{}, "ResponseDebug": api.ResponseDebug{}, "Neighbor": api.Neighbor{}, "NeighborsResponse": api.NeighborsResponse{},
		"Error": api.ErrorBody{},
	} {
		sch, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var props []string
		for p := range sch.Properties {
			props = append(props, p)
		}
		sort.Strings(props)
		if got, want := strings.Join(props, ","), strings.Join(jsonFields(reflect.TypeOf(typ)), ","); got != want {
			t.Errorf("schema %s has properties %s, the Go type has %s", name, got, want)
		}
	}
}

func jsonFields(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
