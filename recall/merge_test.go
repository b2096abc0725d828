package recall_test

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recall/recalltest"
)

// mergeWorld is a replica's view for tests and benchmarks of the merge
// alone (recall.Engine.MergeHits): streamers 1..n live, with viewers and
// gifts, and MF and NCF vectors (dimension 16) for all but every
// unknownEvery-th; users 7 and 8 have vectors of both models.
type mergeWorld struct {
	ords  *lr.Ordinals
	state *live.State
	idx   *recalltest.ExactIndex
	now   time.Time
	rng   *rand.Rand
	evs   int
}

func newMergeWorld(tb testing.TB, seed uint64, n, unknownEvery int) *mergeWorld {
	tb.Helper()
	w := &mergeWorld{ords: lr.NewOrdinals(), now: t0, rng: rand.New(rand.NewPCG(seed, 1))}
	w.state = live.New(live.Config{Ordinals: w.ords, Clock: func() time.Time { return w.now }})
	w.idx = recalltest.New()
	const dim = 16
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(w.rng.NormFloat64())
		}
		return v
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		w.idx.SetVersion(kind, string(kind)+"-test")
		w.idx.AddUser(kind, 7, vec())
		w.idx.AddUser(kind, 8, vec())
	}
	var evs []lr.Event
	for id := 1; id <= n; id++ {
		if unknownEvery == 0 || id%unknownEvery != 0 {
			ord := w.ords.Ordinal(lr.StreamerID(id))
			w.idx.AddStreamer(lr.ModelMF, ord, vec())
			w.idx.AddStreamer(lr.ModelNCF, ord, vec())
		}
		start := w.now.Add(-time.Duration(1+w.rng.IntN(120)) * time.Minute)
		ev := w.ev(lr.EventStreamStarted, id, 0, start)
		ev.Category, ev.Title, ev.Language = fmt.Sprintf("cat%d", id%10), fmt.Sprintf("stream %d", id), "en"
		evs = append(evs, ev)
		for v := range w.rng.IntN(8) {
			evs = append(evs, w.ev(lr.EventViewerJoined, id, 1000+v, w.between(start)))
		}
		for range w.rng.IntN(5) {
			g := w.ev(lr.EventGiftSent, id, 1000+w.rng.IntN(8), w.between(start))
			g.Amount = float64(1 + w.rng.IntN(100))
			evs = append(evs, g)
		}
	}
	slices.SortStableFunc(evs, func(a, b lr.Event) int { return a.TS.Compare(b.TS) })
	w.state.Apply(evs)
	return w
}

// between is a time after start and before now.
func (w *mergeWorld) between(start time.Time) time.Time {
	return start.Add(time.Duration(w.rng.Int64N(int64(w.now.Sub(start)))))
}

func (w *mergeWorld) ev(typ lr.EventType, streamer, user int, ts time.Time) lr.Event {
	w.evs++
	return lr.Event{ID: fmt.Sprintf("m%d", w.evs), Type: typ, TS: ts, StreamerID: lr.StreamerID(streamer),
		StreamID: lr.StreamID(1000 + streamer), UserID: lr.UserID(user), V: lr.EventVersion}
}

func (w *mergeWorld) engine(cfg recall.Config, integ recall.Integrity) *recall.Engine {
	cfg.Now = func() time.Time { return w.now }
	return recall.New(cfg, w.state, w.ords, w.idx, w.idx, integ, nil)
}

// hits draws each channel's hits (perChannel[i] for Channels[i], best
// first) from streamers pool, so channels overlap as they do.
func (w *mergeWorld) hits(pool []lr.StreamerID, perChannel []int) [][]recall.Hit {
	got := make([][]recall.Hit, len(recall.Channels))
	for ci, k := range perChannel {
		for j, i := range w.rng.Perm(len(pool))[:min(k, len(pool))] {
			got[ci] = append(got[ci], recall.Hit{Ord: w.ords.Ordinal(pool[i]), Score: float32(k - j)})
		}
	}
	return got
}

