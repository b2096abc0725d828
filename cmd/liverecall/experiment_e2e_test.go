package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The parts of an experiment end to end, through the real service: the
// CLI creates and starts an A/B experiment (its treatment arm pinning a
// staged MF version) and an interleaving one in another layer; a running
// serve, whose periodic checks are off, picks both up from the
// notification, loads the staged version and assigns users as
// experiment.ArmOf says; the pages it serves over HTTP reach PostgreSQL
// through the impressions topic and `liverecall sink` with their
// experiment, arm and team; watches published on the events topic reach
// it through the sink too; and `liverecall experiment report` counts
// exactly those users, impressions, watches and interleaving wins.
func TestExperimentEndToEnd(t *testing.T) {
	ctx := context.Background()
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	e := startE2EOn(t, db, url, k, "--index-check-every", "1h", "--experiment-report-every", "0")
	sinkDone, sinkErr := startSink(t, url, k)
	// Reports are off (--experiment-report-every 0): the console's route
	// says it has no source instead of failing.
	if code, b := e.get("/v1/admin/experiments", true); code != 200 || !strings.Contains(string(b), `"note":"this server has no source of experiment reports"`) {
		t.Fatalf("GET /v1/admin/experiments with the reports off: %d %s", code, b)
	}
	e.stageModel("v2", 2)
	streamers := make([]int64, 30)
	for i := range streamers {
		streamers[i] = int64(i + 1)
	}
	e.publish(lr.EventStreamStarted, streamers...)
	recallOf := func(u int64, extra string, auth bool) (int, api.RecallResponse, []byte) {
		t.Helper()
		code, b := e.post("/v1/recall", fmt.Sprintf(`{"user_id":%d,"k":6,"debug":true%s}`, u, extra), auth)
		var r api.RecallResponse
		if code == 200 {
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
		}
		return code, r, b
	}
	// Full pages for a user the model knows (user 1) and for one it does
	// not (user 80: the trending and fresh rankings, refreshed apart
	// from the events, must be up).
	e.waitFor("live streamers served", eventually, func() bool {
		c1, r1, _ := recallOf(1, "", false)
		c2, r2, _ := recallOf(80, "", false)
		return c1 == 200 && len(r1.Items) == 6 && c2 == 200 && len(r2.Items) == 6
	})

	dir := t.TempDir()
	for _, def := range []string{
		`{"name": "e2e-ab", "salt": "ab", "mode": "ab",
		  "arms": [{"name": "control", "share": 0.3, "control": true}, {"name": "treat", "share": 0.3, "config": {"mf_version": "v2"}}]}`,
		`{"name": "e2e-il", "salt": "il", "layer": "ranking", "mode": "interleave",
		  "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5, "config": {"disabled_channels": ["trending"]}}]}`,
	} {
		var x lr.Experiment
		if err := json.Unmarshal([]byte(def), &x); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, x.Name+".json")
		if err := os.WriteFile(path, []byte(def), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"experiment", "create", "--file", path}, {"experiment", "start", x.Name}} {
			if code, _, errb := runCLI(t, url, args...); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errb)
			}
		}
	}
	ab, err := db.ExperimentByName(ctx, "e2e-ab")
	if err != nil {
		t.Fatal(err)
	}
	il, err := db.ExperimentByName(ctx, "e2e-il")
	if err != nil {
		t.Fatal(err)
	}

	// Picked up by notification (the periodic check is an hour away):
	// the arm override knows both experiments, and the treatment's
	// version serves.
	e.waitFor("the experiments and v2 served", eventually, func() bool {
		c1, _, _ := recallOf(1, `,"arm":"e2e-ab/treat"`, true)
		c2, _, _ := recallOf(1, `,"arm":"e2e-il"`, true)
		return c1 == 200 && c2 == 200 && strings.Contains(indexVersions(e.status(), lr.ModelMF), "v2/experiment")
	})

	// Users 1..80 ask once each. A user in e2e-ab (layer "default",
	// first) has pages named e2e-ab and its arm; anyone else falls in
	// e2e-il (all traffic) and each position names its team. Every even
	// user then watches the streamer at position 0 for 90 s.
	type want struct{ users, imps, watched int64 }
	abWant := map[string]*want{"control": {}, "treat": {}}
	ilWins := map[string]int64{}
	ilImps := map[string]int64{}
	var watches []lr.Event
	start := time.Now()
	for u := int64(1); u <= 80; u++ {
		code, r, b := recallOf(u, "", false)
		if code != 200 || len(r.Items) == 0 || r.Debug == nil {
			t.Fatalf("user %d: %d %s", u, code, b)
		}
		var got []string
		for _, x := range r.Debug.Experiments {
			if x.Fallback != "" {
				t.Fatalf("user %d: fallback %+v", u, x)
			}
			got = append(got, x.Experiment+"/"+x.Arm)
		}
		abArm := experiment.ArmOf(&ab, lr.UserID(u))
		if experiment.ArmOf(&il, lr.UserID(u)) != 0 {
			t.Fatalf("user %d outside e2e-il, which takes all traffic", u)
		}
		wantExps := "e2e-il/"
		if abArm >= 0 {
			wantExps = "e2e-ab/" + ab.Arms[abArm].Name + "," + wantExps
		}
		if strings.Join(got, ",") != wantExps {
			t.Fatalf("user %d: assigned %v, want %s (experiment.ArmOf)", u, got, wantExps)
		}
		watched := u%2 == 0
		if watched {
			it := r.Items[0]
			at := time.Now().Add(time.Second)
			watches = append(watches,
				lr.Event{ID: fmt.Sprint("wj", u), Type: lr.EventViewerJoined, TS: at, StreamerID: lr.StreamerID(it.StreamerID), StreamID: lr.StreamID(it.StreamID), UserID: lr.UserID(u), V: 1},
				lr.Event{ID: fmt.Sprint("wl", u), Type: lr.EventViewerLeft, TS: at.Add(90 * time.Second), StreamerID: lr.StreamerID(it.StreamerID), StreamID: lr.StreamID(it.StreamID), UserID: lr.UserID(u), V: 1})
		}
		if abArm >= 0 {
			w := abWant[ab.Arms[abArm].Name]
			w.users++
			w.imps += int64(len(r.Items))
			if watched {
				w.watched++
			}
			continue
		}
		for pos, it := range r.Items {
			if it.Debug == nil || (it.Debug.Team != "a" && it.Debug.Team != "b") {
				t.Fatalf("user %d: position %d has no team: %+v", u, pos, it.Debug)
			}
			ilImps[it.Debug.Team]++
		}
		if watched {
			ilWins[r.Items[0].Debug.Team]++
		}
	}
	if abWant["control"].users == 0 || abWant["treat"].users == 0 || len(ilImps) != 2 {
		t.Fatalf("users 1..80 do not cover every arm: %+v %+v %v", abWant["control"], abWant["treat"], ilImps)
	}
	if err := e.prod.Publish(ctx, watches...); err != nil {
		t.Fatal(err)
	}

	// The sink has stored every page's impressions and the watches.
	wantImps := abWant["control"].imps + abWant["treat"].imps + ilImps["a"] + ilImps["b"]
	var imps, sessions int64
	e.waitFor("the impressions and watches in PostgreSQL", eventually, func() bool {
		select {
		case c := <-sinkDone:
			t.Fatalf("sink exited with %d: %s", c, sinkErr)
		default:
		}
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE experiment IN ('e2e-ab', 'e2e-il')) FROM impressions WHERE shown_at >= $1`, start).Scan(&imps); err != nil {
			t.Fatal(err)
		}
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM watch_sessions WHERE user_id BETWEEN 1 AND 80`).Scan(&sessions); err != nil {
			t.Fatal(err)
		}
		return imps == wantImps && sessions == int64(len(watches)/2)
	})

	report := func(name string) experiment.Report {
		t.Helper()
		code, out, errb := runCLI(t, url, "experiment", "report", name, "--json", "--to", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		if code != 0 {
			t.Fatalf("report %s: exit %d: %s", name, code, errb)
		}
		var r experiment.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return r
	}
	r := report("e2e-ab")
	if len(r.Arms) != 2 || r.SRM == nil {
		t.Fatalf("e2e-ab report: %+v", r)
	}
	for _, a := range r.Arms {
		w := abWant[a.Arm]
		if a.Users != w.users || a.Impressions != w.imps || a.Metrics[experiment.WatchThroughRate] != float64(w.watched)/float64(w.imps) {
			t.Errorf("e2e-ab arm %s: users %d, impressions %d, watch-through %v; want %d, %d, %d/%d",
				a.Arm, a.Users, a.Impressions, a.Metrics[experiment.WatchThroughRate], w.users, w.imps, w.watched, w.imps)
		}
	}
	r = report("e2e-il")
	if r.Interleaving == nil || len(r.Arms) != 2 {
		t.Fatalf("e2e-il report: %+v", r)
	}
	for _, a := range r.Arms {
		if a.Impressions != ilImps[a.Arm] || r.Interleaving.Wins[a.Arm] != ilWins[a.Arm] {
			t.Errorf("e2e-il team %s: impressions %d, wins %d; want %d, %d", a.Arm, a.Impressions, r.Interleaving.Wins[a.Arm], ilImps[a.Arm], ilWins[a.Arm])
		}
	}

	// The arm override names only experiments the replica holds: a
	// draft is refused (400, nothing served); one started with its start
	// an hour ahead is held (its arms can be checked) and assigns no one.
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for _, def := range []string{
		`{"name": "e2e-draft", "salt": "d", "layer": "l3", "mode": "ab", "arms": [{"name": "a", "share": 0.1}, {"name": "b", "share": 0.1}]}`,
		`{"name": "e2e-later", "salt": "l", "layer": "l4", "mode": "ab", "start": "` + later + `", "arms": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]}`,
	} {
		path := filepath.Join(dir, "more.json")
		if err := os.WriteFile(path, []byte(def), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, _, errb := runCLI(t, url, "experiment", "create", "--file", path); code != 0 {
			t.Fatalf("create %s: exit %d: %s", def, code, errb)
		}
	}
	if code, _, errb := runCLI(t, url, "experiment", "start", "e2e-later"); code != 0 {
		t.Fatalf("start e2e-later: exit %d: %s", code, errb)
	}
	e.waitFor("e2e-later held", eventually, func() bool {
		code, _, _ := recallOf(1, `,"arm":"e2e-later/b"`, true)
		return code == 200
	})
	if code, _, b := recallOf(1, `,"arm":"e2e-draft/a"`, true); code != 400 || !strings.Contains(string(b), `no experiment \"e2e-draft\" on this replica (replicas hold running and paused experiments, not drafts`) {
		t.Errorf("override of a draft: %d %s", code, b)
	}
	for u := int64(1); u <= 20; u++ {
		_, r, _ := recallOf(u, "", false)
		for _, x := range r.Debug.Experiments {
			if x.Experiment == "e2e-later" {
				t.Fatalf("user %d assigned to e2e-later before its start: %+v", u, x)
			}
		}
	}
}
