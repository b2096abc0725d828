package index_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/synth"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

const dim = 16

// seedVersion stores a staged mf version with n streamer vectors (ids
// 100+i) and u user vectors (ids 1+i), applying mutate to the streamer rows
// first, and returns it.
func seedVersion(t *testing.T, db *postgres.DB, label string, n, u int, seed uint64, mutate func([]lr.Embedding) []lr.Embedding) lr.ModelVersion {
	t.Helper()
	ctx := context.Background()
	s, err := synth.Generate("lowrank", n, u, dim, seed)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: label, Dim: dim})
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]lr.Embedding, n)
	for i := range rows {
		rows[i] = lr.Embedding{ID: int64(100 + i), Vec: s.Base[i*dim : (i+1)*dim]}
	}
	if mutate != nil {
		rows = mutate(rows)
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, rows); err != nil {
		t.Fatal(err)
	}
	users := make([]lr.Embedding, u)
	for i := range users {
		users[i] = lr.Embedding{ID: int64(1 + i), Vec: s.Query(i)}
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, users); err != nil {
		t.Fatal(err)
	}
	return mv
}

func activate(t *testing.T, db *postgres.DB, mv lr.ModelVersion) {
	t.Helper()
	if _, err := db.ActivateModel(context.Background(), mv.ID); err != nil {
		t.Fatal(err)
	}
}

