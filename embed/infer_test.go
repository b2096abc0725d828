package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	lr "github.com/liverecall/liverecall"
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
		out, outFor := make([]float32, len(items)), make([]float32, len(items))
		// Given by its vectors (its retrieval vector and MLP embedding,
		// as stored), a user gets the logits of its dense index bit for bit.
		uv, _ := m.RetrievalVectors()
		d, e := m.Dim, m.mlpDim()
		for u := int32(0); u < 50; u++ {
			x.ScoreItems(u, items, out)
			x.ScoreItemsFor(uv[int(u)*d:int(u+1)*d], m.PM[int(u)*e:int(u+1)*e], items, outFor)
			for k, it := range items {
				want := m.Score(int(u), int(it))
				if math.Abs(float64(out[k]-want)) > 1e-4*(1+math.Abs(float64(want))) {
					t.Fatalf("layers %v user %d item %d: inference %v, Score %v", layers, u, it, out[k], want)
				}
				if outFor[k] != out[k] {
					t.Fatalf("layers %v user %d item %d: from vectors %v, by index %v", layers, u, it, outFor[k], out[k])
				}
			}
		}
		x.ScoreItemsFor(uv[:d-1], m.PM[:e], items[:3], outFor) // another shape
		for k := 0; k < 3; k++ {
			if outFor[k] != -math.MaxFloat32 {
				t.Fatalf("vector of the wrong length scored %v", outFor[k])
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
		// By serving ordinal: ordinals given in another order than the
		// model's, with streamers outside the model among them, and one
		// given after the table was built.
		ords := lr.NewOrdinals()
		for _, id := range []int64{42, 5299, 77, 5003} {
			ords.Ordinal(lr.StreamerID(id))
		}
		byOrd := make([]float32, 4)
		if !s.ScoreOrdinals(1007, []uint32{3}, byOrd) || byOrd[0] != -math.MaxFloat32 {
			t.Fatalf("before IndexOrdinals: %v, want -MaxFloat32", byOrd[0])
		}
		s.IndexOrdinals(ords)
		late := ords.Ordinal(9999)
		ask := []int64{5003, 42, 5299, 9999}
		ordsOf := make([]uint32, len(ask))
		for k, id := range ask {
			ordsOf[k], _ = ords.Lookup(lr.StreamerID(id))
		}
		if ordsOf[3] != late || !s.ScoreOrdinals(1007, ordsOf, byOrd) {
			t.Fatal("known user refused by ordinal")
		}
		for k, id := range ask {
			want, ok := s.Score(1007, id)
			if !ok {
				want = -math.MaxFloat32
			}
			if math.Abs(float64(byOrd[k]-want)) > 1e-4*(1+math.Abs(float64(want))) {
				t.Fatalf("ScoreOrdinals %d (ordinal %d): %v, Score %v", id, ordsOf[k], byOrd[k], want)
			}
		}
		if s.ScoreOrdinals(7, ordsOf, byOrd) {
			t.Fatal("unknown user accepted by ordinal")
		}
		if ords.Len() != 4+1+298 {
			t.Fatalf("%d ordinals, want every model streamer given one (303)", ords.Len())
		}
	}
}

// BenchmarkInferenceScoreItems scores one request's worth of candidates
// (100) with the default architecture over 100k items.
func BenchmarkInferenceScoreItems(b *testing.B) {
	cfg := DefaultNeuMFConfig()
	cfg.Pretrain, cfg.Epochs = nil, 1
	rng := rand.New(rand.NewPCG(3, 3))
	const nu, ni = 1000, 100_000
	train := make([]Interaction, 2000)
	for i := range train {
		train[i] = Interaction{User: int32(rng.IntN(nu)), Item: int32(rng.IntN(ni)), Value: 1}
	}
	m, err := TrainNeuMF(context.Background(), train, nu, ni, cfg)
	if err != nil {
		b.Fatal(err)
	}
	x := NewInference(m)
	items := make([]int32, 100)
	out := make([]float32, len(items))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range items {
			items[k] = int32(rng.IntN(ni))
		}
		x.ScoreItems(int32(i%nu), items, out)
	}
}

// The assembly layer must compute what layerGo computes (up to fused
// multiply-add rounding) for every shape it takes, and layer must fall back
// for the shapes it does not.
func TestLayerKernel(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, pin := range []int{4, 8, 12, 32, 64, 6} {
		for _, pout := range []int{8, 16, 24, 32, 12} {
			for _, n := range []int{1, 2, 7} {
				src := make([]float32, n*pin)
				for i := range src {
					if rng.IntN(3) > 0 { // ReLU outputs: some zeros
						src[i] = float32(rng.NormFloat64())
					}
				}
				wT, b := make([]float32, pin*pout), make([]float32, pout)
				for i := range wT {
					wT[i] = float32(rng.NormFloat64())
				}
				for i := range b {
					b[i] = float32(rng.NormFloat64())
				}
				want, got := make([]float32, n*pout), make([]float32, n*pout+1)
				got[n*pout] = 42 // must not be written
				layerGo(want, src, wT, b, pin, pout)
				layer(got[:n*pout], src, wT, b, pin, pout)
				for i := range want {
					if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("pin %d pout %d n %d: [%d] = %v, want %v", pin, pout, n, i, got[i], want[i])
					}
				}
				if got[n*pout] != 42 {
					t.Fatalf("pin %d pout %d n %d: wrote past the output", pin, pout, n)
				}
			}
		}
	}
	if !hasFMA {
		t.Log("no AVX2/FMA on this CPU: only the portable kernel was checked")
	}
}
