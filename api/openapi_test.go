package api_test

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/experiment"
)

type openapiOp struct {
	OperationID string                     `json:"operationId"`
	Tags        []string                   `json:"tags"`
	Security    *[]map[string][]string     `json:"security"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

type openapiDoc struct {
	Servers    []map[string]string             `json:"servers"`
	Paths      map[string]map[string]openapiOp `json:"paths"`
	Components struct {
		Schemas map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
			Required   []string                   `json:"required"`
		} `json:"schemas"`
	} `json:"components"`
}

var (
	docOnce   sync.Once
	docParsed openapiDoc
	docErr    error
)

// loadDoc parses the document the server embeds (static/openapi.json).
func loadDoc(t *testing.T) openapiDoc {
	t.Helper()
	docOnce.Do(func() {
		var b []byte
		if b, docErr = os.ReadFile("static/openapi.json"); docErr == nil {
			docErr = json.Unmarshal(b, &docParsed)
		}
	})
	if docErr != nil {
		t.Fatalf("static/openapi.json: %v", docErr)
	}
	return docParsed
}

// documented gives the statuses the document lists for "METHOD /path", and
// whether the operation is in it.
func (d openapiDoc) documented(route string) (map[int]bool, bool) {
	method, path, _ := strings.Cut(route, " ")
	op, ok := d.Paths[path][strings.ToLower(method)]
	if !ok {
		return nil, false
	}
	out := map[int]bool{}
	for code := range op.Responses {
		n, _ := strconv.Atoi(code)
		out[n] = true
	}
	return out, true
}

// aliases are served routes that only redirect to a documented one (an
// old address); the document leaves them out (Redocly's recommended rules
// refuse paths with a trailing slash).
var aliases = map[string]string{"GET /debug/": "/debug"}

// checkDocumented fails t for any status a route's handler wrote during
// the test that the document does not list for that operation.
func (f *fixture) checkDocumented(t *testing.T) {
	doc := loadDoc(t)
	served := map[string]bool{}
	for _, r := range f.routes {
		served[r] = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for route, statuses := range f.seen {
		if !served[route] || aliases[route] != "" {
			continue // the router's own 404 and 405 (not an operation's)
		}
		want, _ := doc.documented(route)
		for st := range statuses {
			if !want[st] {
				t.Errorf("%s answered %d, which openapi.json does not list for it", route, st)
			}
		}
	}
}

// The served OpenAPI document lists exactly the routes the server has,
// each with an operationId, tags and its security, and its schemas have
// exactly the JSON fields of the Go types.
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
	if len(doc.Servers) == 0 {
		t.Error("openapi.json names no server")
	}
	documented := map[string]openapiOp{}
	for path, ops := range doc.Paths {
		for m, op := range ops {
			documented[strings.ToUpper(m)+" "+path] = op
		}
	}
	served := map[string]bool{}
	for _, r := range f.routes {
		served[r] = true
	}
	for r := range served {
		if to, ok := aliases[r]; ok {
			method, path, _ := strings.Cut(r, " ")
			req, _ := http.NewRequest(method, f.srv.URL+path, nil)
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if _, ok := documented[method+" "+to]; !ok || resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != to {
				t.Errorf("route %s is left out of openapi.json as an alias of %s, but answers %d to %q", r, to, resp.StatusCode, resp.Header.Get("Location"))
			}
			continue
		}
		if _, ok := documented[r]; !ok {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	ids := map[string]string{}
	for r, op := range documented {
		if !served[r] {
			t.Errorf("openapi.json documents %s, which the server does not serve", r)
		}
		if op.OperationID == "" {
			t.Errorf("%s has no operationId", r)
		} else if other, dup := ids[op.OperationID]; dup {
			t.Errorf("%s and %s share the operationId %s", r, other, op.OperationID)
		}
		ids[op.OperationID] = r
		if len(op.Tags) == 0 {
			t.Errorf("%s has no tag", r)
		}
		// Protected routes (401 without a token) name the bearer scheme;
		// open ones say so with an empty security list.
		if op.Security == nil {
			t.Errorf("%s does not say whether it needs the token", r)
			continue
		}
		method, path, _ := strings.Cut(r, " ")
		req, _ := http.NewRequest(method, f.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		protected := resp.StatusCode == http.StatusUnauthorized
		bearer := len(*op.Security) == 1 && (*op.Security)[0]["bearer"] != nil
		if protected != bearer {
			t.Errorf("%s: answers %d without a token, but its security is %v", r, resp.StatusCode, *op.Security)
		}
	}
	for name, typ := range map[string]any{
		"ExperimentDebug": api.ExperimentDebug{},
		"TrafficResponse": api.TrafficResponse{}, "TrafficPoint": api.TrafficPoint{}, "ChannelTraffic": api.ChannelTraffic{},
		"ExperimentsResponse": api.ExperimentsResponse{}, "ExperimentReport": experiment.Report{}, "ArmReport": experiment.ArmReport{},
		"Diff": experiment.Diff{}, "ReportPoint": experiment.Point{}, "SRM": experiment.SRM{}, "Interleaving": experiment.Interleaving{},
		"RecallRequest": api.RecallRequest{}, "RecallResponse": api.RecallResponse{}, "RecallItem": api.RecallItem{},
		"ItemDebug": api.ItemDebug{}, "ResponseDebug": api.ResponseDebug{}, "Neighbor": api.Neighbor{}, "NeighborsResponse": api.NeighborsResponse{},
		"Error": api.ErrorBody{}, "LiveFeatures": api.LiveFeatures{}, "ChannelOutcome": api.ChannelOutcome{}, "Contribution": lr.Contribution{},
		"KindReload": api.KindReload{}, "Status": api.Status{}, "PartitionLag": api.PartitionLag{}, "IndexStatus": api.IndexStatus{},
		"UserCacheStatus": api.UserCacheStatus{}, "RecallContext": api.RecallContext{}, "RecallFilter": api.RecallFilter{}, "ContextDebug": api.ContextDebug{}, "ContextRead": api.ContextRead{},
		"NeighborsUser": api.NeighborsUser{}, "FoldedVector": api.FoldedVector{},
		"IndexVersion": api.IndexVersion{}, "ScorerStatus": api.ScorerStatus{},
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

// The Error schema's codes are exactly the codes the server gives.
func TestOpenAPIErrorCodesAreTheServedOnes(t *testing.T) {
	b, err := os.ReadFile("static/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Error struct {
							Properties struct {
								Code struct {
									Enum []string `json:"enum"`
								} `json:"code"`
							} `json:"properties"`
						} `json:"error"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(doc.Components.Schemas.Error.Properties.Error.Properties.Code.Enum))
	want := slices.Sorted(slices.Values(api.ErrorCodes))
	if !slices.Equal(got, want) {
		t.Fatalf("openapi.json's error codes %v, the server's %v", got, want)
	}
}

