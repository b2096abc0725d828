package recommend_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/userstore"
)

// An arm pinning an MF version other than the active one serves its
// users with that version's user and streamer vectors — from
// PostgreSQL through the user store and the real index — never a mix:
// the mf channel's candidates are the pinned version's exact nearest,
// and every item's mf_score is the dot product of the user's and the
// streamer's vectors of the pinned version. The control arm's users get
// the active version's. The pinned version serves through the index
// manager itself (Manager.Serve loads it beside the active one, and
// Manager.ModelByVersion, the service's default ArmIndex, resolves it);
// once Serve drops it, its users fall back to the active one.
func TestArmPinsAnotherMFVersion(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	const dim, nStreamers, nUsers = 8, 300, 400
	rng := rand.New(rand.NewPCG(18, 18))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	type version struct {
		mv        lr.ModelVersion
		streamers map[int64][]float32
		users     map[int64][]float32
	}
	newVersion := func(label string) *version {
		mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: label, Dim: dim})
		if err != nil {
			t.Fatal(err)
		}
		v := &version{mv: mv, streamers: map[int64][]float32{}, users: map[int64][]float32{}}
		var ss, us []lr.Embedding
		for i := int64(1); i <= nStreamers; i++ {
			v.streamers[i] = vec()
			ss = append(ss, lr.Embedding{ID: i, Vec: v.streamers[i]})
		}
		for u := int64(1); u <= nUsers; u++ {
			v.users[u] = vec()
			us = append(us, lr.Embedding{ID: u, Vec: v.users[u]})
		}
		if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, ss); err != nil {
			t.Fatal(err)
		}
		if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, us); err != nil {
			t.Fatal(err)
		}
		return v
	}
	a, b := newVersion("mf-a"), newVersion("mf-b")
	ords := lr.NewOrdinals()
	mgr, err := index.NewManager(index.Config{Store: db, Ordinals: ords, Kinds: []lr.ModelKind{lr.ModelMF}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	// mf-b is active; mf-a serves only because an experiment wants it.
	if _, err := db.ActivateModel(ctx, b.mv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := mgr.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {"mf-a"}}); err != nil {
		t.Fatal(err)
	}
	if mgr.Version(lr.ModelMF) != "mf-b" {
		t.Fatalf("serving %s, want mf-b", mgr.Version(lr.ModelMF))
	}
	if mv, ok := mgr.ModelByVersion(lr.ModelMF, "mf-a"); !ok || mv.ID != a.mv.ID {
		t.Fatalf("mf-a: %+v %v, want it served", mv, ok)
	}
	store, err := userstore.New(userstore.Config{Source: db})
	if err != nil {
		t.Fatal(err)
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: func() time.Time { return t0 }})
	var evs []lr.Event
	for id := 1; id <= nStreamers; id++ {
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", id), Type: lr.EventStreamStarted, TS: t0.Add(-time.Hour), StreamerID: lr.StreamerID(id),
			StreamID: lr.StreamID(1000 + id), V: 1})
	}
	state.Apply(evs)
	budgets := map[string]time.Duration{}
	for _, ch := range recall.Channels {
		budgets[ch] = 10 * time.Second
	}
	engine := recall.New(recall.Config{Now: func() time.Time { return t0 }, Budget: 10 * time.Second, ChannelBudget: budgets, ShownDisabled: true},
		state, ords, mgr, store, nil, nil)
	engine.RefreshRankings()
	e := abExperiment("mfpin", lr.ArmConfig{MFVersion: "mf-a"})
	set := recommend.NewExperimentSet()
	if err := set.Set([]lr.Experiment{e}); err != nil {
		t.Fatal(err)
	}
	// No Config.Arms: the Index (the manager) resolves the arms' versions.
	svc := recommend.New(recommend.Config{Recall: engine, Users: state, Streams: state, Index: mgr, UserStore: store, Ordinals: ords,
		Now: func() time.Time { return t0 }, Experiments: set})

	var treated, control lr.UserID
	for u := lr.UserID(1); u <= nUsers && (treated == 0 || control == 0); u++ {
		switch experiment.ArmOf(&e, u) {
		case 1:
			treated = cmp(treated, u)
		case 0:
			control = cmp(control, u)
		}
	}
	check := func(u lr.UserID, v *version, arm string) {
		t.Helper()
		page, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: 20, Debug: true})
		if err != nil {
			t.Fatal(err)
		}
		if page.ModelVersions["mf"] != v.mv.Version {
			t.Fatalf("user %d (%s): served %v, want %s", u, arm, page.ModelVersions, v.mv.Version)
		}
		if arm != "" && (len(page.Assignments) != 1 || page.Assignments[0].Arm != arm) {
			t.Fatalf("user %d: assignments %+v, want %s", u, page.Assignments, arm)
		}
		if arm == "" && (len(page.Assignments) != 0 || len(page.Debug.Experiments) != 1 || page.Debug.Experiments[0].Fallback == "") {
			t.Fatalf("user %d: assignments %+v, debug %+v; want a fallback", u, page.Assignments, page.Debug.Experiments)
		}
		// The pinned version's exact nearest live streamers to the
		// pinned version's user vector.
		near, err := mgr.SearchPrecise(ctx, lr.ModelMF, v.mv.ID, v.users[int64(u)], 40, state.Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		var want []lr.StreamerID
		for _, h := range near {
			id, _ := ords.ID(h.Ord)
			want = append(want, id)
		}
		fromMF := 0
		for _, it := range page.Items {
			if slices.Contains(it.Channels, recall.ChanMF) {
				fromMF++
				if !slices.Contains(want, it.StreamerID) {
					t.Fatalf("user %d: item %d came from mf but is not among %s's 40 nearest %v", u, it.StreamerID, v.mv.Version, want)
				}
			}
			dot := 0.0
			uv, sv := v.users[int64(u)], v.streamers[int64(it.StreamerID)]
			for i := range uv {
				dot += float64(uv[i]) * float64(sv[i])
			}
			if got := it.Debug.Features["mf_score"]; math.Abs(got-dot) > 1e-4*(1+math.Abs(dot)) {
				t.Fatalf("user %d: item %d's mf_score %v, want %v (the dot product under %s)", u, it.StreamerID, got, dot, v.mv.Version)
			}
		}
		if fromMF == 0 {
			t.Fatalf("user %d: no item from mf (outcomes %+v)", u, page.Debug.Channels)
		}
	}
	check(treated, a, "treatment")
	check(control, b, "control")
	check(treated, a, "treatment") // a cached row: the same vectors

	// The experiment no longer wants mf-a: the manager drops it and the
	// treated user gets the active version, with the fallback said.
	if _, err := mgr.Serve(ctx, map[lr.ModelKind][]string{lr.ModelMF: {}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := mgr.ModelByVersion(lr.ModelMF, "mf-a"); ok {
		t.Fatal("mf-a still served after Serve dropped it")
	}
	check(treated, b, "")
}

// cmp keeps the first user found.
func cmp(cur, u lr.UserID) lr.UserID {
	if cur != 0 {
		return cur
	}
	return u
}
