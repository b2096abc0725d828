package postgres_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// outcomesDB holds watch sessions, gifts and follows written directly (the
// sink's tables), so each label of the test is spelled out.
type outcomesDB struct {
	t  *testing.T
	db *postgres.DB
	n  int
}

func (o *outcomesDB) watch(user, streamer int64, start time.Time, secs int) {
	o.t.Helper()
	o.n++
	if _, err := o.db.Pool.Exec(context.Background(), `INSERT INTO watch_sessions (event_id, user_id, stream_id, streamer_id, started_at, ended_at, seconds)
		VALUES ($1, $2, $3::bigint * 10, $3::bigint, $4, $5, $6)`, fmt.Sprintf("w%d", o.n), user, streamer, start, start.Add(time.Duration(secs)*time.Second), secs); err != nil {
		o.t.Fatal(err)
	}
}

func (o *outcomesDB) gift(user, streamer int64, at time.Time) {
	o.t.Helper()
	o.n++
	if _, err := o.db.Pool.Exec(context.Background(), `INSERT INTO gifts (event_id, user_id, streamer_id, stream_id, amount, sent_at) VALUES ($1, $2, $3::bigint, $3::bigint * 10, 5, $4)`,
		fmt.Sprintf("g%d", o.n), user, streamer, at); err != nil {
		o.t.Fatal(err)
	}
}

func (o *outcomesDB) follow(user, streamer int64, at time.Time) {
	o.t.Helper()
	if _, err := o.db.Pool.Exec(context.Background(), `INSERT INTO follows (user_id, streamer_id, created_at, updated_at) VALUES ($1, $2, $3, $3)`,
		user, streamer, at); err != nil {
		o.t.Fatal(err)
	}
}

