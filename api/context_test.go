package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
)

// lastRequest answers every recall with an empty page and keeps the
// request it was given.
type lastRequest struct {
	mu  sync.Mutex
	req lr.RecommendRequest
}

func (l *lastRequest) Recommend(ctx context.Context, req lr.RecommendRequest) (*lr.Page, error) {
	l.mu.Lock()
	l.req = req
	l.mu.Unlock()
	return &lr.Page{RequestID: req.RequestID, Debug: &lr.PageDebug{}}, nil
}

func (l *lastRequest) Neighbors(ctx context.Context, req lr.NeighborsRequest) (*lr.Neighbors, error) {
	return nil, lr.Errorf(lr.ENOTFOUND, "none")
}

// The typed keys of a request's context become lr.RequestContext (the
// local time from a zone or an offset at the time the request is
// received); other keys are accepted; values not understood are ignored,
// listed in the debug response and counted; a known key of the wrong JSON
// type is a 400 naming it. filter.same_language reaches the request.
func TestRecallReadsTheContext(t *testing.T) {
	rec := &lastRequest{}
	reg := prometheus.NewRegistry()
	srv := api.New(api.Config{}, slog.New(slog.NewTextHandler(io.Discard, nil)), reg, reg)
	srv.RegisterRecall(rec)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	post := func(body string) (int, string) {
		t.Helper()
		resp, err := http.Post(hs.URL+"/v1/recall", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	local := func(zone string, offset int) (int, time.Weekday) {
		now := time.Now()
		var l time.Time
		if zone != "" {
			loc, err := time.LoadLocation(zone)
			if err != nil {
				t.Fatal(err)
			}
			l = now.In(loc)
		} else {
			l = now.In(time.FixedZone("", offset*60))
		}
		return l.Hour(), l.Weekday()
	}
	for _, tc := range []struct {
		name, context string
		filter        bool
		want          lr.RequestContext
		zone          string
		offset        *int
		ignored       []string
	}{
		{"nothing", `null`, false, lr.RequestContext{}, "", nil, nil},
		{"everything, by zone", `{"time_zone":"America/Sao_Paulo","utc_offset_minutes":600,"device":"Mobile","locale":"pt_br","platform":"ios","tags":[1]}`, true,
			lr.RequestContext{Device: lr.DeviceMobile, Language: "pt", Country: "BR"}, "America/Sao_Paulo", nil, nil},
		{"by offset", `{"utc_offset_minutes":-180,"locale":"zh-Hant-TW"}`, false, lr.RequestContext{Language: "zh", Country: "TW"}, "", ptr(-180), nil},
		{"not understood", `{"time_zone":"Mars/Olympus","utc_offset_minutes":900,"device":"watch","locale":"português"}`, true,
			lr.RequestContext{Device: lr.DeviceOther}, "", nil, []string{"device", "locale", "time_zone", "utc_offset_minutes"}},
		{"unknown zone, known offset", `{"time_zone":"Local","utc_offset_minutes":330}`, false, lr.RequestContext{}, "", ptr(330), []string{"time_zone"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"user_id":7,"debug":true,"context":` + tc.context
			if tc.filter {
				body += `,"filter":{"same_language":true}`
			}
			status, out := post(body + "}")
			if status != 200 {
				t.Fatalf("status %d: %s", status, out)
			}
			rec.mu.Lock()
			got, filter := rec.req.Context, rec.req.SameLanguage
			rec.mu.Unlock()
			want := tc.want
			if tc.zone != "" || tc.offset != nil {
				o := 0
				if tc.offset != nil {
					o = *tc.offset
				}
				h, wd := local(tc.zone, o)
				// The hour may turn between the request and now.
				if !got.LocalTime || (got.Hour != h && got.Hour != (h+23)%24) {
					t.Fatalf("local time %+v, want about %d h %s", got, h, wd)
				}
				want.LocalTime, want.Hour, want.Weekday = true, got.Hour, got.Weekday
			}
			if got != want || filter != tc.filter {
				t.Errorf("context %+v, filter %v; want %+v, %v", got, filter, want, tc.filter)
			}
			var resp api.RecallResponse
			if err := json.Unmarshal([]byte(out), &resp); err != nil {
				t.Fatal(err)
			}
			r, w := resp.Debug.Context.Read, want.Clean()
			if (r.Hour == nil) != !w.LocalTime || (r.Hour != nil && (*r.Hour != w.Hour || *r.Weekday != int(w.Weekday))) ||
				r.Device != string(w.Device) || r.Language != w.Language || r.Country != w.Country || !slices.Equal(resp.Debug.Context.Ignored, tc.ignored) {
				t.Errorf("debug context %+v, want read %+v, ignored %v", resp.Debug.Context, w, tc.ignored)
			}
		})
	}
	if got := testutil.ToFloat64(counterVec(t, reg, "liverecall_context_ignored_total", "time_zone")); got != 2 {
		t.Errorf("ignored time zones counted %v, want 2", got)
	}
	for _, tc := range []struct{ context, want string }{
		{`{"device":5}`, `field \"context.device\": want a string, got number`},
		{`{"locale":true}`, `field \"context.locale\": want a string, got boolean`},
		{`{"time_zone":["UTC"]}`, `field \"context.time_zone\": want a string, got array`},
		{`{"utc_offset_minutes":"-180"}`, `field \"context.utc_offset_minutes\": want an integer, got string`},
		{`{"utc_offset_minutes":1.5}`, `field \"context.utc_offset_minutes\": want an integer, got number`},
		{`[]`, `field \"context\": must be an object`},
	} {
		if status, out := post(`{"user_id":7,"context":` + tc.context + `}`); status != 400 || !strings.Contains(out, tc.want) {
			t.Errorf("context %s: %d %s, want 400 with %s", tc.context, status, out, tc.want)
		}
	}
	if status, out := post(`{"user_id":7,"filter":{"same_lang":true}}`); status != 400 || !strings.Contains(out, "same_lang") {
		t.Errorf("unknown filter: %d %s", status, out)
	}
}

func ptr[T any](v T) *T { return &v }

// counterVec returns the counter of the named vector with these labels.
func counterVec(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			ok := len(m.GetLabel()) == len(labels)
			for i, l := range m.GetLabel() {
				ok = ok && l.GetValue() == labels[i]
			}
			if ok {
				c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
				c.Add(m.GetCounter().GetValue())
				return c
			}
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return nil
}

// Over HTTP into the real recommendation: the context is logged with the
// page's impressions.
func TestRecallLogsTheContextWithImpressions(t *testing.T) {
	f := newFixture(t)
	recallResp(t, f, `{"user_id":7,"k":3,"context":{"device":"tv","locale":"en-GB","utc_offset_minutes":0}}`)
	if len(f.imps.got) != 1 {
		t.Fatalf("%d pages logged", len(f.imps.got))
	}
	// The local time is the request's arrival (the real clock, not the
	// fixture's) at offset 0.
	now := time.Now().UTC()
	for _, im := range f.imps.got[0] {
		c := im.Context
		if c == nil || !c.LocalTime || (c.Hour != now.Hour() && c.Hour != (now.Hour()+23)%24) {
			t.Fatalf("impression context %+v, want the hour of %s", c, now)
		}
		if want := (lr.RequestContext{LocalTime: true, Hour: c.Hour, Weekday: c.Weekday, Device: lr.DeviceTV, Language: "en", Country: "GB"}); *c != want {
			t.Fatalf("impression context %+v, want %+v", *c, want)
		}
	}
}
