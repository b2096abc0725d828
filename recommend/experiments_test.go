package recommend_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
)

// expService is a Service over w's parts serving set, with its own
// registry (w's service registered on w.reg).
func expService(w *world, set *recommend.ExperimentSet, sc recommend.ArmScorers) (*recommend.Service, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	return recommend.New(recommend.Config{Recall: w.engine, Users: w.state, Streams: w.state, Index: w.idx, UserStore: w.idx, Ordinals: w.ords,
		Scorers: scorers{w}, Impressions: w.imps, Now: func() time.Time { return t0 }, Registerer: reg, Experiments: set, ArmScorers: sc}), reg
}

// abExperiment is a running A/B experiment over all traffic: control, and
// treatment with cfg.
func abExperiment(name string, cfg lr.ArmConfig) lr.Experiment {
	return lr.Experiment{Name: name, Salt: name + "-salt", Mode: lr.ModeAB, Status: lr.ExperimentRunning, Start: t0.Add(-time.Hour),
		Arms: []lr.Arm{{Name: "control", Share: 0.5, Control: true}, {Name: "treatment", Share: 0.5, Config: cfg}}}
}

// userIn returns the first user id from 100 up that e places in arm.
func userIn(t *testing.T, e *lr.Experiment, arm int) lr.UserID {
	t.Helper()
	for u := lr.UserID(100); u < 10000; u++ {
		if experiment.ArmOf(e, u) == arm {
			return u
		}
	}
	t.Fatalf("no user in arm %d", arm)
	return 0
}

func outcomeOf(p *lr.Page, ch string) string {
	for _, o := range p.Debug.Channels {
		if o.Channel == ch {
			return o.Status
		}
	}
	return ""
}

// A user's arm is experiment.ArmOf's, the same at every request; the page
// and its impressions name it; a treatment disabling mf skips mf for its
// users only. Users outside the experiment's share, and every user once
// it is paused or out of its window, get the default configuration.
func TestExperimentAssignsUsersToArms(t *testing.T) {
	w, _ := newWorld(t, 0)
	e := abExperiment("nomf", lr.ArmConfig{Disabled: []string{recall.ChanMF}})
	e.Arms[0].Share, e.Arms[1].Share = 0.3, 0.3
	set := recommend.NewExperimentSet()
	if err := set.Set([]lr.Experiment{e}); err != nil {
		t.Fatal(err)
	}
	svc, reg := expService(w, set, nil)
	ctx := context.Background()
	seen := map[int]int{}
	for u := lr.UserID(1); u <= 60; u++ {
		// Every user has an MF vector (the world's user 7's).
		w.idx.AddUser(lr.ModelMF, u, []float32{0, 0, 0.5, 1, 0, 0, 0, 0, 0, 0.9, 0})
		want := experiment.ArmOf(&e, u)
		seen[want]++
		for range 2 {
			w.imps.got = nil
			page, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 3, Debug: true})
			if err != nil {
				t.Fatal(err)
			}
			imp := w.imps.got[0][0]
			if want < 0 {
				if len(page.Assignments) != 0 || imp.Experiment != "" || imp.Arm != "" || outcomeOf(page, recall.ChanMF) != recall.StatusOK {
					t.Fatalf("user %d outside the experiment: assignments %+v, impression %q/%q, mf %s", u, page.Assignments, imp.Experiment, imp.Arm, outcomeOf(page, recall.ChanMF))
				}
				continue
			}
			arm := e.Arms[want].Name
			if len(page.Assignments) != 1 || page.Assignments[0] != (lr.Assignment{Experiment: "nomf", Mode: lr.ModeAB, Arm: arm}) ||
				imp.Experiment != "nomf" || imp.Arm != arm || imp.Team != "" {
				t.Fatalf("user %d: assignments %+v, impression %q/%q/%q, want arm %s", u, page.Assignments, imp.Experiment, imp.Arm, imp.Team, arm)
			}
			if d := page.Debug.Experiments; len(d) != 1 || d[0].Arm != arm || d[0].Fallback != "" || d[0].Override {
				t.Fatalf("user %d: debug %+v", u, d)
			}
			wantMF := recall.StatusOK
			if arm == "treatment" {
				wantMF = recall.StatusSkipped
			}
			if got := outcomeOf(page, recall.ChanMF); got != wantMF {
				t.Fatalf("user %d in %s: mf %s, want %s", u, arm, got, wantMF)
			}
		}
	}
	if seen[0] == 0 || seen[1] == 0 || seen[-1] == 0 {
		t.Fatalf("60 users fell %v: want some in each arm and some outside", seen)
	}
	if got := counter(t, reg, "liverecall_experiment_requests_total", "treatment", "nomf"); got != float64(2*seen[1]) {
		t.Fatalf("treatment requests %v, want %d", got, 2*seen[1])
	}
	// Paused, not started yet, ended: nobody is assigned.
	u := userIn(t, &e, 1)
	w.idx.AddUser(lr.ModelMF, u, []float32{0, 0, 0.5, 1, 0, 0, 0, 0, 0, 0.9, 0})
	for _, change := range []func(*lr.Experiment){
		func(x *lr.Experiment) { x.Status = lr.ExperimentPaused },
		func(x *lr.Experiment) { x.Start = t0.Add(time.Minute) },
		func(x *lr.Experiment) { x.End = t0 },
	} {
		x := abExperiment("nomf", lr.ArmConfig{Disabled: []string{recall.ChanMF}})
		x.Arms[0].Share, x.Arms[1].Share = 0.3, 0.3
		change(&x)
		if err := set.Set([]lr.Experiment{x}); err != nil {
			t.Fatal(err)
		}
		page, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 3, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Assignments) != 0 || len(page.Debug.Experiments) != 0 || outcomeOf(page, recall.ChanMF) != recall.StatusOK {
			t.Fatalf("%+v: assignments %+v, mf %s", x, page.Assignments, outcomeOf(page, recall.ChanMF))
		}
	}
}

