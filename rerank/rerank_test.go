package rerank_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

func cand(id int, cat string, mf float32, viewers int, chans ...string) recall.Candidate {
	return recall.Candidate{Ord: uint32(id), StreamerID: lr.StreamerID(id), MFScore: mf, HasMF: true, Channels: chans,
		Features: live.Features{StreamerID: lr.StreamerID(id), Category: cat, Viewers: viewers, Age: 30 * time.Minute}}
}

func order(items []rerank.Item) []lr.StreamerID {
	var out []lr.StreamerID
	for _, it := range items {
		out = append(out, it.StreamerID)
	}
	return out
}

func TestDefaultWeightsOrderByModelScoreAndRepeat(t *testing.T) {
	cands := []recall.Candidate{
		cand(1, "a", 0.1, 10, "trending"),
		cand(2, "b", 0.9, 10, "mf"),
		cand(3, "c", 0.5, 10, "mf"),
		cand(4, "d", 0.1, 10, "session"),
	}
	ctx := &rerank.Context{User: 1, History: []live.Watch{{StreamerID: 4}, {StreamerID: 4}, {StreamerID: 4}}, Explain: true}
	items := rerank.Rank(cands, rerank.DefaultWeights(), ctx, 4)
	if got := order(items); !slices.Equal(got, []lr.StreamerID{4, 2, 3, 1}) {
		t.Fatalf("order %v, want [4 2 3 1] (repeat viewer first, then by MF score)", got)
	}
	if items[0].Why[0].Feature != "repeat_watches" {
		t.Fatalf("top item's explanation %+v, want repeat_watches first", items[0].Why)
	}
	for i := 1; i < len(items); i++ {
		if items[i].Score > items[i-1].Score {
			t.Fatalf("scores not descending: %v", items)
		}
	}
}

func TestDiversityCapsOneCategory(t *testing.T) {
	var cands []recall.Candidate
	for i := 1; i <= 8; i++ {
		cands = append(cands, cand(i, "music", float32(1-0.01*float64(i)), 10, "mf"))
	}
	cands = append(cands, cand(20, "games", 0.2, 10, "mf"), cand(21, "talk", 0.1, 10, "mf"))
	items := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{MaxShare: 0.5}, 6)
	per := map[string]int{}
	for _, it := range items {
		per[it.Features.Category]++
	}
	if per["music"] != 4 || per["games"] != 1 || per["talk"] != 1 || len(items) != 6 {
		t.Fatalf("page by category %v (n=%d), want 4 music, 1 games, 1 talk", per, len(items))
	}
	// With nothing else to show, held-back items still fill the page.
	items = rerank.Rank(cands[:8], rerank.DefaultWeights(), &rerank.Context{MaxShare: 0.5}, 6)
	if len(items) != 6 {
		t.Fatalf("page of %d, want 6", len(items))
	}
}

func TestWeightsValidation(t *testing.T) {
	if _, err := rerank.ParseWeights([]byte(`{"version":"x","bias":0,"w":[1,2]}`)); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("short weights accepted: %v", err)
	}
	if err := rerank.DefaultWeights().Validate(); err != nil {
		t.Fatal(err)
	}
}

// Training on impressions where followed streamers get watched must raise
// the follow weight and lower the loss.
func TestTrainLearnsFromImpressions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var samples []rerank.Sample
	for i := 0; i < 4000; i++ {
		x := make([]float64, rerank.NumFeatures)
		x[4] = rng.Float64() * 5 // log viewers: noise
		if rng.IntN(3) == 0 {
			x[11] = 1 // followed
		}
		p := 0.05
		if x[11] == 1 {
			p = 0.6
		}
		samples = append(samples, rerank.Sample{X: x, Label: rng.Float64() < p})
	}
	w, err := rerank.Train(samples, rerank.TrainConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	def := rerank.DefaultWeights()
	if rerank.LogLoss(samples, w) >= rerank.LogLoss(samples, def) {
		t.Fatalf("trained loss %.4f not below default %.4f", rerank.LogLoss(samples, w), rerank.LogLoss(samples, def))
	}
	if w.W[11] <= 1.5 {
		t.Fatalf("follow weight %.3f, want > 1.5", w.W[11])
	}
	if _, err := rerank.Train(samples[:0], rerank.TrainConfig{}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("empty training set: %v", err)
	}
}

