package foldin_test

import (
	"context"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/foldin"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/userstore"
)

// world is an MF version of clustered streamers served by a fake index,
// users' nightly vectors served by a fake user store, and a real live
// state whose watch events schedule fold-ins.
type world struct {
	t        *testing.T
	ords     *lr.Ordinals
	mu       sync.Mutex
	mv       lr.ModelVersion
	vecs     map[lr.StreamerID][]float32 // of mv
	bad      map[lr.StreamerID]bool      // StreamerVector gives NaN (a corrupt row)
	nightly  map[lr.UserID][]float32     // of mv
	state    *live.State
	folder   *foldin.Folder
	reg      *prometheus.Registry
	clock    atomic.Int64
	n        int
	fetches  atomic.Int64
	clusters int
	per      int
}

const dim = 8

func newWorld(t *testing.T, cfg foldin.Config) *world {
	w := &world{t: t, ords: lr.NewOrdinals(), reg: prometheus.NewRegistry(), clusters: 3, per: 12, bad: map[lr.StreamerID]bool{}}
	w.clock.Store(time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC).UnixNano())
	w.setModel(1, 7, `{"trainer":"implicit-als","reg":5,"alpha":4,"eps":1}`)
	cfg.Index, cfg.History, cfg.Nightly, cfg.Ordinals = w, nil, w, w.ords
	cfg.Clock = w.now
	cfg.Registerer = w.reg
	var f *foldin.Folder
	w.state = live.New(live.Config{Ordinals: w.ords, Clock: w.now, OnWatch: func(us []lr.UserID) { f.Schedule(us) }})
	cfg.History = w.state
	f = foldin.New(cfg)
	w.folder = f
	// Everyone is live: streams start now.
	var evs []lr.Event
	for id := range w.vecs {
		evs = append(evs, w.event(lr.EventStreamStarted, 0, id, 0))
	}
	w.state.Apply(evs)
	return w
}

func (w *world) now() time.Time { return time.Unix(0, w.clock.Load()).UTC() }

// setModel makes a new serving version: clustered streamer vectors (seeded)
// and a nightly vector for users 1..5 near cluster 0.
func (w *world) setModel(id int64, seed uint64, params string) {
	rng := rand.New(rand.NewPCG(seed, 1))
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mv = lr.ModelVersion{ID: id, Kind: lr.ModelMF, Version: fmt.Sprint("mf-", id), Dim: dim, Params: []byte(params)}
	w.vecs, w.nightly = map[lr.StreamerID][]float32{}, map[lr.UserID][]float32{}
	centers := make([][]float32, w.clusters)
	for c := range centers {
		centers[c] = make([]float32, dim)
		for a := range centers[c] {
			centers[c][a] = float32(rng.NormFloat64())
		}
	}
	for c := 0; c < w.clusters; c++ {
		for j := 0; j < w.per; j++ {
			v := make([]float32, dim)
			for a := range v {
				v[a] = centers[c][a] + float32(rng.NormFloat64()*0.2)
			}
			w.vecs[streamer(c, j)] = v
			w.ords.Ordinal(streamer(c, j))
		}
	}
	for u := lr.UserID(1); u <= 5; u++ {
		v := make([]float32, dim)
		for a := range v {
			v[a] = 0.3*centers[0][a] + float32(rng.NormFloat64()*0.05)
		}
		w.nightly[u] = v
	}
}

// streamer is the id of cluster c's j-th streamer.
func streamer(c, j int) lr.StreamerID { return lr.StreamerID(100*(c+1) + j) }

func (w *world) event(typ lr.EventType, u lr.UserID, s lr.StreamerID, at time.Duration) lr.Event {
	w.n++
	return lr.Event{ID: fmt.Sprint("ev", w.n), Type: typ, TS: w.now().Add(at), StreamerID: s, StreamID: lr.StreamID(s) * 10, UserID: u, V: 1}
}

// watch applies u's watch of s for secs seconds ending now (the clock moves
// on by secs).
func (w *world) watch(u lr.UserID, s lr.StreamerID, secs int) {
	w.state.Apply([]lr.Event{w.event(lr.EventViewerJoined, u, s, time.Second)})
	w.clock.Add(int64(time.Duration(secs+1) * time.Second))
	w.state.Apply([]lr.Event{w.event(lr.EventViewerLeft, u, s, 0)})
}

