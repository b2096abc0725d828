package replay

import (
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/rerank"
)

// impressionsOf replays h with cfg and returns the impressions of each
// scored decision, by decision time.
func impressionsOf(t *testing.T, h *History, cfg Config) map[time.Time][]Impression {
	t.Helper()
	got := map[time.Time][]Impression{}
	cfg.Impressions = func(d Decision, imps []Impression) {
		if _, dup := got[d.At]; dup {
			t.Fatalf("two decisions at %s", d.At)
		}
		got[d.At] = imps
	}
	if _, err := Run(context.Background(), h, cfg); err != nil {
		t.Fatal(err)
	}
	return got
}

func find(imps []Impression, s lr.StreamerID) Impression {
	for _, im := range imps {
		if im.Streamer == s {
			return im
		}
	}
	return Impression{Rank: -1}
}

// The outcomes of the scripted history's held-out decisions: the chosen
// streamer watched long enough is positive, a short watch is not, a gift
// counts for the session it fell in and a follow within its window only.
func TestImpressionsOutcomes(t *testing.T) {
	h := scripted()
	// User 10 also looks at streamer 2 for 30 s at 13:02; gives streamer 1
	// a gift before the decision (12:50) and one after the session (13:45);
	// user 12 gives streamer 3 one during the session (13:20); user 10 follows streamer 2 at 14:00 (after the follow window).
	h.Watches = append(h.Watches, Watch{User: 10, Streamer: 2, Stream: 102, Start: at(13, 2), End: at(13, 2).Add(30 * time.Second)})
	h.Gifts = append(h.Gifts,
		Gift{User: 10, Streamer: 1, Stream: 101, Amount: 5, At: at(12, 50)},
		Gift{User: 10, Streamer: 1, Stream: 101, Amount: 5, At: at(13, 45)}, // after the session
		Gift{User: 12, Streamer: 3, Stream: 103, Amount: 5, At: at(13, 20)},
		Gift{User: 12, Streamer: 2, Stream: 102, Amount: 5, At: at(13, 15)}, // no session of 12 on 2
	)
	h.Follows = append(h.Follows, Follow{User: 12, Streamer: 3, At: at(13, 30)}, Follow{User: 10, Streamer: 2, At: at(14, 0)})
	var ds []Decision
	cfg := testConfig(&ds)
	got := impressionsOf(t, h, cfg)
	d1, d2 := got[at(13, 0)], got[at(13, 10)]
	if len(d1) != 3 || len(d2) != 3 {
		t.Fatalf("impressions at 13:00 %+v, at 13:10 %+v: want the three live streamers each", d1, d2)
	}
	for _, c := range []struct {
		imps     []Impression
		streamer lr.StreamerID
		want     Outcome
	}{
		{d1, 1, Outcome{Watched: true, WatchSeconds: 1800}},                           // the gifts at 12:50 and 13:45 fall outside the session
		{d1, 2, Outcome{WatchSeconds: 30}},                                            // 30 s < 60 s; the follow at 14:00 is too late
		{d1, 3, Outcome{}},                                                            //
		{d2, 3, Outcome{Watched: true, WatchSeconds: 1800, Gift: true, Follow: true}}, // gift 13:20, follow 13:30
		{d2, 2, Outcome{}},                                                            // a gift without a session of it
		{d2, 1, Outcome{}},
	} {
		im := find(c.imps, c.streamer)
		if im.Rank < 0 {
			t.Fatalf("streamer %d not among %+v", c.streamer, c.imps)
		}
		if im.Outcome != c.want {
			t.Errorf("decision at %s, streamer %d: %+v, want %+v", im.At.Format("15:04"), c.streamer, im.Outcome, c.want)
		}
		if len(im.X) != rerank.NumFeatures || im.User == 0 {
			t.Errorf("impression %+v: want %d features and the user", im, rerank.NumFeatures)
		}
	}
	// Ranks are the order of all the candidates, 0 first.
	var ranks []int
	for _, im := range d1 {
		ranks = append(ranks, im.Rank)
	}
	if !slices.Equal(ranks, []int{0, 1, 2}) {
		t.Errorf("ranks %v", ranks)
	}
	// The features are those of the decision's moment: at 13:10 streamer 3
	// has users 20, 21, 23 watching (not 12, who joins then), and user 12
	// has not watched it before.
	x := find(d2, 3).X
	if x[4] != math.Log1p(3) || x[10] != 0 {
		t.Errorf("streamer 3 at 13:10: log_viewers %v repeat_watches %v, want log1p(3) and 0", x[4], x[10])
	}
	// The decisions' repeat flags and nightly vectors: users 10 and 12
	// watched before noon.
	for _, d := range ds {
		if !d.Known {
			t.Errorf("decision %+v: user trained on, want Known", d)
		}
	}
}

