package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// seedExperimentReport creates and starts, through the CLI, the A/B
// experiment ab1 (control, treat) and the interleaving experiment il1 (a,
// b), both started 3 hours before now, and writes their impressions an
// hour before now and what followed them as the events the sink stores:
//
//	ab1 control: user 1 watches 1 of 2 (120 s, a gift during it); user 2 none of 2
//	ab1 treat:   user 3 watches 2 of 2 (120 s each) and follows one; user 4 watches 1 of 2
//	il1 pages (a, b, a, b): user 5 watches a b position (b wins), user 6 two a
//	positions (a wins), user 7 one of each (tie)
func seedExperimentReport(t *testing.T, db *postgres.DB, url string, now time.Time) {
	t.Helper()
	ctx := context.Background()
	start := now.Add(-3 * time.Hour).Format(time.RFC3339)
	for _, def := range []string{
		`{"name": "ab1", "salt": "s1", "mode": "ab", "start": "` + start + `",
		  "arms": [{"name": "control", "share": 0.5, "control": true}, {"name": "treat", "share": 0.5, "config": {"disabled_channels": ["fresh"]}}]}`,
		`{"name": "il1", "salt": "s2", "layer": "ranking", "mode": "interleave", "start": "` + start + `",
		  "arms": [{"name": "a", "share": 0.05}, {"name": "b", "share": 0.05, "config": {"disabled_channels": ["trending"]}}]}`,
	} {
		var e lr.Experiment
		if err := json.Unmarshal([]byte(def), &e); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), e.Name+".json")
		if err := os.WriteFile(path, []byte(def), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"experiment", "create", "--file", path}, {"experiment", "start", e.Name}} {
			app, _, errb := testApp(nil)
			if code := Run(ctx, app, append(args, "--database-url", url)); code != 0 {
				t.Fatalf("%v: exit %d: %s", args, code, errb)
			}
		}
	}
	shown := now.Add(-time.Hour)
	var imps []lr.Impression
	var evs []lr.Event
	n := 0
	watch := func(user, streamer int64) {
		n++
		at := shown.Add(time.Minute)
		evs = append(evs,
			lr.Event{ID: fmt.Sprint("j", n), Type: lr.EventViewerJoined, TS: at, StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(streamer * 10), UserID: lr.UserID(user), V: 1},
			lr.Event{ID: fmt.Sprint("l", n), Type: lr.EventViewerLeft, TS: at.Add(2 * time.Minute), StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(streamer * 10), UserID: lr.UserID(user), V: 1})
	}
	for _, u := range []struct {
		user    int64
		arm     string
		watched int
	}{{1, "control", 1}, {2, "control", 0}, {3, "treat", 2}, {4, "treat", 1}} {
		for p := range 2 {
			streamer := 10 + int64(p)
			imps = append(imps, lr.Impression{RequestID: fmt.Sprint("r", u.user), UserID: lr.UserID(u.user), StreamerID: lr.StreamerID(streamer),
				StreamID: lr.StreamID(streamer * 10), Position: p, ShownAt: shown, Experiment: "ab1", Arm: u.arm})
			if p < u.watched {
				watch(u.user, streamer)
			}
		}
	}
	evs = append(evs,
		lr.Event{ID: "g1", Type: lr.EventGiftSent, TS: shown.Add(2 * time.Minute), StreamerID: 10, StreamID: 100, UserID: 1, Amount: 5, V: 1},
		lr.Event{ID: "f1", Type: lr.EventFollowCreated, TS: shown.Add(2 * time.Minute), StreamerID: 11, UserID: 3, V: 1})
	for _, pg := range []struct {
		user    int64
		watched []int
	}{{5, []int{1}}, {6, []int{0, 2}}, {7, []int{0, 1}}} {
		for p := range 4 {
			team := "a"
			if p%2 == 1 {
				team = "b"
			}
			streamer := 20 + int64(p)
			imps = append(imps, lr.Impression{RequestID: fmt.Sprint("p", pg.user), UserID: lr.UserID(pg.user), StreamerID: lr.StreamerID(streamer),
				StreamID: lr.StreamID(streamer * 10), Position: p, ShownAt: shown, Experiment: "il1", Team: team})
			if slices.Contains(pg.watched, p) {
				watch(pg.user, streamer)
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b lr.Event) int { return a.TS.Compare(b.TS) })
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	if res, err := db.WriteEvents(ctx, evs); err != nil || res.Sessions != 9 || res.Gifts != 1 || res.Follows != 1 {
		t.Fatalf("events: %+v, %v", res, err)
	}
}