// fnScorer scores by a fixed function; user 99 and streamers divisible by
// 5 are unknown.
type fnScorer struct{}

func (fnScorer) Score(u lr.UserID, s lr.StreamerID) (float32, bool) {
	if u == 99 || s%5 == 0 {
		return 0, false
	}
	return float32(s%7) - 3, true
}

// batchScorer is fnScorer with the batch method.
type batchScorer struct{ fnScorer }

func (b batchScorer) ScoreMany(u lr.UserID, ids []lr.StreamerID, out []float32) bool {
	if u == 99 {
		return false
	}
	for i, id := range ids {
		s, ok := b.Score(u, id)
		if !ok {
			s = -math.MaxFloat32
		}
		out[i] = s
	}
	return true
}

// ordScorer is batchScorer with the ordinal method; the test candidates'
// ordinals are their ids. It counts its calls.
type ordScorer struct {
	batchScorer
	calls *int
}

func (o ordScorer) ScoreOrdinals(u lr.UserID, ords []uint32, out []float32) bool {
	*o.calls++
	ids := make([]lr.StreamerID, len(ords))
	for i, ord := range ords {
		ids[i] = lr.StreamerID(ord)
	}
	return o.ScoreMany(u, ids, out)
}

// A scorer given as NCFBatch must rank and explain exactly as the same
// scorer asked one candidate at a time (NCF), unknown users and streamers
// included.
func TestBatchNCFScorerMatchesPerCandidate(t *testing.T) {
	var cands []recall.Candidate
	for i := 1; i <= 40; i++ {
		c := cand(i, string(rune('a'+i%6)), float32(i%9)/10, i*3, "mf")
		c.NCFScore, c.HasNCF = 0.25, i%3 == 0
		cands = append(cands, c)
	}
	orig := slices.Clone(cands)
	for _, u := range []lr.UserID{1, 99} {
		one := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{User: u, NCF: fnScorer{}, Explain: true}, 20)
		calls := 0
		for _, sc := range []rerank.NCFOrdinalScorer{ordScorer{calls: &calls}} {
			many := rerank.Rank(cands, rerank.DefaultWeights(), &rerank.Context{User: u, NCF: fnScorer{}, NCFBatch: sc, Explain: true}, 20)
			if len(one) != len(many) {
				t.Fatalf("user %d: %d items one by one, %d in a batch (%T)", u, len(one), len(many), sc)
			}
			for i := range one {
				if one[i].StreamerID != many[i].StreamerID || one[i].Score != many[i].Score || !slices.Equal(one[i].Vector, many[i].Vector) {
					t.Fatalf("user %d item %d: one by one %d %v %v, batch (%T) %d %v %v", u, i,
						one[i].StreamerID, one[i].Score, one[i].Vector, sc, many[i].StreamerID, many[i].Score, many[i].Vector)
				}
			}
		}
		if calls != 1 {
			t.Fatalf("ScoreOrdinals called %d times, want once (Rank prefers NCFBatch)", calls)
		}
	}
	for i := range cands {
		if cands[i].NCFScore != orig[i].NCFScore || cands[i].HasNCF != orig[i].HasNCF {
			t.Fatal("Rank modified the caller's candidates")
		}
	}
}