// BenchmarkMerge is the merge of a recall of k=20 over the default
// channels' hits (40 mf and ncf, 20 of the others, drawn from 250 live
// streamers), for a user shown 20 pages of 20 in the window (230 of the
// 250: most hits are demoted and a few fill the page) and for a fresh
// user (nothing shown).
func BenchmarkMerge(b *testing.B) {
	w := newMergeWorld(b, 1, 2000, 10)
	pool := make([]lr.StreamerID, 250)
	for i := range pool {
		pool[i] = lr.StreamerID(1 + i*7)
	}
	hits := w.hits(pool, []int{40, 40, 20, 20, 20, 20})
	e := w.engine(recall.Config{}, integrity{banned: map[lr.StreamerID]bool{pool[5]: true}})
	shown := slices.Clone(pool[:230])
	w.rng.Shuffle(len(shown), func(i, j int) { shown[i], shown[j] = shown[j], shown[i] })
	for p := range 20 {
		page := make([]lr.StreamerID, 20)
		for j := range page {
			page[j] = shown[(p*20+j)%len(shown)]
		}
		e.RecordShown(7, page, w.now.Add(-10*time.Minute+time.Duration(p+1)*25*time.Second))
	}
	for _, bc := range []struct {
		name string
		user lr.UserID
	}{{"shown", 7}, {"fresh", 8}} {
		b.Run(bc.name, func(b *testing.B) {
			req := recall.Request{User: bc.user, K: 20}
			res := e.MergeHits(req, hits, nil)
			b.Logf("%d candidates, filtered %v", len(res.Candidates), res.Filtered)
			e.Release(res)
			b.ReportAllocs()
			for b.Loop() {
				e.Release(e.MergeHits(req, hits, nil))
			}
		})
	}
}

