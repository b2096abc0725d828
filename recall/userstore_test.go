package recall_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/userstore"
)

// userStores are the two ways recall waits for a miss: a store that can
// only Fetch (a goroutine per miss), and userstore.Store (Lookup: the
// request's goroutine waits for the store's read itself), both over the
// world's index.
var userStores = []struct {
	name string
	make func(t *testing.T, w *world) recall.UserVectors
}{
	{"fetch", func(t *testing.T, w *world) recall.UserVectors { return w.idx }},
	{"userstore", func(t *testing.T, w *world) recall.UserVectors {
		s, err := userstore.New(userstore.Config{Source: w.idx, QueryTimeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}},
}

// engineOver is w.engine with users as its user store.
func (w *world) engineOver(cfg recall.Config, users recall.UserVectors) *recall.Engine {
	if cfg.Budget == 0 && cfg.ChannelBudget == nil {
		cfg = patient(cfg)
	}
	cfg.Now = func() time.Time { return w.now }
	e := recall.New(cfg, w.state, w.ords, w.idx, users, nil, nil)
	e.RefreshRankings()
	return e
}

func outcomeOf(res *recall.Result, ch string) recall.Outcome {
	for _, o := range res.Outcomes {
		if o.Channel == ch {
			return o
		}
	}
	return recall.Outcome{}
}

// waitUntil polls cond until it holds or the test's patience (10 s, far
// beyond any budget here) runs out.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// A user missing from the cache whose vectors do not come within the mf
// channel's budget: mf is late, the channels that need no user vector
// answer without waiting for it, and the fetch ends with the request.
func TestSlowUserMissIsLateAndHoldsNoOtherChannel(t *testing.T) {
	for _, us := range userStores {
		t.Run(us.name, func(t *testing.T) { testSlowUserMissIsLateAndHoldsNoOtherChannel(t, us.make) })
	}
}

func testSlowUserMissIsLateAndHoldsNoOtherChannel(t *testing.T, users func(*testing.T, *world) recall.UserVectors) {
	w := newWorld(t, 5, 5)
	w.idx.Cold, w.idx.FetchDelay = true, time.Minute
	cfg := patient(recall.Config{})
	cfg.ChannelBudget[recall.ChanMF] = 20 * time.Millisecond
	store := users(t, w)
	e := w.engineOver(cfg, store)
	start := time.Now()
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("recall took %v: it waited for the fetch", took)
	}
	if o := outcomeOf(res, recall.ChanMF); o.Status != recall.StatusLate || o.Error != "" {
		t.Fatalf("mf outcome %+v, want late", o)
	}
	if o := outcomeOf(res, recall.ChanTrending); o.Status != recall.StatusOK {
		t.Fatalf("trending outcome %+v, want ok", o)
	}
	if len(res.Candidates) != 5 || res.UserKnown || res.User.Known() || res.User.Versions.MF != w.idx.Model(lr.ModelMF).ID {
		t.Fatalf("candidates %v, user known %v, row %+v", ids(res), res.UserKnown, res.User)
	}
	for _, c := range res.Candidates {
		if c.HasMF || slices.Contains(c.Channels, recall.ChanMF) {
			t.Fatalf("candidate scored or proposed by mf without the user's vector: %+v", c)
		}
	}
	// A store that only Fetches: the request's end cancels the fetch,
	// nothing outlives it. userstore.Store: its query goes on under its
	// own timeout (a minute here) to cache the row for the next request.
	if _, ok := store.(*userstore.Store); !ok {
		waitUntil(t, "the fetch to end with the request", func() bool { return w.idx.Fetching.Load() == 0 })
	}
}

// A miss whose fetch arrives in time serves as a hit does; a store that
// fails makes the model channels "error" with its message, never the
// request; a user with no vector skips them.
func TestUserMissOutcomes(t *testing.T) {
	for _, c := range []struct {
		name    string
		user    lr.UserID
		err     error
		status  string
		known   bool
		message string
	}{
		{"arrives", 7, nil, recall.StatusOK, true, ""},
		{"store fails", 7, errors.New("the database db:5432/lr is not reachable"), recall.StatusError, false, "not reachable"},
		{"no vector", 8, nil, recall.StatusSkipped, false, ""},
	} {
		for _, us := range userStores {
			t.Run(c.name+"/"+us.name, func(t *testing.T) {
				w := newWorld(t, 5, 5)
				w.idx.Cold, w.idx.FetchErr = true, c.err
				e := w.engineOver(recall.Config{}, us.make(t, w))
				res, err := e.Recall(context.Background(), recall.Request{User: c.user, K: 10})
				if err != nil {
					t.Fatal(err)
				}
				o := outcomeOf(res, recall.ChanMF)
				if o.Status != c.status || !strings.Contains(o.Error, c.message) {
					t.Fatalf("mf outcome %+v, want %s with %q", o, c.status, c.message)
				}
				if res.UserKnown != c.known || len(res.Candidates) != 5 {
					t.Fatalf("user known %v, candidates %v", res.UserKnown, ids(res))
				}
				if c.known && (res.Candidates[0].StreamerID != 3 || !res.Candidates[0].HasMF || res.User.MF == nil) {
					t.Fatalf("first candidate %+v, row %+v: want streamer 3 scored by mf", res.Candidates[0], res.User)
				}
			})
		}
	}
}

// swapping is an index whose MF version is replaced once a request has
// pinned it, before the channels search.
type swapping struct {
	recall.Index
	swap func()
	done bool
}

func (s *swapping) Search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
	if !s.done {
		s.done = true
		s.swap()
	}
	return s.Index.Search(ctx, kind, model, q, k, allowed)
}

