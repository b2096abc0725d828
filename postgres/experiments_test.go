package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// channels stands for recall.Channels (postgres does not import recall).
var channels = []string{"mf", "ncf", "session", "follow", "trending", "fresh"}

// experimentListener listens on postgres.ExperimentsChannel.
type experimentListener struct {
	t    *testing.T
	conn *pgx.Conn
}

func listenExperiments(t *testing.T, db *postgres.DB) *experimentListener {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.ExperimentsChannel); err != nil {
		t.Fatal(err)
	}
	return &experimentListener{t: t, conn: conn}
}

// next returns the next notification's name and status (notifications
// arrive in commit order).
func (l *experimentListener) next() (string, lr.ExperimentStatus) {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // generous: a loaded machine
	defer cancel()
	n, err := l.conn.WaitForNotification(ctx)
	if err != nil {
		l.t.Fatalf("no notification on %s: %v", postgres.ExperimentsChannel, err)
	}
	var p struct {
		ID     int64               `json:"id"`
		Name   string              `json:"name"`
		Status lr.ExperimentStatus `json:"status"`
	}
	if err := json.Unmarshal([]byte(n.Payload), &p); err != nil || p.ID == 0 {
		l.t.Fatalf("payload %q: %v", n.Payload, err)
	}
	return p.Name, p.Status
}

func (l *experimentListener) expect(name string, status lr.ExperimentStatus) {
	l.t.Helper()
	if n, s := l.next(); n != name || s != status {
		l.t.Fatalf("notification %s %s, want %s %s", n, s, name, status)
	}
}