// The merge returns what the merge before it did (MergeHitsReference: every
// demoted candidate sorted and read): the same candidates in the same
// order, with the same channels, scores, features and Shown flags, over
// random requests whose demoted candidates fill pages, tie on when they
// were shown (a page is shown at once), ended after the liveness check
// (their features read, they are dropped) and run into the unknown cap.
// The counts of the filters are the same too, except that a demoted
// candidate the page did not need is not read and so counted shown even
// when its stream ended after the liveness check.
func TestMergeAsBefore(t *testing.T) {
	var filled, endedDemoted, cappedDemoted, tiedFill int
	for seed := uint64(1); seed <= 300; seed++ {
		n := 30 + int(seed*37%200)
		w := newMergeWorld(t, seed, n, []int{0, 3, 5}[seed%3])
		rng := w.rng
		// Streamers with an ordinal but no stream, and ordinals never given.
		for id := n + 1; id <= n+10; id++ {
			w.ords.Ordinal(lr.StreamerID(id))
		}
		pool := make([]lr.StreamerID, 0, n+15)
		for id := 1; id <= n+10; id++ {
			pool = append(pool, lr.StreamerID(id))
		}
		per := make([]int, len(recall.Channels))
		for i := range per {
			per[i] = rng.IntN(50)
		}
		hits := w.hits(pool, per)
		for range 3 {
			ci := rng.IntN(len(hits))
			hits[ci] = append(hits[ci], recall.Hit{Ord: uint32(n + 100 + rng.IntN(100)), Score: -1})
		}
		cfg := recall.Config{UnknownShare: []float64{0, -1, 0.5, 1}[rng.IntN(4)], ShownDisabled: rng.IntN(10) == 0,
			Quota: map[string]int{}}
		for _, ch := range recall.Channels {
			cfg.Quota[ch] = 1 + rng.IntN(30)
		}
		integ := integrity{banned: map[lr.StreamerID]bool{}, blocked: map[lr.UserID][]lr.StreamerID{}}
		for range 3 {
			integ.banned[pool[rng.IntN(len(pool))]] = true
			integ.blocked[7] = append(integ.blocked[7], pool[rng.IntN(len(pool))])
		}
		e := w.engine(cfg, integ)
		// Pages of 1 to 10 shown at once, over and before the window.
		lastShown := map[lr.StreamerID]time.Time{}
		for range rng.IntN(40) {
			page := make([]lr.StreamerID, 1+rng.IntN(10))
			at := w.now.Add(-time.Duration(rng.IntN(12*60)) * time.Second)
			for j := range page {
				page[j] = pool[rng.IntN(len(pool))]
				if at.After(lastShown[page[j]]) {
					lastShown[page[j]] = at
				}
			}
			e.RecordShown(7, page, at)
		}
		// The user went on to watch some of them.
		var evs []lr.Event
		for _, id := range slices.Sorted(maps.Keys(lastShown)) {
			if int(id) <= n && rng.IntN(8) == 0 {
				evs = append(evs, w.ev(lr.EventViewerJoined, int(id), 7, w.now.Add(-time.Duration(rng.IntN(60))*time.Second)))
			}
		}
		slices.SortFunc(evs, func(a, b lr.Event) int { return a.TS.Compare(b.TS) })
		w.state.Apply(evs)
		// Time passes: pages shown early leave the window.
		w.now = w.now.Add(time.Duration(rng.IntN(120)) * time.Second)
		// Some streams end after the merge's liveness check.
		old := w.state.Snapshot()
		var endedIDs []lr.StreamerID
		evs = nil
		for id := 1; id <= n; id++ {
			if rng.IntN(6) == 0 {
				evs = append(evs, w.ev(lr.EventStreamEnded, id, 0, w.now))
				endedIDs = append(endedIDs, lr.StreamerID(id))
			}
		}
		w.state.Apply(evs)
		req := recall.Request{User: 7, K: 1 + rng.IntN(40), Exclude: []lr.StreamerID{pool[rng.IntN(len(pool))]}}
		want := e.MergeHitsReference(req, hits, old)
		got := e.MergeHits(req, hits, old)
		if !reflect.DeepEqual(got.Candidates, want.Candidates) {
			t.Fatalf("seed %d, k %d: candidates\n%v\nwant\n%v", seed, req.K, mergeSummary(got.Candidates), mergeSummary(want.Candidates))
		}
		wf, gf := maps.Clone(want.Filtered), maps.Clone(got.Filtered)
		notRead := wf["ended"] - gf["ended"]
		if notRead < 0 || gf["shown"]-wf["shown"] != notRead {
			t.Fatalf("seed %d: filtered %v, want %v (or ended demoted not read counted shown)", seed, gf, wf)
		}
		delete(wf, "ended")
		delete(wf, "shown")
		delete(gf, "ended")
		delete(gf, "shown")
		if !maps.Equal(gf, wf) {
			t.Fatalf("seed %d: filtered %v, want %v", seed, got.Filtered, want.Filtered)
		}
		// What the requests covered: pages the demoted filled, with a
		// stream that ended after the check among those read (shown
		// before the last that filled the page), with two shown at once,
		// and with the unknown cap.
		var fill []recall.Candidate
		for _, c := range got.Candidates {
			if c.Shown {
				fill = append(fill, c)
			}
		}
		if len(fill) == 0 {
			continue
		}
		filled++
		last := lastShown[fill[len(fill)-1].StreamerID]
		for _, id := range endedIDs {
			if at, ok := lastShown[id]; ok && at.Before(last) && slices.ContainsFunc(slices.Concat(hits...), func(h recall.Hit) bool { return h.Ord == w.ords.Ordinal(id) }) {
				endedDemoted++
				break
			}
		}
		for i := 1; i < len(fill); i++ {
			if lastShown[fill[i].StreamerID].Equal(lastShown[fill[i-1].StreamerID]) {
				tiedFill++
				break
			}
		}
		if got.Filtered["unknown_cap"] > 0 {
			cappedDemoted++
		}
	}
	t.Logf("pages filled with demoted streamers: %d (with streams ended after the check %d, shown at once %d, with the unknown cap %d)", filled, endedDemoted, tiedFill, cappedDemoted)
	if filled < 50 || endedDemoted < 10 || tiedFill < 10 || cappedDemoted < 10 {
		t.Fatal("too few requests covered the demoted path")
	}
}

func mergeSummary(cs []recall.Candidate) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "%d%v shown=%v mf=%v/%v ncf=%v/%v; ", c.StreamerID, c.Channels, c.Shown, c.MFScore, c.HasMF, c.NCFScore, c.HasNCF)
	}
	return b.String()
}
