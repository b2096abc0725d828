package index_test

import (
	"context"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/offheap/offheaptest"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// servingVersions returns the liverecall_index_serving_versions series of
// reg as "kind/version/role" strings.
func servingVersions(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		if mf.GetName() != "liverecall_index_serving_versions" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range mt.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if mt.GetGauge().GetValue() == 1 {
				out = append(out, l["kind"]+"/"+l["version"]+"/"+l["role"])
			}
		}
	}
	slices.Sort(out)
	return out
}

// statusVersions returns kind mf's versions in Status as
// "version/role" strings, and the error of each failed one by version.
func statusVersions(m *index.Manager) ([]string, map[string]string) {
	var out []string
	errs := map[string]string{}
	for _, v := range m.Status()[0].Versions {
		out = append(out, v.Version+"/"+v.Role)
		if v.Error != "" {
			errs[v.Version] = v.Error
		}
	}
	return out, errs
}

// Versions of a kind wanted by experiments serve beside the active one:
// searchable pinned by id, following the live set, reported in Status
// and the metrics; one that cannot be loaded is reported and disturbs
// nothing; a forced reload of the active version keeps them; one no
// longer wanted is dropped and its memory released; activating one takes
// its index as it is.
func TestExtraVersionsServeBesideTheActive(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	ords := lr.NewOrdinals()
	v1 := seedVersion(t, db, "v1", 3000, 50, 1, nil)
	v2 := seedVersion(t, db, "v2", 3000, 50, 2, nil)
	seedVersion(t, db, "bad", 3000, 50, 3, func(rows []lr.Embedding) []lr.Embedding {
		rows[7].Vec = make([]float32, dim)
		return rows
	})
	activate(t, db, v1)
	m, reg, _ := newManager(t, db, index.Config{Ordinals: ords})
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	feed := newLiveFeed(m, ords)
	for i := range 40 {
		feed.set(lr.StreamerID(100+i), true)
	}

	// Nothing is served but the active version before Serve.
	if _, ok := m.ModelByVersion(lr.ModelMF, "v2"); ok {
		t.Fatal("v2 resolves before it was loaded")
	}
	if mv, ok := m.ModelByVersion(lr.ModelMF, "v1"); !ok || mv.ID != v1.ID {
		t.Fatalf("ModelByVersion(v1) = %+v %v", mv, ok)
	}
	if _, err := m.Search(ctx, lr.ModelMF, v2.ID, userVec(t, db, v2.ID, 3), 10, nil); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("search pinned to an unloaded version: %v", err)
	}

	res, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"v2", "bad", "missing", "v1"}})
	if err == nil {
		t.Fatal("Serve with a bad and a missing version returned no error")
	}
	outcomes := map[string]string{}
	for _, r := range res {
		outcomes[r.Version] = r.Outcome
	}
	if outcomes["v2"] != "loaded" || outcomes["bad"] != "failed" || outcomes["missing"] != "failed" || outcomes["v1"] != "active" {
		t.Fatalf("Serve outcomes %v", outcomes)
	}
	check := func(when string) {
		t.Helper()
		mv, ok := m.ModelByVersion(lr.ModelMF, "v2")
		if !ok || mv.ID != v2.ID {
			t.Fatalf("%s: ModelByVersion(v2) = %+v %v", when, mv, ok)
		}
		for _, l := range []string{"bad", "missing", ""} {
			if _, ok := m.ModelByVersion(lr.ModelMF, l); ok {
				t.Fatalf("%s: ModelByVersion(%q) resolves", when, l)
			}
		}
		// Pinned searches answer from each version's own vectors.
		for _, v := range []lr.ModelVersion{v1, v2} {
			q := userVec(t, db, v.ID, 3)
			hits, err := m.Search(ctx, lr.ModelMF, v.ID, q, 10, nil)
			if err != nil {
				t.Fatalf("%s: search pinned to %s: %v", when, v.Version, err)
			}
			got := make([]int64, len(hits))
			for i, h := range hits {
				id, _ := ords.ID(h.Ord)
				got[i] = int64(id)
			}
			if r := recall(got, bruteFromDB(t, db, v.ID, q, 10, nil)); r < 0.9 {
				t.Fatalf("%s: recall@10 of the search pinned to %s: %.2f", when, v.Version, r)
			}
			if _, ok := m.StreamerVector(lr.ModelMF, v.ID, ords.Ordinal(100)); !ok {
				t.Fatalf("%s: no vector of streamer 100 under %s", when, v.Version)
			}
		}
		// The active version is untouched.
		if m.Version(lr.ModelMF) != "v1" || m.ModelID(lr.ModelMF) != v1.ID {
			t.Fatalf("%s: the active version is %s", when, m.Version(lr.ModelMF))
		}
		got, errs := statusVersions(m)
		if want := "v1/active,bad/failed,missing/failed,v2/experiment"; strings.Join(got, ",") != want {
			t.Fatalf("%s: status versions %v, want %s", when, got, want)
		}
		if !strings.Contains(errs["bad"], "zero vector") || !strings.Contains(errs["missing"], "not found") {
			t.Fatalf("%s: status errors %v", when, errs)
		}
		if got := strings.Join(servingVersions(t, reg), ","); got != "mf/bad/failed,mf/missing/failed,mf/v1/active,mf/v2/experiment" {
			t.Fatalf("%s: serving versions metric %s", when, got)
		}
		if got := testutil.ToFloat64(mustVec(t, reg, "liverecall_index_version_load_failures_total")); got != 2 {
			t.Fatalf("%s: %v load failures counted, want 2", when, got)
		}
	}
	check("after Serve")

	// The extra version follows the live set like the active one.
	liveOf := func(version string) int {
		for _, v := range m.Status()[0].Versions {
			if v.Version == version {
				return v.LiveVectors
			}
		}
		return -1
	}
	if liveOf("v2") != 40 || liveOf("v1") != 40 {
		t.Fatalf("live vectors v1 %d v2 %d, want 40", liveOf("v1"), liveOf("v2"))
	}
	feed.set(lr.StreamerID(200), true)
	if liveOf("v2") != 41 {
		t.Fatalf("live vectors of v2 after a stream start: %d", liveOf("v2"))
	}

	// A forced rebuild of the active version keeps the extras; a second
	// Serve keeps what it loaded and does not retry the refused version.
	if res, err := m.Reload(ctx); err != nil || res[0].Outcome != "swapped" {
		t.Fatalf("Reload: %+v %v", res, err)
	}
	res, _ = m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"v2", "bad", "missing"}})
	for _, r := range res {
		outcomes[r.Version] = r.Outcome
	}
	if outcomes["v2"] != "kept" || outcomes["bad"] != "failed" {
		t.Fatalf("second Serve outcomes %v", outcomes)
	}
	check("after a reload and a second Serve")

	// Dropped: no longer resolved nor searchable, its arrays released.
	arrays := m.ExtraArrays(lr.ModelMF, "v2")
	if len(arrays) == 0 {
		t.Fatal("no arrays of v2")
	}
	if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.ModelByVersion(lr.ModelMF, "v2"); ok {
		t.Fatal("dropped v2 still resolves")
	}
	if _, err := m.Search(ctx, lr.ModelMF, v2.ID, userVec(t, db, v2.ID, 3), 10, nil); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("search pinned to a dropped version: %v", err)
	}
	if got, _ := statusVersions(m); strings.Join(got, ",") != "v1/active" {
		t.Fatalf("status versions after the drop: %v", got)
	}
	if got := strings.Join(servingVersions(t, reg), ","); got != "mf/v1/active" {
		t.Fatalf("serving versions metric after the drop: %s", got)
	}
	offheaptest.WaitReleased(t, "arrays of the dropped extra version", arrays...)

	// Activating a version served for an experiment swaps its index in as
	// it is; the version it replaces is retired, and an experiment naming
	// it is told so (its arms get the default configuration).
	if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"v1", "v2"}}); err != nil {
		t.Fatal(err)
	}
	arrays = m.ExtraArrays(lr.ModelMF, "v2")
	activate(t, db, v2)
	if res, err := m.Check(ctx); err != nil || res[0].Outcome != "swapped" {
		t.Fatalf("Check: %+v %v", res, err)
	}
	if x := m.Current(lr.ModelMF); x.Model.ID != v2.ID {
		t.Fatalf("serving %+v", x.Model)
	}
	if got := m.ExtraArrays(lr.ModelMF, "v2"); len(got) == 0 || got[0] != arrays[0] {
		t.Fatal("the activated version was rebuilt instead of taken from the extras")
	}
	if _, ok := m.ModelByVersion(lr.ModelMF, "v1"); ok {
		t.Fatal("the retired v1 resolves for experiments")
	}
	if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"v1", "v2"}}); err == nil {
		t.Fatal("Serve of a retired version returned no error")
	}
	got, errs := statusVersions(m)
	if strings.Join(got, ",") != "v2/active,v1/failed" || !strings.Contains(errs["v1"], "retired") {
		t.Fatalf("status versions after activating v2: %v %v", got, errs)
	}
	if _, ok := m.ModelByVersion(lr.ModelMF, "v1"); ok {
		t.Fatal("the retired v1 resolves for experiments")
	}
}

