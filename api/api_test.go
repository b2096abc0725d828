package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recall/recalltest"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
)

const token = "s3cret-token"

var t0 = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)

type fixture struct {
	srv     *httptest.Server
	state   *live.State
	ords    *lr.Ordinals
	idx     *recalltest.ExactIndex
	svc     *recommend.Service // what the routes call (swappable: see recommender)
	now     time.Time
	logs    *bytes.Buffer
	weights rerank.Weights
	admin   *fakeAdmin
	reports *fakeReports
	traffic *api.TrafficSampler
	reg     *prometheus.Registry
	imps    *impLog
	n       int
	routes  []string
	fail    error // when set, what the recommender answers instead
	mu      sync.Mutex
	seen    map[string]map[int]bool // "METHOD /route" -> statuses the routes' handlers wrote
}

type fakeAdmin struct{ err error }

func (a *fakeAdmin) Reload(ctx context.Context) ([]api.KindReload, error) {
	if a.err != nil {
		return nil, a.err
	}
	return []api.KindReload{{Kind: lr.ModelMF, Outcome: "swapped"}}, nil
}
func (a *fakeAdmin) Status() api.Status {
	staleness, reloaded := 1.5, t0.Add(-time.Minute)
	return api.Status{Live: 1, Kafka: true, CaughtUp: true, StalenessS: &staleness, UptimeS: 60, Users: 2, Rerank: "default",
		ConsumerLag: []api.PartitionLag{{Topic: "liverecall.events", Partition: 0, Next: 10, HighWater: 12, StartMark: 9, Lag: 2}},
		Index: []api.IndexStatus{{Kind: lr.ModelMF, ModelID: 1, Version: "mf-1", Vectors: 10, Users: 1, LiveVectors: 6, BuildSeconds: 0.5,
			SelfCheck: 1, LastReload: &reloaded, LastError: "x", PreviousVersion: "mf-0",
			Versions: []api.IndexVersion{{Version: "mf-1", ModelID: 1, Role: "active", Vectors: 10, LiveVectors: 6, SelfCheck: 1},
				{Version: "mf-2", ModelID: 2, Role: "experiment", Vectors: 10, LiveVectors: 6, SelfCheck: 0.98},
				{Version: "mf-3", ModelID: 3, Role: "failed", Error: "self-check recall@10 0.5 is below the floor 0.90", FailedAt: &reloaded}}}},
		Scorers: []api.ScorerStatus{{Kind: "rerank", Version: "default", Role: "active", Algo: "logistic"},
			{Kind: "rerank", Version: "r2", Role: "failed", Error: "rerank version r2 not found", FailedAt: &reloaded}},
		UserCache: &api.UserCacheStatus{Entries: 1, Bytes: 100, MaxBytes: 1000, Hits: 3, NegativeHits: 1, Misses: 1}}
}

// recommender forwards to the fixture's current service, so a test can
// compose another one after the routes are registered.
type recommender struct{ f *fixture }

func (r recommender) Recommend(ctx context.Context, req lr.RecommendRequest) (*lr.Page, error) {
	if r.f.fail != nil {
		return nil, r.f.fail
	}
	return r.f.svc.Recommend(ctx, req)
}

func (r recommender) Neighbors(ctx context.Context, req lr.NeighborsRequest) (*lr.Neighbors, error) {
	if r.f.fail != nil {
		return nil, r.f.fail
	}
	return r.f.svc.Neighbors(ctx, req)
}

// record notes the status of every response a route's handler (or its
// route middleware) writes, for checkDocumented.
func (f *fixture) record(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := next(c); err != nil {
			c.Error(err)
		}
		key := c.Request().Method + " " + c.Path()
		f.mu.Lock()
		if f.seen[key] == nil {
			f.seen[key] = map[int]bool{}
		}
		f.seen[key][c.Response().Status] = true
		f.mu.Unlock()
		return nil
	}
}

// scorers gives the fixture's current weights.
type scorers struct{ f *fixture }

