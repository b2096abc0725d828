package recall_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
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
