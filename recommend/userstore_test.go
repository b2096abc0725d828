package recommend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

// gatedSource is the real database behind a gate: while closed, reads of
// user rows wait (for the gate or their ctx), as a slow store would.
type gatedSource struct {
	db    *postgres.DB
	mu    sync.Mutex
	gate  chan struct{}
	calls atomic.Int64
}

func (g *gatedSource) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	g.calls.Add(1)
	g.mu.Lock()
	gate := g.gate
	g.mu.Unlock()
	select {
	case <-gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.db.UserRows(ctx, models, users, fn)
}

func (g *gatedSource) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.gate:
	default:
		close(g.gate)
	}
}

// rowRecorder is a NeuMF model that records the rows it is bound to.
type rowRecorder struct {
	mu   sync.Mutex
	rows []userstore.Row
}

func (r *rowRecorder) ForUser(u lr.UserID, row userstore.Row) recommend.UserNCF {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, row)
	return nil
}

func (r *rowRecorder) last() userstore.Row {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rows[len(r.rows)-1]
}

type recScorers struct{ ncf *rowRecorder }

func (s recScorers) Weights() rerank.Model { return rerank.DefaultWeights() }
func (s recScorers) NCF() recommend.NCF    { return s.ncf }

// The user's vectors come from PostgreSQL through the user store: a miss
// whose read is slower than the mf channel's budget serves a page from the
// channels that need no user vector (mf late); once the store answers in
// time the page has mf's candidates, the NeuMF scorer is bound to the row
// served with, and the next request is a cache hit that reads nothing.
func TestUserVectorsFromTheStoreMissThenHit(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	const dim, n = 8, 300
	rng := rand.New(rand.NewPCG(9, 9))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "us-1", Dim: dim})
	if err != nil {
		t.Fatal(err)
	}
	var streamers, users []lr.Embedding
	for i := 1; i <= n; i++ {
		streamers = append(streamers, lr.Embedding{ID: int64(i), Vec: vec()})
	}
	for u := 1; u <= 5; u++ {
		users = append(users, lr.Embedding{ID: int64(u), Vec: vec()})
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, streamers); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, users); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	ords := lr.NewOrdinals()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := index.NewManager(index.Config{Store: db, Ordinals: ords, Kinds: []lr.ModelKind{lr.ModelMF}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src := &gatedSource{db: db, gate: make(chan struct{})}
	store, err := userstore.New(userstore.Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: func() time.Time { return t0 }})
	var evs []lr.Event
	for id := 1; id <= 40; id++ {
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(100 + id), V: 1})
	}
	state.Apply(evs)
	// Two services over the same state, index and store: one whose mf
	// channel waits at most 50 ms for the user's row (the gated store never
	// answers it in time: late whatever the machine's load), one whose
	// channels all have budgets no loaded machine misses.
	ncf := &rowRecorder{}
	newSvc := func(mfBudget time.Duration) *recommend.Service {
		budgets := map[string]time.Duration{}
		for _, ch := range recall.Channels {
			budgets[ch] = 10 * time.Second
		}
		budgets[recall.ChanMF] = mfBudget
		engine := recall.New(recall.Config{Now: func() time.Time { return t0 }, Budget: 10 * time.Second, ChannelBudget: budgets, ShownDisabled: true},
			state, ords, mgr, store, nil, nil)
		engine.RefreshRankings()
		return recommend.New(recommend.Config{Recall: engine, Users: state, Streams: state, Index: mgr, UserStore: store, Ordinals: ords,
			Scorers: recScorers{ncf}, Now: func() time.Time { return t0 }})
	}
	slow, svc := newSvc(50*time.Millisecond), newSvc(10*time.Second)
	askWith := func(svc *recommend.Service, u lr.UserID) *lr.Page {
		t.Helper()
		p, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 10, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	ask := func(u lr.UserID) *lr.Page { t.Helper(); return askWith(svc, u) }
	status := func(p *lr.Page, ch string) lr.ChannelOutcome {
		for _, o := range p.Debug.Channels {
			if o.Channel == ch {
				return o
			}
		}
		return lr.ChannelOutcome{}
	}
	fromMF := func(p *lr.Page) int {
		c := 0
		for _, it := range p.Items {
			if slices.Contains(it.Channels, recall.ChanMF) {
				c++
			}
		}
		return c
	}

	// A miss the store does not answer in time: mf late, a full page from
	// the other channels, no error.
	p := askWith(slow, 1)
	if o := status(p, recall.ChanMF); o.Status != recall.StatusLate {
		t.Fatalf("slow miss: mf %+v, want late", o)
	}
	if len(p.Items) != 10 || fromMF(p) != 0 || p.Debug.UserKnown {
		t.Fatalf("slow miss: %d items, %d from mf, user known %v", len(p.Items), fromMF(p), p.Debug.UserKnown)
	}
	if row := ncf.last(); row.Known() || row.Versions.MF != mv.ID {
		t.Fatalf("slow miss: scorer bound to %+v, want the pinned version %d with no vectors", row, mv.ID)
	}

	// The store answers: a miss served with mf's candidates.
	src.open()
	p = ask(2)
	if o := status(p, recall.ChanMF); o.Status != recall.StatusOK || fromMF(p) == 0 || !p.Debug.UserKnown {
		t.Fatalf("miss: mf %+v, %d items from mf, user known %v", o, fromMF(p), p.Debug.UserKnown)
	}
	if row := ncf.last(); !slices.Equal(row.MF, users[1].Vec) || row.Versions.MF != mv.ID {
		t.Fatalf("miss: scorer bound to %+v, want user 2's stored vector of version %d", row, mv.ID)
	}
	if _, ok := store.Cached(2, userstore.Versions{MF: mv.ID}); !ok {
		t.Fatal("user 2 not cached after the miss")
	}

	// A hit: the same answer, nothing read from the store.
	calls := src.calls.Load()
	again := ask(2)
	if src.calls.Load() != calls {
		t.Fatalf("a cache hit read the store (%d reads, %d before)", src.calls.Load(), calls)
	}
	if o := status(again, recall.ChanMF); o.Status != recall.StatusOK || fromMF(again) != fromMF(p) {
		t.Fatalf("hit: mf %+v, %d items from mf, %d on the miss", o, fromMF(again), fromMF(p))
	}

	// Neighbour queries read the user's vector from the store too; an
	// unknown user is not found.
	ns, err := svc.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 3, K: 5})
	if err != nil || len(ns.Neighbors) != 5 {
		t.Fatalf("neighbours of user 3: %+v %v", ns, err)
	}
	if _, err := svc.Neighbors(ctx, lr.NeighborsRequest{Model: lr.ModelMF, User: 99, K: 5}); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("neighbours of an unknown user: %v, want not found", err)
	}
}

