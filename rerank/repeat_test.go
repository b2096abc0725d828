package rerank_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// feature returns the value of the named feature in x.
func feature(t *testing.T, x []float64, name string) float64 {
	t.Helper()
	i := slices.Index(rerank.FeatureNames, name)
	if i < 0 {
		t.Fatalf("no feature %q", name)
	}
	return x[i]
}

// The repeat features read the user's history at the request's time: the
// streamer's share of the sessions, hours since the newest join, sessions
// joined in the last day, and whether it is the candidate the user watched
// most; a streamer never watched has all of them 0.
func TestRepeatFeatures(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	hist := []live.Watch{ // newest first, as live.State.History gives it
		{StreamerID: 4, JoinedAt: now.Add(-time.Hour)},
		{StreamerID: 5, JoinedAt: now.Add(-2 * time.Hour)},
		{StreamerID: 4, JoinedAt: now.Add(-30 * time.Hour)},
		{StreamerID: 4, JoinedAt: now.Add(-50 * time.Hour)},
	}
	cands := []recall.Candidate{cand(4, "a", 0.1, 10, "session"), cand(5, "b", 0.1, 10, "session"), cand(6, "c", 0.1, 10, "mf")}
	ctx := &rerank.Context{User: 1, History: hist, Now: now}
	items := rerank.Rank(cands, rerank.DefaultWeights(), ctx, 3)
	vec := map[lr.StreamerID][]float64{}
	for _, it := range items {
		vec[it.StreamerID] = it.Vector
	}
	for _, c := range []struct {
		id                              lr.StreamerID
		watches, share, hours, day, top float64
	}{
		{4, math.Log1p(3), 3.0 / 4, math.Log1p(1), math.Log1p(1), 1},
		{5, math.Log1p(1), 1.0 / 4, math.Log1p(2), math.Log1p(1), 0},
		{6, 0, 0, 0, 0, 0},
	} {
		x := vec[c.id]
		got := []float64{feature(t, x, "repeat_watches"), feature(t, x, "repeat_share"), feature(t, x, "log_hours_since_watch"),
			feature(t, x, "log_watches_24h"), feature(t, x, "repeat_top")}
		want := []float64{c.watches, c.share, c.hours, c.day, c.top}
		for i := range got {
			if math.Abs(got[i]-want[i]) > 1e-9 {
				t.Errorf("streamer %d: repeat features %v, want %v", c.id, got, want)
				break
			}
		}
	}
	// Features, for one candidate alone, agrees with Rank's vector except
	// repeat_top, which it judges against the candidate alone.
	x := rerank.Features(cands[1], ctx)
	if feature(t, x, "repeat_top") != 1 {
		t.Errorf("Features: repeat_top %v of a watched streamer alone, want 1", feature(t, x, "repeat_top"))
	}
	x[slices.Index(rerank.FeatureNames, "repeat_top")] = 0
	if !slices.Equal(x, vec[5]) {
		t.Errorf("Features %v, Rank's vector %v", x, vec[5])
	}
	// Without a request time, the time-based features are 0.
	items = rerank.Rank(cands[:1], rerank.DefaultWeights(), &rerank.Context{User: 1, History: hist}, 1)
	if h, d := feature(t, items[0].Vector, "log_hours_since_watch"), feature(t, items[0].Vector, "log_watches_24h"); h != 0 || d != 0 {
		t.Errorf("no request time: hours since %v, watches in 24 h %v, want 0 and 0", h, d)
	}
}

// Stored weights of the first feature set (18 features, before the repeat
// features) are read with zero weights for the new ones and score every
// candidate exactly as the old build did; other lengths are refused.
func TestOldFeatureSetWeightsStillLoad(t *testing.T) {
	old := rerank.Weights{Version: "rerank-old", Bias: -1, W: make([]float64, rerank.FeatureSets[0])}
	for i := range old.W {
		old.W[i] = 0.1 * float64(i%5)
	}
	b, _ := json.Marshal(old)
	w, err := rerank.ParseWeights(b)
	if err != nil {
		t.Fatalf("weights of the first feature set refused: %v", err)
	}
	if len(w.W) != rerank.NumFeatures || !slices.Equal(w.W[:len(old.W)], old.W) || slices.ContainsFunc(w.W[len(old.W):], func(x float64) bool { return x != 0 }) {
		t.Fatalf("padded weights %v", w.W)
	}
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	ctx := &rerank.Context{User: 1, Now: now, History: []live.Watch{{StreamerID: 2, JoinedAt: now.Add(-time.Hour)}}}
	cands := []recall.Candidate{cand(1, "a", 0.3, 5, "mf"), cand(2, "b", 0.2, 50, "session")}
	for _, it := range rerank.Rank(cands, w, ctx, 2) {
		z := old.Bias
		for j, x := range it.Vector[:len(old.W)] {
			z += old.W[j] * x
		}
		if want := 1 / (1 + math.Exp(-z)); math.Abs(it.Score-want) > 1e-12 {
			t.Errorf("streamer %d: score %v with padded weights, %v with the old features", it.StreamerID, it.Score, want)
		}
	}
	for _, n := range []int{2, rerank.FeatureSets[0] + 1, rerank.NumFeatures + 1} {
		b, _ := json.Marshal(rerank.Weights{Version: "x", W: make([]float64, n)})
		if _, err := rerank.ParseWeights(b); lr.ErrorCode(err) != lr.EINVALID {
			t.Errorf("weights of %d features: %v, want EINVALID", n, err)
		}
	}
}

// With the default weights the candidate the user watched most comes first
// even when the MF model prefers another streamer the user watched a little
// less (with the first feature set's defaults, repeat_watches 4 and
// mf_score 2, the model's favourite came first: the "most-watched live
// streamer" heuristic beat the full system at HR@1 on the simulator).
func TestDefaultWeightsPutTheMostWatchedFirst(t *testing.T) {
	now := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)
	var hist []live.Watch
	for i, s := range []lr.StreamerID{7, 8, 7, 8, 7} {
		hist = append(hist, live.Watch{StreamerID: s, JoinedAt: now.Add(-time.Duration(i+1) * time.Hour)})
	}
	cands := []recall.Candidate{cand(8, "a", 0.9, 10, "session"), cand(7, "b", 0.1, 10, "session"), cand(9, "c", 0.5, 10, "mf")}
	items := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{User: 1, History: hist, Now: now}, 3)
	if got := order(items); !slices.Equal(got, []lr.StreamerID{7, 8, 9}) {
		t.Fatalf("order %v, want [7 8 9]: the most watched first, then the model's favourite among the rest", got)
	}
}