func newManager(t *testing.T, store index.Store, cfg index.Config) (*index.Manager, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	cfg.Store = store
	if cfg.Ordinals == nil {
		cfg.Ordinals = lr.NewOrdinals()
	}
	cfg.Kinds = []lr.ModelKind{lr.ModelMF}
	cfg.Registerer = reg
	cfg.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: &logs}, nil))
	cfg.Params.Seed = 1
	m, err := index.NewManager(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m, reg, &logs
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func TestRebuildFromPostgresServesAndSnapshots(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	dir := t.TempDir()
	ords := lr.NewOrdinals()
	m, reg, _ := newManager(t, db, index.Config{SnapshotDir: dir, Ordinals: ords})

	// No active model: nothing to load, searches say unavailable.
	res, err := m.Load(ctx)
	if err != nil || res[0].Outcome != "no active model" {
		t.Fatalf("Load with no model: %+v %v", res, err)
	}
	if _, err := m.Search(ctx, lr.ModelMF, 0, make([]float32, dim), 5, nil); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("search with no index: %v", err)
	}

	v1 := seedVersion(t, db, "v1", 3000, 50, 1, nil)
	activate(t, db, v1)
	res, err = m.Load(ctx)
	if err != nil || res[0].Outcome != "swapped" || res[0].Vectors != 3000 || res[0].Users != 50 {
		t.Fatalf("Load: %+v %v", res, err)
	}
	if res[0].SelfCheck < 0.9 {
		t.Fatalf("self-check recall %.3f", res[0].SelfCheck)
	}
	if got := m.Version(lr.ModelMF); got != "v1" {
		t.Fatalf("Version = %q", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "mf.lrix")); err != nil {
		t.Fatalf("no snapshot written: %v", err)
	}
	// Unchanged on Check; forced on Reload.
	if res, _ := m.Check(ctx); res[0].Outcome != "unchanged" {
		t.Fatalf("Check: %+v", res)
	}

	// Neighbour queries, live-only or all, against brute force from the DB.
	user := lr.UserID(7)
	q := userVec(t, db, v1.ID, user)
	all := neighbours(t, m, ords, q, 10, nil)
	if len(all) != 10 {
		t.Fatalf("neighbours: %v", all)
	}
	want := bruteFromDB(t, db, v1.ID, q, 10, nil)
	if recall(all, want) < 0.9 {
		t.Fatalf("user neighbours %v, brute force %v", all, want)
	}
	// Make 30 streamers live; live-only results must be among them and exact.
	liveIDs := map[int64]bool{}
	for i := 0; i < 3000; i += 100 {
		liveIDs[int64(100+i)] = true
	}
	feed := newLiveFeed(m, ords)
	for id := range liveIDs {
		if _, ok := ords.Lookup(lr.StreamerID(id)); !ok {
			t.Fatalf("streamer %d has no ordinal after the build", id)
		}
		feed.set(lr.StreamerID(id), true)
	}
	liveN := neighbours(t, m, ords, q, 5, allowedIDs(ords, liveIDs))
	wantLive := bruteFromDB(t, db, v1.ID, q, 5, liveIDs)
	if !slices.Equal(liveN, wantLive) {
		t.Fatalf("live-only neighbours %v, want %v", liveN, wantLive)
	}
	ord100, _ := ords.Lookup(100)
	if _, ok := m.StreamerVector(lr.ModelMF, 0, ord100); !ok {
		t.Fatal("streamer 100 has no vector")
	}
	if _, ok := m.StreamerVector(lr.ModelMF, v1.ID, ord100); !ok || m.ModelID(lr.ModelMF) != v1.ID {
		t.Fatalf("streamer 100 has no vector pinned to the serving version %d (serving %d)", v1.ID, m.ModelID(lr.ModelMF))
	}
	if st := m.Status(); st[0].Users != 50 {
		t.Fatalf("status users %d, want the 50 user rows of the store", st[0].Users)
	}

	// Metrics: version, size, strategies.
	if got := testutil.ToFloat64(mustVec(t, reg, "liverecall_index_model_id")); got != float64(v1.ID) {
		t.Fatalf("model id metric %v", got)
	}
	if got := testutil.ToFloat64(mustVec(t, reg, "liverecall_index_vectors")); got != 3000 {
		t.Fatalf("vectors metric %v", got)
	}
	if n, _ := testutil.GatherAndCount(reg, "liverecall_index_searches_total"); n < 1 {
		t.Fatal("no searches counted")
	}

	// A restart with the snapshot loads it instead of rebuilding, and serves
	// the same answers.
	m2, _, _ := newManager(t, db, index.Config{SnapshotDir: dir})
	res, err = m2.Load(ctx)
	if err != nil || res[0].Outcome != "snapshot" {
		t.Fatalf("restart Load: %+v %v", res, err)
	}
	again := neighbours(t, m2, ords, q, 10, nil)
	if !slices.Equal(again, all) {
		t.Fatalf("after snapshot load %v, before %v", again, all)
	}

	// A corrupt snapshot is ignored with a warning and rebuilt.
	path := filepath.Join(dir, "mf.lrix")
	b, _ := os.ReadFile(path)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	m3, _, logs := newManager(t, db, index.Config{SnapshotDir: dir})
	res, err = m3.Load(ctx)
	if err != nil || res[0].Outcome != "swapped" || !strings.Contains(logs.String(), "checksum mismatch") {
		t.Fatalf("corrupt snapshot: %+v %v; logs: %s", res, err, logs)
	}
	// A snapshot of another version is ignored too.
	v2 := seedVersion(t, db, "v2", 500, 5, 2, nil)
	activate(t, db, v2)
	m4, _, logs := newManager(t, db, index.Config{SnapshotDir: dir})
	res, err = m4.Load(ctx)
	if err != nil || res[0].Outcome != "swapped" || !strings.Contains(logs.String(), "active is mf/v2") {
		t.Fatalf("mismatched snapshot: %+v %v; logs: %s", res, err, logs)
	}
}

func mustVec(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return &gathered{reg: reg, name: name}
}

// gathered exposes one gathered metric family as a Collector for testutil.
type gathered struct {
	reg  *prometheus.Registry
	name string
}

func (g *gathered) Describe(chan<- *prometheus.Desc) {}
func (g *gathered) Collect(ch chan<- prometheus.Metric) {
	mfs, _ := g.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			v := mt.GetGauge().GetValue() + mt.GetCounter().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.GaugeValue, v)
		}
	}
}

// userVec reads user u's vector of version modelID from the store (the
// index holds no user vectors).
func userVec(t *testing.T, db *postgres.DB, modelID int64, u lr.UserID) []float32 {
	t.Helper()
	var q []float32
	err := db.StreamEmbeddings(context.Background(), modelID, lr.SideUser, func(id int64, vec []float32) error {
		if id == int64(u) {
			q = vec
		}
		return nil
	})
	if err != nil || q == nil {
		t.Fatalf("user %d of version %d: %v %v", u, modelID, q, err)
	}
	return q
}