// Model, StreamerVector, StreamerVectors: foldin.Index.
func (w *world) Model(kind lr.ModelKind) lr.ModelVersion {
	w.mu.Lock()
	defer w.mu.Unlock()
	if kind != lr.ModelMF {
		return lr.ModelVersion{}
	}
	return w.mv
}

func (w *world) StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	id, ok := w.ords.ID(ord)
	if !ok || model != w.mv.ID {
		return nil, false
	}
	if w.bad[id] {
		v := slices.Clone(w.vecs[id])
		v[0] = float32(math.NaN())
		return v, true
	}
	v, ok := w.vecs[id]
	return v, ok
}

func (w *world) StreamerVectors(kind lr.ModelKind, model int64) (lr.ModelVersion, iter.Seq[[]float32], error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if model != w.mv.ID {
		return lr.ModelVersion{}, nil, lr.Errorf(lr.EUNAVAILABLE, "version %d no longer serves", model)
	}
	vecs := slices.Collect(func(yield func([]float32) bool) {
		for _, v := range w.vecs {
			if !yield(v) {
				return
			}
		}
	})
	return w.mv, slices.Values(vecs), nil
}

// Fetch and Cached: the user store (foldin.Nightly, foldin.UserVectors).
func (w *world) Fetch(_ context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error) {
	w.fetches.Add(1)
	row, _ := w.Cached(u, v)
	return row, nil
}

func (w *world) Cached(u lr.UserID, v userstore.Versions) (userstore.Row, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	row := userstore.Row{Versions: v}
	if v.MF == w.mv.ID {
		row.MF = w.nightly[u]
	}
	return row, true
}

