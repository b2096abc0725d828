package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/recall"
)

// status reads /v1/admin/status.
func (e *e2e) status() api.Status {
	e.t.Helper()
	code, b := e.get("/v1/admin/status", true)
	if code != 200 {
		e.t.Fatalf("status: %d %s", code, b)
	}
	var st api.Status
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

// indexVersions returns kind's versions in the status as "version/role".
func indexVersions(st api.Status, kind lr.ModelKind) string {
	var out []string
	for _, k := range st.Index {
		if k.Kind == kind {
			for _, v := range k.Versions {
				out = append(out, v.Version+"/"+v.Role)
			}
		}
	}
	return strings.Join(out, ",")
}

// metricValue returns the value of the series of the exposition text
// whose name and labels (in the exposition's order) are series, or -1.
func metricValue(text, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// A running experiment's model versions load on every replica as soon as
// it starts (NOTIFY, with the periodic check off): the good one serves
// its arm beside the active version, the one that cannot be loaded (bad
// vectors, a reranker JSON that does not parse) is reported in the status
// and the metrics and its arm's users get the default configuration,
// never an error; stopping the experiment unloads them.
func TestExperimentVersionsLoadAndFailVisibly(t *testing.T) {
	e := startE2E(t, "--index-check-every", "1h")
	ctx := context.Background()
	e.stageModel("v2", 2)
	bad := e.stageModel("bad", 3)
	if _, err := e.db.Pool.Exec(ctx, `UPDATE streamer_embeddings SET vec = array_fill(0::real, ARRAY[16]) WHERE model_id = $1 AND streamer_id = 5`, bad); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CreateRerankModel(ctx, "rbad", []byte(`{"algo":"gbdt","heads":[]}`), nil); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the active index", eventually, func() bool { return indexVersions(e.status(), lr.ModelMF) == "v1/active" })

	exp := lr.Experiment{Name: "exp1", Salt: "s1", Mode: lr.ModeAB, Start: time.Now().Add(-time.Minute), Arms: []lr.Arm{
		{Name: "control", Share: 0.34},
		{Name: "treat", Share: 0.33, Config: lr.ArmConfig{MFVersion: "v2"}},
		{Name: "broken", Share: 0.33, Config: lr.ArmConfig{MFVersion: "bad", RerankVersion: "rbad"}},
	}}
	if _, err := e.db.CreateExperiment(ctx, exp, recall.Channels); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.StartExperiment(ctx, "exp1"); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	e.waitFor("the experiment's versions loaded or failed", eventually, func() bool {
		st = e.status()
		failedRerank := false
		for _, s := range st.Scorers {
			failedRerank = failedRerank || (s.Version == "rbad" && s.Role == "failed")
		}
		return indexVersions(st, lr.ModelMF) == "v1/active,bad/failed,v2/experiment" && failedRerank
	})
	for _, v := range st.Index[0].Versions {
		if v.Version == "bad" && (!strings.Contains(v.Error, "zero vector") || v.FailedAt == nil) {
			t.Fatalf("the failed version's status: %+v", v)
		}
		if v.Version == "v2" && (v.Vectors != 60 || v.ModelID == 0) {
			t.Fatalf("the experiment version's status: %+v", v)
		}
	}
	_, b := e.get("/metrics", false)
	for series, want := range map[string]float64{
		`liverecall_index_serving_versions{kind="mf",role="active",version="v1"}`:     1,
		`liverecall_index_serving_versions{kind="mf",role="experiment",version="v2"}`: 1,
		`liverecall_index_serving_versions{kind="mf",role="failed",version="bad"}`:    1,
		`liverecall_index_version_load_failures_total{kind="mf"}`:                     1,
		`liverecall_scorer_versions{kind="rerank",role="failed",version="rbad"}`:      1,
		`liverecall_scorer_load_failures_total{kind="rerank"}`:                        1,
	} {
		if got := metricValue(string(b), series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	// A user of each arm is answered; the broken arm's with the default
	// configuration, counted as a fallback.
	users := map[string]int64{}
	for u := int64(1); len(users) < 3 && u < 10000; u++ {
		name := exp.Arms[experiment.ArmOf(&exp, lr.UserID(u))].Name
		if _, ok := users[name]; !ok {
			users[name] = u
		}
	}
	for arm, u := range users {
		code, b := e.post("/v1/recall", fmt.Sprintf(`{"user_id":%d,"k":10}`, u), false)
		if code != 200 {
			t.Fatalf("user %d of arm %s: %d %s", u, arm, code, b)
		}
	}
	_, b = e.get("/metrics", false)
	if got := metricValue(string(b), `liverecall_experiment_fallbacks_total{arm="broken",experiment="exp1",reason="mf_version"}`); got != 1 {
		t.Errorf("fallbacks of the broken arm: %v, want 1", got)
	}
	if got := metricValue(string(b), `liverecall_experiment_requests_total{arm="treat",experiment="exp1"}`); got != 1 {
		t.Errorf("requests served by the treat arm: %v, want 1", got)
	}

	// Stopped: the replicas unload its versions.
	if _, err := e.db.StopExperiment(ctx, "exp1"); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the experiment's versions unloaded", eventually, func() bool {
		st = e.status()
		for _, s := range st.Scorers {
			if s.Role != "active" {
				return false
			}
		}
		return indexVersions(st, lr.ModelMF) == "v1/active"
	})
	_, b = e.get("/metrics", false)
	if got := metricValue(string(b), `liverecall_index_serving_versions{kind="mf",role="experiment",version="v2"}`); got != -1 {
		t.Errorf("v2 still exported as serving after the stop: %v", got)
	}
}
