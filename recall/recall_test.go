package recall_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recall/recalltest"
	"github.com/liverecall/liverecall/userstore"
)

type integrity struct {
	banned  map[lr.StreamerID]bool
	blocked map[lr.UserID][]lr.StreamerID
}

func (i integrity) Banned(id lr.StreamerID) bool        { return i.banned[id] }
func (i integrity) Blocked(u lr.UserID) []lr.StreamerID { return i.blocked[u] }

var t0 = time.Date(2026, 11, 23, 20, 0, 0, 0, time.UTC)

type world struct {
	ords  *lr.Ordinals
	state *live.State
	idx   *recalltest.ExactIndex
	n     int
	now   time.Time
}

// newWorld starts streamers 1..live (stream ids 1000+id) and gives streamers
// 1..withVec an MF vector along their own axis; user 7's vector points at
// streamer 3, then 2.
func newWorld(t *testing.T, liveN, withVec int) *world {
	w := &world{ords: lr.NewOrdinals(), now: t0}
	w.state = live.New(live.Config{Ordinals: w.ords, Clock: func() time.Time { return w.now }})
	w.idx = recalltest.New()
	w.idx.SetVersion(lr.ModelMF, "mf-test")
	dim := max(withVec, 3) + 1
	for id := 1; id <= withVec; id++ {
		v := make([]float32, dim)
		v[id] = 1
		w.idx.AddStreamer(lr.ModelMF, w.ords.Ordinal(lr.StreamerID(id)), v)
	}
	if withVec > 0 {
		u := make([]float32, dim)
		u[3], u[2] = 1, 0.5
		w.idx.AddUser(lr.ModelMF, 7, u)
	}
	var evs []lr.Event
	for id := 1; id <= liveN; id++ {
		evs = append(evs, w.ev(lr.EventStreamStarted, id, 0, t0.Add(-time.Duration(id)*time.Minute)))
	}
	w.apply(t, evs...)
	return w
}

func (w *world) ev(typ lr.EventType, streamer int, user int, ts time.Time) lr.Event {
	w.n++
	return lr.Event{ID: fmt.Sprintf("e%d", w.n), Type: typ, TS: ts, StreamerID: lr.StreamerID(streamer),
		StreamID: lr.StreamID(1000 + streamer), UserID: lr.UserID(user), V: lr.EventVersion}
}

func (w *world) apply(t *testing.T, evs ...lr.Event) {
	t.Helper()
	st := w.state.Apply(evs)
	_ = st
}

// engine is an engine over w. A cfg without a Budget gets budgets no loaded
// test machine misses (patient): only the tests about lateness set them.
func (w *world) engine(cfg recall.Config, integ recall.Integrity) *recall.Engine {
	if cfg.Budget == 0 && cfg.ChannelBudget == nil {
		cfg = patient(cfg)
	}
	cfg.Now = func() time.Time { return w.now }
	e := recall.New(cfg, w.state, w.ords, w.idx, w.idx, integ, nil)
	e.RefreshRankings()
	return e
}

func ids(r *recall.Result) []lr.StreamerID {
	var out []lr.StreamerID
	for _, c := range r.Candidates {
		out = append(out, c.StreamerID)
	}
	return out
}

func TestOnlyLiveStreamersAndProvenance(t *testing.T) {
	w := newWorld(t, 5, 8) // 8 streamers have vectors, only 1..5 are live
	e := w.engine(recall.Config{}, nil)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(res)
	if len(got) != 5 {
		t.Fatalf("candidates %v, want the 5 live streamers", got)
	}
	for _, id := range got {
		if id > 5 {
			t.Fatalf("offline streamer %d recalled", id)
		}
	}
	if got[0] != 3 || !slices.Contains(res.Candidates[0].Channels, recall.ChanMF) {
		t.Fatalf("first candidate %d via %v, want streamer 3 via mf", got[0], res.Candidates[0].Channels)
	}
	if !res.Candidates[0].HasMF || res.Candidates[0].MFScore != 1 {
		t.Fatalf("MF score of streamer 3 = %v (has %v), want 1", res.Candidates[0].MFScore, res.Candidates[0].HasMF)
	}
	if res.Versions["mf"] != "mf-test" || !res.UserKnown {
		t.Fatalf("versions %v known %v", res.Versions, res.UserKnown)
	}
	for _, o := range res.Outcomes {
		if o.Channel == recall.ChanMF && (o.Status != "ok" || o.Candidates != 5) {
			t.Fatalf("mf outcome %+v", o)
		}
		if o.Channel == recall.ChanNCF && o.Status != "skipped" {
			t.Fatalf("ncf outcome %+v, want skipped (no NCF model)", o)
		}
	}
}