// UserRows makes the nightly vectors a userstore.Source.
func (w *world) UserRows(_ context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range models {
		if m != w.mv.ID {
			continue
		}
		for _, u := range users {
			if v, ok := w.nightly[lr.UserID(u)]; ok {
				if err := fn(m, u, slices.Clone(v), nil); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Over a user store that looks rows up without waiting, the overlay does
// too, and applies the folded vector to a row that was still being read.
func TestOverlayLooksUpWithoutWaiting(t *testing.T) {
	w := newWorld(t, foldin.Config{})
	store, err := userstore.New(userstore.Config{Source: w})
	if err != nil {
		t.Fatal(err)
	}
	users, ok := w.folder.Overlay(store).(interface {
		Lookup(lr.UserID, userstore.Versions) (userstore.Row, *userstore.Pending)
	})
	if !ok {
		t.Fatal("the overlay of a userstore.Store has no Lookup")
	}
	w.watch(1, streamer(2, 1), 1200)
	w.watch(1, streamer(2, 4), 900)
	if err := w.folder.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	fv, ok := w.folder.Lookup(1, 1)
	if !ok {
		t.Fatal("user 1 not folded")
	}
	vers := userstore.Versions{MF: 1}
	for _, u := range []lr.UserID{1, 3} {
		want := w.nightly[u]
		if u == 1 {
			want = fv.Vec
		}
		row, p := users.Lookup(u, vers)
		if p == nil {
			t.Fatalf("user %d: first Lookup hit an empty cache", u)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		select {
		case <-p.Done():
		case <-ctx.Done():
			t.Fatalf("user %d: the read did not end", u)
		}
		cancel()
		if row, err = p.Row(); err != nil || !slices.Equal(row.MF, want) {
			t.Fatalf("user %d after the read: %v, %v; want %v", u, row.MF, err, want)
		}
		if row, p = users.Lookup(u, vers); p != nil || !slices.Equal(row.MF, want) {
			t.Fatalf("user %d cached: %v, %v; want %v", u, row.MF, p, want)
		}
	}
}

// top returns the cluster most of the 5 streamers scoring highest with x
// belong to.
func (w *world) topCluster(x []float32) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	type sc struct {
		id lr.StreamerID
		s  float32
	}
	var all []sc
	for id, v := range w.vecs {
		var d float32
		for a := range v {
			d += v[a] * x[a]
		}
		all = append(all, sc{id, d})
	}
	slices.SortFunc(all, func(a, b sc) int {
		if a.s != b.s {
			if a.s > b.s {
				return -1
			}
			return 1
		}
		return int(a.id - b.id)
	})
	votes := make([]int, w.clusters)
	for _, s := range all[:5] {
		votes[int(s.id)/100-1]++
	}
	best := 0
	for c, v := range votes {
		if v > votes[best] {
			best = c
		}
	}
	return best
}

func (w *world) count(metric string, labels ...string) float64 {
	w.t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		w.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// TestSessionMovesTheMFVector: a user whose nightly vector points at
// cluster 0 watches three streamers of cluster 2; after the fold-in the
// vector the MF channel reads (the overlay over the user store) points at
// cluster 2, the debug lookup says from how many watches, and a user the
// version does not know gets a vector of their own pointing at what they
// watched. Without the watches, the nightly vector serves.
func TestSessionMovesTheMFVector(t *testing.T) {
	w := newWorld(t, foldin.Config{})
	ctx := context.Background()
	users := w.folder.Overlay(w)
	vers := userstore.Versions{MF: 1}
	if row, _ := users.Cached(1, vers); w.topCluster(row.MF) != 0 {
		t.Fatalf("nightly vector of user 1 does not point at cluster 0")
	}
	w.watch(1, streamer(2, 1), 1200)
	w.watch(1, streamer(2, 4), 900)
	w.watch(1, streamer(2, 4), 300)
	w.watch(1, streamer(2, 9), 1800)
	w.watch(42, streamer(1, 3), 600) // unknown to the version
	w.watch(42, streamer(1, 5), 600)
	if got := w.folder.Pending(); got != 2 {
		t.Fatalf("%d users pending, want 2 (one per user, events debounced)", got)
	}
	if err := w.folder.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fv, ok := w.folder.Lookup(1, 1)
	if !ok || fv.Streams != 3 || fv.Watches != 4 || fv.Model != 1 || !fv.At.Equal(w.now()) {
		t.Fatalf("folded vector of user 1: %+v, %v; want from 3 streamers, 4 watches, version 1, folded now", fv, ok)
	}
	row, _ := users.Cached(1, vers)
	if !slices.Equal(row.MF, fv.Vec) || w.topCluster(row.MF) != 2 {
		t.Fatalf("the overlay serves %v (cluster %d), want the folded vector pointing at cluster 2", row.MF, w.topCluster(row.MF))
	}
	if got, _ := w.Cached(1, vers); slices.Equal(got.MF, fv.Vec) {
		t.Fatal("the user store's row was modified")
	}
	row, err := users.Fetch(ctx, 42, vers)
	if err != nil || row.MF == nil || !row.Known() || w.topCluster(row.MF) != 1 {
		t.Fatalf("unknown user 42: row %+v, %v; want a vector pointing at cluster 1", row, err)
	}
	if row, _ := users.Cached(3, vers); !slices.Equal(row.MF, w.nightly[3]) {
		t.Fatal("a user without watches does not get the nightly vector")
	}
	if got := w.count("liverecall_foldin_total", "outcome", "done"); got != 2 {
		t.Errorf("done: %v, want 2", got)
	}
	// The window passes: the known user's folded vector expires and the
	// nightly serves; the unknown user's, with no nightly vector behind
	// it, serves until the new-user window passes.
	w.clock.Add(int64(foldin.DefaultWindow))
	if row, _ := users.Cached(1, vers); !slices.Equal(row.MF, w.nightly[1]) {
		t.Fatal("after the window the folded vector still serves")
	}
	if got, ok := w.folder.Lookup(42, 1); !ok || !slices.Equal(got.Vec, row.MF) {
		t.Fatal("after the window the unknown user's folded vector no longer serves")
	}
	w.clock.Add(int64(foldin.DefaultNewUserWindow - foldin.DefaultWindow))
	if _, ok := w.folder.Lookup(42, 1); ok {
		t.Fatal("after the new-user window the unknown user's folded vector still serves")
	}
}

// TestNewUserFoldsInEarlierVisits: a user the version does not know, back
// after more than the window, has the watches of their earlier visit
// folded in (no nightly vector has them); a user it knows has only the
// window's (the nightly vector stands for the rest).
func TestNewUserFoldsInEarlierVisits(t *testing.T) {
	w := newWorld(t, foldin.Config{})
	ctx := context.Background()
	w.watch(42, streamer(1, 3), 600) // unknown to the version
	w.watch(42, streamer(1, 5), 600)
	w.watch(1, streamer(2, 1), 600)
	w.clock.Add(int64(foldin.DefaultWindow + time.Hour))
	w.watch(42, streamer(1, 7), 300)
	out, fv := w.folder.FoldNow(ctx, 42)
	if out != foldin.OutcomeDone || fv == nil || fv.Watches != 3 || fv.Streams != 3 || w.topCluster(fv.Vec) != 1 {
		t.Fatalf("unknown user back after %v: %s %+v; want a vector folded in from all 3 watches, pointing at cluster 1", foldin.DefaultWindow+time.Hour, out, fv)
	}
	if out, fv := w.folder.FoldNow(ctx, 1); out != foldin.OutcomeEmpty || fv != nil {
		t.Fatalf("known user with no watch in the window: %s %+v; want empty (the nightly vector serves)", out, fv)
	}
	// Beyond the new-user window, the earlier visit no longer counts.
	w.clock.Add(int64(foldin.DefaultNewUserWindow - time.Hour))
	if out, fv := w.folder.FoldNow(ctx, 42); out != foldin.OutcomeDone || fv == nil || fv.Watches != 1 {
		t.Fatalf("a day after the first visit: %s %+v; want a vector from the last watch only", out, fv)
	}
}

// TestNewUserWindowIsNeverShorterThanWindow: a new-user window configured
// below the window is the window.
func TestNewUserWindowIsNeverShorterThanWindow(t *testing.T) {
	w := newWorld(t, foldin.Config{Window: 2 * time.Hour, NewUserWindow: time.Hour})
	w.watch(42, streamer(1, 3), 600)
	w.clock.Add(int64(90 * time.Minute))
	if out, _ := w.folder.FoldNow(context.Background(), 42); out != foldin.OutcomeDone {
		t.Fatalf("unknown user 90 minutes after a watch, window 2 h, new-user window 1 h: %s, want done", out)
	}
}

// TestFoldInFailureKeepsNightly: a solve that cannot succeed — a watched
// streamer's row holds NaN, or the version's stored λ is 0 and the system
// is singular — keeps (or goes back to) the nightly vector and is counted.
func TestFoldInFailureKeepsNightly(t *testing.T) {
	w := newWorld(t, foldin.Config{})
	ctx := context.Background()
	users := w.folder.Overlay(w)
	w.watch(1, streamer(2, 1), 600)
	if out, fv := w.folder.FoldNow(ctx, 1); out != foldin.OutcomeDone || fv == nil {
		t.Fatalf("first fold-in: %s %v", out, fv)
	}
	w.mu.Lock()
	w.bad[streamer(2, 2)] = true
	w.mu.Unlock()
	w.watch(1, streamer(2, 2), 600)
	if out, fv := w.folder.FoldNow(ctx, 1); out != foldin.OutcomeFailed || fv != nil {
		t.Fatalf("fold-in over a NaN row: %s %v, want failed and no vector", out, fv)
	}
	if row, _ := users.Cached(1, userstore.Versions{MF: 1}); !slices.Equal(row.MF, w.nightly[1]) {
		t.Fatal("after a failed fold-in the nightly vector does not serve")
	}
	// A version trained with λ = 0 over fewer streamers than dimensions:
	// YᵀY + Σ(c−1)yyᵀ is singular for a user with no prior.
	w.mu.Lock()
	w.mv = lr.ModelVersion{ID: 2, Kind: lr.ModelMF, Version: "mf-2", Dim: dim, Params: []byte(`{"reg":0}`)}
	small := map[lr.StreamerID][]float32{}
	for _, id := range []lr.StreamerID{streamer(0, 0), streamer(0, 1), streamer(2, 1)} {
		small[id] = w.vecs[id]
	}
	w.vecs, w.bad = small, map[lr.StreamerID]bool{}
	w.mu.Unlock()
	w.watch(77, streamer(0, 1), 300)
	if out, fv := w.folder.FoldNow(ctx, 77); out != foldin.OutcomeFailed || fv != nil {
		t.Fatalf("singular fold-in: %s %v, want failed and no vector", out, fv)
	}
	if row, _ := users.Cached(77, userstore.Versions{MF: 2}); row.MF != nil {
		t.Fatal("a failed fold-in of an unknown user served a vector")
	}
	if got := w.count("liverecall_foldin_total", "outcome", "failed"); got != 2 {
		t.Errorf("failed fold-ins counted: %v, want 2", got)
	}
}

// TestDebounceAndRateCap: a user's events within the debounce are folded
// once, not before the debounce has passed; over the per-second cap a
// fold-in is skipped, counted, and the user's next event schedules it
// again.
func TestDebounceAndRateCap(t *testing.T) {
	const debounce = 400 * time.Millisecond
	w := newWorld(t, foldin.Config{Debounce: debounce, Rate: 0.001}) // a bucket of one token, refilled every 1000 s
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.folder.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	start := time.Now()
	for i := range 5 {
		w.watch(1, streamer(1, i), 60) // 10 events of user 1
	}
	waitFor(t, "the first fold-in", func() bool { return w.count("liverecall_foldin_total", "outcome", "done") == 1 })
	if el := time.Since(start); el < debounce {
		t.Fatalf("folded after %v, before the debounce of %v", el, debounce)
	}
	if got := w.count("liverecall_foldin_coalesced_total"); got != 9 {
		t.Errorf("coalesced events: %v, want 9", got)
	}
	if fv, ok := w.folder.Lookup(1, 1); !ok || fv.Watches != 5 {
		t.Fatalf("folded vector %+v, %v; want one from all 5 watches", fv, ok)
	}
	// The bucket is empty: the next two users are skipped.
	w.watch(2, streamer(1, 1), 60)
	w.watch(3, streamer(1, 2), 60)
	waitFor(t, "two fold-ins skipped by the cap", func() bool { return w.count("liverecall_foldin_skipped_total", "reason", "rate") == 2 })
	if _, ok := w.folder.Lookup(2, 1); ok {
		t.Fatal("a skipped fold-in served a vector")
	}
	if w.count("liverecall_foldin_total", "outcome", "done") != 1 {
		t.Fatal("a fold-in over the cap was done")
	}
	w.watch(2, streamer(1, 3), 60)
	if w.folder.Pending() != 1 {
		t.Fatal("the skipped user's next event did not schedule a fold-in")
	}
}

// TestVersionSwapDropsFoldedVectors: folded vectors are of one MF
// version: a request pinned to the new version never gets one folded
// under the old, and the first fold-in under the new one drops them all.
func TestVersionSwapDropsFoldedVectors(t *testing.T) {
	w := newWorld(t, foldin.Config{})
	ctx := context.Background()
	users := w.folder.Overlay(w)
	w.watch(1, streamer(2, 1), 600)
	w.watch(2, streamer(2, 1), 600)
	if err := w.folder.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if w.folder.Len() != 2 {
		t.Fatalf("%d folded vectors, want 2", w.folder.Len())
	}
	old, _ := w.folder.Lookup(1, 1)
	w.setModel(2, 99, `{}`)
	if _, ok := w.folder.Lookup(1, 2); ok {
		t.Fatal("a vector folded under version 1 served version 2")
	}
	if row, _ := users.Cached(1, userstore.Versions{MF: 2}); !slices.Equal(row.MF, w.nightly[1]) || slices.Equal(row.MF, old.Vec) {
		t.Fatal("the overlay did not serve version 2's nightly vector")
	}
	w.watch(2, streamer(0, 1), 600)
	if err := w.folder.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := w.folder.Lookup(1, 1); ok || w.folder.Len() != 1 {
		t.Fatalf("after a fold-in under version 2: %d vectors held, user 1's of version 1 still there: %v", w.folder.Len(), ok)
	}
	if fv, ok := w.folder.Lookup(2, 2); !ok || fv.Model != 2 {
		t.Fatalf("user 2 under version 2: %+v %v", fv, ok)
	}
}

// TestMaxUsersBoundsTheVectors: at most MaxUsers folded vectors are held,
// the least recently folded going first.
func TestMaxUsersBoundsTheVectors(t *testing.T) {
	w := newWorld(t, foldin.Config{MaxUsers: 3})
	ctx := context.Background()
	for u := lr.UserID(1); u <= 5; u++ {
		w.watch(u, streamer(1, int(u)), 60)
		if out, _ := w.folder.FoldNow(ctx, u); out != foldin.OutcomeDone {
			t.Fatalf("user %d: %s", u, out)
		}
	}
	if w.folder.Len() != 3 {
		t.Fatalf("%d vectors held, want 3", w.folder.Len())
	}
	for u := lr.UserID(1); u <= 5; u++ {
		if _, ok := w.folder.Lookup(u, 1); ok != (u >= 3) {
			t.Errorf("user %d held: %v", u, ok)
		}
	}
	if got := w.count("liverecall_foldin_vectors"); got != 3 {
		t.Errorf("vectors gauge %v", got)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
