package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
)

// Inference must give NeuMF.Score's logits (up to float32 rounding order)
// for every item, out-of-range items included, whatever the architecture.
func TestInferenceMatchesScore(t *testing.T) {
	for _, layers := range [][]int{{64, 32, 16}, {16, 8}, {32, 16, 8, 4}, {16}} {
		cfg := DefaultNeuMFConfig()
		cfg.Pretrain, cfg.Epochs, cfg.Dim, cfg.Layers = nil, 2, 24, layers
		rng := rand.New(rand.NewPCG(1, uint64(len(layers))))
		var train []Interaction
		for i := 0; i < 3000; i++ {
			train = append(train, Interaction{User: int32(rng.IntN(50)), Item: int32(rng.IntN(300)), Value: 1})
		}
		m, err := TrainNeuMF(context.Background(), train, 50, 300, cfg)
		if err != nil {
			t.Fatal(err)
		}
		x := NewInference(m)
		items := []int32{-1, 300}
		for i := 0; i < 300; i++ {
			items = append(items, int32(i))
		}
		out := make([]float32, len(items))
		for u := int32(0); u < 50; u++ {
			x.ScoreItems(u, items, out)
			for k, it := range items {
				want := m.Score(int(u), int(it))
				if math.Abs(float64(out[k]-want)) > 1e-4*(1+math.Abs(float64(want))) {
					t.Fatalf("layers %v user %d item %d: inference %v, Score %v", layers, u, it, out[k], want)
				}
			}
		}
		x.ScoreItems(50, items[:3], out) // unknown user
		for k := 0; k < 3; k++ {
			if out[k] != -math.MaxFloat32 {
				t.Fatalf("unknown user scored %v", out[k])
			}
		}
		// Through the id scorer: unknown streamers get -MaxFloat32,
		// an unknown user false.
		uids, sids := make([]int64, 50), make([]int64, 300)
		for i := range uids {
			uids[i] = int64(1000 + i)
		}
		for i := range sids {
			sids[i] = int64(5000 + i)
		}
		s := NewIDScorer(m, uids, sids)
		got := make([]float32, 3)
		if !s.ScoreMany(1007, []int64{5003, 42, 5299}, got) {
			t.Fatal("known user refused")
		}
		for k, id := range []int64{5003, 42, 5299} {
			want, ok := s.Score(1007, id)
			if !ok {
				want = -math.MaxFloat32
			}
			if math.Abs(float64(got[k]-want)) > 1e-4*(1+math.Abs(float64(want))) {
				t.Fatalf("ScoreMany %d: %v, Score %v", id, got[k], want)
			}
		}
		if s.ScoreMany(7, []int64{5003}, got) {
			t.Fatal("unknown user accepted")
		}
	}
}