// Pages handed back with Release are reused by later calls: a reused page
// must rank exactly as a fresh one, whatever the earlier page held, and
// pages in use at the same time must not share memory.
func TestReleaseReusesPages(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	mk := func(n int) []recall.Candidate {
		var cs []recall.Candidate
		for i := 1; i <= n; i++ {
			c := cand(rng.IntN(1000)+1, string(rune('a'+rng.IntN(5))), rng.Float32(), rng.IntN(500), recall.Channels[rng.IntN(len(recall.Channels))])
			cs = append(cs, c)
		}
		return cs
	}
	snapshot := func(items []rerank.Item) (ids []lr.StreamerID, scores []float64, vecs [][]float64) {
		for _, it := range items {
			ids, scores, vecs = append(ids, it.StreamerID), append(scores, it.Score), append(vecs, slices.Clone(it.Vector))
		}
		return
	}
	w := rerank.DefaultWeights()
	for round := 0; round < 50; round++ {
		cands := mk(5 + rng.IntN(120))
		k := 1 + rng.IntN(40)
		ctx := &rerank.Context{User: 7, History: []live.Watch{{StreamerID: cands[0].StreamerID}}, Follows: []lr.StreamerID{cands[len(cands)-1].StreamerID}}
		want := rerank.Rank(cands, w, ctx, k)
		wantIDs, wantScores, wantVecs := snapshot(want)
		// Another page in use at the same time, then both handed back.
		other := rerank.Rank(mk(60), w, &rerank.Context{User: 8}, 30)
		gotIDs, gotScores, gotVecs := snapshot(want)
		if !slices.Equal(gotIDs, wantIDs) || !slices.Equal(gotScores, wantScores) || !slices.EqualFunc(gotVecs, wantVecs, slices.Equal) {
			t.Fatalf("round %d: a page changed while another was ranked", round)
		}
		rerank.Release(other)
		rerank.Release(want)
		again := rerank.Rank(cands, w, ctx, k)
		ids, scores, vecs := snapshot(again)
		if !slices.Equal(ids, wantIDs) || !slices.Equal(scores, wantScores) || !slices.EqualFunc(vecs, wantVecs, slices.Equal) {
			t.Fatalf("round %d: a reused page ranks %v %v, a fresh one %v %v", round, ids, scores, wantIDs, wantScores)
		}
		for i := range again {
			if len(again[i].Vector) != rerank.NumFeatures || cap(again[i].Vector) != rerank.NumFeatures {
				t.Fatalf("round %d item %d: vector len %d cap %d, want %d (capped)", round, i, len(again[i].Vector), cap(again[i].Vector), rerank.NumFeatures)
			}
		}
		rerank.Release(again)
	}
	rerank.Release(nil) // harmless
}

// An explanation gives the reasons for first: positive contributions,
// largest first, then the negative ones, most negative first, even when a
// negative one is the largest in size (here a negative MF score).
func TestWhyListsPositiveContributionsFirst(t *testing.T) {
	c := cand(1, "a", -0.9, 400, "session", "trending")
	c.Features.Age = 3 * time.Hour
	ctx := &rerank.Context{User: 1, History: []live.Watch{{StreamerID: 1}}, Explain: true}
	items := rerank.Rank([]recall.Candidate{c}, rerank.DefaultWeights(), ctx, 1)
	why := items[0].Why
	if len(why) < 3 {
		t.Fatalf("explanation %+v, want several contributions", why)
	}
	neg := 0
	for i, c := range why {
		if c.Effect == 0 {
			t.Fatalf("zero contribution listed: %+v", why)
		}
		if c.Effect < 0 {
			neg++
		}
		if i == 0 {
			continue
		}
		prev := why[i-1]
		switch {
		case prev.Effect < 0 && c.Effect > 0:
			t.Fatalf("a positive contribution after a negative one: %+v", why)
		case prev.Effect > 0 && c.Effect > 0 && c.Effect > prev.Effect:
			t.Fatalf("positive contributions not largest first: %+v", why)
		case prev.Effect < 0 && c.Effect < 0 && c.Effect < prev.Effect:
			t.Fatalf("negative contributions not most negative first: %+v", why)
		}
	}
	if why[0].Effect <= 0 || neg == 0 || why[len(why)-neg].Feature != "mf_score" {
		t.Fatalf("explanation %+v, want a positive one first and the negative mf_score first after the positives", why)
	}
}