// A request pinned to a version that is replaced (twice: the index no
// longer has it) while it runs never pairs its user vector with the new
// version's streamer vectors: the mf channel fails as unavailable and no
// candidate is scored under the new version.
func TestRequestNeverMixesVersions(t *testing.T) {
	w := newWorld(t, 5, 5)
	// The new version's vectors would give every streamer a score.
	idx := &swapping{Index: w.idx, swap: func() {
		w.idx.SetVersion(lr.ModelMF, "mf-next")
		for id := 1; id <= 5; id++ {
			w.idx.AddStreamer(lr.ModelMF, w.ords.Ordinal(lr.StreamerID(id)), []float32{1, 1, 1, 1, 1})
		}
	}}
	cfg := patient(recall.Config{})
	cfg.Now = func() time.Time { return w.now }
	cfg.Disabled = map[string]bool{recall.ChanSession: true} // one MF search: the mf channel's
	e := recall.New(cfg, w.state, w.ords, idx, w.idx, nil, nil)
	e.RefreshRankings()
	pinned := w.idx.Model(lr.ModelMF)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	if w.idx.Model(lr.ModelMF).ID == pinned.ID {
		t.Fatal("the version was not swapped during the request")
	}
	o := outcomeOf(res, recall.ChanMF)
	if o.Status != recall.StatusError || !strings.Contains(o.Error, "no longer serves") {
		t.Fatalf("mf outcome %+v, want an error: the pinned version no longer serves", o)
	}
	if res.Versions["mf"] != pinned.Version || res.User.Versions.MF != pinned.ID {
		t.Fatalf("versions %v, row of %+v: want the pinned %s (id %d)", res.Versions, res.User.Versions, pinned.Version, pinned.ID)
	}
	for _, c := range res.Candidates {
		if c.HasMF {
			t.Fatalf("candidate %d scored %v: the pinned user vector met another version's streamer vectors", c.StreamerID, c.MFScore)
		}
	}
	if len(res.Candidates) != 5 {
		t.Fatalf("candidates %v: the other channels' page is lost", ids(res))
	}
}