func (s scorers) Weights() rerank.Model { return s.f.weights }
func (s scorers) NCF() recommend.NCF    { return nil }

// compose sets the service the routes call, over engine and the fixture's
// live state, index and impression log.
// The first service composed registers its metrics (the channel outcomes
// the console's traffic shows) on the fixture's registry.
func (f *fixture) compose(engine *recall.Engine) {
	cfg := recommend.Config{Recall: engine, Users: f.state, Streams: f.state, Index: f.idx, UserStore: f.idx, Ordinals: f.ords,
		Scorers: scorers{f}, Impressions: f.imps, Now: func() time.Time { return f.now }, Experiments: testExperiments()}
	if f.svc == nil {
		cfg.Registerer = f.reg
	}
	f.svc = recommend.New(cfg)
}

// testExperiments holds two draft experiments (they assign no one; an arm
// override may name them): draft-test, A/B, whose treatment disables mf,
// and il-test, interleaving the default with no mf.
func testExperiments() *recommend.ExperimentSet {
	noMF := lr.ArmConfig{Disabled: []string{recall.ChanMF}}
	set := recommend.NewExperimentSet()
	if err := set.Set([]lr.Experiment{
		{Name: "draft-test", Salt: "d", Mode: lr.ModeAB, Status: lr.ExperimentDraft, Start: t0,
			Arms: []lr.Arm{{Name: "control", Share: 0.5}, {Name: "treatment", Share: 0.5, Config: noMF}}},
		{Name: "il-test", Salt: "i", Layer: "il", Mode: lr.ModeInterleave, Status: lr.ExperimentDraft, Start: t0,
			Arms: []lr.Arm{{Name: "a", Share: 0.5}, {Name: "b", Share: 0.5, Config: noMF}}},
	}); err != nil {
		panic(err)
	}
	return set
}

type impLog struct{ got [][]lr.Impression }

func (l *impLog) Log(imps []lr.Impression) { l.got = append(l.got, imps) }

// newFixture: streamers 1..10 have MF vectors (streamer i along axis i);
// streamers 1..6 are live, in categories c0..c2; user 7 points at 3, then 2, then 9.
func newFixture(t *testing.T) *fixture {
	f := &fixture{ords: lr.NewOrdinals(), now: t0, logs: &bytes.Buffer{}, weights: rerank.DefaultWeights(), admin: &fakeAdmin{}, imps: &impLog{},
		reports: &fakeReports{}, seen: map[string]map[int]bool{}}
	f.state = live.New(live.Config{Ordinals: f.ords, Clock: func() time.Time { return f.now }})
	f.idx = recalltest.New()
	f.idx.SetVersion(lr.ModelMF, "mf-1")
	for id := 1; id <= 10; id++ {
		v := make([]float32, 11)
		v[id] = 1
		f.idx.AddStreamer(lr.ModelMF, f.ords.Ordinal(lr.StreamerID(id)), v)
	}
	u := make([]float32, 11)
	u[3], u[2], u[9] = 1, 0.5, 0.9
	f.idx.AddUser(lr.ModelMF, 7, u)
	var evs []lr.Event
	for id := 1; id <= 6; id++ {
		f.n++
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(100 + id), Category: fmt.Sprint("c", id%3), V: 1})
	}
	f.state.Apply(evs)
	now := func() time.Time { return f.now }
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{MaxBodyBytes: 4096, AdminToken: token}, slog.New(slog.NewTextHandler(f.logs, nil)), reg, reg)
	engine := recall.New(recall.Config{Now: now, Budget: 50 * time.Millisecond, ShownDisabled: true}, f.state, f.ords, f.idx, f.idx, nil, nil)
	engine.RefreshRankings()
	f.reg = reg
	f.compose(engine)
	srv.RegisterRecall(recommender{f})
	srv.RegisterDebug(recommender{f}, token, false)
	srv.RegisterAdmin(f.admin, token)
	f.traffic = api.NewTrafficSampler(reg, api.TrafficConfig{})
	srv.RegisterConsole(f.traffic, f.reports, token)
	for _, r := range srv.Echo().Routes() {
		f.routes = append(f.routes, r.Method+" "+r.Path)
	}
	srv.Echo().Use(f.record)
	f.srv = httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		f.srv.Close()
		f.checkDocumented(t)
	})
	return f
}

