package sim_test

import (
	"cmp"
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/sim"
)

// observer builds, from the event stream only, what a service could know:
// who is watching what now, and each user's past watches.
type observer struct {
	viewers map[lr.StreamerID]int
	watched map[lr.UserID]map[lr.StreamerID]int
}

func (o *observer) add(e lr.Event) error {
	switch e.Type {
	case lr.EventViewerJoined:
		o.viewers[e.StreamerID]++
		if o.watched[e.UserID] == nil {
			o.watched[e.UserID] = map[lr.StreamerID]int{}
		}
		o.watched[e.UserID][e.StreamerID]++
	case lr.EventViewerLeft:
		o.viewers[e.StreamerID]--
	}
	return nil
}

// The ground truth is learnable and evaluation is availability-aware:
// on a held-out day, recommending by the user's own history beats the
// most-watched-now list, which beats random live streamers; recommending
// streamers who are not live never scores.
func TestHeldOutDayQualityOrdersSimpleRecommenders(t *testing.T) {
	w := world(t, 21, 1500, 8000)
	st := w.Config().Start
	evalFrom, evalTo := st.Add(3*day), st.Add(4*day)
	o := &observer{viewers: map[lr.StreamerID]int{}, watched: map[lr.UserID]map[lr.StreamerID]int{}}
	r := rand.New(rand.NewPCG(1, 1))
	names := []string{"random", "trending", "history", "offline"}
	evs := map[string]*sim.Evaluator{}
	for _, n := range names {
		evs[n] = sim.NewEvaluator(10)
	}
	var live []lr.StreamerID
	_, err := w.Run(context.Background(), st, evalTo, o.add, func(c sim.Choice) error {
		if c.TS.Before(evalFrom) {
			return nil
		}
		live = c.Live(live[:0])
		slices.Sort(live)
		rnd := slices.Clone(live)
		r.Shuffle(len(rnd), func(i, j int) { rnd[i], rnd[j] = rnd[j], rnd[i] })
		evs["random"].Add(c, rnd)
		trending := slices.Clone(live)
		slices.SortStableFunc(trending, func(a, b lr.StreamerID) int { return cmp.Compare(o.viewers[b], o.viewers[a]) })
		evs["trending"].Add(c, trending)
		h := o.watched[c.User]
		hist := slices.Clone(live)
		slices.SortStableFunc(hist, func(a, b lr.StreamerID) int {
			return cmp.Or(cmp.Compare(h[b], h[a]), cmp.Compare(o.viewers[b], o.viewers[a]))
		})
		evs["history"].Add(c, hist)
		var offline []lr.StreamerID
		for id := lr.StreamerID(1); len(offline) < 10 && id <= 1500; id++ {
			if !c.IsLive(id) {
				offline = append(offline, id)
			}
		}
		evs["offline"].Add(c, offline)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	q := map[string]sim.Quality{}
	for _, n := range names {
		q[n] = evs[n].Result()
		t.Logf("%-8s HR@10 %.3f NDCG@10 %.3f over %d choices, %.0f live on average, %d not live", n, q[n].HR, q[n].NDCG, q[n].Choices, q[n].MeanLive, q[n].NotLive)
	}
	if q["random"].Choices < 1000 || q["random"].MeanLive < 10 {
		t.Fatalf("too small a test: %+v", q["random"])
	}
	if !(q["history"].HR > q["trending"].HR+0.1 && q["trending"].HR > q["random"].HR+0.05) {
		t.Fatalf("want history > trending > random, got %.3f, %.3f, %.3f", q["history"].HR, q["trending"].HR, q["random"].HR)
	}
	if q["history"].NDCG > q["history"].HR || q["history"].NDCG < q["history"].HR/3 {
		t.Fatalf("NDCG %.3f inconsistent with HR %.3f", q["history"].NDCG, q["history"].HR)
	}
	if q["offline"].HR != 0 || q["offline"].NotLive != 10*q["offline"].Choices {
		t.Fatalf("offline recommendations scored: %+v", q["offline"])
	}
}

func TestEvaluatorArithmetic(t *testing.T) {
	isLive := func(s lr.StreamerID) bool { return s != 99 }
	e := sim.NewEvaluator(3)
	ts := time.Unix(0, 0)
	e.Add(sim.Choice{TS: ts, Streamer: 5, LiveCount: 4, IsLive: isLive}, []lr.StreamerID{5, 6, 7})     // rank 0: 1
	e.Add(sim.Choice{TS: ts, Streamer: 7, LiveCount: 4, IsLive: isLive}, []lr.StreamerID{99, 6, 7, 8}) // rank 2: 0.5, one not live
	e.Add(sim.Choice{TS: ts, Streamer: 8, LiveCount: 4, IsLive: isLive}, []lr.StreamerID{5, 6, 7, 8})  // beyond K
	e.Add(sim.Choice{TS: ts, Streamer: 8, LiveCount: 0, IsLive: isLive}, nil)
	q := e.Result()
	if q.Choices != 4 || q.HR != 0.5 || q.NDCG != 1.5/4 || q.NotLive != 1 || q.MeanLive != 3 || q.K != 3 {
		t.Fatalf("%+v", q)
	}
}

// The intervals printed with a quality line: Wilson's for the hit rate
// (reference values from its closed form, e.g. 81 of 263: [0.2553,
// 0.3662]) and the normal one for the mean NDCG.
func TestQualityIntervals(t *testing.T) {
	near := func(a, b float64) bool { return a-b < 5e-5 && b-a < 5e-5 }
	for _, c := range []struct {
		k, n   int
		lo, hi float64
	}{
		{81, 263, 0.2553, 0.3662},
		{0, 10, 0, 0.2775},
		{10, 10, 0.7225, 1},
		{1, 2, 0.0945, 0.9055},
		{0, 0, 0, 1},
	} {
		if lo, hi := sim.Wilson(c.k, c.n, 1.959963984540054); !near(lo, c.lo) || !near(hi, c.hi) {
			t.Errorf("Wilson(%d, %d) = [%.4f, %.4f], want [%.4f, %.4f]", c.k, c.n, lo, hi, c.lo, c.hi)
		}
	}
	isLive := func(lr.StreamerID) bool { return true }
	e := sim.NewEvaluator(3)
	ts := time.Unix(0, 0)
	e.Add(sim.Choice{TS: ts, Streamer: 5, IsLive: isLive}, []lr.StreamerID{5}) // NDCG 1
	e.Add(sim.Choice{TS: ts, Streamer: 6, IsLive: isLive}, []lr.StreamerID{5}) // NDCG 0
	q := e.Result()
	if lo, hi := q.HRInterval(); q.Hits != 1 || !near(lo, 0.0945) || !near(hi, 0.9055) {
		t.Fatalf("1 hit of 2: %+v, interval [%v, %v]", q, lo, hi)
	}
	// Values 1 and 0: sample standard deviation sqrt(0.5), standard error 0.5.
	if lo, hi := q.NDCGInterval(); !near(q.NDCGStdErr, 0.5) || lo != 0 || hi != 1 {
		t.Fatalf("NDCG %v ± %v: [%v, %v]", q.NDCG, q.NDCGStdErr, lo, hi)
	}
}