func TestColdStartUserGetsTrendingAndFresh(t *testing.T) {
	w := newWorld(t, 4, 0) // nobody has an embedding
	// Streamer 2 gets viewers: it should lead trending.
	w.apply(t, w.ev(lr.EventViewerJoined, 2, 50, t0), w.ev(lr.EventViewerJoined, 2, 51, t0), w.ev(lr.EventViewerJoined, 4, 52, t0))
	// The MF model knows none of them: no cap on the unknown (see
	// TestUnknownStreamersCapped).
	e := w.engine(recall.Config{UnknownShare: 1}, nil)
	res, err := e.Recall(context.Background(), recall.Request{User: 999, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.UserKnown || len(res.Candidates) != 4 {
		t.Fatalf("cold start: known=%v candidates %v", res.UserKnown, ids(res))
	}
	if res.Candidates[0].StreamerID != 2 || !slices.Contains(res.Candidates[0].Channels, recall.ChanTrending) {
		t.Fatalf("first %d via %v, want 2 via trending", res.Candidates[0].StreamerID, res.Candidates[0].Channels)
	}
	fresh := 0
	for _, c := range res.Candidates {
		if slices.Contains(c.Channels, recall.ChanFresh) {
			fresh++
		}
	}
	if fresh != 4 {
		t.Fatalf("%d candidates via fresh, want 4 (all started < 15 min ago)", fresh)
	}
}

func TestIntegrityFilters(t *testing.T) {
	w := newWorld(t, 8, 8)
	// Streamer 8's stream ends: it must not be recalled even though
	// channels may still hold it.
	integ := integrity{banned: map[lr.StreamerID]bool{4: true}, blocked: map[lr.UserID][]lr.StreamerID{7: {5}}}
	e := w.engine(recall.Config{}, integ)
	w.apply(t, w.ev(lr.EventStreamEnded, 8, 0, t0))
	e.MarkShown(7, []lr.StreamerID{6})
	// A page of 3: the streamers not shown yet fill it, so the shown one
	// is left out (see TestShownDemotedToFillThePage).
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 3, Exclude: []lr.StreamerID{1}})
	if err != nil {
		t.Fatal(err)
	}
	got := ids(res)
	slices.Sort(got)
	if !slices.Equal(got, []lr.StreamerID{2, 3, 7}) {
		t.Fatalf("candidates %v, want [2 3 7]", got)
	}
	for _, f := range []string{"banned", "excluded", "shown", "ended"} {
		if res.Filtered[f] == 0 && f != "ended" {
			t.Errorf("filter %s removed nothing: %v", f, res.Filtered)
		}
	}
	// Once the shown window has passed, streamer 6 comes back.
	w.now = w.now.Add(11 * time.Minute)
	w.apply(t, heartbeats(w, 1, 7)...)
	res, _ = e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if !slices.Contains(ids(res), 6) {
		t.Fatalf("streamer 6 still filtered after the shown window: %v", ids(res))
	}
}

func heartbeats(w *world, from, to int) []lr.Event {
	var evs []lr.Event
	for id := from; id <= to; id++ {
		evs = append(evs, w.ev(lr.EventStreamHeartbeat, id, 0, w.now))
	}
	return evs
}

func TestLateAndFailingChannelsAreDroppedNotWaitedFor(t *testing.T) {
	for _, c := range []struct {
		name   string
		delay  time.Duration
		fail   bool
		status string
	}{
		{"slow index", time.Minute, false, "timeout"},
		{"failing index", 0, true, "error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 5, 5)
			w.idx.Delay, w.idx.Failing = c.delay, c.fail
			// The index channel gets 20 ms; the others budgets no loaded
			// machine misses, so only the index channel can be late, and a
			// request that waited for a minute-slow index would show.
			cfg := patient(recall.Config{})
			cfg.ChannelBudget[recall.ChanMF] = 20 * time.Millisecond
			e := w.engine(cfg, nil)
			start := time.Now()
			res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if took > c.delay/2 && c.delay > 0 {
				t.Fatalf("recall took %v: it waited for the slow channel", took)
			}
			var mf recall.Outcome
			for _, o := range res.Outcomes {
				if o.Channel == recall.ChanMF {
					mf = o
				}
			}
			if mf.Status != c.status {
				t.Fatalf("mf outcome %+v, want %s", mf, c.status)
			}
			if len(res.Candidates) != 5 {
				t.Fatalf("other channels' candidates lost: %v", ids(res))
			}
			for _, cand := range res.Candidates {
				if slices.Contains(cand.Channels, recall.ChanMF) {
					t.Fatalf("candidate from the dropped channel: %+v", cand)
				}
			}
		})
	}
}