// TestExperimentOutcomes: two arms of two users each, with known outcomes,
// give exact per-user aggregates, hourly series and figures; impressions
// of other experiments, of the default traffic and outside the window are
// left out.
func TestExperimentOutcomes(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m := func(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }
	imp := func(req string, user, streamer int64, pos int, at time.Time, exp, arm string) lr.Impression {
		return lr.Impression{RequestID: req, UserID: lr.UserID(user), StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(streamer * 10),
			Position: pos, ShownAt: at, Experiment: exp, Arm: arm}
	}
	imps := []lr.Impression{
		// control: user 1 at 10:05, user 2 at 11:05
		imp("r1", 1, 10, 0, m(5), "ab1", "control"), imp("r1", 1, 11, 1, m(5), "ab1", "control"),
		imp("r2", 2, 12, 0, m(65), "ab1", "control"), imp("r2", 2, 13, 1, m(65), "ab1", "control"),
		// treat: user 3 at 10:10, user 4 at 11:10
		imp("r3", 3, 10, 0, m(10), "ab1", "treat"), imp("r3", 3, 11, 1, m(10), "ab1", "treat"),
		imp("r4", 4, 12, 0, m(70), "ab1", "treat"), imp("r4", 4, 13, 1, m(70), "ab1", "treat"),
		// left out: another experiment, the default traffic, before the window
		imp("r5", 1, 10, 0, m(5), "other", "control"), imp("r6", 1, 10, 0, m(6), "", ""),
		imp("r7", 3, 10, 0, m(-30), "ab1", "treat"),
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	o := &outcomesDB{t: t, db: db}
	o.watch(1, 10, m(6), 120) // watched, with a gift during it
	o.gift(1, 10, m(7))
	o.watch(1, 11, m(6), 30)   // 30 s: not watched (N = 60), its seconds count
	o.watch(2, 13, m(76), 300) // starts 11 min after: outside the window
	o.watch(3, 10, m(11), 90)
	o.watch(3, 11, m(12), 200)
	o.follow(3, 11, m(12))
	o.watch(4, 12, m(71), 61)
	o.gift(4, 12, m(73))   // after the watch ended: not counted
	o.follow(4, 13, m(81)) // 11 min after: outside the window

	e := &lr.Experiment{Name: "ab1", Salt: "s", Mode: lr.ModeAB, Status: lr.ExperimentRunning, Start: t0,
		Arms: []lr.Arm{{Name: "control", Share: 0.5}, {Name: "treat", Share: 0.5}}}
	q, err := experiment.Query{WatchSeconds: 60, Within: 10 * time.Minute}.Resolve(e, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.ExperimentOutcomes(ctx, e, q)
	if err != nil {
		t.Fatal(err)
	}
	sortAggs := func(us []experiment.UserAgg) []experiment.UserAgg {
		slices.SortFunc(us, func(a, b experiment.UserAgg) int { return int(b.Watched - a.Watched) })
		return us
	}
	wantUsers := map[string][]experiment.UserAgg{
		"control": {{Impressions: 2, Watched: 1, WatchSeconds: 150, Gifts: 1}, {Impressions: 2}},
		"treat":   {{Impressions: 2, Watched: 2, WatchSeconds: 290, Follows: 1}, {Impressions: 2, Watched: 1, WatchSeconds: 61}},
	}
	for arm, want := range wantUsers {
		if got := sortAggs(out.Users[arm]); !reflect.DeepEqual(got, want) {
			t.Errorf("%s users: got %+v, want %+v", arm, got, want)
		}
	}
	if len(out.Users) != 2 {
		t.Errorf("arms read: %v", out.Users)
	}
	h := func(hour int, u experiment.UserAgg) experiment.SeriesBucket {
		return experiment.SeriesBucket{Time: t0.Add(time.Duration(hour) * time.Hour), Totals: u}
	}
	wantSeries := map[string][]experiment.SeriesBucket{
		"control": {h(0, wantUsers["control"][0]), h(1, wantUsers["control"][1])},
		"treat":   {h(0, wantUsers["treat"][0]), h(1, wantUsers["treat"][1])},
	}
	for arm, want := range wantSeries {
		got := out.Series[arm]
		for i := range got {
			got[i].Time = got[i].Time.UTC()
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s series: got %+v, want %+v", arm, got, want)
		}
	}

	r := experiment.Build(e, q, out, t0.Add(3*time.Hour))
	ctl, tr := r.Arms[0], r.Arms[1]
	if ctl.Users != 2 || ctl.Impressions != 4 || tr.Users != 2 || tr.Impressions != 4 {
		t.Fatalf("arms %+v", r.Arms)
	}
	for _, c := range []struct {
		arm  experiment.ArmReport
		m    string
		want float64
	}{
		{ctl, experiment.WatchThroughRate, 0.25}, {ctl, experiment.WatchSecondsPerImpression, 37.5}, {ctl, experiment.GiftsPer1000, 250}, {ctl, experiment.FollowsPer1000, 0},
		{tr, experiment.WatchThroughRate, 0.75}, {tr, experiment.WatchSecondsPerImpression, 87.75}, {tr, experiment.GiftsPer1000, 0}, {tr, experiment.FollowsPer1000, 250},
	} {
		if got := c.arm.Metrics[c.m]; got != c.want {
			t.Errorf("%s %s = %v, want %v", c.arm.Arm, c.m, got, c.want)
		}
	}
	// By hand: each arm's watch-through variance is 0.0625 (residuals
	// ±0.5 of 2 users with 2 impressions each), so the difference 0.5 has
	// standard error √0.125, z = √2 and p = erfc(1).
	d := tr.Diffs[experiment.WatchThroughRate]
	if math.Abs(d.Delta-0.5) > 1e-12 || math.Abs(d.P-math.Erfc(1)) > 1e-12 || math.Abs(d.High-(0.5+1.959963984540054*math.Sqrt(0.125))) > 1e-12 {
		t.Errorf("watch-through diff %+v", d)
	}
	if r.SRM == nil || r.SRM.P != 1 || r.Interleaving != nil || len(ctl.Series) != 2 || ctl.Series[1].Metrics[experiment.WatchThroughRate] != 0 {
		t.Errorf("report %+v", r)
	}
	if r.WatchSeconds != 60 || r.WithinSeconds != 600 || !r.From.Equal(t0) || !r.To.Equal(t0.Add(170*time.Minute)) {
		t.Errorf("window and labelling %v %v %d %d", r.From, r.To, r.WatchSeconds, r.WithinSeconds)
	}

	// A stricter label (N = 100 s): user 3's 90 s and user 4's 61 s
	// watches no longer count.
	q.WatchSeconds = 100
	out, err = db.ExperimentOutcomes(ctx, e, q)
	if err != nil {
		t.Fatal(err)
	}
	if got := experiment.Build(e, q, out, t0).Arms[1].Metrics[experiment.WatchThroughRate]; got != 0.25 {
		t.Errorf("watch-through with N = 100 s: %v, want 0.25", got)
	}
}

// TestExperimentOutcomesInterleaving counts pages won per team: the team
// whose positions drew more watches wins, equal non-zero counts tie, pages
// without a watch are left out.
func TestExperimentOutcomesInterleaving(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	o := &outcomesDB{t: t, db: db}
	var imps []lr.Impression
	// page writes a page of user's alternating a, b, a, b ... positions
	// (streamers base, base+1, ...) and the watches of the positions in
	// watched.
	page := func(req string, user int64, base int64, n int, watched ...int) {
		for p := range n {
			team := "a"
			if p%2 == 1 {
				team = "b"
			}
			imps = append(imps, lr.Impression{RequestID: req, UserID: lr.UserID(user), StreamerID: lr.StreamerID(base + int64(p)), Position: p,
				ShownAt: t0, Experiment: "il", Team: team})
		}
		for _, p := range watched {
			o.watch(user, base+int64(p), t0.Add(time.Minute), 120)
		}
	}
	page("p1", 5, 100, 4, 0, 2, 1) // a 2, b 1: a wins
	page("p2", 6, 200, 4, 0, 1)    // 1 each: tie
	page("p3", 5, 300, 4)          // nothing watched
	page("p4", 7, 400, 4, 1)       // b wins
	page("p5", 8, 500, 2, 1)       // b wins
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	e := &lr.Experiment{Name: "il", Salt: "s", Mode: lr.ModeInterleave, Start: t0.Add(-time.Hour),
		Arms: []lr.Arm{{Name: "a", Share: 0.05}, {Name: "b", Share: 0.05}}}
	q, err := experiment.Query{}.Resolve(e, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.ExperimentOutcomes(ctx, e, q)
	if err != nil {
		t.Fatal(err)
	}
	if out.Wins != [2]int64{1, 2} || out.Ties != 1 {
		t.Fatalf("wins %v ties %d, want [1 2] and 1", out.Wins, out.Ties)
	}
	r := experiment.Build(e, q, out, t0.Add(time.Hour))
	// Team a: 4 users, 9 positions (2+2+2+2+1), 3 watched; b: 4 users,
	// 9 positions, 4 watched.
	a, b := r.Arms[0], r.Arms[1]
	if a.Users != 4 || a.Impressions != 9 || a.Metrics[experiment.WatchThroughRate] != 3.0/9 ||
		b.Users != 4 || b.Impressions != 9 || b.Metrics[experiment.WatchThroughRate] != 4.0/9 {
		t.Errorf("teams %+v %+v", a, b)
	}
	in := r.Interleaving
	if in == nil || in.Wins["a"] != 1 || in.Wins["b"] != 2 || in.Ties != 1 || in.Share["b"] != 2.0/3 || in.P != 1 || r.SRM != nil {
		t.Fatalf("interleaving %+v srm %+v", in, r.SRM)
	}
}

// TestExperimentOutcomesSRM: 600 users in one arm and 400 in the other of
// a 50/50 experiment are flagged (chi-square 40, p ≈ 2.5e-10).
func TestExperimentOutcomesSRM(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var imps []lr.Impression
	for u := range 1000 {
		arm := "control"
		if u >= 600 {
			arm = "treat"
		}
		imps = append(imps, lr.Impression{RequestID: fmt.Sprint("r", u), UserID: lr.UserID(u + 1), StreamerID: 1, ShownAt: t0, Experiment: "srm", Arm: arm})
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	e := &lr.Experiment{Name: "srm", Salt: "s", Mode: lr.ModeAB, Start: t0,
		Arms: []lr.Arm{{Name: "control", Share: 0.1}, {Name: "treat", Share: 0.1}}}
	q, err := experiment.Query{}.Resolve(e, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.ExperimentOutcomes(ctx, e, q)
	if err != nil {
		t.Fatal(err)
	}
	r := experiment.Build(e, q, out, t0.Add(time.Hour))
	if r.Arms[0].Users != 600 || r.Arms[1].Users != 400 || r.SRM == nil || r.SRM.ChiSquare != 40 || r.SRM.P > 1e-9 {
		t.Fatalf("users %d/%d, SRM %+v", r.Arms[0].Users, r.Arms[1].Users, r.SRM)
	}
}
