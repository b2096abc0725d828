package embed

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	lr "github.com/liverecall/liverecall"
)

func TestLiveSetSweep(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	ls := newLiveSet([]Stream{
		{Streamer: 1, Start: at(0), End: at(10)},
		{Streamer: 2, Start: at(5)}, // still live
		{Streamer: 3, Start: at(5), End: at(6)},
		{Streamer: 1, Start: at(8), End: at(20)}, // overlaps its own earlier stream
	})
	for _, tc := range []struct {
		m    int
		want []int64
	}{{0, []int64{1}}, {5, []int64{1, 2, 3}}, {6, []int64{1, 2}}, {10, []int64{1, 2}}, {20, []int64{2}}} {
		got := slices.Clone(ls.at(at(tc.m)))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("live at %d: %v, want %v", tc.m, got, tc.want)
		}
	}
}

// fixedRanker scores streamer id as its value in s; users in known only.
type fixedRanker struct {
	known map[int64]bool
	s     map[int64]float32
}

func (f fixedRanker) ScoreIDs(user int64, ids []int64, out []float32) bool {
	if !f.known[user] {
		return false
	}
	for k, id := range ids {
		out[k] = f.s[id]
	}
	return true
}

func TestEvaluateLiveHandComputed(t *testing.T) {
	t0 := time.Unix(0, 0)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	streams := []Stream{
		{Streamer: 10, Start: at(0), End: at(100)},
		{Streamer: 20, Start: at(0), End: at(100)},
		{Streamer: 30, Start: at(50), End: at(100)},
	}
	r := fixedRanker{known: map[int64]bool{1: true, 2: true}, s: map[int64]float32{10: 3, 20: 2, 30: 2}}
	held := []Watch{
		{User: 1, Streamer: 20, At: at(10)}, // live {10,20}: rank 1
		{User: 2, Streamer: 20, At: at(60)}, // live {10,20,30}: 30 ties → rank 2
		{User: 1, Streamer: 10, At: at(60)}, // rank 0
		{User: 9, Streamer: 10, At: at(60)}, // unknown user: skipped
	}
	seen := func(u, s int64) bool { return u == 1 }
	m := EvaluateLive(r, held, streams, seen)
	if m.Skipped != 1 || m.All.N != 3 || m.Repeat.N != 2 || m.New.N != 1 {
		t.Fatalf("counts: %+v", m)
	}
	if math.Abs(m.All.HR1-1.0/3) > 1e-9 || m.All.HR10 != 1 || m.New.HR1 != 0 || m.Repeat.HR1 != .5 {
		t.Fatalf("metrics: %+v", m)
	}
	if math.Abs(m.MeanLive-(2+3+3)/3.0) > 1e-9 {
		t.Fatalf("mean live %v", m.MeanLive)
	}
}

func TestTrainLiveMFAndNCF(t *testing.T) {
	h := SyntheticHistory(1, 60, 30, 3, 8, 3)
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		cfg := DefaultLiveConfig(kind)
		cfg.ALS.Dim, cfg.NeuMF.Dim, cfg.NeuMF.Layers, cfg.NeuMF.Epochs, cfg.NeuMF.LR = 8, 8, []int{8, 4}, 10, 0.005
		m, err := TrainLive(context.Background(), h, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: HR@5 %.3f, HR@10 all %.3f repeat %.3f new %.3f (n %d, mean live %.1f, skipped %d)", kind, m.Metrics.All.HR5,
			m.Metrics.All.HR10, m.Metrics.Repeat.HR10, m.Metrics.New.HR10, m.Metrics.All.N, m.Metrics.MeanLive, m.Metrics.Skipped)
		if m.Dim != 8 || len(m.Users) != 60 || len(m.Streamers) != 30 || m.HeldWatch == 0 || m.Metrics.All.N == 0 {
			t.Fatalf("%s: dim %d, %d users, %d streamers, %d held, %+v", kind, m.Dim, len(m.Users), len(m.Streamers), m.HeldWatch, m.Metrics)
		}
		// About 13 streamers are live at a time and the user's group is a third
		// of them: a model that learned the groups ranks the target well above
		// chance (HR@5 ≈ 5/live).
		if chance := 5 / m.Metrics.MeanLive; m.Metrics.All.HR5 < 1.5*chance {
			t.Errorf("%s: HR@5 %.3f not above 1.5 × chance (%.3f)", kind, m.Metrics.All.HR5, chance)
		}
		if kind == lr.ModelNCF {
			if m.Scorer == nil || m.Full == nil {
				t.Fatal("ncf: no full scorer")
			}
			testScorerRoundTrips(t, m)
		}
		// The same model evaluated through Evaluate gives the same figures.
		if again := m.Evaluate(NewVectorScorer(m.Users, m.Streamers)); again != m.Metrics {
			t.Fatalf("Evaluate differs: %+v vs %+v", again, m.Metrics)
		}
	}
}