func (f *fixture) do(t *testing.T, method, path, ctype, body, auth string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
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
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: body is not JSON: %q", method, path, b)
	}
	return resp.StatusCode, out
}

// doList is do for a response whose body is a JSON list of objects.
func (f *fixture) doList(t *testing.T, method, path, auth string) (int, []map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: body is not a JSON list: %q", method, path, b)
	}
	return resp.StatusCode, out
}

func recallResp(t *testing.T, f *fixture, body string) api.RecallResponse {
	t.Helper()
	resp, err := http.Post(f.srv.URL+"/v1/recall", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var out api.RecallResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRecallReturnsOnlyLiveStreamersInRerankOrder(t *testing.T) {
	f := newFixture(t)
	out := recallResp(t, f, `{"user_id":7,"k":5,"debug":true}`)
	if len(out.Items) != 5 || out.RequestID == "" || out.ModelVersions["mf"] != "mf-1" {
		t.Fatalf("response %+v", out)
	}
	for i, it := range out.Items {
		if it.StreamerID > 6 {
			t.Fatalf("offline streamer %d returned", it.StreamerID)
		}
		if it.StreamID != 100+it.StreamerID {
			t.Fatalf("item %+v has the wrong stream id", it)
		}
		if i > 0 && it.Score > out.Items[i-1].Score {
			t.Fatalf("items not in score order: %+v", out.Items)
		}
		if it.Debug == nil || len(it.Debug.Features) != rerank.NumFeatures {
			t.Fatalf("debug item without features: %+v", it)
		}
	}
	// Streamer 9 is nearer than 2 but offline; 3 then 2 lead.
	if out.Items[0].StreamerID != 3 || out.Items[1].StreamerID != 2 {
		t.Fatalf("order %d, %d; want 3, 2", out.Items[0].StreamerID, out.Items[1].StreamerID)
	}
	if out.Debug == nil || len(out.Debug.Channels) != len(recall.Channels) || out.Debug.TimingsMS["total"] <= 0 {
		t.Fatalf("debug section %+v", out.Debug)
	}
	if len(f.imps.got) != 1 || len(f.imps.got[0]) != 5 || f.imps.got[0][0].RequestID != out.RequestID || f.imps.got[0][4].Position != 4 {
		t.Fatalf("impressions %+v", f.imps.got)
	}
	// The stream of streamer 3 ends: it is gone from the next response.
	f.state.Apply([]lr.Event{{ID: "end3", Type: lr.EventStreamEnded, TS: t0, StreamerID: 3, StreamID: 103, V: 1}})
	out = recallResp(t, f, `{"user_id":7,"k":5}`)
	for _, it := range out.Items {
		if it.StreamerID == 3 {
			t.Fatal("streamer 3 recommended after its stream ended")
		}
	}
}

func TestColdStartUserGetsResults(t *testing.T) {
	f := newFixture(t)
	out := recallResp(t, f, `{"user_id":424242}`)
	if len(out.Items) != 6 {
		t.Fatalf("cold-start user got %d items, want all 6 live", len(out.Items))
	}
}

func TestRerankFailureServesRecallOrder(t *testing.T) {
	f := newFixture(t)
	f.weights = rerank.Weights{Version: "broken", W: []float64{1}}
	out := recallResp(t, f, `{"user_id":7,"k":3,"debug":true}`)
	if len(out.Items) != 3 || out.Debug.RerankFailed == "" {
		t.Fatalf("items %d, rerank_failed %q", len(out.Items), out.Debug.RerankFailed)
	}
}

func TestBadInputGets4xxWithJSONNamingTheProblem(t *testing.T) {
	f := newFixture(t)
	big := `{"user_id":7,"exclude":[` + strings.Repeat("1,", 3000) + `1]}`
	many := `{"user_id":7,"exclude":[` + strings.Repeat("1,", 1000) + `1]}`
	cases := []struct {
		name, method, path, ctype, body, auth string
		status                                int
		want                                  string
	}{
		{"malformed json", "POST", "/v1/recall", "application/json", `{"user_id":7,`, "", 400, "malformed JSON"},
		{"empty body", "POST", "/v1/recall", "application/json", ``, "", 400, "empty"},
		{"unknown field", "POST", "/v1/recall", "application/json", `{"user_id":7,"kk":3}`, "", 400, `unknown field "kk"`},
		{"wrong type", "POST", "/v1/recall", "application/json", `{"user_id":"seven"}`, "", 400, `field "user_id"`},
		{"missing user", "POST", "/v1/recall", "application/json", `{"k":3}`, "", 400, `field "user_id"`},
		{"k zero", "POST", "/v1/recall", "application/json", `{"user_id":7,"k":0}`, "", 400, `field "k"`},
		{"k too big", "POST", "/v1/recall", "application/json", `{"user_id":7,"k":201}`, "", 400, `field "k"`},
		{"too many excludes", "POST", "/v1/recall", "application/json", many, "", 400, `field "exclude"`},
		{"context not object", "POST", "/v1/recall", "application/json", `{"user_id":7,"context":[1]}`, "", 400, `field "context"`},
		{"trailing data", "POST", "/v1/recall", "application/json", `{"user_id":7} {}`, "", 400, "after the request object"},
		{"oversized body", "POST", "/v1/recall", "application/json", big, "", 413, "larger than"},
		{"wrong content type", "POST", "/v1/recall", "text/plain", `{"user_id":7}`, "", 415, "content type"},
		{"wrong method", "GET", "/v1/recall", "", ``, "", 405, ""},
		{"neighbors without token", "GET", "/v1/debug/neighbors?user_id=7", "", ``, "", 401, "missing bearer token"},
		{"neighbors wrong token", "GET", "/v1/debug/neighbors?user_id=7", "", ``, "nope", 401, "wrong bearer token"},
		{"neighbors unknown user", "GET", "/v1/debug/neighbors?user_id=999", "", ``, token, 404, "user 999 has no mf embedding"},
		{"neighbors unknown streamer", "GET", "/v1/debug/neighbors?streamer_id=999", "", ``, token, 404, "streamer 999"},
		{"neighbors bad model", "GET", "/v1/debug/neighbors?user_id=7&model=svd", "", ``, token, 400, "unknown model kind"},
		{"neighbors both ids", "GET", "/v1/debug/neighbors?user_id=7&streamer_id=1", "", ``, token, 400, "exactly one"},
		{"neighbors bad k", "GET", "/v1/debug/neighbors?user_id=7&k=x", "", ``, token, 400, `"k"`},
		{"neighbors bad live", "GET", "/v1/debug/neighbors?user_id=7&live=some", "", ``, token, 400, `"live"`},
		{"neighbors unknown param", "GET", "/v1/debug/neighbors?user=7", "", ``, token, 400, `unknown query parameter "user"`},
		{"admin without token", "POST", "/v1/admin/reload", "", ``, "", 401, "missing bearer token"},
		{"status wrong token", "GET", "/v1/admin/status", "", ``, "x" + token, 401, "wrong bearer token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := f.do(t, c.method, c.path, c.ctype, c.body, c.auth)
			e, _ := body["error"].(map[string]any)
			msg, _ := e["message"].(string)
			if status != c.status || e == nil || !strings.Contains(msg, c.want) {
				t.Fatalf("status %d body %v; want %d with message containing %q", status, body, c.status, c.want)
			}
			if code, _ := e["code"].(string); !slices.Contains(api.ErrorCodes, code) {
				t.Fatalf("code %q is not one of the documented codes %v", code, api.ErrorCodes)
			}
		})
	}
	if strings.Contains(f.logs.String(), token) {
		t.Fatal("the token appears in the logs")
	}
}

// The router's own errors (no such route, a method the route does not
// take) and a body of the wrong media type carry codes of the documented
// set, with messages that name the problem.
func TestRouterAndMediaTypeErrorsUseDocumentedCodes(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, method, path, ctype, body string
		status                          int
		code, message, allow            string
	}{
		{"unknown route", "GET", "/v1/nothing", "", "", 404, "not_found", "no route GET /v1/nothing", ""},
		{"wrong method", "GET", "/v1/recall", "", "", 405, "method_not_allowed", "method GET not allowed on /v1/recall; allowed: OPTIONS, POST", "POST"},
		{"wrong method on a GET route", "DELETE", "/v1/admin/status", "", "", 405, "method_not_allowed", "method DELETE not allowed on /v1/admin/status", "GET"},
		{"text/plain body", "POST", "/v1/recall", "text/plain", `{"user_id":7}`, 415, "unsupported_media_type", `content type must be application/json, got "text/plain"`, ""},
		{"no content type", "POST", "/v1/recall", "", `{"user_id":7}`, 415, "unsupported_media_type", "content type must be application/json", ""},
		{"latin-1 charset", "POST", "/v1/recall", "application/json; charset=iso-8859-1", `{"user_id":7}`, 415, "unsupported_media_type", `charset must be utf-8, got "iso-8859-1"`, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.srv.URL+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e api.ErrorBody
			if err := json.Unmarshal(b, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("body %q (%s) is not a JSON error: %v", b, resp.Header.Get("Content-Type"), err)
			}
			if resp.StatusCode != c.status || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.message) {
				t.Fatalf("%d %+v; want %d, code %s, message containing %q", resp.StatusCode, e.Error, c.status, c.code, c.message)
			}
			if got := resp.Header.Get("Allow"); !strings.Contains(got, c.allow) {
				t.Fatalf("Allow %q, want it to contain %q", got, c.allow)
			}
		})
	}
}

