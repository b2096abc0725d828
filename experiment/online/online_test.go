package online_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/experiment/online"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

var channels = []string{"mf", "ncf", "session", "follow", "trending", "fresh"}

// seed creates and starts the A/B experiment ab1 (control and treat, 50/50,
// started 3 hours before now) and writes two users' impressions per arm an
// hour before now: two each, watched 1 and 0 in control, 2 and 1 in treat
// (watches of 120 s a minute after the impression). It also creates the
// draft experiment draft1, which is not reported.
func seed(t *testing.T, db *postgres.DB, now time.Time) {
	t.Helper()
	ctx := context.Background()
	e := lr.Experiment{Name: "ab1", Salt: "s1", Mode: lr.ModeAB, Start: now.Add(-3 * time.Hour),
		Arms: []lr.Arm{{Name: "control", Share: 0.5, Control: true}, {Name: "treat", Share: 0.5, Config: lr.ArmConfig{Disabled: []string{"fresh"}}}}}
	if _, err := db.CreateExperiment(ctx, e, channels); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartExperiment(ctx, "ab1"); err != nil {
		t.Fatal(err)
	}
	d := e
	d.Name, d.Layer = "draft1", "other"
	d.Arms = []lr.Arm{{Name: "a", Share: 0.1}, {Name: "b", Share: 0.1}}
	if _, err := db.CreateExperiment(ctx, d, channels); err != nil {
		t.Fatal(err)
	}
	shown := now.Add(-time.Hour)
	var imps []lr.Impression
	n := 0
	for _, u := range []struct {
		user    int64
		arm     string
		watched int
	}{{1, "control", 1}, {2, "control", 0}, {3, "treat", 2}, {4, "treat", 1}} {
		for p := range 2 {
			streamer := 10 + int64(p)
			imps = append(imps, lr.Impression{RequestID: fmt.Sprint("r", u.user), UserID: lr.UserID(u.user), StreamerID: lr.StreamerID(streamer),
				Position: p, ShownAt: shown, Experiment: "ab1", Arm: u.arm})
			if p < u.watched {
				watch(t, db, &n, u.user, streamer, shown.Add(time.Minute))
			}
		}
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
}

func watch(t *testing.T, db *postgres.DB, n *int, user, streamer int64, at time.Time) {
	t.Helper()
	*n++
	if _, err := db.Pool.Exec(context.Background(), `INSERT INTO watch_sessions (event_id, user_id, stream_id, streamer_id, started_at, ended_at, seconds)
		VALUES ($1, $2, 1, $3, $4::timestamptz, $4::timestamptz + interval '120 seconds', 120)`, fmt.Sprintf("w%d-%d", user, *n), user, streamer, at); err != nil {
		t.Fatal(err)
	}
}

// gauge returns the value of the series of name with labels in reg, and
// whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestReportOnDemand(t *testing.T) {
	db := pgtest.Open(t)
	now := time.Now().UTC()
	seed(t, db, now)
	r, err := online.Report(context.Background(), db, "ab1", experiment.Query{}, now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != lr.ExperimentRunning || r.Arms[0].Metrics[experiment.WatchThroughRate] != 0.25 || r.Arms[1].Metrics[experiment.WatchThroughRate] != 0.75 ||
		math.Abs(r.Arms[1].Diffs[experiment.WatchThroughRate].P-math.Erfc(1)) > 1e-12 {
		t.Fatalf("%+v", r)
	}
	if _, err := online.Report(context.Background(), db, "nope", experiment.Query{}, now); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("unknown experiment: %v", err)
	}
	if _, err := online.Report(context.Background(), db, "ab1", experiment.Query{From: now, To: now.Add(-time.Hour)}, now); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("empty window: %v", err)
	}
}

