package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// runCLI runs the binary's Run with DATABASE_URL set to url and returns the
// exit code, stdout and stderr.
func runCLI(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	app, out, errb := testApp(map[string]string{"DATABASE_URL": url})
	code := Run(context.Background(), app, args)
	return code, out.String(), errb.String()
}

func TestExperimentCommands(t *testing.T) {
	ctx := context.Background()
	db, url := pgtest.OpenURL(t)
	for _, v := range []string{"m1", "m2", "m3"} {
		if _, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: v, Dim: 8}); err != nil {
			t.Fatal(err)
		}
	}
	// m3 was active, then retired by m1's activation.
	for _, v := range []string{"m3", "m1"} {
		mv, err := db.ModelByVersion(ctx, lr.ModelMF, v)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	exp := write("e1.json", `{
  "name": "mf-v2", "salt": "s1", "mode": "ab", "status": "running",
  "start": "2026-12-01T00:00:00Z",
  "arms": [
    {"name": "control", "share": 0.05, "control": true},
    {"name": "treatment", "share": 0.05, "config": {"mf_version": "m2", "disabled_channels": ["fresh"]}}
  ]
}`)
	code, out, errb := runCLI(t, url, "experiment", "create", "--file", exp)
	if code != 0 {
		t.Fatalf("create: %d %s", code, errb)
	}
	var got lr.Experiment
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.ID == 0 || got.Status != lr.ExperimentDraft || got.Layer != "default" ||
		len(got.Arms) != 2 || got.Arms[1].Config.MFVersion != "m2" {
		t.Fatalf("create printed %s (%v)", out, err)
	}
	if stored, err := db.ExperimentByName(ctx, "mf-v2"); err != nil || stored.Status != lr.ExperimentDraft {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	// Flags may come after the action and the name.
	for _, step := range [][]string{{"start", "running"}, {"pause", "paused"}, {"start", "running"}} {
		code, out, errb := runCLI(t, "postgres://nowhere.invalid/x", "experiment", step[0], "mf-v2", "--database-url", url)
		if code != 0 || out != "experiment mf-v2: "+step[1]+"\n" {
			t.Fatalf("%s: %d %q %s", step[0], code, out, errb)
		}
	}
	code, out, _ = runCLI(t, url, "experiment", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "mf-v2") || !strings.Contains(lines[1], "running") || !strings.Contains(lines[1], "treatment 5% (mf=m2 -fresh)") {
		t.Fatalf("list: %d\n%s", code, out)
	}

	// Refusals: exit 1 with the store's message, nothing stored.
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"name taken", []string{"experiment", "create", "--file", exp}, "mf-v2 already exists"},
		{"missing version", []string{"experiment", "create", "--file", write("x.json", `{"name":"x","salt":"s","layer":"l2","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","share":0.1,"config":{"ncf_version":"n9"}}]}`)}, `arm b: ncf_version "n9"`},
		{"retired version", []string{"experiment", "create", "--file", write("r.json", `{"name":"r","salt":"s","layer":"l3","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","share":0.1,"config":{"mf_version":"m3"}}]}`)}, `arm b: mf_version "m3": the mf model version "m3" is retired`},
		{"shares above 100%", []string{"experiment", "create", "--file", write("s.json", `{"name":"s","salt":"s","layer":"l4","mode":"ab","arms":[{"name":"a","share":0.6},{"name":"b","share":0.5}]}`)}, "sum to 110% of traffic, above 100%"},
		{"unknown channel", []string{"experiment", "create", "--file", write("c.json", `{"name":"c","salt":"s","layer":"l5","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","share":0.1,"config":{"disabled_channels":["radio"]}}]}`)}, `arm b: disabled_channels: unknown channel "radio" (channels: mf,`},
		{"overlap", []string{"experiment", "create", "--file", write("y.json", `{"name":"y","salt":"s","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","share":0.1}]}`)}, "overlaps experiment mf-v2"},
		{"unknown field", []string{"experiment", "create", "--file", write("z.json", `{"name":"z","salt":"s","mode":"ab","arms":[{"name":"a","share":0.1,"cfg":{}}]}`)}, `z.json: not an experiment: unknown field "arms[0].cfg"`},
		{"a key twice", []string{"experiment", "create", "--file", write("d.json", `{"name":"d","salt":"s","layer":"l6","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","share":0.1,"share":0.9}]}`)}, `d.json: not an experiment: duplicate key "arms[1].share"`},
		{"a key in another case", []string{"experiment", "create", "--file", write("k.json", `{"name":"k","salt":"s","layer":"l7","mode":"ab","arms":[{"name":"a","share":0.1},{"name":"b","Share":0.1}]}`)}, `k.json: not an experiment: unknown field "arms[1].Share" (field names are case-sensitive: did you mean "arms[1].share"?)`},
		{"not a file", []string{"experiment", "create", "--file", filepath.Join(dir, "none.json")}, "reading " + filepath.Join(dir, "none.json")},
		{"bad transition", []string{"experiment", "start", "mf-v2"}, "mf-v2 is running"},
		{"unknown experiment", []string{"experiment", "stop", "nope"}, `experiment "nope" not found`},
	} {
		code, out, errb := runCLI(t, url, c.args...)
		if code != 1 || out != "" || !strings.Contains(errb, "\nliverecall experiment: ") && !strings.HasPrefix(errb, "liverecall experiment: ") || !strings.Contains(errb, c.want) {
			t.Errorf("%s: code %d, out %q, stderr %q; want 1 and %q", c.name, code, out, errb, c.want)
		}
	}
	if exps, _ := db.ListExperiments(ctx); len(exps) != 1 || exps[0].Status != lr.ExperimentRunning {
		t.Fatalf("after the refusals: %+v", exps)
	}
	// Usage errors: exit 2 with a message, before the database is opened.
	for _, args := range [][]string{
		{"experiment"}, {"experiment", "frob"}, {"experiment", "create"}, {"experiment", "create", "--file", exp, "extra"},
		{"experiment", "start"}, {"experiment", "stop", "a", "b"}, {"experiment", "list", "x"}, {"experiment", "start", "x", "--file", exp},
		{"experiment", "list", "--no-such-flag"},
	} {
		code, _, errb := runCLI(t, "postgres://nowhere.invalid/x", args...)
		if code != 2 || !strings.Contains(errb, "usage: liverecall experiment") {
			t.Errorf("%q: code %d, stderr %q; want 2 and the usage", args, code, errb)
		}
	}
	if code, out, errb := runCLI(t, url, "experiment", "stop", "mf-v2"); code != 0 || out != "experiment mf-v2: stopped\n" {
		t.Fatalf("stop: %d %q %s", code, out, errb)
	}
	if code, _, errb := runCLI(t, url, "experiment", "pause", "mf-v2"); code != 1 || !strings.Contains(errb, "mf-v2 is stopped") {
		t.Fatalf("pause after stop: %d %s", code, errb)
	}
}