// Experiments in two layers combine: a user in both gets both arms'
// parameters; the page lists both, the impressions name the first in
// layer order (the topic's impressions name one experiment). Set refuses (and leaves out) an experiment overlapping another
// in its layer, serving the rest.
func TestExperimentLayersCombine(t *testing.T) {
	w, _ := newWorld(t, 0)
	a := abExperiment("a", lr.ArmConfig{Disabled: []string{recall.ChanTrending}})
	a.Layer = "channels-1"
	b := abExperiment("b", lr.ArmConfig{Disabled: []string{recall.ChanFresh}})
	b.Layer = "channels-2"
	clash := abExperiment("clash", lr.ArmConfig{PerChannel: map[string]int{recall.ChanMF: 5}})
	clash.Layer = "channels-1"
	set := recommend.NewExperimentSet()
	err := set.Set([]lr.Experiment{a, b, clash})
	if lr.ErrorCode(err) != lr.ECONFLICT || !strings.Contains(err.Error(), "clash") || set.Len() != 2 {
		t.Fatalf("Set with an overlap in a layer: %v, %d held; want a conflict naming clash and 2 held", err, set.Len())
	}
	svc, _ := expService(w, set, nil)
	var u lr.UserID
	for u = 100; experiment.ArmOf(&a, u) != 1 || experiment.ArmOf(&b, u) != 1; u++ {
	}
	w.idx.AddUser(lr.ModelMF, u, []float32{0, 0, 0.5, 1, 0, 0, 0, 0, 0, 0.9, 0})
	page, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: u, K: 3, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if outcomeOf(page, recall.ChanTrending) != recall.StatusSkipped || outcomeOf(page, recall.ChanFresh) != recall.StatusSkipped {
		t.Fatalf("user in both treatments: outcomes %+v, want trending and fresh skipped", page.Debug.Channels)
	}
	imp := w.imps.got[len(w.imps.got)-1][0]
	if imp.Experiment != "a" || imp.Arm != "treatment" || imp.Team != "" || len(page.Assignments) != 2 || page.Assignments[1].Experiment != "b" {
		t.Fatalf("impression %q/%q, assignments %+v", imp.Experiment, imp.Arm, page.Assignments)
	}
}

// fakeArmScorers serves the reranker versions it holds (ArmScorers).
type fakeArmScorers map[string]rerank.Model

func (f fakeArmScorers) WeightsVersion(v string) (rerank.Model, bool) { m, ok := f[v]; return m, ok }
func (f fakeArmScorers) NCFFor(int64) recommend.NCF                   { return nil }

// flippedWeights is the default reranker with every weight negated.
func flippedWeights() rerank.Weights {
	w := rerank.DefaultWeights()
	w.W = slices.Clone(w.W)
	for i := range w.W {
		w.W[i] = -w.W[i]
	}
	w.Version = "flipped"
	return w
}

