package rerank_test

import (
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// Candidates recall flagged as already shown (admitted only to fill the
// page) come after every other candidate, however well they score.
func TestShownCandidatesRankLast(t *testing.T) {
	best := cand(1, "a", 0.9, 500, "mf")
	best.Shown = true
	cands := []recall.Candidate{best, cand(2, "b", 0.1, 1, "trending"), cand(3, "c", 0.2, 1, "trending")}
	items := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{User: 1}, 3)
	if got := order(items); !slices.Equal(got, []lr.StreamerID{3, 2, 1}) {
		t.Fatalf("order %v, want [3 2 1]: the shown streamer 1 last", got)
	}
}

// The category cap holds back within a group: what it holds back of the
// streamers not shown yet still comes before any streamer already shown.
func TestShownStayLastUnderTheCategoryCap(t *testing.T) {
	shown := cand(9, "b", 0.9, 500, "mf")
	shown.Shown = true
	cands := []recall.Candidate{cand(1, "a", 0.9, 500, "mf"), cand(2, "a", 0.8, 400, "mf"), cand(3, "a", 0.7, 300, "mf"), shown}
	items := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{User: 1, MaxShare: 0.3}, 3)
	for _, it := range items {
		if it.StreamerID == 9 {
			t.Fatalf("order %v: the shown streamer 9 took a slot while three not shown were left", order(items))
		}
	}
}