// neighbours asks m what an operator's neighbour query asks of it
// (recommend.Service.Neighbors): the k streamers nearest q by an exact
// float32 search among allowed (nil: all), as streamer ids.
func neighbours(t *testing.T, m *index.Manager, ords *lr.Ordinals, q []float32, k int, allowed index.Allowed) []int64 {
	t.Helper()
	hits, err := m.SearchPrecise(context.Background(), lr.ModelMF, 0, q, k, allowed)
	if err != nil {
		t.Fatalf("SearchPrecise: %v", err)
	}
	out := make([]int64, len(hits))
	for i, h := range hits {
		id, _ := ords.ID(h.Ord)
		out[i] = int64(id)
	}
	return out
}

// ordSet is an Allowed of ordinals.
type ordSet map[uint32]bool

func (s ordSet) Contains(ord uint32) bool { return s[ord] }
func (s ordSet) GetCardinality() uint64   { return uint64(len(s)) }

// allowedIDs is the Allowed of the streamers with these ids.
func allowedIDs(ords *lr.Ordinals, ids map[int64]bool) ordSet {
	s := ordSet{}
	for id := range ids {
		s[ords.Ordinal(lr.StreamerID(id))] = true
	}
	return s
}

func recall(got []int64, want []int64) float64 {
	hit := 0
	for _, w := range want {
		if slices.Contains(got, w) {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// bruteFromDB ranks the version's streamers (restricted to only, if non-nil)
// by exact dot product with q, reading the vectors back from Postgres.
func bruteFromDB(t *testing.T, db *postgres.DB, modelID int64, q []float32, k int, only map[int64]bool) []int64 {
	t.Helper()
	type sc struct {
		id int64
		s  float32
	}
	var all []sc
	err := db.StreamEmbeddings(context.Background(), modelID, lr.SideStreamer, func(id int64, vec []float32) error {
		if only == nil || only[id] {
			h := index.ExactScan(q, vec, dim, nil, 1, nil)
			all = append(all, sc{id, h[0].Score})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b sc) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return int(a.id - b.id)
	})
	out := []int64{}
	for _, a := range all[:min(k, len(all))] {
		out = append(out, a.id)
	}
	return out
}

// faulty wraps the real database and corrupts the stream of one version
// the way a bad import or a concurrent delete would.
type faulty struct {
	*postgres.DB
	modelID int64
	fault   string // "drop", "dup"
}

func (f *faulty) StreamEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide, fn func(int64, []float32) error) error {
	row := 0
	return f.DB.StreamEmbeddings(ctx, modelID, side, func(id int64, vec []float32) error {
		row++
		if modelID != f.modelID || side != lr.SideStreamer || row != 4 {
			return fn(id, vec)
		}
		switch f.fault {
		case "drop":
			return nil
		case "dup":
			if err := fn(id, vec); err != nil {
				return err
			}
			return fn(id, vec)
		}
		return fn(id, vec)
	})
}

// unreachable is a store whose reads of the active version fail, as when
// the database stops answering between two checks.
type unreachable struct {
	*postgres.DB
	down atomic.Bool
}

func (u *unreachable) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	if u.down.Load() {
		return lr.ModelVersion{}, lr.Errorf(lr.EUNAVAILABLE, "database unreachable")
	}
	return u.DB.ActiveModel(ctx, kind)
}

// A check that cannot read the active version fails like a refused build:
// the serving index stays, the status names the error and the failure is
// counted; the next successful swap clears the error.
func TestUnreachableStoreFailsTheCheckVisibly(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	good := seedVersion(t, db, "good", 400, 10, 1, nil)
	activate(t, db, good)
	store := &unreachable{DB: db}
	m, reg, _ := newManager(t, store, index.Config{})
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	store.down.Store(true)
	res, err := m.Check(ctx)
	if lr.ErrorCode(err) != lr.EUNAVAILABLE || res[0].Outcome != "failed" || res[0].ServingModel != "good" {
		t.Fatalf("check while unreachable: %+v, %v", res, err)
	}
	if st := m.Status()[0]; !strings.Contains(st.LastError, "database unreachable") || st.Version != "good" {
		t.Fatalf("status while unreachable: %+v", st)
	}
	if got := testutil.ToFloat64(mustVec(t, reg, "liverecall_index_reload_failures_total")); got != 1 {
		t.Fatalf("failures metric %v, want 1", got)
	}
	store.down.Store(false)
	next := seedVersion(t, db, "next", 400, 10, 2, nil)
	activate(t, db, next)
	if _, err := m.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if st := m.Status()[0]; st.LastError != "" || st.Version != "next" {
		t.Fatalf("status after the swap: %+v", st)
	}
}

func TestBadVersionsAreRefusedAndTheServingIndexKept(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	good := seedVersion(t, db, "good", 400, 10, 1, nil)
	activate(t, db, good)
	set := func(row int, f func(v []float32) []float32) func([]lr.Embedding) []lr.Embedding {
		return func(rows []lr.Embedding) []lr.Embedding {
			v := slices.Clone(rows[row].Vec)
			rows[row].Vec = f(v)
			return rows
		}
	}
	for _, tc := range []struct {
		name, label string
		mutate      func([]lr.Embedding) []lr.Embedding
		fault       string
		floor       float64
		want        string
	}{
		{"short vector", "short", set(9, func(v []float32) []float32 { return v[:dim-1] }), "", 0,
			"model mf/short (id %d): streamer row 10 (streamer id 109): dimension 15, want 16"},
		{"NaN", "nan", set(4, func(v []float32) []float32 { v[3] = float32(math.NaN()); return v }), "", 0,
			"model mf/nan (id %d): streamer row 5 (streamer id 104): component 3 is NaN"},
		{"Inf", "inf", set(0, func(v []float32) []float32 { v[0] = float32(math.Inf(-1)); return v }), "", 0,
			"model mf/inf (id %d): streamer row 1 (streamer id 100): component 0 is -Inf"},
		{"zero vector", "zero", set(7, func(v []float32) []float32 { return make([]float32, dim) }), "", 0,
			"model mf/zero (id %d): streamer row 8 (streamer id 107): zero vector"},
		{"missing rows", "missing", nil, "drop", 0,
			"model mf/missing (id %d): 399 streamer rows streamed, 400 counted: missing rows"},
		{"duplicate id", "dup", nil, "dup", 0,
			"model mf/dup (id %d): streamer row 5 (streamer id 103): duplicate id"},
		// An unreachable floor refuses every version (the good one too, so
		// this case starts with nothing served).
		{"self-check below floor", "floor", nil, "", 1.01,
			"model mf/floor (id %d): self-check recall@10 1.000 is below the floor 1.01"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mv := seedVersion(t, db, tc.label, 400, 10, 3, tc.mutate)
			store := &faulty{DB: db, modelID: mv.ID, fault: tc.fault}
			m, reg, _ := newManager(t, store, index.Config{RecallFloor: tc.floor})
			wantServing := "good"
			if _, err := m.Load(ctx); tc.floor > 1 {
				wantServing = ""
			} else if err != nil {
				t.Fatal(err)
			}
			activate(t, db, mv)
			defer activate(t, db, good)
			res, err := m.Check(ctx)
			want := strings.ReplaceAll(tc.want, "%d", strconv.FormatInt(mv.ID, 10))
			if err == nil || !strings.Contains(err.Error(), want) || lr.ErrorCode(err) != lr.EINVALID {
				t.Fatalf("error %v\nwant containing %q (invalid)", err, want)
			}
			if res[0].Outcome != "refused" || m.Version(lr.ModelMF) != wantServing || res[0].ServingModel != wantServing {
				t.Fatalf("result %+v, serving %q: the good index must stay", res, m.Version(lr.ModelMF))
			}
			if got := testutil.ToFloat64(mustVec(t, reg, "liverecall_index_reload_failures_total")); got < 1 {
				t.Fatalf("failures metric %v", got)
			}
		})
	}
}

