package recommend_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/userstore"
)

// trainedScorer is a small trained NeuMF over users 101.. and streamers
// 1..: the in-memory scorer, with its users.
func trainedScorer(t *testing.T) *embed.IDScorer {
	t.Helper()
	cfg := embed.DefaultNeuMFConfig()
	cfg.Pretrain, cfg.Epochs, cfg.Dim, cfg.Layers = nil, 2, 16, []int{16, 8, 8}
	rng := rand.New(rand.NewPCG(7, 7))
	const nu, ni = 20, 40
	var train []embed.Interaction
	for i := 0; i < 800; i++ {
		train = append(train, embed.Interaction{User: int32(rng.IntN(nu)), Item: int32(rng.IntN(ni)), Value: 1})
	}
	m, err := embed.TrainNeuMF(context.Background(), train, nu, ni, cfg)
	if err != nil {
		t.Fatal(err)
	}
	uids, sids := make([]int64, nu), make([]int64, ni)
	for i := range uids {
		uids[i] = int64(101 + i)
	}
	for i := range sids {
		sids[i] = int64(1 + i)
	}
	return embed.NewIDScorer(m, uids, sids)
}

func roundTrip(t *testing.T, sc *embed.IDScorer, format string) *embed.IDScorer {
	t.Helper()
	b, err := sc.MarshalBinary()
	if format == embed.ScorerFormatV1 {
		b, err = sc.MarshalBinaryV1()
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := embed.DecodeScorer(format, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A stored scorer without users, bound to a user's row of the store, gives
// the logits the in-memory scorer gives that user; a row it cannot score
// (another version, no MLP embedding, no vector, another shape) gives nil.
// A legacy scorer scores from its own users whatever the row.
func TestNeuMFForUser(t *testing.T) {
	sc := trainedScorer(t)
	ords := lr.NewOrdinals()
	ask := []uint32{ords.Ordinal(7), ords.Ordinal(999), ords.Ordinal(1), ords.Ordinal(40)} // 999: not in the model
	const modelID = 42
	memory := recommend.NewNeuMF("n1", modelID, sc, ords)
	stored := recommend.NewNeuMF("n1", modelID, roundTrip(t, sc, embed.ScorerFormat), ords)
	legacy := recommend.NewNeuMF("n1", modelID, roundTrip(t, sc, embed.ScorerFormatV1), ords)
	if stored.HoldsUsers() || !legacy.HoldsUsers() {
		t.Fatalf("HoldsUsers: stored %v, legacy %v", stored.HoldsUsers(), legacy.HoldsUsers())
	}
	want, got := make([]float32, len(ask)), make([]float32, len(ask))
	for _, uid := range []int64{101, 110, 120} {
		u := lr.UserID(uid)
		uG, pm, ok := sc.UserRow(uid)
		if !ok {
			t.Fatalf("user %d not in the model", uid)
		}
		row := userstore.Row{Versions: userstore.Versions{MF: 3, NCF: modelID}, NCF: uG, MLP: pm}
		if !memory.ScoreOrdinals(u, ask, want) {
			t.Fatalf("in-memory scorer refused user %d", uid)
		}
		for name, n := range map[string]*recommend.NeuMF{"stored": stored, "legacy": legacy} {
			b := n.ForUser(u, row)
			if b == nil {
				t.Fatalf("%s: no scorer for a row of its version", name)
			}
			// The bound scorer ignores the user argument of its methods.
			arg := u
			if name == "stored" {
				arg = 0
			}
			if !b.ScoreOrdinals(arg, ask, got) {
				t.Fatalf("%s: user %d refused", name, uid)
			}
			for k := range want {
				if got[k] != want[k] {
					t.Fatalf("%s user %d ordinal %d: %v, in memory %v", name, uid, ask[k], got[k], want[k])
				}
			}
			s, ok := b.Score(arg, 7)
			ref, _ := memory.Score(u, 7)
			if !ok || math.Abs(float64(s-ref)) > 1e-4*(1+math.Abs(float64(ref))) {
				t.Fatalf("%s: Score(%d, 7) = %v/%v, in memory %v", name, uid, s, ok, ref)
			}
			if _, ok := b.Score(arg, 999); ok {
				t.Fatalf("%s: a streamer outside the model scored", name)
			}
		}
		if got[1] != -math.MaxFloat32 {
			t.Fatalf("a streamer outside the model scored %v", got[1])
		}
		for name, bad := range map[string]userstore.Row{
			"another version":     {Versions: userstore.Versions{NCF: modelID + 1}, NCF: uG, MLP: pm},
			"no NCF version":      {Versions: userstore.Versions{MF: 3}, NCF: uG, MLP: pm},
			"no MLP embedding":    {Versions: row.Versions, NCF: uG},
			"no NCF vector":       {Versions: row.Versions, MLP: pm},
			"unknown user":        {Versions: row.Versions},
			"vector of another d": {Versions: row.Versions, NCF: uG[1:], MLP: pm},
			"MLP of another size": {Versions: row.Versions, NCF: uG, MLP: append(pm, 1)},
		} {
			if b := stored.ForUser(u, bad); b != nil {
				t.Errorf("%s: ForUser = %v, want nil", name, b)
			}
			if b := legacy.ForUser(u, bad); b == nil || !b.ScoreOrdinals(u, ask, got) {
				t.Errorf("%s: the legacy scorer did not score from its own users", name)
			}
		}
	}
}

// Binding a row and scoring a request's candidates allocates at most the
// bound value.
func TestNeuMFForUserAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector drops pooled buffers")
	}
	sc := trainedScorer(t)
	ords := lr.NewOrdinals()
	ask := make([]uint32, 40)
	for i := range ask {
		ask[i] = ords.Ordinal(lr.StreamerID(i + 1))
	}
	n := recommend.NewNeuMF("n1", 5, roundTrip(t, sc, embed.ScorerFormat), ords)
	uG, pm, _ := sc.UserRow(103)
	row := userstore.Row{Versions: userstore.Versions{NCF: 5}, NCF: uG, MLP: pm}
	out := make([]float32, len(ask))
	n.ForUser(103, row).ScoreOrdinals(103, ask, out) // warm the pools
	allocs := testing.AllocsPerRun(100, func() {
		if !n.ForUser(103, row).ScoreOrdinals(103, ask, out) {
			t.Fatal("refused")
		}
	})
	t.Logf("%v allocations per request", allocs)
	if allocs > 1 {
		t.Fatalf("%v allocations per request, want at most 1", allocs)
	}
}