// The Reporter reports the serving experiments only, exports their figures,
// keeps the last figures when PostgreSQL cannot answer the query (and counts
// it), picks up new outcomes, and drops an experiment once stopped.
func TestReporterRefreshMetricsAndFailure(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC()
	seed(t, db, now)
	reg := prometheus.NewRegistry()
	rep := online.New(online.Config{Store: db, Registerer: reg, Now: func() time.Time { return now }})
	if _, err := rep.Reports(ctx); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("before any refresh: %v", err)
	}
	if err := rep.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	reports, err := rep.Reports(ctx)
	if err != nil || len(reports) != 1 || reports[0].Experiment != "ab1" {
		t.Fatalf("reports %+v, %v", reports, err)
	}
	treatWTR := map[string]string{"experiment": "ab1", "arm": "treat", "metric": experiment.WatchThroughRate}
	ctlWTR := map[string]string{"experiment": "ab1", "arm": "control", "metric": experiment.WatchThroughRate}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"liverecall_experiment_metric", treatWTR, 0.75},
		{"liverecall_experiment_metric", ctlWTR, 0.25},
		{"liverecall_experiment_diff", treatWTR, 0.5},
		{"liverecall_experiment_diff_p", treatWTR, math.Erfc(1)},
		{"liverecall_experiment_users", map[string]string{"experiment": "ab1", "arm": "treat"}, 2},
		{"liverecall_experiment_impressions", map[string]string{"experiment": "ab1", "arm": "control"}, 4},
		{"liverecall_experiment_srm_p", map[string]string{"experiment": "ab1"}, 1},
		{"liverecall_experiment_report_refreshes_total", map[string]string{"result": "ok"}, 1},
		{"liverecall_experiment_report_refreshes_total", map[string]string{"result": "error"}, 0},
	} {
		if got, ok := gauge(t, reg, c.name, c.labels); !ok || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s%v = %v (%v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := gauge(t, reg, "liverecall_experiment_diff", ctlWTR); ok {
		t.Error("control has a diff against itself")
	}
	if _, ok := gauge(t, reg, "liverecall_experiment_users", map[string]string{"experiment": "draft1"}); ok {
		t.Error("a draft experiment is reported")
	}

	// The outcomes' table is unreadable: the refresh fails, is counted, and
	// the last figures stay (in the metrics and for the dashboard).
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE watch_sessions RENAME TO watch_sessions_away`); err != nil {
		t.Fatal(err)
	}
	if err := rep.Refresh(ctx); err == nil {
		t.Fatal("refresh without watch_sessions succeeded")
	}
	if got, _ := gauge(t, reg, "liverecall_experiment_report_refreshes_total", map[string]string{"result": "error"}); got != 1 {
		t.Errorf("errors counted: %v, want 1", got)
	}
	if got, ok := gauge(t, reg, "liverecall_experiment_metric", treatWTR); !ok || got != 0.75 {
		t.Errorf("after a failed refresh: %v (%v), want the last value 0.75", got, ok)
	}
	if kept, err := rep.Reports(ctx); err != nil || len(kept) != 1 || !kept[0].GeneratedAt.Equal(reports[0].GeneratedAt) {
		t.Errorf("after a failed refresh, Reports = %+v, %v; want the last report", kept, err)
	}

	// Back, with user 2's first impression now watched: control at 0.5.
	if _, err := db.Pool.Exec(ctx, `ALTER TABLE watch_sessions_away RENAME TO watch_sessions`); err != nil {
		t.Fatal(err)
	}
	n := 100
	watch(t, db, &n, 2, 10, now.Add(-time.Hour+time.Minute))
	if err := rep.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := gauge(t, reg, "liverecall_experiment_metric", ctlWTR); got != 0.5 {
		t.Errorf("control watch-through after the new watch: %v, want 0.5", got)
	}

	// Stopped: no longer reported, its series gone.
	if _, err := db.StopExperiment(ctx, "ab1"); err != nil {
		t.Fatal(err)
	}
	if err := rep.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := gauge(t, reg, "liverecall_experiment_metric", ctlWTR); ok {
		t.Error("a stopped experiment is still exported")
	}
	if reports, err := rep.Reports(ctx); err != nil || len(reports) != 0 {
		t.Errorf("after the stop: %+v, %v", reports, err)
	}
}