// An arm naming a version this replica does not serve serves its users
// the default configuration: no error, counted by reason, said on the
// debug page, and its impressions name no arm. An arm whose reranker
// version serves ranks with it.
func TestExperimentFallbackWhenVersionDoesNotServe(t *testing.T) {
	w, _ := newWorld(t, 0)
	flipped := flippedWeights()
	set := recommend.NewExperimentSet()
	mfMissing := abExperiment("mfmissing", lr.ArmConfig{MFVersion: "mf-9"})
	rr := abExperiment("rr", lr.ArmConfig{RerankVersion: "flipped"})
	rr.Layer = "rerank"
	ncfMissing := abExperiment("ncfmissing", lr.ArmConfig{NCFVersion: "ncf-9"})
	ncfMissing.Layer = "ncf"
	if err := set.Set([]lr.Experiment{mfMissing, rr, ncfMissing}); err != nil {
		t.Fatal(err)
	}
	svc, reg := expService(w, set, fakeArmScorers{"flipped": flipped})
	ctx := context.Background()
	var u lr.UserID
	for u = 100; experiment.ArmOf(&mfMissing, u) != 1 || experiment.ArmOf(&rr, u) != 1 || experiment.ArmOf(&ncfMissing, u) != 1; u++ {
	}
	w.idx.AddUser(lr.ModelMF, u, []float32{0, 0, 0.5, 1, 0, 0, 0, 0, 0, 0.9, 0})
	w.imps.got = nil
	page, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 5, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if page.ModelVersions["mf"] != "mf-1" || outcomeOf(page, recall.ChanMF) != recall.StatusOK {
		t.Fatalf("mf-9 does not serve: versions %v, mf %s; want the serving mf-1", page.ModelVersions, outcomeOf(page, recall.ChanMF))
	}
	if len(page.Assignments) != 1 || page.Assignments[0].Experiment != "rr" {
		t.Fatalf("assignments %+v, want rr alone", page.Assignments)
	}
	fallbacks := map[string]string{}
	for _, d := range page.Debug.Experiments {
		fallbacks[d.Experiment] = d.Fallback
	}
	if !strings.Contains(fallbacks["mfmissing"], "mf_version mf-9") || !strings.Contains(fallbacks["ncfmissing"], "ncf_version ncf-9") || fallbacks["rr"] != "" {
		t.Fatalf("debug experiments %+v", page.Debug.Experiments)
	}
	for _, imp := range w.imps.got[0] {
		if imp.Experiment != "rr" || imp.Arm != "treatment" {
			t.Fatalf("impression %q/%q, want rr/treatment only", imp.Experiment, imp.Arm)
		}
	}
	if got := counter(t, reg, "liverecall_experiment_fallbacks_total", "treatment", "mfmissing", recommend.FallbackMF); got != 1 {
		t.Fatalf("mf fallbacks %v", got)
	}
	if got := counter(t, reg, "liverecall_experiment_fallbacks_total", "treatment", "ncfmissing", recommend.FallbackNCF); got != 1 {
		t.Fatalf("ncf fallbacks %v", got)
	}
	// The flipped reranker ranks the page: scores are the negated
	// default's, so the order is reversed against a default page.
	def, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 5, Arm: "mfmissing/control"})
	if err != nil {
		t.Fatal(err)
	}
	if page.Items[0].StreamerID == def.Items[0].StreamerID || slices.Equal(ids(page), ids(def)) {
		t.Fatalf("flipped reranker's page %v leads as the default's %v", ids(page), ids(def))
	}
	for _, d := range page.Debug.Experiments {
		if d.Experiment == "rr" && d.Versions["rerank"] != "flipped" {
			t.Fatalf("rr's debug %+v, want the flipped reranker", d)
		}
	}
	// A reranker version that does not serve: the default reranker.
	rr.Arms[1].Config.RerankVersion = "nowhere"
	if err := set.Set([]lr.Experiment{rr}); err != nil {
		t.Fatal(err)
	}
	page, err = svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 5, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Assignments) != 0 || !slices.Equal(ids(page), ids(def)) || !strings.Contains(page.Debug.Experiments[0].Fallback, "rerank_version nowhere") {
		t.Fatalf("rr with a reranker that does not serve: page %v (default %v), assignments %+v, debug %+v", ids(page), ids(def), page.Assignments, page.Debug.Experiments)
	}
	if got := counter(t, reg, "liverecall_experiment_fallbacks_total", "treatment", "rr", recommend.FallbackRerank); got != 1 {
		t.Fatalf("rerank fallbacks %v", got)
	}
}

// markCounter counts the pages marked shown.
type markCounter struct {
	*recall.Engine
	mu    sync.Mutex
	marks [][]lr.StreamerID
}

func (m *markCounter) MarkShown(u lr.UserID, ids []lr.StreamerID) {
	m.mu.Lock()
	m.marks = append(m.marks, slices.Clone(ids))
	m.mu.Unlock()
	m.Engine.MarkShown(u, ids)
}