func TestSearchDuringSwapsNotifyAndRollback(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := pgtest.Open(t)
	v1 := seedVersion(t, db, "s1", 1500, 20, 1, nil)
	activate(t, db, v1)
	m, _, _ := newManager(t, db, index.Config{CheckEvery: time.Hour})
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	go m.Run(ctx, func(ctx context.Context, fn func(string)) error { return db.Listen(ctx, postgres.ReloadChannel, fn) })

	// Searchers run through every swap below; none may fail.
	var stop atomic.Bool
	var wg sync.WaitGroup
	var searches atomic.Int64
	q := make([]float32, dim)
	q[0] = 1
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				hits, err := m.Search(ctx, lr.ModelMF, 0, q, 10, nil)
				if err != nil || len(hits) != 10 {
					t.Errorf("search during swap: %d hits, %v", len(hits), err)
					return
				}
				searches.Add(1)
			}
		})
	}
	// A new version announced by NOTIFY is picked up without an admin call.
	v2 := seedVersion(t, db, "s2", 1200, 20, 2, nil)
	activate(t, db, v2)
	waitFor(t, func() bool { return m.Version(lr.ModelMF) == "s2" })
	// The admin call rebuilds even when unchanged.
	sum, err := m.Reload(ctx)
	if err != nil || sum[0].Outcome != "swapped" {
		t.Fatalf("Reload: %+v %v", sum, err)
	}
	// Rollback goes to the previous index (s2 rebuilt → previous is s2 too);
	// activate s1 again and roll back to s2.
	activate(t, db, v1)
	waitFor(t, func() bool { return m.Version(lr.ModelMF) == "s1" })
	if v, err := m.Rollback(lr.ModelMF); err != nil || v != "s2" || m.Version(lr.ModelMF) != "s2" {
		t.Fatalf("Rollback: %q %v, serving %q", v, err, m.Version(lr.ModelMF))
	}
	st := m.Status()
	if st[0].Version != "s2" || st[0].PreviousVersion != "s1" || st[0].Vectors != 1200 {
		t.Fatalf("Status %+v", st)
	}
	stop.Store(true)
	wg.Wait()
	if searches.Load() == 0 {
		t.Fatal("no searches ran")
	}
}

