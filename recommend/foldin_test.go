package recommend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/foldin"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/userstore"
)

// TestFoldInInProcess composes fold-in the way an in-process benchmark
// does (cmd/bench-quality: an index.Manager and a userstore.Store over
// memory, a live.State fed events synchronously, a replay clock), with one
// service reading users' vectors through the folder's overlay and one
// without: no worker runs, Flush folds in every user whose watch events
// were applied, so the answer is deterministic. A user the version does
// not know has no MF channel until their watches are folded in, and then
// only in the service with fold-in.
func TestFoldInInProcess(t *testing.T) {
	const n, dim = 200, 8
	rng := rand.New(rand.NewPCG(8, 8))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	store := &memStore{dim: dim}
	for i := 1; i <= n; i++ {
		store.streamers = append(store.streamers, lr.Embedding{ID: int64(i), Vec: vec()})
	}
	store.users = append(store.users, lr.Embedding{ID: 1, Vec: vec()})
	ords := lr.NewOrdinals()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := index.NewManager(index.Config{Store: store, Ordinals: ords, Kinds: []lr.ModelKind{lr.ModelMF}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	users, err := userstore.New(userstore.Config{Source: store})
	if err != nil {
		t.Fatal(err)
	}
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }

	// The folder reads the state's history and the state tells the folder
	// whose history changed: the hook closes over the folder made next.
	var folder *foldin.Folder
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: now,
		OnWatch: func(us []lr.UserID) { folder.Schedule(us) }})
	folder = foldin.New(foldin.Config{Index: mgr, History: state, Nightly: users, Ordinals: ords, Clock: now})

	mk := func(u recall.UserVectors, folded recommend.FoldedVectors) *recommend.Service {
		e := recall.New(recall.Config{Budget: time.Minute, ShownDisabled: true, Now: now}, state, ords, mgr, u, nil, nil)
		return recommend.New(recommend.Config{Recall: e, Users: state, Streams: state, Index: mgr, UserStore: users, Ordinals: ords, Folded: folded, Now: now})
	}
	with, without := mk(folder.Overlay(users), folder), mk(users, nil)

	var evs []lr.Event
	seq := 0
	ev := func(typ lr.EventType, s, u int64, at time.Duration) {
		seq++
		evs = append(evs, lr.Event{ID: fmt.Sprint("e", seq), Type: typ, TS: t0.Add(at), StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(1000 + s), UserID: lr.UserID(u), V: 1})
	}
	for s := int64(1); s <= n; s++ {
		ev(lr.EventStreamStarted, s, 0, -time.Hour)
	}
	state.Apply(evs)
	evs = evs[:0]
	mfStatus := func(svc *recommend.Service, u lr.UserID) string {
		t.Helper()
		page, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 10, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Debug.Channels {
			if c.Channel == recall.ChanMF {
				return c.Status
			}
		}
		return ""
	}
	if a, b := mfStatus(with, 77), mfStatus(without, 77); a != recall.StatusSkipped || b != recall.StatusSkipped {
		t.Fatalf("user 77 before watching: MF channel %s with fold-in, %s without; want skipped", a, b)
	}
	ev(lr.EventViewerJoined, 5, 77, -50*time.Minute)
	ev(lr.EventViewerLeft, 5, 77, -30*time.Minute)
	ev(lr.EventViewerJoined, 9, 77, -20*time.Minute)
	state.Apply(evs)
	if folder.Pending() != 1 {
		t.Fatalf("%d users pending, want 1", folder.Pending())
	}
	if got := mfStatus(with, 77); got != recall.StatusSkipped {
		t.Fatalf("before Flush: MF channel %s; nothing folds without the worker or Flush", got)
	}
	if err := folder.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := mfStatus(with, 77), mfStatus(without, 77); a != recall.StatusOK || b != recall.StatusSkipped {
		t.Fatalf("user 77 after Flush: MF channel %s with fold-in, %s without; want ok and skipped", a, b)
	}
	fv, ok := folder.Lookup(77, mgr.Model(lr.ModelMF).ID)
	if !ok || fv.Watches != 2 || fv.Streams != 2 {
		t.Fatalf("folded vector %+v %v", fv, ok)
	}
	// FoldNow: one user, synchronously.
	if out, v := folder.FoldNow(ctx, 77); out != foldin.OutcomeDone || v == nil {
		t.Fatalf("FoldNow: %s %v", out, v)
	}
	if out, _ := folder.FoldNow(ctx, 1); out != foldin.OutcomeEmpty {
		t.Fatalf("FoldNow of a user without watches: %s, want empty", out)
	}
}