func TestInternalErrorHidesDetailsAndGivesRequestID(t *testing.T) {
	f := newFixture(t)
	f.admin.err = errors.New("pq: password authentication failed for user secret_user")
	status, body := f.do(t, "POST", "/v1/admin/reload", "", "", token)
	e := body["error"].(map[string]any)
	if status != 500 || e["message"] != "internal error" || e["request_id"] == "" {
		t.Fatalf("status %d body %v", status, body)
	}
	if strings.Contains(fmt.Sprint(body), "secret_user") || !strings.Contains(f.logs.String(), "secret_user") {
		t.Fatal("internal details must go to the log only")
	}
	f.admin.err = nil
	if status, body := f.doList(t, "POST", "/v1/admin/reload", token); status != 200 || len(body) != 1 || body[0]["outcome"] != "swapped" {
		t.Fatalf("reload: %d %v", status, body)
	}
}

func TestNeighborsEqualExactSearch(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		query string
		want  []float64
	}{
		{"user_id=7&live=only&k=3", []float64{3, 2, 1}}, // 9 is offline; 1 ties with 4..6 at 0 and wins by ordinal
		{"user_id=7&live=all&k=3", []float64{3, 9, 2}},  // all streamers
		{"streamer_id=3&live=all&k=2", []float64{1, 2}}, // itself excluded; the rest tie at 0
	} {
		status, body := f.do(t, "GET", "/v1/debug/neighbors?"+c.query, "", "", token)
		if status != 200 {
			t.Fatalf("%s: %d %v", c.query, status, body)
		}
		ns := body["neighbors"].([]any)
		var got []float64
		for _, n := range ns {
			got = append(got, n.(map[string]any)["streamer_id"].(float64))
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Fatalf("%s: neighbours %v, want %v", c.query, got, c.want)
		}
	}
}

// CORS is off: a cross-origin preflight gets no Access-Control-* headers.
func TestNoCORSByDefault(t *testing.T) {
	f := newFixture(t)
	req, _ := http.NewRequest(http.MethodOptions, f.srv.URL+"/v1/recall", nil)
	req.Header.Set("Origin", "https://evil.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("CORS header %s sent", k)
		}
	}
}