// `liverecall experiment report` end to end: the experiments created and
// started by the CLI, impressions and sink-stored outcomes in PostgreSQL,
// the printed table and the JSON report with exact figures.
func TestExperimentReportCommand(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	now := time.Now().UTC()
	seedExperimentReport(t, db, url, now)
	ctx := context.Background()

	app, out, errb := testApp(nil)
	if code := Run(ctx, app, []string{"experiment", "report", "ab1", "--database-url", url, "--json"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var r experiment.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if r.Experiment != "ab1" || r.Status != lr.ExperimentRunning || r.WatchSeconds != 60 || r.WithinSeconds != 600 || len(r.Arms) != 2 {
		t.Fatalf("report %+v", r)
	}
	want := map[string]map[string]float64{
		"control": {experiment.WatchThroughRate: 0.25, experiment.WatchSecondsPerImpression: 30, experiment.GiftsPer1000: 250, experiment.FollowsPer1000: 0},
		"treat":   {experiment.WatchThroughRate: 0.75, experiment.WatchSecondsPerImpression: 90, experiment.GiftsPer1000: 0, experiment.FollowsPer1000: 250},
	}
	for _, a := range r.Arms {
		if a.Users != 2 || a.Impressions != 4 || !metricsEqual(a.Metrics, want[a.Arm]) || len(a.Series) != 1 || a.Series[0].Impressions != 4 {
			t.Errorf("arm %+v, want metrics %v", a, want[a.Arm])
		}
	}
	// Watch-through: each arm's variance 0.0625, the difference 0.5 has
	// standard error √0.125: z = √2, p = erfc(1) = 0.157.
	d := r.Arms[1].Diffs[experiment.WatchThroughRate]
	if math.Abs(d.Delta-0.5) > 1e-12 || math.Abs(d.P-math.Erfc(1)) > 1e-12 || r.SRM == nil || r.SRM.P != 1 || r.SRM.Mismatch {
		t.Errorf("diff %+v, SRM %+v", d, r.SRM)
	}

	app, out, errb = testApp(map[string]string{"LIVERECALL_DATABASE_URL": url})
	if code := Run(ctx, app, []string{"experiment", "report", "ab1"}); code != 0 {
		t.Fatalf("text: exit %d: %s", code, errb)
	}
	text := out.String()
	for _, want := range []string{
		"experiment ab1 (ab, running)",
		"watched: a watch of at least 60 s starting within 10m0s of the impression",
		"control (control)  50.0%        2            4         0.2500        30.0000       250.0000         0.0000",
		"treat              50.0%        2            4         0.7500        90.0000         0.0000       250.0000",
		"treat - control, 95% CI, two-sided p:",
		"watch_through_rate                +0.5000 (+200.00%)  [-0.1930, +1.1930]  p=0.157",
		"gifts_per_1000_impressions      -250.0000 (-100.00%)  [-739.9910, +239.9910]  p=0.317",
		"follows_per_1000_impressions    +250.0000      (n/a)  [-239.9910, +739.9910]  p=0.317",
		"SRM: chi-square 0.000, df 1, p=1: ok",
		"method: delta method",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the text report lacks %q:\n%s", want, text)
		}
	}

	// Interleaving: wins per team and the sign test.
	app, out, errb = testApp(nil)
	if code := Run(ctx, app, []string{"experiment", "--database-url", url, "report", "il1"}); code != 0 {
		t.Fatalf("il1: exit %d: %s", code, errb)
	}
	if want := "interleaving: pages won a 1 (50.0%), b 1 (50.0%), ties 1; sign test p=1"; !strings.Contains(out.String(), want) {
		t.Errorf("the interleaving report lacks %q:\n%s", want, out)
	}
	if strings.Contains(out.String(), "SRM") {
		t.Errorf("an interleaving report has an SRM check:\n%s", out)
	}

	// A stricter label and a window: 121 s watches count none; a window
	// ending before the impressions has none of them.
	app, out, _ = testApp(nil)
	if code := Run(ctx, app, []string{"experiment", "report", "ab1", "--database-url", url, "--json", "--watch-seconds", "121", "--within", "5m",
		"--to", now.Add(-90 * time.Minute).Format(time.RFC3339)}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	r = experiment.Report{}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil || r.WatchSeconds != 121 || r.WithinSeconds != 300 || r.Arms[0].Impressions != 0 {
		t.Errorf("--watch-seconds 121 --to before the impressions: %+v, %v", r, err)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"experiment", "report", "nope"}, 1, "nope"},
		{[]string{"experiment", "report"}, 2, "name the experiment"},
		{[]string{"experiment", "report", "ab1", "--from", "yesterday"}, 2, `--from "yesterday" is not an RFC 3339 time`},
		{[]string{"experiment", "report", "ab1", "--watch-seconds", "0"}, 2, "must be positive"},
		{[]string{"experiment", "report", "ab1", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"experiment", "report", "ab1", "--from", now.Format(time.RFC3339), "--to", now.Add(-time.Hour).Format(time.RFC3339)}, 1, "is empty"},
	} {
		app, _, errb := testApp(map[string]string{"LIVERECALL_DATABASE_URL": url})
		if code := Run(ctx, app, c.args); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errb, c.code, c.want)
		}
	}
}

func metricsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if math.Abs(a[k]-v) > 1e-12 {
			return false
		}
	}
	return true
}

// serve computes the serving experiments' reports at start (and every
// --experiment-report-every) and exports them per experiment, arm and
// metric on /metrics.
func TestServeExportsExperimentMetrics(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	seedExperimentReport(t, db, url, time.Now().UTC())
	app, _, _ := testApp(nil)
	app.Log = newLogger(io.Discard, "info", "json")
	addr, stop := serveForTest(t, app, "--database-url", url, "--http-addr", "127.0.0.1:0", "--shutdown-timeout", "5s")
	defer stop()
	want := []string{
		`liverecall_experiment_metric{arm="treat",experiment="ab1",metric="watch_through_rate"} 0.75`,
		`liverecall_experiment_metric{arm="control",experiment="ab1",metric="gifts_per_1000_impressions"} 250`,
		`liverecall_experiment_users{arm="control",experiment="ab1"} 2`,
		`liverecall_experiment_srm_p{experiment="ab1"} 1`,
		`liverecall_experiment_interleaving_wins{arm="b",experiment="il1"} 1`,
		`liverecall_experiment_interleaving_ties{experiment="il1"} 1`,
		`liverecall_experiment_report_refreshes_total{result="ok"} 2`,
	}
	var body string
	deadline := time.Now().Add(eventually)
	for {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		missing := slices.IndexFunc(want, func(w string) bool { return !strings.Contains(body, w) })
		if missing < 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics lacks %s after %s:\n%s", want[missing], eventually, grepLines(body, "liverecall_experiment"))
		}
		time.Sleep(50 * time.Millisecond) // polling /metrics for the first refresh
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