// An interleaving experiment's user gets one page merged from both arms'
// rankings by team draft: no streamer twice, every position credited to
// the arm whose ranking it is the best remaining item of, the teams'
// sizes within one of each other, the same page for the same request id;
// the page is marked shown and logged once, each impression naming the
// experiment and its team (no arm).
func TestInterleavedPage(t *testing.T) {
	w, _ := newWorld(t, 0)
	il := lr.Experiment{Name: "il", Salt: "il-salt", Mode: lr.ModeInterleave, Status: lr.ExperimentRunning, Start: t0.Add(-time.Hour),
		Arms: []lr.Arm{{Name: "control", Share: 0.5}, {Name: "flipped", Share: 0.5, Config: lr.ArmConfig{RerankVersion: "flipped"}}}}
	set := recommend.NewExperimentSet()
	if err := set.Set([]lr.Experiment{il}); err != nil {
		t.Fatal(err)
	}
	mc := &markCounter{Engine: w.engine}
	reg := prometheus.NewRegistry()
	svc := recommend.New(recommend.Config{Recall: mc, Users: w.state, Scorers: scorers{w}, Impressions: w.imps, Now: func() time.Time { return t0 },
		Registerer: reg, Experiments: set, ArmScorers: fakeArmScorers{"flipped": flippedWeights()}})
	ctx := context.Background()
	// Each arm's own ranking, through the override (nothing is marked
	// shown in this world: the shown filter is off).
	rankings := map[string][]lr.StreamerID{}
	for _, arm := range []string{"control", "flipped"} {
		p, err := svc.Recommend(ctx, lr.RecommendRequest{User: 7, K: 5, Arm: "il/" + arm})
		if err != nil {
			t.Fatal(err)
		}
		rankings[arm] = ids(p)
	}
	if slices.Equal(rankings["control"], rankings["flipped"]) {
		t.Fatalf("both arms rank %v: the test needs two rankings", rankings["control"])
	}
	w.imps.got, mc.marks = nil, nil
	var first *lr.Page
	for _, rid := range []string{"r-1", "r-1", "r-2", "r-3"} {
		page, err := svc.Recommend(ctx, lr.RecommendRequest{RequestID: rid, User: 7, K: 5, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Assignments) != 1 || page.Assignments[0] != (lr.Assignment{Experiment: "il", Mode: lr.ModeInterleave}) {
			t.Fatalf("assignments %+v", page.Assignments)
		}
		if len(page.Items) != 5 {
			t.Fatalf("page %v, want 5 items", ids(page))
		}
		n := map[string]int{}
		for i, it := range page.Items {
			if slices.Contains(ids(page)[:i], it.StreamerID) {
				t.Fatalf("page %v holds %d twice", ids(page), it.StreamerID)
			}
			// The best of its team's ranking not already on the page.
			var want lr.StreamerID
			for _, id := range rankings[it.Team] {
				if !slices.Contains(ids(page)[:i], id) {
					want = id
					break
				}
			}
			if it.StreamerID != want {
				t.Fatalf("page %v teams %v: position %d is %d from %s, whose best remaining is %d (rankings %v)", ids(page), teams(page), i, it.StreamerID, it.Team, want, rankings)
			}
			n[it.Team]++
		}
		if len(n) != 2 || n["control"]-n["flipped"] > 1 || n["flipped"]-n["control"] > 1 {
			t.Fatalf("teams %v: want both, within one of each other", teams(page))
		}
		if first == nil {
			first = page
		} else if rid == "r-1" && (!slices.Equal(ids(page), ids(first)) || !slices.Equal(teams(page), teams(first))) {
			t.Fatalf("request r-1 again: %v %v, first %v %v", ids(page), teams(page), ids(first), teams(first))
		}
		if d := page.Debug.Experiments; len(d) != 1 || d[0].Experiment != "il" || d[0].Arm != "" {
			t.Fatalf("debug experiments %+v", d)
		}
	}
	if len(w.imps.got) != 4 || len(mc.marks) != 4 {
		t.Fatalf("%d impression batches and %d pages marked shown for 4 pages", len(w.imps.got), len(mc.marks))
	}
	for _, batch := range w.imps.got {
		for _, imp := range batch {
			if imp.Experiment != "il" || imp.Arm != "" || (imp.Team != "control" && imp.Team != "flipped") {
				t.Fatalf("impression %q/%q/%q", imp.Experiment, imp.Arm, imp.Team)
			}
		}
	}
	if got := counter(t, reg, "liverecall_experiment_requests_total", "flipped", "il"); got != 4 {
		t.Fatalf("flipped requests %v, want 4 (the overrides are not counted)", got)
	}
}

func teams(p *lr.Page) []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.Team)
	}
	return out
}