func TestTrainLiveRefusals(t *testing.T) {
	small := SyntheticHistory(1, 3, 3, 1, 1, 2)
	cfg := DefaultLiveConfig(lr.ModelMF)
	if _, err := TrainLive(context.Background(), small, cfg); err == nil || !strings.Contains(err.Error(), "too little data") {
		t.Fatalf("small: err = %v", err)
	}
	if _, err := TrainLive(context.Background(), &History{}, cfg); err == nil || !strings.Contains(err.Error(), "too little data") {
		t.Fatalf("empty: err = %v", err)
	}
	h := SyntheticHistory(1, 30, 12, 3, 4, 3)
	cfg = DefaultLiveConfig(lr.ModelNCF)
	cfg.NeuMF.LR, cfg.NeuMF.Epochs = 1e30, 2
	if _, err := TrainLive(context.Background(), h, cfg); err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("nan: err = %v", err)
	}
}

func TestLiveSamplerDrawsStreamersLiveAtTheTime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	streams := []Stream{
		{Streamer: 100, Start: at(0), End: at(30)},
		{Streamer: 200, Start: at(10), End: at(60)},
		{Streamer: 300, Start: at(20)}, // open
		{Streamer: 400, Start: at(70), End: at(80)},
		{Streamer: 999, Start: at(0)}, // unknown to the model: never drawn
	}
	idx := map[int64]int32{100: 0, 200: 1, 300: 2, 400: 3}
	u := &uniformSampler{nItems: 4, seen: [][]int32{{}}}
	s := newLiveSampler(u, streams, idx)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		m    int
		pos  int32
		want []int32 // the only items that may be drawn
	}{
		{25, 0, []int32{1, 2}},   // 100 (the positive), 200, 300 live
		{40, 1, []int32{2}},      // 200 (the positive), 300 live
		{75, 3, []int32{2}},      // 300 and 400 (the positive) live
		{5, 0, []int32{1, 2, 3}}, // only the positive live: uniform fallback
	} {
		for k := 0; k < 200; k++ {
			got := s.Negative(rng, Interaction{User: 0, Item: tc.pos, Time: at(tc.m).UnixNano()})
			if !slices.Contains(tc.want, got) && !(tc.m == 5 && got == tc.pos) {
				t.Fatalf("at minute %d: drew item %d, want one of %v", tc.m, got, tc.want)
			}
		}
	}
}

func TestLiveSetMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	t0 := time.Unix(0, 0)
	var streams []Stream
	for k := 0; k < 300; k++ {
		st := Stream{Streamer: int64(rng.IntN(40)), Start: t0.Add(time.Duration(rng.IntN(1000)) * time.Minute)}
		if rng.IntN(5) > 0 {
			st.End = st.Start.Add(time.Duration(1+rng.IntN(200)) * time.Minute)
		}
		streams = append(streams, st)
	}
	ls := newLiveSet(streams)
	for m := 0; m < 1300; m += 1 + rng.IntN(7) {
		at := t0.Add(time.Duration(m) * time.Minute)
		want := map[int64]bool{}
		for _, st := range streams {
			if !st.Start.After(at) && (st.End.IsZero() || st.End.After(at)) {
				want[st.Streamer] = true
			}
		}
		got := ls.at(at)
		if len(got) != len(want) {
			t.Fatalf("minute %d: %d live, want %d", m, len(got), len(want))
		}
		for _, id := range got {
			if !want[id] {
				t.Fatalf("minute %d: %d reported live", m, id)
			}
		}
	}
}