// Labels.Until cuts what the outcomes see: a session running at the cut
// ends there, and a watch, gift or follow after it does not count;
// Config.Until ends the decisions.
func TestImpressionsOutcomesCutAtUntil(t *testing.T) {
	h := scripted()
	h.Gifts = append(h.Gifts, Gift{User: 12, Streamer: 3, Stream: 103, Amount: 5, At: at(13, 20)})
	h.Follows = append(h.Follows, Follow{User: 12, Streamer: 3, At: at(13, 30)})
	var ds []Decision
	cfg := testConfig(&ds)
	cfg.Until = at(13, 5) // the decision at 13:10 is not scored
	cfg.Labels.Until = at(13, 11)
	got := impressionsOf(t, h, cfg)
	if len(got) != 1 || len(ds) != 1 {
		t.Fatalf("decisions %+v: want the one at 13:00 only", ds)
	}
	cfg.Until = time.Time{}
	got = impressionsOf(t, h, cfg)
	im := find(got[at(13, 10)], 3)
	if want := (Outcome{WatchSeconds: 60, Watched: true}); im.Outcome != want {
		t.Errorf("streamer 3 at 13:10 cut at 13:11: %+v, want %+v (no gift, no follow)", im.Outcome, want)
	}
	cfg.Labels.Until = at(13, 10).Add(59 * time.Second)
	got = impressionsOf(t, h, cfg)
	if im := find(got[at(13, 10)], 3); im.Watched || im.WatchSeconds != 59 {
		t.Errorf("cut 59 s into the session: %+v, want not watched, 59 s", im.Outcome)
	}
	cfg.Labels.Until = at(13, 10)
	got = impressionsOf(t, h, cfg)
	if im := find(got[at(13, 10)], 3); im.Outcome != (Outcome{}) {
		t.Errorf("cut at the session's start: %+v, want nothing", im.Outcome)
	}
}

// Later events (planted after the decision at 13:10) change no feature of
// its impressions.
func TestImpressionsUseNoFutureInformation(t *testing.T) {
	var ds []Decision
	plain := impressionsOf(t, scripted(), testConfig(&ds))
	h := scripted()
	for u := 30; u < 40; u++ {
		h.Watches = append(h.Watches, Watch{User: lr.UserID(u), Streamer: 3, Stream: 103, Start: at(13, 10).Add(time.Duration(u) * time.Second), End: at(14, 0)})
		h.Gifts = append(h.Gifts, Gift{User: lr.UserID(u), Streamer: 3, Stream: 103, Amount: 100, At: at(13, 11)})
	}
	h.Follows = append(h.Follows, Follow{User: 12, Streamer: 3, At: at(13, 10).Add(time.Second)})
	planted := impressionsOf(t, h, testConfig(&ds))
	for _, t0 := range []time.Time{at(13, 0), at(13, 10)} {
		p, q := plain[t0], planted[t0]
		if len(p) != len(q) || len(p) == 0 {
			t.Fatalf("at %s: %d and %d impressions", t0.Format("15:04"), len(p), len(q))
		}
		for i := range p {
			if p[i].Streamer != q[i].Streamer || p[i].Rank != q[i].Rank || !slices.Equal(p[i].X, q[i].X) {
				t.Errorf("at %s: impression %d changed by later events:\n plain   %+v\n planted %+v", t0.Format("15:04"), i, p[i], q[i])
			}
		}
	}
	if !find(planted[at(13, 10)], 3).Follow || find(plain[at(13, 10)], 3).Follow {
		t.Error("the planted follow is the outcome's, and only the planted history's")
	}
}