// Searches pinned to an extra version while it is loaded, dropped and
// loaded again, the live set changes and the active version is rebuilt,
// are answered from that version's vectors or refused as unavailable,
// never from another version's (run with -race).
func TestPinnedExtraSearchesDuringServeAndReloads(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	ords := lr.NewOrdinals()
	v1 := seedVersion(t, db, "c1", 600, 5, 1, nil)
	v2 := seedVersion(t, db, "c2", 600, 5, 2, nil)
	activate(t, db, v1)
	m, _, _ := newManager(t, db, index.Config{Ordinals: ords})
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	feed := newLiveFeed(m, ords)
	q := userVec(t, db, v2.ID, 1)
	want := bruteFromDB(t, db, v2.ID, q, 10, nil)
	if slices.Equal(want, bruteFromDB(t, db, v1.ID, q, 10, nil)) {
		t.Fatal("the versions give the same answer: the test cannot tell them apart")
	}
	stop := make(chan struct{})
	var answered, refused atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			runtime.Gosched() // leave the builds their share of a loaded machine
			hits, err := m.SearchPrecise(ctx, lr.ModelMF, v2.ID, q, 10, nil)
			if lr.ErrorCode(err) == lr.EUNAVAILABLE {
				refused.Add(1)
				continue
			}
			if err != nil {
				t.Errorf("pinned search: %v", err)
				return
			}
			got := make([]int64, len(hits))
			for i, h := range hits {
				id, _ := ords.ID(h.Ord)
				got[i] = int64(id)
			}
			if !slices.Equal(got, want) {
				t.Errorf("pinned to c2: %v, c2's answer %v", got, want)
				return
			}
			answered.Add(1)
			if mv, ok := m.ModelByVersion(lr.ModelMF, "c2"); ok && mv.ID != v2.ID {
				t.Errorf("ModelByVersion(c2) = %+v", mv)
				return
			}
		}
	})
	for i := range 2 {
		if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"c2"}}); err != nil {
			t.Fatal(err)
		}
		feed.set(lr.StreamerID(100+i), true)
		if _, err := m.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"c2"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return answered.Load() > 0 })
	close(stop)
	wg.Wait()
	t.Logf("%d pinned searches answered, %d refused while dropped", answered.Load(), refused.Load())
}