func TestEvaluateLiveModels(t *testing.T) {
	h := SyntheticHistory(5, 60, 30, 3, 8, 3)
	cfg := DefaultLiveConfig(lr.ModelMF)
	cfg.ALS.Dim, cfg.NeuMF.Dim, cfg.NeuMF.Layers, cfg.NeuMF.Epochs = 8, 8, []int{8, 4}, 3
	rs, err := EvaluateLiveModels(context.Background(), h, []string{"pop", "als", "ncf"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 || rs[0].Model != "pop" || rs[3].Model != "ncf-full" {
		t.Fatalf("results %+v", rs)
	}
	for _, r := range rs {
		t.Logf("%-8s HR@10 %.3f NDCG@10 %.3f (repeat %.3f, new %.3f)", r.Model, r.Metrics.All.HR10, r.Metrics.All.NDCG10, r.Metrics.Repeat.HR10, r.Metrics.New.HR10)
		if r.Metrics.All.N != rs[0].Metrics.All.N {
			t.Fatalf("%s ranked %d watches, pop %d", r.Model, r.Metrics.All.N, rs[0].Metrics.All.N)
		}
	}
	// The planted groups make ALS beat popularity.
	if rs[1].Metrics.All.NDCG10 <= rs[0].Metrics.All.NDCG10 {
		t.Fatalf("als NDCG@10 %.3f not above pop %.3f", rs[1].Metrics.All.NDCG10, rs[0].Metrics.All.NDCG10)
	}
	if _, err := EvaluateLiveModels(context.Background(), h, []string{"svd"}, cfg); err == nil {
		t.Fatal("unknown model accepted")
	}
}

// testScorerRoundTrips checks the stored forms of m's scorer: the current
// format holds no user and, given each user's stored vectors (Vec, MLP),
// scores as the in-memory scorer does; the legacy format still decodes
// with its users; damaged or mislabelled bytes are refused.
func testScorerRoundTrips(t *testing.T, m *LiveModel) {
	t.Helper()
	ords := lr.NewOrdinals()
	var sids []int64
	for _, e := range m.Streamers {
		sids = append(sids, e.ID)
	}
	sids = append(sids, 424242) // unknown to the model
	ordsOf := make([]uint32, len(sids))
	for k, id := range sids {
		ordsOf[k] = ords.Ordinal(lr.StreamerID(id))
	}
	m.Scorer.IndexOrdinals(ords)

	b, err := m.Scorer.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s2, err := DecodeScorer(ScorerFormat, b)
	if err != nil {
		t.Fatal(err)
	}
	if s2.HoldsUsers() || len(s2.UserIDs) != 0 || len(s2.Model.PG) != 0 || len(s2.Model.PM) != 0 {
		t.Fatalf("a %s scorer holds users: %d ids, %d PG, %d PM", ScorerFormat, len(s2.UserIDs), len(s2.Model.PG), len(s2.Model.PM))
	}
	v1, err := m.Scorer.MarshalBinaryV1()
	if err != nil {
		t.Fatal(err)
	}
	if perUser := float64(len(v1)-len(b)) / float64(len(m.Users)); perUser < 4*float64(m.Dim) {
		t.Fatalf("%s is only %.0f bytes per user smaller than %s", ScorerFormat, perUser, ScorerFormatV1)
	}
	s2.IndexOrdinals(ords)
	if g, e := s2.UserDims(); g != m.Dim || e != len(m.Users[0].MLP) || e == 0 {
		t.Fatalf("UserDims %d, %d; dim %d, stored MLP %d", g, e, m.Dim, len(m.Users[0].MLP))
	}
	want, got := make([]float32, len(ordsOf)), make([]float32, len(ordsOf))
	for _, u := range m.Users {
		if !m.Scorer.ScoreOrdinals(u.ID, ordsOf, want) {
			t.Fatalf("in-memory scorer refused user %d", u.ID)
		}
		if !s2.ScoreOrdinalsFor(u.Vec, u.MLP, ordsOf, got) {
			t.Fatalf("decoded scorer refused the vectors of user %d", u.ID)
		}
		for k := range want {
			if got[k] != want[k] {
				t.Fatalf("user %d streamer %d: from the stored vectors %v, in memory %v", u.ID, sids[k], got[k], want[k])
			}
		}
		// By id: the same logit as the pair scorer, up to rounding.
		ref, _ := m.Scorer.Score(u.ID, sids[0])
		one, ok := s2.ScoreFor(u.Vec, u.MLP, sids[0])
		if !ok || math.Abs(float64(one-ref)) > 1e-4*(1+math.Abs(float64(ref))) {
			t.Fatalf("ScoreFor user %d: %v/%v, Score %v", u.ID, one, ok, ref)
		}
		if uG, pm, ok := m.Scorer.UserRow(u.ID); !ok || !slices.Equal(uG, u.Vec) || !slices.Equal(pm, u.MLP) {
			t.Fatalf("UserRow(%d) is not the stored row", u.ID)
		}
	}
	if got[len(got)-1] != -math.MaxFloat32 {
		t.Fatalf("unknown streamer scored %v", got[len(got)-1])
	}
	u := m.Users[0]
	if s2.ScoreOrdinalsFor(u.Vec[1:], u.MLP, ordsOf, got) || s2.ScoreOrdinalsFor(u.Vec, nil, ordsOf, got) {
		t.Fatal("vectors of the wrong shape accepted")
	}
	if _, ok := s2.ScoreFor(u.Vec, u.MLP, 424242); ok {
		t.Fatal("unknown streamer scored by id")
	}
	if _, ok := s2.Score(u.ID, sids[0]); ok || s2.ScoreOrdinals(u.ID, ordsOf, got) {
		t.Fatal("a scorer without users scored a user by id")
	}

	// The legacy format keeps the users and their in-memory scoring.
	s1, err := DecodeScorer(ScorerFormatV1, v1)
	if err != nil {
		t.Fatal(err)
	}
	if !s1.HoldsUsers() {
		t.Fatal("a legacy scorer lost its users")
	}
	for _, u := range []int64{1, 7} {
		for _, s := range []int64{1001, 1020} {
			a, ok1 := m.Scorer.Score(u, s)
			b, ok2 := s1.Score(u, s)
			if !ok1 || !ok2 || a != b {
				t.Fatalf("legacy round trip: Score(%d,%d) %v/%v vs %v/%v", u, s, a, ok1, b, ok2)
			}
		}
	}
	if _, ok := s1.Score(99999, 1001); ok {
		t.Fatal("unknown user scored")
	}
	for name, c := range map[string]struct {
		format string
		data   []byte
	}{
		"truncated":          {ScorerFormat, b[:len(b)-3]},
		"truncated legacy":   {ScorerFormatV1, v1[:len(v1)-3]},
		"legacy named v2":    {ScorerFormat, v1},
		"v2 named legacy":    {ScorerFormatV1, b},
		"unknown format":     {"neumf-v9", b},
		"empty":              {ScorerFormat, nil},
		"one byte too many":  {ScorerFormat, append(slices.Clone(b), 0)},
		"non-finite weights": {ScorerFormat, nanTail(b)},
	} {
		if _, err := DecodeScorer(c.format, c.data); lr.ErrorCode(err) != lr.EINVALID {
			t.Errorf("%s: err = %v, want EINVALID", name, err)
		}
	}

	// ReadScorer decodes the same from a stream however it is cut, says a
	// stream shorter than its size is truncated, and returns the stream's
	// own errors (the store's checksum) as they are.
	s3, err := ReadScorer(ScorerFormat, int64(len(b)), iotest.OneByteReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s3.StreamIDs, s2.StreamIDs) || !slices.Equal(s3.Model.QG, s2.Model.QG) || !slices.Equal(s3.Model.QM, s2.Model.QM) || !slices.Equal(s3.Model.Dense, s2.Model.Dense) {
		t.Fatal("ReadScorer from a stream a byte at a time decoded other tables than DecodeScorer")
	}
	if _, err := ReadScorer(ScorerFormat, int64(len(b)), bytes.NewReader(b[:len(b)-3])); lr.ErrorCode(err) != lr.EINVALID {
		t.Errorf("stream shorter than its size: err = %v, want EINVALID", err)
	}
	storeErr := lr.Errorf(lr.EINTERNAL, "stored scorer is corrupt")
	if _, err := ReadScorer(ScorerFormat, int64(len(b)), io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(storeErr))); err != storeErr {
		t.Errorf("stream failing half-way: err = %v, want the stream's %v", err, storeErr)
	}
}

// nanTail returns b with its last float32 (the output bias) set to NaN.
func nanTail(b []byte) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[len(b)-4:], math.Float32bits(float32(math.NaN())))
	return b
}