// Each channel answers under its own budget: with the same slow index, the
// channel with the short budget is late and the one with the long budget
// answers.
func TestChannelBudgetsAreEachChannels(t *testing.T) {
	w := newWorld(t, 5, 5)
	w.idx.SetVersion(lr.ModelNCF, "ncf-test")
	for id := 1; id <= 5; id++ {
		v := make([]float32, 6)
		v[id] = 1
		w.idx.AddStreamer(lr.ModelNCF, w.ords.Ordinal(lr.StreamerID(id)), v)
	}
	w.idx.AddUser(lr.ModelNCF, 7, []float32{0, 1, 1, 0, 0, 0})
	// The index answers in 100 ms: a 10 ms budget always misses it, and a
	// 10 s one catches it however loaded the machine is.
	w.idx.Delay = 100 * time.Millisecond
	cfg := patient(recall.Config{})
	cfg.ChannelBudget[recall.ChanMF] = 10 * time.Millisecond
	e := w.engine(cfg, nil)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, o := range res.Outcomes {
		got[o.Channel] = o.Status
	}
	if got[recall.ChanMF] != "timeout" || got[recall.ChanNCF] != "ok" {
		t.Fatalf("outcomes %v: want mf timeout (10 ms budget) and ncf ok (10 s)", got)
	}
}

// Candidates handed back with Release are reused by later requests, never
// shared between requests in flight (the race detector watches).
func TestReleaseReusesCandidates(t *testing.T) {
	w := newWorld(t, 5, 5)
	// Budgets no loaded test machine misses: a late channel changes the
	// order, which is not what this test is about.
	budgets := map[string]time.Duration{}
	for _, ch := range recall.Channels {
		budgets[ch] = 10 * time.Second
	}
	e := w.engine(recall.Config{ShownDisabled: true, Budget: 10 * time.Second, ChannelBudget: budgets}, nil)
	first, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	want := ids(first)
	e.Release(first)
	if first.Candidates != nil {
		t.Fatal("Release left the candidates in the result")
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for i := 0; i < 50; i++ {
				res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
				if err != nil {
					t.Error(err)
					return
				}
				if got := ids(res); !slices.Equal(got, want) {
					t.Errorf("request %d: %v, want %v (channels %v)", i, got, want, res.Outcomes)
					return
				}
				e.Release(res)
			}
		})
	}
	wg.Wait()
}

func TestFollowedAndSessionChannels(t *testing.T) {
	w := newWorld(t, 6, 6)
	w.apply(t,
		lr.Event{ID: "f1", Type: lr.EventFollowCreated, TS: t0, StreamerID: 6, UserID: 7, V: 1},
		w.ev(lr.EventViewerJoined, 5, 7, t0), w.ev(lr.EventViewerLeft, 5, 7, t0.Add(time.Minute)),
	)
	e := w.engine(recall.Config{ShownDisabled: true}, nil)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	via := map[lr.StreamerID][]string{}
	for _, c := range res.Candidates {
		via[c.StreamerID] = c.Channels
	}
	if !slices.Contains(via[6], recall.ChanFollow) {
		t.Fatalf("followed live streamer 6 via %v", via[6])
	}
	if !slices.Contains(via[5], recall.ChanSession) {
		t.Fatalf("re-watchable streamer 5 via %v", via[5])
	}
}

// Candidates the NCF channel did not propose get the NCF dot product, unless
// the caller scores every candidate with the full NeuMF model (FullNCF).
func TestFullNCFSkipsNCFDotProducts(t *testing.T) {
	w := newWorld(t, 5, 5)
	w.idx.SetVersion(lr.ModelNCF, "ncf-test")
	for id := 1; id <= 5; id++ {
		v := make([]float32, 6)
		v[id] = float32(id)
		w.idx.AddStreamer(lr.ModelNCF, w.ords.Ordinal(lr.StreamerID(id)), v)
	}
	u := make([]float32, 6)
	u[4] = 1
	w.idx.AddUser(lr.ModelNCF, 7, u)
	cfg := recall.Config{PerChannel: map[string]int{recall.ChanNCF: 1}}
	for _, full := range []bool{false, true} {
		res, err := w.engine(cfg, nil).Recall(context.Background(), recall.Request{User: 7, K: 10, FullNCF: func(userstore.Row) bool { return full }})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Candidates) != 5 {
			t.Fatalf("full=%v: %d candidates, want 5", full, len(res.Candidates))
		}
		for _, c := range res.Candidates {
			fromNCF := slices.Contains(c.Channels, recall.ChanNCF)
			switch {
			case fromNCF && (!c.HasNCF || c.NCFScore != 4):
				t.Errorf("full=%v: streamer %d from the NCF channel has NCF score %v (%v), want 4", full, c.StreamerID, c.NCFScore, c.HasNCF)
			case !fromNCF && c.HasNCF == full:
				t.Errorf("full=%v: streamer %d (via %v) has an NCF dot product: %v", full, c.StreamerID, c.Channels, c.HasNCF)
			case !fromNCF && !full && c.NCFScore != 0:
				t.Errorf("streamer %d: NCF dot product %v, want 0", c.StreamerID, c.NCFScore)
			}
		}
	}
}