func TestModelsCommands(t *testing.T) {
	ctx := context.Background()
	db, url := pgtest.OpenURL(t)
	for _, v := range []string{"m1", "m2"} {
		if _, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: v, Dim: 8}); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"r1", "r2"} {
		if _, err := db.CreateRerankModel(ctx, v, []byte(`{"bias":1}`), nil); err != nil {
			t.Fatal(err)
		}
	}
	active := func(kind string) string {
		t.Helper()
		if kind == "rerank" {
			m, err := db.ActiveRerankModel(ctx)
			if err != nil {
				return ""
			}
			return m.Version
		}
		m, err := db.ActiveModel(ctx, lr.ModelKind(kind))
		if err != nil {
			return ""
		}
		return m.Version
	}
	steps := []struct {
		args   []string
		out    string
		active string
	}{
		{[]string{"activate", "mf", "m1"}, "mf m1 is active\n", "m1"},
		{[]string{"activate", "mf", "m1"}, "mf m1 is active (it was already)\n", "m1"},
		{[]string{"activate", "mf", "m2"}, "mf m2 is active, m1 retired\n", "m2"},
		{[]string{"rollback", "mf"}, "mf rolled back: m1 is active, m2 retired\n", "m1"},
		{[]string{"rollback", "mf"}, "mf rolled back: m2 is active, m1 retired\n", "m2"},
		{[]string{"activate", "rerank", "r1"}, "rerank r1 is active\n", "r1"},
		{[]string{"activate", "rerank", "r2"}, "rerank r2 is active, r1 retired\n", "r2"},
		{[]string{"rollback", "rerank"}, "rerank rolled back: r1 is active, r2 retired\n", "r1"},
	}
	for _, s := range steps {
		code, out, errb := runCLI(t, url, append([]string{"models"}, s.args...)...)
		if code != 0 || out != s.out {
			t.Fatalf("%q: code %d, out %q, stderr %q; want %q", s.args, code, out, errb, s.out)
		}
		if got := active(s.args[1]); got != s.active {
			t.Fatalf("%q: active %s %q, want %q", s.args, s.args[1], got, s.active)
		}
	}
	code, out, _ := runCLI(t, url, "models", "list")
	for _, want := range []string{"KIND", "mf    m2       active", "mf    m1       retired", "rerank  r1", "rerank  r2"} {
		if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("models list: %d\n%s\nwant a line with %q", code, out, want)
		}
	}
	code, out, _ = runCLI(t, url, "models", "list", "--kind", "rerank")
	if code != 0 || strings.Contains(out, "mf ") || strings.Count(out, "\n") != 3 {
		t.Errorf("models list --kind rerank: %d\n%s", code, out)
	}

	// Activating away a version a running experiment's arm names warns.
	if _, err := db.CreateExperiment(ctx, lr.Experiment{Name: "e", Salt: "s", Mode: lr.ModeAB, Arms: []lr.Arm{
		{Name: "control", Share: 0.1}, {Name: "old", Share: 0.1, Config: lr.ArmConfig{MFVersion: "m2"}}}}, []string{"mf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartExperiment(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	code, out, errb := runCLI(t, url, "models", "rollback", "mf")
	if code != 0 || out != "mf rolled back: m1 is active, m2 retired\n" ||
		!strings.Contains(errb, "warning: experiment e (running), arm old: mf_version m2 is retired; replicas serve the arm's users with the default configuration") {
		t.Fatalf("rollback under an experiment: %d %q %q", code, out, errb)
	}
	if code, out, _ := runCLI(t, url, "experiment", "list"); code != 0 || !strings.Contains(out, "warning: experiment e (running), arm old") {
		t.Fatalf("experiment list does not warn: %d\n%s", code, out)
	}

	// Store refusals: exit 1 with the reason.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollback", "ncf"}, "no ncf version was active before the current one: nothing to roll back to"},
		{[]string{"activate", "mf", "nope"}, `no mf model version "nope"`},
		{[]string{"activate", "rerank", "nope"}, `no rerank version "nope"`},
	} {
		code, _, errb := runCLI(t, url, append([]string{"models"}, c.args...)...)
		if code != 1 || !strings.Contains(errb, c.want) {
			t.Errorf("%q: code %d, stderr %q; want 1 and %q", c.args, code, errb, c.want)
		}
	}
	if active("mf") != "m1" || active("rerank") != "r1" {
		t.Fatalf("a refusal changed the active versions")
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{
		{"models"}, {"models", "frob"}, {"models", "activate", "mf"}, {"models", "activate", "xyz", "v"},
		{"models", "rollback"}, {"models", "rollback", "mf", "extra"}, {"models", "list", "--kind", "als"}, {"models", "rollback", "mf", "--kind", "mf"},
	} {
		code, _, errb := runCLI(t, "postgres://nowhere.invalid/x", args...)
		if code != 2 || !strings.Contains(errb, "usage: liverecall models") {
			t.Errorf("%q: code %d, stderr %q; want 2 and the usage", args, code, errb)
		}
	}
}

// Impressions served by an experiment travel through the impressions
// topic and `liverecall sink` into PostgreSQL with their experiment, arm
// and team (NULL for the default configuration).
func TestSinkWritesImpressionsExperimentArmTeam(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	done, errb := startSink(t, url, k)
	ctx := context.Background()
	app, _, _ := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	p := events.NewImpressionProducer(events.ImpressionConfig{Brokers: k.Brokers(), Log: app.Log})
	now := time.Now().UTC().Truncate(time.Millisecond)
	p.Log([]lr.Impression{{RequestID: "d", UserID: 1, StreamerID: 10, ShownAt: now}})
	p.Log([]lr.Impression{{RequestID: "ab", UserID: 2, StreamerID: 10, ShownAt: now, Experiment: "e1", Arm: "treatment"}})
	p.Log([]lr.Impression{{RequestID: "il", UserID: 3, StreamerID: 10, ShownAt: now, Experiment: "e2", Team: "control"},
		{RequestID: "il", UserID: 3, StreamerID: 11, Position: 1, ShownAt: now, Experiment: "e2", Team: "treatment"}})
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want := "ab/0 e1 treatment NULL|d/0 NULL NULL NULL|il/0 e2 NULL control|il/1 e2 NULL treatment"
	var got string
	deadline := time.Now().Add(eventually)
	for {
		db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(concat_ws(' ', request_id || '/' || position,
			coalesce(experiment, 'NULL'), coalesce(arm, 'NULL'), coalesce(team, 'NULL')), '|' ORDER BY request_id, position), '') FROM impressions`).Scan(&got)
		if got == want {
			return
		}
		select {
		case c := <-done:
			t.Fatalf("sink exited with %d: %s", c, errb)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("impressions in PostgreSQL after %v: %q, want %q", eventually, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startSink runs `liverecall sink` from k into the database at url until
// the test ends; done receives its exit code, errb holds its stderr.
func startSink(t *testing.T, url string, k *kafkatest.Cluster) (<-chan int, *bytes.Buffer) {
	t.Helper()
	app, _, errb := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, app, []string{"sink", "--database-url", url, "--kafka-brokers", k.Brokers()[0], "--sink-metrics-addr", "127.0.0.1:0"})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(stopWithin(0)):
			t.Errorf("sink did not stop within %v", stopWithin(0))
		}
	})
	return done, errb
}