// onceSource is the database, telling (called) when the first read of user
// rows begins.
type onceSource struct {
	db     *postgres.DB
	once   sync.Once
	called chan struct{}
}

func (s *onceSource) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	s.once.Do(func() { close(s.called) })
	return s.db.UserRows(ctx, models, users, fn)
}

// awaitLoader is a live.Loader whose load of a user ends, with rec, only
// once called is closed (or its deadline passes).
type awaitLoader struct {
	called chan struct{}
	rec    live.UserRecord
}

func (l awaitLoader) LoadUser(ctx context.Context, u lr.UserID, since time.Time, n int) (live.UserRecord, error) {
	select {
	case <-l.called:
		return l.rec, nil
	case <-ctx.Done():
		return live.UserRecord{}, ctx.Err()
	}
}

// searchSignal is an index telling (searched) when a search has answered.
type searchSignal struct {
	recall.Index
	once     sync.Once
	searched chan struct{}
}

func (s *searchSignal) Search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
	hits, err := s.Index.Search(ctx, kind, model, q, k, allowed)
	s.once.Do(func() { close(s.searched) })
	return hits, err
}

// A user new to the replica needs two reads: their live state (the load
// Begin starts) and their vectors (recall). The vectors' read starts
// before the load, so the two overlap: here the load ends only once the
// vectors' read has begun, which it does within the load's wait, and the
// request is served with both.
func TestUserVectorReadOverlapsTheUserLoad(t *testing.T) {
	testUserLoadOverlap(t, false)
}

