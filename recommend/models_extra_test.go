package recommend_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
)

// scorerVersions returns reg's liverecall_scorer_versions series as
// "kind/version/role", sorted, and liverecall_scorer_load_failures_total
// summed.
func scorerVersions(t *testing.T, reg *prometheus.Registry) ([]string, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	fails := 0.0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			switch mf.GetName() {
			case "liverecall_scorer_versions":
				out = append(out, l["kind"]+"/"+l["version"]+"/"+l["role"])
			case "liverecall_scorer_load_failures_total":
				fails += mt.GetCounter().GetValue()
			}
		}
	}
	slices.Sort(out)
	return out, fails
}

// Reranker versions and NeuMF scorers named by experiments load beside the
// active ones from PostgreSQL; unknown or unreadable ones are reported and
// resolve to nothing; activating a loaded NCF version takes its scorer as
// it is and keeps the old one while wanted; dropping them unloads them.
func TestServeExtraScorers(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	blob, err := trainedScorer(t).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	ncf := map[string]lr.ModelVersion{}
	for _, v := range []string{"n1", "n2", "broken", "imported"} {
		mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelNCF, Version: v, Dim: 16})
		if err != nil {
			t.Fatal(err)
		}
		switch v {
		case "n1", "n2":
			err = db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, blob)
		case "broken":
			err = db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, []byte("not a scorer"))
		}
		if err != nil {
			t.Fatal(err)
		}
		ncf[v] = mv
	}
	if _, err := db.ActivateModel(ctx, ncf["n1"].ID); err != nil {
		t.Fatal(err)
	}
	logistic, _ := json.Marshal(rerank.DefaultWeights())
	r1, _ := db.CreateRerankModel(ctx, "r1", logistic, nil)
	if _, err := db.CreateRerankModel(ctx, "r2", logistic, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateRerankModel(ctx, "rbad", []byte(`{"algo":"gbdt","heads":[]}`), nil); err != nil {
		t.Fatal(err)
	}
	if err := db.ActivateRerankModel(ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	var serving atomic.Value // the NCF version the index serves
	serving.Store("n1")
	reg := prometheus.NewRegistry()
	m := recommend.NewModels(recommend.ModelsConfig{Store: db, Ordinals: lr.NewOrdinals(), Registerer: reg,
		ActiveWeights: func(ctx context.Context) (string, []byte, error) {
			r, err := db.ActiveRerankModel(ctx)
			return r.Version, r.Weights, err
		},
		WeightsByVersion: db.RerankWeights,
		Serving:          func(k lr.ModelKind) string { return serving.Load().(string) }})
	m.Refresh(ctx)
	if _, ok := m.WeightsVersion("r2"); ok {
		t.Fatal("r2 resolves before it was loaded")
	}
	if m.NCFFor(ncf["n2"].ID) != nil || m.NCFFor(ncf["n1"].ID) == nil {
		t.Fatal("NCFFor before ServeExtra: want the active n1 only")
	}

	want := []lr.ModelVersion{ncf["n1"], ncf["n2"], ncf["broken"], ncf["imported"]}
	serve := func() error {
		return m.ServeExtra(ctx, []string{"r1", "r2", "rbad", "rmissing"}, want)
	}
	if err := serve(); err == nil {
		t.Fatal("ServeExtra with bad versions returned no error")
	}
	n2 := m.NCFFor(ncf["n2"].ID)
	check := func(when string) {
		t.Helper()
		for v, ok := range map[string]bool{"r1": true, "r2": true, "rbad": false, "rmissing": false, "": false} {
			w, got := m.WeightsVersion(v)
			if got != ok || (ok && w.ModelVersion() != v) {
				t.Fatalf("%s: WeightsVersion(%q) = %v %v", when, v, w, got)
			}
		}
		for v, ok := range map[string]bool{"n1": true, "n2": true, "broken": false, "imported": false} {
			if got := m.NCFFor(ncf[v].ID) != nil; got != ok {
				t.Fatalf("%s: NCFFor(%s) loaded %v, want %v", when, v, got, ok)
			}
		}
		if m.NCFFor(ncf["n2"].ID) != n2 {
			t.Fatalf("%s: n2's scorer was decoded again", when)
		}
		if m.Weights().ModelVersion() != "r1" {
			t.Fatalf("%s: the active reranker is %s", when, m.Weights().ModelVersion())
		}
		var errs []string
		for _, s := range m.Status() {
			if s.Role == "failed" {
				errs = append(errs, s.Version+": "+s.Error)
			}
		}
		if got := strings.Join(errs, "; "); !strings.Contains(got, "rbad: rerank version rbad refused") ||
			!strings.Contains(got, "rmissing: rerank version rmissing not found") || !strings.Contains(got, "broken: ") || len(errs) != 3 {
			t.Fatalf("%s: failed versions in the status: %s", when, got)
		}
		got, fails := scorerVersions(t, reg)
		if want := "neumf/broken/failed,neumf/n2/experiment,rerank/r2/experiment,rerank/rbad/failed,rerank/rmissing/failed"; strings.Join(got, ",") != want {
			t.Fatalf("%s: liverecall_scorer_versions %v, want %s", when, got, want)
		}
		if fails != 3 {
			t.Fatalf("%s: %v load failures counted, want 3", when, fails)
		}
	}
	check("after ServeExtra")
	_ = serve()
	check("after a second ServeExtra") // nothing reloaded, no failure counted twice

	// n2 activated: the index serves it, LoadNCF takes the loaded scorer;
	// n1 is retired, and does not score for experiments any more. The
	// same for the reranker: r2 activated, r1 retired is reported.
	if _, err := db.ActivateModel(ctx, ncf["n2"].ID); err != nil {
		t.Fatal(err)
	}
	serving.Store("n2")
	m.LoadNCF(ctx)
	if m.NCF() != n2 {
		t.Fatal("the activated NCF version's scorer was not the one loaded for experiments")
	}
	if m.NCFFor(ncf["n1"].ID) != nil {
		t.Fatal("the retired n1 still scores")
	}
	r2, _ := db.RerankModelByVersion(ctx, "r2")
	if err := db.ActivateRerankModel(ctx, r2.ID); err != nil {
		t.Fatal(err)
	}
	m.RefreshWeights(ctx)
	if err := m.ServeExtra(ctx, []string{"r1", "r2"}, []lr.ModelVersion{ncf["n2"]}); err == nil {
		t.Fatal("ServeExtra with a retired reranker version returned no error")
	}
	if _, ok := m.WeightsVersion("r1"); ok {
		t.Fatal("the retired r1 resolves")
	}
	if w, ok := m.WeightsVersion("r2"); !ok || w.ModelVersion() != m.Weights().ModelVersion() {
		t.Fatal("the active r2 does not resolve to the serving model")
	}
	if got, _ := scorerVersions(t, reg); strings.Join(got, ",") != "rerank/r1/failed" {
		t.Fatalf("liverecall_scorer_versions with r1 retired: %v", got)
	}

	// Nothing wanted: all unloaded, no failure left.
	if err := m.ServeExtra(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.WeightsVersion("r1"); ok || m.NCFFor(ncf["n1"].ID) != nil {
		t.Fatal("versions still loaded after ServeExtra with none wanted")
	}
	if got, _ := scorerVersions(t, reg); len(got) != 0 {
		t.Fatalf("liverecall_scorer_versions after the drop: %v", got)
	}
	var roles []string
	for _, s := range m.Status() {
		roles = append(roles, s.Kind+"/"+s.Version+"/"+s.Role)
	}
	if got := strings.Join(roles, ","); got != "rerank/r2/active,neumf/n2/active" {
		t.Fatalf("status after the drop: %s", got)
	}
}
