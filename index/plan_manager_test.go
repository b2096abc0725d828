package index_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// A rebuild measures the plan (the recall target's ef per accepted share)
// in its self-check; the status and the metrics show it for the serving
// version, the reload reports the recall at the chosen ef, and a restart
// from the snapshot keeps the same plan.
func TestRebuildRecordsThePlan(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	mv := seedVersion(t, db, "plan", 600, 40, 4, nil)
	activate(t, db, mv)
	dir := t.TempDir()
	m, reg, _ := newManager(t, db, index.Config{SnapshotDir: dir, Params: index.Params{RecallTarget: 0.9}})
	res, err := m.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := m.Status()[0]
	// A small index: only unfiltered searches are measured (filtered
	// ones scan); they take the graph at the chosen ef unless the scan of
	// every vector is cheaper.
	if st.Plan != "measured" || st.RecallTarget != 0.9 || st.PlanEf["1"] == 0 || len(st.PlanEf) != 1 {
		t.Fatalf("status %+v", st)
	}
	if (st.SearchEf != 0 && st.PlanEf["1"] != st.SearchEf) || st.PlanRecall["1"] < 0.9 || res[0].SelfCheck != st.PlanRecall["1"] || st.SelfCheck != res[0].SelfCheck {
		t.Fatalf("plan ef %v recall %v, self-check %v / %v", st.PlanEf, st.PlanRecall, res[0].SelfCheck, st.SelfCheck)
	}
	want := `liverecall_index_search_ef{kind="mf",version="plan"} ` + strconv.Itoa(st.SearchEf)
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP liverecall_index_search_ef Beam of unfiltered graph searches of the serving index (0: they scan exactly).\n# TYPE liverecall_index_search_ef gauge\n"+want+"\n"),
		"liverecall_index_search_ef"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "liverecall_index_plan_ef", "liverecall_index_plan_recall"); err != nil || n != 2 {
		t.Fatalf("%d plan series (%v), want 2", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "liverecall_index_measured_recall"); err != nil || n == 0 || n > 5 {
		t.Fatalf("%d measured recall series (%v), want 1 to 5 (the sweep stops at recall 1)", n, err)
	}
	// A version served beside the active one (for an experiment) has its
	// own plan, in the status and the metrics.
	seedVersion(t, db, "plan2", 500, 40, 5, nil)
	if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"plan2"}}); err != nil {
		t.Fatal(err)
	}
	vs := m.Status()[0].Versions
	if len(vs) != 2 || vs[0].PlanEf["1"] != st.PlanEf["1"] || vs[0].SearchEf != st.SearchEf || vs[1].Version != "plan2" || vs[1].PlanEf["1"] == 0 || vs[1].PlanRecall["1"] < 0.9 {
		t.Fatalf("versions %+v", vs)
	}
	if n, err := testutil.GatherAndCount(reg, "liverecall_index_search_ef"); err != nil || n != 2 {
		t.Fatalf("%d search_ef series (%v), want one per serving version", n, err)
	}
	// A restart loads the snapshot, with the same plan.
	m2, _, _ := newManager(t, db, index.Config{SnapshotDir: dir, Params: index.Params{RecallTarget: 0.9}})
	res2, err := m2.Load(ctx)
	if err != nil || res2[0].Outcome != "snapshot" {
		t.Fatalf("load: %+v %v", res2, err)
	}
	st2 := m2.Status()[0]
	if st2.Plan != "measured" || st2.SearchEf != st.SearchEf || len(st2.PlanEf) != 1 {
		t.Fatalf("after the snapshot: %+v", st2)
	}
	for share, ef := range st.PlanEf {
		if st2.PlanEf[share] != ef || st2.PlanRecall[share] != st.PlanRecall[share] {
			t.Fatalf("share %s: ef %d recall %v after the snapshot, %d %v before", share, st2.PlanEf[share], st2.PlanRecall[share], ef, st.PlanRecall[share])
		}
	}
	// With the target off the plan is the threshold's.
	m3, _, _ := newManager(t, db, index.Config{Params: index.Params{RecallTarget: -1, EfSearch: 48}})
	if _, err := m3.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if st3 := m3.Status()[0]; st3.Plan != "threshold" || st3.SearchEf != 48 || st3.PlanEf != nil {
		t.Fatalf("target off: %+v", st3)
	}
}
