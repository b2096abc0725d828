package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/postgres/pgtest"
)

// TestEvalReplayOnSimulatedHistory loads a simulated history into
// PostgreSQL and replays its last day through the serving code.
func TestEvalReplayOnSimulatedHistory(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	env := map[string]string{"DATABASE_URL": url}
	app, _, errb := testApp(env)
	if code := Run(ctx, app, []string{"simulate", "--days", "3", "--streamers", "60", "--users", "600", "--seed", "4", "--start", "2026-02-01", "--to-postgres"}); code != 0 {
		t.Fatalf("simulate: code %d, stderr %q", code, errb)
	}
	code, out, errs := runCmd(t, url, "eval", "--format", "replay", "--holdout-from", "2026-02-03T00:00:00Z", "--eval-max", "300", "--dim", "8", "--json")
	if code != 0 {
		t.Fatalf("code %d, stderr %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one JSON object, got %q", out)
	}
	var rep struct {
		HoldoutFrom string `json:"holdout_from"`
		Decisions   int    `json:"decisions"`
		Rows        []struct {
			Name string             `json:"name"`
			Kind string             `json:"kind"`
			All  map[string]float64 `json:"all"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.HoldoutFrom != "2026-02-03T00:00:00Z" || rep.Decisions < 100 || rep.Decisions > 300 {
		t.Fatalf("holdout %s, %d decisions: %s", rep.HoldoutFrom, rep.Decisions, out)
	}
	kinds := map[string]string{}
	for _, r := range rep.Rows {
		kinds[r.Name] = r.Kind
		for _, k := range []string{"hr@1", "hr@5", "hr@10", "ndcg@10", "n"} {
			if _, ok := r.All[k]; !ok {
				t.Fatalf("row %s lacks %s: %s", r.Name, k, out)
			}
		}
		if r.All["hr@1"] > r.All["hr@5"] || r.All["hr@5"] > r.All["hr@10"] {
			t.Fatalf("row %s: HR not increasing with k: %v", r.Name, r.All)
		}
	}
	for name, kind := range map[string]string{"full": "system", "mf": "channel", "session": "channel", "follow": "channel", "trending": "channel",
		"fresh": "channel", "popularity": "baseline", "most_viewers": "baseline", "repeat": "baseline"} {
		if kinds[name] != kind {
			t.Errorf("row %s: kind %q, want %q (%v)", name, kinds[name], kind, kinds)
		}
	}
	code, out, errs = runCmd(t, url, "eval", "--format", "replay", "--eval-max", "50", "--dim", "8")
	if code != 0 || !strings.Contains(out, "repeat") || !strings.Contains(out, "rep HR@1") || !strings.Contains(out, "nuser HR10") {
		t.Fatalf("table: code %d out %q err %s", code, out, errs)
	}
	// --foldin: the full system again with folded MF vectors, on the same
	// decisions; the users new since the models were trained have their
	// own figures in every row.
	code, out, errs = runCmd(t, url, "eval", "--format", "replay", "--holdout-from", "2026-02-03T00:00:00Z", "--eval-max", "300", "--dim", "8", "--foldin", "--json")
	if code != 0 {
		t.Fatalf("--foldin: code %d, stderr %s", code, errs)
	}
	var frep struct {
		Rows []struct {
			Name     string             `json:"name"`
			Kind     string             `json:"kind"`
			All      map[string]float64 `json:"all"`
			NewUsers map[string]float64 `json:"new_users"`
		} `json:"rows"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &frep); err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	for i, r := range frep.Rows {
		byName[r.Name] = i
		if _, ok := r.NewUsers["n"]; !ok {
			t.Fatalf("row %s lacks new_users: %s", r.Name, out)
		}
	}
	fi, ok := byName["full+foldin"]
	if !ok || frep.Rows[fi].Kind != "reranker" || frep.Rows[fi].All["n"] != frep.Rows[byName["full"]].All["n"] {
		t.Fatalf("--foldin: no row full+foldin of kind reranker on the full row's decisions: %s", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--holdout-from", "yesterday"}, "not an RFC 3339 time"},
		{[]string{"--model", "bpr"}, "--format replay takes"},
		{[]string{"--model", "ncf"}, "needs --model als"},
	} {
		if code, _, errs := runCmd(t, url, append([]string{"eval", "--format", "replay"}, tc.args...)...); code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: code %d stderr %q, want 2 and %q", tc.args, code, errs, tc.want)
		}
	}
	if code, _, errs := runCmd(t, url, "eval", "--format", "live", "--foldin"); code != 2 || !strings.Contains(errs, "--foldin applies to --format replay only") {
		t.Errorf("--format live --foldin: code %d stderr %q, want 2 and the flag refused", code, errs)
	}
}