// AllNew scores every decision of a user without a nightly vector; the
// ones off the sample reach OnDecision only, marked Extra.
func TestReplayAllNewScoresEveryDecisionOfNewUsers(t *testing.T) {
	h := scripted()
	// User 50 has no history before noon: watches 2 at 13:05, 3 at 13:15.
	h.Watches = append(h.Watches,
		Watch{User: 50, Streamer: 2, Stream: 102, Start: at(13, 5), End: at(13, 8)},
		Watch{User: 50, Streamer: 3, Stream: 103, Start: at(13, 15), End: at(13, 30)})
	// Held out in time order: 10@13:00, 50@13:05, 12@13:10, 50@13:15,
	// 11@13:20 (not live); at most 2 decisions: every third.
	for _, allNew := range []bool{false, true} {
		var ds []Decision
		cfg := testConfig(&ds)
		cfg.MaxDecisions, cfg.AllNew = 2, allNew
		rep, err := Run(context.Background(), h, cfg)
		if err != nil {
			t.Fatal(err)
		}
		full, _ := rep.Row(Full)
		if rep.Decisions != 2 || full.All.N != 2 {
			t.Fatalf("AllNew %v: %d decisions, full row over %d, want 2 and 2", allNew, rep.Decisions, full.All.N)
		}
		// The new user's decision in the figures (not the extra one) has
		// the row's new-users figures to itself.
		for _, r := range rep.Rows {
			if r.NewUsers.N != 1 {
				t.Errorf("AllNew %v: row %s: new users' figures over %d decisions, want 1", allNew, r.Name, r.NewUsers.N)
			}
		}
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%d@%s known=%v extra=%v", d.User, d.At.Format("15:04"), d.Known, d.Extra))
		}
		want := []string{"10@13:00 known=true extra=false", "50@13:15 known=false extra=false"}
		if allNew {
			want = []string{"10@13:00 known=true extra=false", "50@13:05 known=false extra=true", "50@13:15 known=false extra=false"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("AllNew %v: decisions %q, want %q", allNew, got, want)
		}
	}
}

