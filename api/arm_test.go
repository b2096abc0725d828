package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/recall"
)

// A recall request's "arm" override is honoured only with the admin
// token: without it, or with a wrong one, 401 naming the field and
// nothing served or logged; with it, an unknown experiment or arm is a
// 400 naming it, and a known one serves that arm (its debug section says
// so) or, for an interleaving experiment, the interleaved page with each
// item's team.
func TestArmOverrideNeedsTheAdminToken(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		body, auth string
		status     int
		code, want string
	}{
		{`{"user_id":7,"arm":"draft-test/treatment"}`, "", 401, "unauthorized", `field "arm" needs the admin bearer token: missing bearer token`},
		{`{"user_id":7,"arm":"draft-test/treatment"}`, "not-the-token", 401, "unauthorized", `field "arm" needs the admin bearer token: wrong bearer token`},
		{`{"user_id":7,"arm":"nope/treatment"}`, token, 400, "invalid", `no experiment "nope"`},
		{`{"user_id":7,"arm":"draft-test/nope"}`, token, 400, "invalid", `experiment draft-test has no arm "nope" (arms: control, treatment)`},
		{`{"user_id":7,"arm":"draft-test"}`, token, 400, "invalid", `name one of its arms as draft-test/ARM`},
		{`{"user_id":7,"arm":"` + strings.Repeat("x", api.MaxArm+1) + `"}`, token, 400, "invalid", `field "arm": longer than 127 bytes`},
	} {
		status, body := f.do(t, "POST", "/v1/recall", "application/json", c.body, c.auth)
		e, _ := body["error"].(map[string]any)
		msg, _ := e["message"].(string)
		if status != c.status || e["code"] != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s (token %q): %d %v, want %d %s naming %q", c.body[:min(len(c.body), 60)], c.auth, status, body, c.status, c.code, c.want)
		}
	}
	if len(f.imps.got) != 0 {
		t.Fatalf("refused overrides logged %d pages", len(f.imps.got))
	}

	ask := func(body string) api.RecallResponse {
		t.Helper()
		status, raw := f.do(t, "POST", "/v1/recall", "application/json", body, token)
		if status != http.StatusOK {
			t.Fatalf("%s: %d %v", body, status, raw)
		}
		var out api.RecallResponse
		b, _ := json.Marshal(raw)
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := ask(`{"user_id":7,"k":4,"debug":true,"arm":"draft-test/treatment"}`)
	if ex := out.Debug.Experiments; len(ex) != 1 || ex[0].Experiment != "draft-test" || ex[0].Arm != "treatment" || !ex[0].Override || ex[0].Mode != "ab" || ex[0].Fallback != "" {
		t.Fatalf("debug experiments %+v", out.Debug.Experiments)
	}
	for _, o := range out.Debug.Channels {
		if o.Channel == recall.ChanMF && o.Status != recall.StatusSkipped {
			t.Fatalf("treatment disables mf: mf %+v", o)
		}
	}
	if imp := f.imps.got[len(f.imps.got)-1][0]; imp.Experiment != "" || imp.Arm != "" {
		t.Fatalf("an override's impression names %q/%q, want no experiment", imp.Experiment, imp.Arm)
	}
	out = ask(`{"user_id":7,"k":4,"debug":true,"arm":"il-test"}`)
	if ex := out.Debug.Experiments; len(ex) != 1 || ex[0].Experiment != "il-test" || ex[0].Mode != "interleave" || ex[0].Arm != "" {
		t.Fatalf("debug experiments %+v", out.Debug.Experiments)
	}
	seen := map[int64]bool{}
	for _, it := range out.Items {
		if seen[it.StreamerID] || (it.Debug.Team != "a" && it.Debug.Team != "b") {
			t.Fatalf("interleaved items %+v", out.Items)
		}
		seen[it.StreamerID] = true
	}
	// Without debug, the override still serves (no debug section).
	if out := ask(`{"user_id":7,"k":4,"arm":"draft-test/control"}`); len(out.Items) != 4 || out.Debug != nil {
		t.Fatalf("response %+v", out)
	}
}