// And the request does not wait for the load before its mf channel runs:
// only what reads the user's history and follows (the session and follow
// channels, the merge, rerank) waits for it. Here the load ends only once
// the mf channel's search has answered, within the load's wait, and the
// page has the loaded follow (the follow channel waited for it).
func TestRecallRunsWhileTheUserLoads(t *testing.T) {
	testUserLoadOverlap(t, true)
}

func testUserLoadOverlap(t *testing.T, gateOnSearch bool) {
	ctx := context.Background()
	db := pgtest.Open(t)
	const dim, n = 8, 100
	rng := rand.New(rand.NewPCG(3, 3))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "ov-1", Dim: dim})
	if err != nil {
		t.Fatal(err)
	}
	var streamers []lr.Embedding
	for i := 1; i <= n; i++ {
		streamers = append(streamers, lr.Embedding{ID: int64(i), Vec: vec()})
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, streamers); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, []lr.Embedding{{ID: 1, Vec: vec()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	ords := lr.NewOrdinals()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := index.NewManager(index.Config{Store: db, Ordinals: ords, Kinds: []lr.ModelKind{lr.ModelMF}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	src := &onceSource{db: db, called: make(chan struct{})}
	store, err := userstore.New(userstore.Config{Source: src})
	if err != nil {
		t.Fatal(err)
	}
	const wait = 5 * time.Second // the load's wait: without the overlap it runs out
	reg := prometheus.NewRegistry()
	var idx recall.Index = mgr
	loader := awaitLoader{called: src.called}
	const followed = 7
	if gateOnSearch {
		sig := &searchSignal{Index: mgr, searched: make(chan struct{})}
		idx = sig
		loader = awaitLoader{called: sig.searched, rec: live.UserRecord{Follows: []live.Follow{{StreamerID: followed, Active: true, At: t0.Add(-time.Hour)}}}}
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: func() time.Time { return t0 },
		Loader: loader, LoadWait: wait, LoadTimeout: wait, Registerer: reg})
	var evs []lr.Event
	for id := 1; id <= 20; id++ {
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(100 + id), V: 1})
	}
	state.Apply(evs)
	budgets := map[string]time.Duration{}
	for _, ch := range recall.Channels {
		budgets[ch] = 10 * time.Second
	}
	engine := recall.New(recall.Config{Now: func() time.Time { return t0 }, Budget: 10 * time.Second, ChannelBudget: budgets, ShownDisabled: true},
		state, ords, idx, store, nil, nil)
	engine.RefreshRankings()
	svc := recommend.New(recommend.Config{Recall: engine, Users: state, Streams: state, Index: mgr, UserStore: store, Ordinals: ords,
		Scorers: recScorers{&rowRecorder{}}, Now: func() time.Time { return t0 }})

	start := time.Now()
	p, err := svc.Recommend(ctx, lr.RecommendRequest{User: 1, K: 5, Debug: true})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	ok, late := 0.0, 0.0
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "liverecall_live_user_loads_total" {
			for _, m := range f.GetMetric() {
				switch m.GetLabel()[0].GetValue() {
				case "ok":
					ok = m.GetCounter().GetValue()
				case "late":
					late = m.GetCounter().GetValue()
				}
			}
		}
	}
	if ok != 1 || late != 0 || took >= wait {
		t.Fatalf("the user's load: %v ok, %v late, the request took %v (the load's wait %v): the load waited for what it gates (the vectors' read; with gateOnSearch=%v, the mf search)", ok, late, took, wait, gateOnSearch)
	}
	if !p.Debug.UserKnown {
		t.Fatal("the page was served without the user's vectors")
	}
	if gateOnSearch {
		for _, o := range p.Debug.Channels {
			if o.Channel == recall.ChanFollow && (o.Status != recall.StatusOK || o.Candidates != 1) {
				t.Fatalf("follow channel: %+v; want ok with the one followed streamer the load brought", o)
			}
		}
		if !slices.Contains(state.Follows(1), followed) {
			t.Fatalf("follows of the user after the request: %v", state.Follows(1))
		}
	}
}