// experimentsTable is every row of experiments, every column, as text.
func experimentsTable(t *testing.T, db *postgres.DB) string {
	t.Helper()
	var s string
	if err := db.Pool.QueryRow(context.Background(), `SELECT coalesce(string_agg(e::text, E'\n' ORDER BY id), '') FROM experiments e`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func abExperiment(name, layer string, treatment lr.ArmConfig) lr.Experiment {
	return lr.Experiment{
		Name: name, Salt: name + "-salt", Layer: layer, Mode: lr.ModeAB,
		Start: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Arms: []lr.Arm{
			{Name: "control", Share: 0.1, Control: true},
			{Name: "treatment", Share: 0.1, Config: treatment},
		},
	}
}

func TestExperimentLifecycleRoundTripAndNotifies(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	l := listenExperiments(t, db)
	m1 := mustCreate(t, db, lr.ModelMF, "m1")
	if _, err := db.ActivateModel(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, lr.ModelMF, "m2") // staged: an experiment may try it
	if _, err := db.CreateRerankModel(ctx, "r1", []byte(`{"bias":1}`), nil); err != nil {
		t.Fatal(err)
	}

	in := abExperiment("e1", "", lr.ArmConfig{MFVersion: "m2", RerankVersion: "r1", Disabled: []string{"fresh"},
		Quota: map[string]int{"mf": 40}, ChannelBudgetMS: map[string]float64{"ncf": 12.5}})
	in.Status = lr.ExperimentRunning // ignored: created as draft
	in.End = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := db.CreateExperiment(ctx, in, channels)
	if err != nil {
		t.Fatal(err)
	}
	l.expect("e1", lr.ExperimentDraft)
	if got.ID == 0 || got.Status != lr.ExperimentDraft || got.Layer != lr.DefaultLayer || got.CreatedAt.IsZero() ||
		!got.Start.Equal(in.Start) || !got.End.Equal(in.End) || !reflect.DeepEqual(got.Arms, in.Arms) {
		t.Fatalf("stored %+v\nfrom %+v", got, in)
	}
	byName, err := db.ExperimentByName(ctx, "e1")
	if err != nil || !reflect.DeepEqual(byName, got) {
		t.Fatalf("ExperimentByName = %+v (err %v), want %+v", byName, err, got)
	}
	if _, err := db.ExperimentByName(ctx, "nope"); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("ExperimentByName(nope): %v, want not_found", err)
	}
	serving := func() []string {
		t.Helper()
		exps, err := db.ServingExperiments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range exps {
			names = append(names, e.Name+":"+string(e.Status))
		}
		return names
	}
	if s := serving(); len(s) != 0 {
		t.Fatalf("serving a draft: %v", s)
	}

	steps := []struct {
		do   func(context.Context, string) (lr.Experiment, error)
		want lr.ExperimentStatus
	}{
		{db.StartExperiment, lr.ExperimentRunning},
		{db.PauseExperiment, lr.ExperimentPaused},
		{db.StartExperiment, lr.ExperimentRunning},
	}
	for _, s := range steps {
		e, err := s.do(ctx, "e1")
		if err != nil || e.Status != s.want {
			t.Fatalf("-> %s: %+v, %v", s.want, e, err)
		}
		l.expect("e1", s.want)
		if got := serving(); !reflect.DeepEqual(got, []string{"e1:" + string(s.want)}) {
			t.Fatalf("serving %v while %s", got, s.want)
		}
	}
	// An experiment whose window has ended is not served, running or not.
	ended := abExperiment("ended", "other", lr.ArmConfig{Quota: map[string]int{"fresh": 3}})
	ended.Start, ended.End = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	if _, err := db.CreateExperiment(ctx, ended, channels); err != nil {
		t.Fatal(err)
	}
	l.expect("ended", lr.ExperimentDraft)
	if _, err := db.Pool.Exec(ctx, `UPDATE experiments SET status = 'running', started_at = now() WHERE name = 'ended'`); err != nil {
		t.Fatal(err)
	}
	if got := serving(); !reflect.DeepEqual(got, []string{"e1:running"}) {
		t.Fatalf("serving %v, want only e1 (the other's window ended)", got)
	}

	stopped, err := db.StopExperiment(ctx, "e1")
	if err != nil || stopped.Status != lr.ExperimentStopped {
		t.Fatalf("stop: %+v, %v", stopped, err)
	}
	l.expect("e1", lr.ExperimentStopped)
	if s := serving(); len(s) != 0 {
		t.Fatalf("serving after stop: %v", s)
	}
	var startedAt, stoppedAt *time.Time
	db.Pool.QueryRow(ctx, `SELECT started_at, stopped_at FROM experiments WHERE name = 'e1'`).Scan(&startedAt, &stoppedAt)
	if startedAt == nil || stoppedAt == nil || stoppedAt.Before(*startedAt) {
		t.Fatalf("started_at %v, stopped_at %v", startedAt, stoppedAt)
	}
	list, err := db.ListExperiments(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "e1" || list[0].Status != lr.ExperimentStopped || list[1].Name != "ended" {
		t.Fatalf("list %+v, %v", list, err)
	}
	// A stopped experiment no longer conflicts: a new one may take its layer.
	if _, err := db.CreateExperiment(ctx, abExperiment("e2", "", lr.ArmConfig{MFVersion: "m1"}), channels); err != nil {
		t.Fatalf("after e1 stopped: %v", err)
	}
	l.expect("e2", lr.ExperimentDraft)
}

// Every refusal leaves the experiments table as it was and announces
// nothing; the error has the right code and names the problem.
func TestExperimentRefusalsChangeNothing(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	l := listenExperiments(t, db)
	m1, m2, m3 := mustCreate(t, db, lr.ModelMF, "m1"), mustCreate(t, db, lr.ModelMF, "m2"), mustCreate(t, db, lr.ModelMF, "m3")
	for _, m := range []lr.ModelVersion{m3, m1} { // m3 was active, then retired
		if _, err := db.ActivateModel(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.CreateRerankModel(ctx, "r1", []byte(`{"bias":1}`), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateExperiment(ctx, abExperiment("base", "", lr.ArmConfig{RerankVersion: "r1"}), channels); err != nil {
		t.Fatal(err)
	}
	l.expect("base", lr.ExperimentDraft)
	if _, err := db.StartExperiment(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	l.expect("base", lr.ExperimentRunning)
	// A draft that becomes invalid before it starts: its version is retired.
	if _, err := db.CreateExperiment(ctx, abExperiment("later", "l9", lr.ArmConfig{MFVersion: "m2"}), channels); err != nil {
		t.Fatal(err)
	}
	l.expect("later", lr.ExperimentDraft)
	for _, m := range []lr.ModelVersion{m2, m1} {
		if _, err := db.ActivateModel(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Ended: its window is over before it ever started.
	ended := abExperiment("ended", "l8", lr.ArmConfig{Quota: map[string]int{"fresh": 3}})
	ended.Start, ended.End = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	if _, err := db.CreateExperiment(ctx, ended, channels); err != nil {
		t.Fatal(err)
	}
	l.expect("ended", lr.ExperimentDraft)
	if _, err := db.CreateExperiment(ctx, abExperiment("gone", "l7", lr.ArmConfig{PerChannel: map[string]int{"fresh": 3}}), channels); err != nil {
		t.Fatal(err)
	}
	l.expect("gone", lr.ExperimentDraft)
	if _, err := db.StopExperiment(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	l.expect("gone", lr.ExperimentStopped)

	before := experimentsTable(t, db)
	create := func(e lr.Experiment) func() error {
		return func() error { _, err := db.CreateExperiment(ctx, e, channels); return err }
	}
	shares := abExperiment("shares", "l3", lr.ArmConfig{})
	shares.Arms[0].Share, shares.Arms[1].Share = 0.6, 0.5
	cases := []struct {
		name string
		do   func() error
		code string
		msg  []string
	}{
		{"overlap in the same layer", create(abExperiment("x", "", lr.ArmConfig{NCFVersion: ""})), lr.ECONFLICT, []string{"x", "base", "layer default"}},
		{"same parameter across layers", create(abExperiment("x", "l2", lr.ArmConfig{RerankVersion: "r1"})), lr.ECONFLICT, []string{"base", "rerank_version"}},
		{"missing version", create(abExperiment("x", "l3", lr.ArmConfig{MFVersion: "nope"})), lr.ENOTFOUND, []string{"arm treatment", "mf_version", `"nope"`}},
		{"missing rerank version", create(abExperiment("x", "l3", lr.ArmConfig{RerankVersion: "r9"})), lr.ENOTFOUND, []string{"arm treatment", "rerank_version", `"r9"`}},
		{"retired version", create(abExperiment("x", "l3", lr.ArmConfig{MFVersion: "m3"})), lr.ECONFLICT, []string{"arm treatment", `"m3"`, "retired"}},
		{"shares above 100%", create(shares), lr.EINVALID, []string{"above 100%"}},
		{"unknown channel", create(abExperiment("x", "l3", lr.ArmConfig{Disabled: []string{"radio"}})), lr.EINVALID, []string{"arm treatment", `unknown channel "radio"`}},
		{"name taken", create(abExperiment("base", "l3", lr.ArmConfig{})), lr.ECONFLICT, []string{"base", "already exists"}},
		{"start a running one", func() error { _, err := db.StartExperiment(ctx, "base"); return err }, lr.ECONFLICT, []string{"base is running"}},
		{"pause a draft", func() error { _, err := db.PauseExperiment(ctx, "ended"); return err }, lr.ECONFLICT, []string{"ended is draft", "only a running"}},
		{"stop a stopped one", func() error { _, err := db.StopExperiment(ctx, "gone"); return err }, lr.ECONFLICT, []string{"gone is stopped already"}},
		{"start a stopped one", func() error { _, err := db.StartExperiment(ctx, "gone"); return err }, lr.ECONFLICT, []string{"gone is stopped"}},
		{"start one whose window ended", func() error { _, err := db.StartExperiment(ctx, "ended"); return err }, lr.ECONFLICT, []string{"ended", "window is over"}},
		{"start one whose version was retired since", func() error { _, err := db.StartExperiment(ctx, "later"); return err }, lr.ECONFLICT, []string{"later", `"m2"`, "retired"}},
		{"start an unknown one", func() error { _, err := db.StartExperiment(ctx, "nope"); return err }, lr.ENOTFOUND, []string{`"nope" not found`}},
		{"pause an unknown one", func() error { _, err := db.PauseExperiment(ctx, "nope"); return err }, lr.ENOTFOUND, []string{`"nope" not found`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			if lr.ErrorCode(err) != c.code {
				t.Fatalf("error %v (code %s), want code %s", err, lr.ErrorCode(err), c.code)
			}
			for _, m := range c.msg {
				if !strings.Contains(lr.ErrorMessage(err), m) {
					t.Errorf("message %q does not say %q", lr.ErrorMessage(err), m)
				}
			}
			if after := experimentsTable(t, db); after != before {
				t.Fatalf("table changed:\n%s\nwas\n%s", after, before)
			}
		})
	}
	// No refusal notified: the next notification is this change's.
	if _, err := db.PauseExperiment(ctx, "base"); err != nil {
		t.Fatal(err)
	}
	l.expect("base", lr.ExperimentPaused)
}

// An activation may retire a version a running experiment's arm names;
// ArmsNamingRetired says which arms (the CLI warns with it), and
// PreviousModel names what a rollback re-activates.
func TestArmsNamingRetiredAndPreviousModel(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	if _, err := db.PreviousModel(ctx, lr.ModelMF); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("PreviousModel with no history: %v, want not_found", err)
	}
	m1, m2 := mustCreate(t, db, lr.ModelMF, "m1"), mustCreate(t, db, lr.ModelMF, "m2")
	if _, err := db.ActivateModel(ctx, m1.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PreviousModel(ctx, lr.ModelMF); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("PreviousModel with one activation: %v, want not_found", err)
	}
	if _, err := db.CreateExperiment(ctx, abExperiment("e", "", lr.ArmConfig{MFVersion: "m1"}), channels); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StartExperiment(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if arms, err := db.ArmsNamingRetired(ctx, ""); err != nil || len(arms) != 0 {
		t.Fatalf("before: %+v, %v", arms, err)
	}
	if _, err := db.ActivateModel(ctx, m2.ID); err != nil {
		t.Fatal(err)
	}
	arms, err := db.ArmsNamingRetired(ctx, "mf")
	want := []postgres.ArmVersion{{Experiment: "e", Status: lr.ExperimentRunning, Arm: "treatment", Field: "mf_version", Version: "m1"}}
	if err != nil || !reflect.DeepEqual(arms, want) {
		t.Fatalf("after retiring m1: %+v, %v; want %+v", arms, err, want)
	}
	if arms, _ := db.ArmsNamingRetired(ctx, "ncf"); len(arms) != 0 {
		t.Fatalf("ncf: %+v", arms)
	}
	prev, err := db.PreviousModel(ctx, lr.ModelMF)
	if err != nil || prev.ID != m1.ID {
		t.Fatalf("PreviousModel = %v, %v; want m1", prev, err)
	}
	if _, err := db.ActivateModel(ctx, prev.ID); err != nil {
		t.Fatal(err)
	}
	if prev, _ := db.PreviousModel(ctx, lr.ModelMF); prev.ID != m2.ID {
		t.Fatalf("after the rollback, PreviousModel = %v, want m2", prev)
	}
	if arms, _ := db.ArmsNamingRetired(ctx, ""); len(arms) != 0 {
		t.Fatalf("after m1 is active again: %+v", arms)
	}
}

func TestImpressionsStoreExperimentArmTeam(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	now := time.Now().UTC().Truncate(time.Microsecond)
	imps := []lr.Impression{
		{RequestID: "d", UserID: 1, StreamerID: 10, ShownAt: now},
		{RequestID: "ab", UserID: 2, StreamerID: 10, ShownAt: now, Experiment: "e1", Arm: "treatment"},
		{RequestID: "il", UserID: 3, StreamerID: 10, ShownAt: now, Experiment: "e2", Team: "control"},
		{RequestID: "il", UserID: 3, StreamerID: 11, Position: 1, ShownAt: now, Experiment: "e2", Team: "treatment"},
	}
	if err := db.WriteImpressions(ctx, imps); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Pool.Query(ctx, `SELECT request_id || '/' || position, coalesce(experiment, 'NULL'), coalesce(arm, 'NULL'), coalesce(team, 'NULL')
		FROM impressions ORDER BY request_id, position`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var k, e, a, tm string
		err := r.Scan(&k, &e, &a, &tm)
		return strings.Join([]string{k, e, a, tm}, " "), err
	})
	want := []string{"ab/0 e1 treatment NULL", "d/0 NULL NULL NULL", "il/0 e2 NULL control", "il/1 e2 NULL treatment"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %q (err %v), want %q", got, err, want)
	}
	// The index for "impressions of experiment X in a time range" is used.
	var plan string
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM impressions WHERE experiment = 'e1' AND shown_at >= $1`, now).Scan(new(int)); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT indexdef FROM pg_indexes WHERE indexname = 'impressions_experiment_shown'`).Scan(&plan); err != nil ||
		!strings.Contains(plan, "(experiment, shown_at)") {
		t.Fatalf("index impressions_experiment_shown: %q, %v", plan, err)
	}
}