// failingCollector makes a registry's Gather fail.
type failingCollector struct{ desc *prometheus.Desc }

func (c failingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c failingCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.NewInvalidMetric(c.desc, errors.New("collector broken"))
}

// Every status the document lists for an operation is one the server
// answers, provoked here request by request; and (checkDocumented, at the
// end of every test using the fixture) every status a route answers in
// this package's tests is listed.
func TestOpenAPIStatusesAreTheServedOnes(t *testing.T) {
	f := newFixture(t)
	// A second server for what the fixture's cannot show: metrics that
	// cannot be gathered, a readiness check that fails.
	reg := prometheus.NewRegistry()
	reg.MustRegister(failingCollector{prometheus.NewDesc("broken", "a collector that fails", nil, nil)})
	ops := api.New(api.Config{MaxBodyBytes: 4096}, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), reg)
	ops.AddReadinessCheck("index", func() error { return errors.New("no index") })
	opsSrv := httptest.NewServer(ops.Handler())
	t.Cleanup(opsSrv.Close)

	big := strings.Repeat("x", 5000) // over the fixture's 4096-byte limit
	type call struct {
		route, target, body, ctype, auth string
		setup                            func()
		status                           int
	}
	unavailable := func() { f.fail = lr.Errorf(lr.EUNAVAILABLE, "database down") }
	internal := func() { f.fail = errors.New("boom") }
	adminUnavailable := func() { f.admin.err = lr.Errorf(lr.EUNAVAILABLE, "database down") }
	adminInternal := func() { f.admin.err = errors.New("boom") }
	reportsUnavailable := func() { f.reports.set(nil, lr.Errorf(lr.EUNAVAILABLE, "reports not computed yet")) }
	reportsInternal := func() { f.reports.set(nil, errors.New("boom")) }
	calls := []call{
		{"POST /v1/recall", "", `{"user_id":7}`, "application/json", "", nil, 200},
		{"POST /v1/recall", "", `{"user_id":0}`, "application/json", "", nil, 400},
		{"POST /v1/recall", "", `{"user_id":7,"arm":"draft-test/treatment"}`, "application/json", "", nil, 401},
		{"POST /v1/recall", "", big, "application/json", "", nil, 413},
		{"POST /v1/recall", "", `{"user_id":7}`, "text/plain", "", nil, 415},
		{"POST /v1/recall", "", `{"user_id":7}`, "application/json", "", internal, 500},
		{"GET /v1/debug/neighbors", "?user_id=7", "", "", token, nil, 200},
		{"GET /v1/debug/neighbors", "?user_id=x", "", "", token, nil, 400},
		{"GET /v1/debug/neighbors", "?user_id=7", "", "", "", nil, 401},
		{"GET /v1/debug/neighbors", "?user_id=999", "", "", token, nil, 404},
		{"GET /v1/debug/neighbors", "?user_id=7", big, "", token, nil, 413},
		{"GET /v1/debug/neighbors", "?user_id=7", "", "", token, internal, 500},
		{"GET /v1/debug/neighbors", "?user_id=7&model=ncf", "", "", token, nil, 503}, // no NCF index loaded
		{"GET /v1/debug/neighbors", "?user_id=7", "", "", token, unavailable, 503},
		{"GET /debug", "", "", "", "", nil, 200},
		{"GET /debug", "", big, "", "", nil, 413},
		{"POST /v1/admin/reload", "", "", "", token, nil, 200},
		{"POST /v1/admin/reload", "", "", "", "", nil, 401},
		{"POST /v1/admin/reload", "", big, "", token, nil, 413},
		{"POST /v1/admin/reload", "", "", "", token, adminInternal, 500},
		{"POST /v1/admin/reload", "", "", "", token, adminUnavailable, 503},
		{"GET /v1/admin/status", "", "", "", token, nil, 200},
		{"GET /v1/admin/status", "", "", "", "", nil, 401},
		{"GET /v1/admin/status", "", big, "", token, nil, 413},
		{"GET /v1/admin/traffic", "", "", "", token, nil, 200},
		{"GET /v1/admin/traffic", "?since=1m", "", "", token, nil, 400},
		{"GET /v1/admin/traffic", "", "", "", "", nil, 401},
		{"GET /v1/admin/traffic", "", big, "", token, nil, 413},
		{"GET /v1/admin/experiments", "", "", "", token, nil, 200},
		{"GET /v1/admin/experiments", "?name=x", "", "", token, nil, 400},
		{"GET /v1/admin/experiments", "", "", "", "", nil, 401},
		{"GET /v1/admin/experiments", "", big, "", token, nil, 413},
		{"GET /v1/admin/experiments", "", "", "", token, reportsInternal, 500},
		{"GET /v1/admin/experiments", "", "", "", token, reportsUnavailable, 503},
		{"GET /healthz", "", "", "", "", nil, 200},
		{"GET /healthz", "", big, "", "", nil, 413},
		{"GET /readyz", "", "", "", "", nil, 200},
		{"GET /readyz", "", big, "", "", nil, 413},
		{"GET /readyz", "ops", "", "", "", nil, 503},
		{"GET /metrics", "", "", "", "", nil, 200},
		{"GET /metrics", "", big, "", "", nil, 413},
		{"GET /metrics", "ops", "", "", "", nil, 500},
		{"GET /openapi.json", "", "", "", "", nil, 200},
		{"GET /openapi.json", "", big, "", "", nil, 413},
	}
	doc := loadDoc(t)
	provoked := map[string]map[int]bool{}
	for _, c := range calls {
		method, path, _ := strings.Cut(c.route, " ")
		base, query := f.srv.URL, c.target
		if c.target == "ops" {
			base, query = opsSrv.URL, ""
		}
		f.fail, f.admin.err = nil, nil
		f.reports.set(nil, nil)
		if c.setup != nil {
			c.setup()
		}
		req, _ := http.NewRequest(method, base+path+query, strings.NewReader(c.body))
		if c.ctype != "" {
			req.Header.Set("Content-Type", c.ctype)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", "Bearer "+c.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s%s: status %d, want %d: %s", c.route, c.target, resp.StatusCode, c.status, b)
			continue
		}
		if provoked[c.route] == nil {
			provoked[c.route] = map[int]bool{}
		}
		provoked[c.route][c.status] = true
	}
	f.fail, f.admin.err = nil, nil
	for path, ops := range doc.Paths {
		for m := range ops {
			route := strings.ToUpper(m) + " " + path
			want, _ := doc.documented(route)
			for st := range want {
				if !provoked[route][st] {
					t.Errorf("openapi.json lists %d for %s, which no request here provoked", st, route)
				}
			}
			for st := range provoked[route] {
				if !want[st] {
					t.Errorf("%s answers %d, which openapi.json does not list", route, st)
				}
			}
		}
	}
}