// liveFeed drives a live.State whose published versions of the live set
// the manager follows, wired as the service wires them.
type liveFeed struct {
	st  *live.State
	n   int
	ts  time.Time
	cur map[lr.StreamerID]lr.StreamID
	// versions lists the versions published, in the order OnPublish gave them.
	mu       sync.Mutex
	versions []uint64
}

func newLiveFeed(m *index.Manager, ords *lr.Ordinals) *liveFeed {
	f := &liveFeed{ts: time.Unix(1_700_000_000, 0), cur: map[lr.StreamerID]lr.StreamID{}}
	f.st = live.New(live.Config{Ordinals: ords, OnPublish: func(s *live.Snapshot) {
		m.SetLive(s)
		f.mu.Lock()
		f.versions = append(f.versions, s.Version())
		f.mu.Unlock()
	}})
	return f
}

// set makes streamer id go live (a new stream; a live one's stream is
// replaced) or offline (its stream ends).
func (f *liveFeed) set(id lr.StreamerID, on bool) {
	f.n++
	f.ts = f.ts.Add(time.Second)
	e := lr.Event{ID: "e" + strconv.Itoa(f.n), TS: f.ts, StreamerID: id, V: 1}
	if on {
		e.Type, e.StreamID = lr.EventStreamStarted, lr.StreamID(f.n)
		f.cur[id] = e.StreamID
	} else {
		cur, ok := f.cur[id]
		if !ok {
			return
		}
		e.Type, e.StreamID = lr.EventStreamEnded, cur
		delete(f.cur, id)
	}
	f.st.Apply([]lr.Event{e})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPeriodicCheckWithLiveUpdatesDuringSearches(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := pgtest.Open(t)
	v1 := seedVersion(t, db, "p1", 800, 10, 1, nil)
	activate(t, db, v1)
	ords := lr.NewOrdinals()
	m, _, _ := newManager(t, db, index.Config{Ordinals: ords, CheckEvery: 50 * time.Millisecond})
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	var queries [][]float32
	for u := range 10 {
		queries = append(queries, userVec(t, db, v1.ID, lr.UserID(1+u)))
	}
	go m.Run(ctx, nil) // no NOTIFY: the periodic check alone
	someIDs := map[int64]bool{}
	for id := int64(100); id < 900; id += 2 {
		someIDs[id] = true
	}
	some := allowedIDs(ords, someIDs)

	var stop atomic.Bool
	var wg sync.WaitGroup
	feed := newLiveFeed(m, ords)
	wg.Go(func() { // streamers going live and offline
		for i := 0; !stop.Load(); i++ {
			feed.set(lr.StreamerID(100+i%800), i%3 != 0)
		}
	})
	for range 2 {
		wg.Go(func() { // operators asking among some streamers and all
			for i := 0; !stop.Load(); i++ {
				var allowed index.Allowed
				if i%2 == 0 {
					allowed = some
				}
				q := queries[i%len(queries)]
				hits, err := m.SearchPrecise(ctx, lr.ModelMF, 0, q, 5, allowed)
				if err != nil {
					t.Errorf("SearchPrecise: %v", err)
					return
				}
				for _, h := range hits {
					if allowed != nil && !some[h.Ord] {
						t.Errorf("neighbour %d not allowed", h.Ord)
						return
					}
				}
			}
		})
	}
	v2 := seedVersion(t, db, "p2", 600, 10, 2, nil)
	activate(t, db, v2)
	waitFor(t, func() bool { return m.Version(lr.ModelMF) == "p2" })
	stop.Store(true)
	wg.Wait()
	// The new index's live matrix mirrors the live set.
	st := m.Status()
	if st[0].LiveVectors == 0 {
		t.Fatalf("live matrix empty after swap: %+v", st)
	}
}

// The serving index's live matrix is derived from the versions of the live
// set live/ publishes: it follows them in order, an index loaded after
// streamers went live starts from the current version, and so does one
// swapped in by a reload or a rollback.
func TestLiveViewFollowsPublishedVersions(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	ords := lr.NewOrdinals()
	m, _, _ := newManager(t, db, index.Config{Ordinals: ords, CheckEvery: time.Hour})
	feed := newLiveFeed(m, ords)
	liveIDs := map[lr.StreamerID]bool{}
	set := func(id lr.StreamerID, on bool) {
		feed.set(id, on)
		if on {
			liveIDs[id] = true
		} else {
			delete(liveIDs, id)
		}
	}
	// Streamers go live before any index is loaded (ids 100-590, some
	// twice: a new stream replaces the current one).
	for i := range 50 {
		set(lr.StreamerID(100+10*i), true)
	}
	set(100, false)
	set(110, true)
	// withVectors counts the live streamers among ids 100..100+n-1.
	withVectors := func(n int) int {
		c := 0
		for id := range liveIDs {
			if id < lr.StreamerID(100+n) {
				c++
			}
		}
		return c
	}
	check := func(when string, n int) {
		t.Helper()
		x := m.Current(lr.ModelMF)
		snap := feed.st.Snapshot()
		if x.LiveVersion() != snap.Version() || x.LiveLen() != withVectors(n) {
			t.Fatalf("%s: live matrix at version %d with %d rows, want version %d with %d", when, x.LiveVersion(), x.LiveLen(), snap.Version(), withVectors(n))
		}
		// Operators' live-only answers (recommend.Service.Neighbors: an
		// exact search filtered by the live snapshot) are exactly the live
		// streamers'.
		q := userVec(t, db, x.Model.ID, 1)
		hits, err := m.SearchPrecise(ctx, lr.ModelMF, 0, q, 1000, snap)
		if err != nil || len(hits) != withVectors(n) {
			t.Fatalf("%s: %d live-only neighbours, want %d (%v)", when, len(hits), withVectors(n), err)
		}
		for _, h := range hits {
			if id, _ := ords.ID(h.Ord); !liveIDs[id] || !snap.Contains(h.Ord) {
				t.Fatalf("%s: neighbour %d is not live", when, id)
			}
		}
	}

	v1 := seedVersion(t, db, "f1", 600, 10, 1, nil)
	activate(t, db, v1)
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the load", 600)
	for i := range 20 { // changes while serving
		set(lr.StreamerID(105+10*i), i%2 == 0)
		set(lr.StreamerID(100+10*i), i%3 == 0)
	}
	check("after changes", 600)

	// A reload swaps in an index built beside: it gets the current live set.
	v2 := seedVersion(t, db, "f2", 300, 10, 2, nil)
	activate(t, db, v2)
	if res, err := m.Check(ctx); err != nil || res[0].Outcome != "swapped" {
		t.Fatalf("Check: %+v %v", res, err)
	}
	check("after the swap", 300)
	set(120, false)
	set(250, true)
	set(900, true) // no vector in either version
	check("after changes since the swap", 300)
	// The rolled-back index missed those versions: it is brought to the current one.
	if _, err := m.Rollback(lr.ModelMF); err != nil {
		t.Fatal(err)
	}
	check("after the rollback", 600)

	feed.mu.Lock()
	defer feed.mu.Unlock()
	for i, v := range feed.versions {
		if v != uint64(i+1) {
			t.Fatalf("published versions %v: want 1, 2, 3, ... in order", feed.versions)
		}
	}
}

// A request pins the versions it read at its start: its searches, dot
// products and streamer vectors stay on that version through a swap (the
// previous index answers), and once that version is gone they fail as
// unavailable rather than answer from another version.
func TestPinnedVersionNeverMixesAcrossASwap(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	ords := lr.NewOrdinals()
	m, _, _ := newManager(t, db, index.Config{Ordinals: ords})
	v1 := seedVersion(t, db, "pin1", 600, 5, 1, nil)
	activate(t, db, v1)
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	pinned := m.ModelID(lr.ModelMF)
	q := userVec(t, db, pinned, 1) // the request's user vector, of v1
	want := bruteFromDB(t, db, v1.ID, q, 10, nil)

	v2 := seedVersion(t, db, "pin2", 600, 5, 2, nil)
	activate(t, db, v2)
	if res, err := m.Check(ctx); err != nil || res[0].Outcome != "swapped" || m.ModelID(lr.ModelMF) != v2.ID {
		t.Fatalf("swap to v2: %+v %v", res, err)
	}
	// Pinned to v1 after the swap: v1's answer, from the previous index.
	hits, err := m.SearchPrecise(ctx, lr.ModelMF, pinned, q, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int64, len(hits))
	for i, h := range hits {
		id, _ := ords.ID(h.Ord)
		got[i] = int64(id)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pinned to v1 after the swap: %v, v1's answer %v", got, want)
	}
	if unpinned := neighbours(t, m, ords, q, 10, nil); slices.Equal(unpinned, want) {
		t.Fatalf("the serving version v2 gives v1's answer %v: the test cannot tell the versions apart", want)
	}
	ord := ords.Ordinal(100)
	v1vec, ok1 := m.StreamerVector(lr.ModelMF, pinned, ord)
	v2vec, ok2 := m.StreamerVector(lr.ModelMF, 0, ord)
	if !ok1 || !ok2 || slices.Equal(v1vec, v2vec) {
		t.Fatalf("streamer 100 pinned to v1 %v (%v), serving %v (%v)", v1vec, ok1, v2vec, ok2)
	}
	out, ok := make([]float32, 1), make([]bool, 1)
	m.Dots(lr.ModelMF, pinned, q, []uint32{ord}, out, ok)
	if !ok[0] || out[0] != index.Dot(q, v1vec) {
		t.Fatalf("pinned dot %v %v, want v1's %v", out[0], ok[0], index.Dot(q, v1vec))
	}

	// A third version: v1 is neither serving nor previous any more.
	v3 := seedVersion(t, db, "pin3", 600, 5, 3, nil)
	activate(t, db, v3)
	if res, err := m.Check(ctx); err != nil || res[0].Outcome != "swapped" {
		t.Fatalf("swap to v3: %+v %v", res, err)
	}
	_, err = m.Search(ctx, lr.ModelMF, pinned, q, 10, nil)
	if lr.ErrorCode(err) != lr.EUNAVAILABLE || !strings.Contains(err.Error(), fmt.Sprintf("version %d no longer serves", pinned)) {
		t.Fatalf("search pinned to a retired version: %v", err)
	}
	if _, ok := m.StreamerVector(lr.ModelMF, pinned, ord); ok {
		t.Fatal("a streamer vector of a retired version")
	}
	out[0], ok[0] = 1, true
	if m.Dots(lr.ModelMF, pinned, q, []uint32{ord}, out, ok); ok[0] || out[0] != 0 {
		t.Fatalf("dots of a retired version: %v %v", out[0], ok[0])
	}
}

// A build reads the streamer rows outside the Go heap: it holds them for
// the minutes the graph takes, and on the heap the collector would let a
// serving replica's garbage grow by as much again (256 MB at 1M streamers).
func TestBuildRowsOutsideTheHeap(t *testing.T) {
	db := pgtest.Open(t)
	mv := seedVersion(t, db, "rows", 2000, 10, 3, nil) // 2000 × 16 floats: 125 KiB
	m, _, _ := newManager(t, db, index.Config{})
	n, outside, err := m.StreamerRowsOffHeap(mv)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2000*dim || !outside {
		t.Fatalf("read %d floats (want %d), outside the heap: %v", n, 2000*dim, outside)
	}
}