// With Cutoff set, the split is in time: the watches, gifts and follows
// before it train, the watches from it on are held out, whatever Holdout.
func TestSplitHistoryAtCutoff(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	h := &History{}
	for i := 0; i < 10; i++ {
		h.Watches = append(h.Watches, Watch{User: int64(i % 3), Streamer: int64(i % 4), At: t0.Add(time.Duration(i) * time.Hour), Seconds: 60})
	}
	h.Gifts = []Gift{{User: 0, Streamer: 9, At: t0.Add(7 * time.Hour), Amount: 1}, {User: 0, Streamer: 8, At: t0.Add(8 * time.Hour), Amount: 1}}
	cfg := DefaultLiveConfig("mf")
	cfg.MinInteractions, cfg.Holdout, cfg.Cutoff = 1, 0, t0.Add(7*time.Hour+30*time.Minute)
	sp, err := SplitHistory(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sp.TrainWatch != 8 || sp.HeldWatch != 2 || !sp.Cutoff.Equal(cfg.Cutoff) {
		t.Fatalf("train %d held %d cutoff %s, want 8, 2, %s", sp.TrainWatch, sp.HeldWatch, sp.Cutoff, cfg.Cutoff)
	}
	if _, ok := sp.itemIdx[9]; !ok {
		t.Error("the gift before the cut-off does not train")
	}
	if _, ok := sp.itemIdx[8]; ok {
		t.Error("the gift after the cut-off trains")
	}
	cfg.Cutoff = t0.Add(20 * time.Hour)
	if _, err := SplitHistory(h, cfg); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("nothing held out: err %v, want EINVALID", err)
	}
}