// The builder gives a watch the context of the decision reported just
// before its viewer.joined, and streams their language; the replay asks
// with that context, so the impressions carry the context features.
func TestImpressionsCarryTheRequestContext(t *testing.T) {
	var b Builder
	for _, e := range []lr.Event{
		{Type: lr.EventStreamStarted, TS: at(1, 0), StreamerID: 1, StreamID: 101, Language: "pt-BR"},
		{Type: lr.EventStreamStarted, TS: at(1, 0), StreamerID: 2, StreamID: 102, Language: "en"},
	} {
		b.Add(e)
	}
	rc := lr.RequestContext{Device: lr.DeviceMobile, Language: "pt", Country: "BR"}.AtLocalTime(at(15, 0))
	b.Context(7, at(2, 0), rc)
	b.Add(lr.Event{Type: lr.EventViewerJoined, TS: at(2, 0), StreamerID: 1, StreamID: 101, UserID: 7})
	b.Context(8, at(2, 5), rc) // the next join of 8 is at another time: no context
	b.Add(lr.Event{Type: lr.EventViewerJoined, TS: at(2, 6), StreamerID: 1, StreamID: 101, UserID: 8})
	h := b.History()
	if h.Streams[0].Language != "pt-BR" || h.Watches[0].Context != rc || h.Watches[1].Context != (lr.RequestContext{}) {
		t.Fatalf("streams %+v watches %+v", h.Streams, h.Watches)
	}

	h = scripted()
	h.Streams[0].Language, h.Streams[1].Language = "pt", "en"
	for i := range h.Watches {
		if h.Watches[i].User == 12 && h.Watches[i].Start == at(13, 10) {
			h.Watches[i].Context = rc
		}
	}
	var ds []Decision
	got := impressionsOf(t, h, testConfig(&ds))
	idx := func(name string) int { return slices.Index(rerank.FeatureNames, name) }
	for s, match := range map[lr.StreamerID]float64{1: 1, 2: 0, 3: 0} {
		x := find(got[at(13, 10)], s).X
		if x[idx("language_match")] != match || x[idx("device_mobile")] != 1 || math.Abs(x[idx("hour_cos")]-math.Cos(2*math.Pi*15/24)) > 1e-9 {
			t.Errorf("streamer %d at 13:10: context features %v, want language_match %v, mobile, 15:00", s, x[idx("hour_sin"):], match)
		}
		if x := find(got[at(13, 0)], s).X; slices.ContainsFunc(x[idx("hour_sin"):], func(v float64) bool { return v != 0 }) {
			t.Errorf("streamer %d at 13:00 (no context): context features %v", s, x[idx("hour_sin"):])
		}
	}
}

// A fold-in row gives a user without a nightly vector one folded in from
// the watches of the session (not before the first watch); without a
// fold-in row nobody is folded in.
func TestReplayFoldInGivesNewUsersAVector(t *testing.T) {
	h := scripted()
	h.Watches = append(h.Watches,
		Watch{User: 50, Streamer: 2, Stream: 102, Start: at(13, 5), End: at(13, 8)},
		Watch{User: 50, Streamer: 3, Stream: 103, Start: at(13, 15), End: at(13, 30)})
	for _, fold := range []bool{false, true} {
		var ds []Decision
		cfg := testConfig(&ds)
		cfg.Rerankers = []Reranker{{Name: "folded", FoldIn: fold}}
		if _, err := Run(context.Background(), h, cfg); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, fmt.Sprintf("%d@%s known=%v folded=%v", d.User, d.At.Format("15:04"), d.Known, d.Folded))
		}
		want := []string{"10@13:00 known=true folded=false", "50@13:05 known=false folded=false", "12@13:10 known=true folded=false", "50@13:15 known=false folded=true"}
		if !fold {
			want[3] = "50@13:15 known=false folded=false"
		}
		if !slices.Equal(got, want) {
			t.Errorf("fold-in %v: %q, want %q", fold, got, want)
		}
	}
}

// With Config.FoldIn the full row serves the folded vector: the
// impressions of a new user's second decision carry MF scores, which
// without it they cannot (no nightly vector).
func TestImpressionsWithFoldInCarryTheFoldedMFScore(t *testing.T) {
	h := scripted()
	h.Watches = append(h.Watches,
		Watch{User: 50, Streamer: 2, Stream: 102, Start: at(13, 5), End: at(13, 8)},
		Watch{User: 50, Streamer: 3, Stream: 103, Start: at(13, 15), End: at(13, 30)})
	hasMF := slices.Index(rerank.FeatureNames, "has_mf")
	for _, fold := range []bool{false, true} {
		var ds []Decision
		cfg := testConfig(&ds)
		cfg.FoldIn = fold
		got := impressionsOf(t, h, cfg)
		for _, when := range []time.Time{at(13, 5), at(13, 15)} {
			n := 0
			for _, im := range got[when] {
				if im.X[hasMF] == 1 {
					n++
				}
			}
			if want := fold && when == at(13, 15); (n > 0) != want {
				t.Errorf("fold-in %v, user 50 at %s: %d candidates with an MF score, want some: %v", fold, when.Format("15:04"), n, want)
			}
		}
	}
}
