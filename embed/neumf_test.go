package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// lossOf is the binary cross-entropy of one sample under m.
func lossOf(m *NeuMF, u, i int, y float64) float64 {
	z := float64(m.Score(u, i))
	if y > 0 {
		return softplus(-z)
	}
	return softplus(z)
}

// TestNeuMFGradientCheck compares backward's analytic gradients with central
// finite differences of the loss, for every dense parameter and every
// embedding entry of the sample's user and item, on positive and negative
// labels and on several depths of MLP.
func TestNeuMFGradientCheck(t *testing.T) {
	for _, layers := range [][]int{{4}, {4, 3}, {6, 5, 3}} {
		for _, y := range []float64{0, 1} {
			cfg := DefaultNeuMFConfig()
			cfg.Dim, cfg.Layers, cfg.InitStd = 3, layers, 0.7
			m := newNeuMF(3, 4, cfg, rand.New(rand.NewPCG(uint64(len(layers)), uint64(y))))
			for k := range m.Dense { // non-zero biases too
				if m.Dense[k] == 0 {
					m.Dense[k] = 0.3
				}
			}
			u, i := 1, 2
			lo := newLayout(m.Dim, m.Layers)
			s := newScratch(m.Dim, m.Layers)
			z := m.forward(&lo, u, i, s, nil)
			g := float32(1/(1+math.Exp(-float64(z))) - y)
			dDense := make([]float32, lo.size)
			e := m.mlpDim()
			dpg, dqg, dpm, dqm := make([]float32, m.Dim), make([]float32, m.Dim), make([]float32, e), make([]float32, e)
			m.backward(&lo, u, i, g, s, nil, dDense, dpg, dqg, dpm, dqm)
			check := func(name string, p []float32, k int, analytic float32) {
				t.Helper()
				const h = 1e-3
				old := p[k]
				p[k] = old + h
				up := lossOf(m, u, i, y)
				p[k] = old - h
				down := lossOf(m, u, i, y)
				p[k] = old
				num := (up - down) / (2 * h)
				if math.Abs(num-float64(analytic)) > 2e-3+0.02*math.Abs(num) {
					t.Errorf("layers %v y=%v: d loss/d %s[%d]: analytic %.5f, numeric %.5f", layers, y, name, k, analytic, num)
				}
			}
			for k := range m.Dense {
				check("dense", m.Dense, k, dDense[k])
			}
			for f := 0; f < m.Dim; f++ {
				check("PG", m.PG, u*m.Dim+f, dpg[f])
				check("QG", m.QG, i*m.Dim+f, dqg[f])
			}
			for f := 0; f < e; f++ {
				check("PM", m.PM, u*e+f, dpm[f])
				check("QM", m.QM, i*e+f, dqm[f])
			}
		}
	}
}

func TestNeuMFRetrievalVectorsReproduceGMF(t *testing.T) {
	cfg := DefaultNeuMFConfig()
	cfg.Dim, cfg.Layers, cfg.InitStd = 5, []int{4, 2}, 0.5
	m := newNeuMF(3, 4, cfg, rand.New(rand.NewPCG(1, 2)))
	users, items := m.RetrievalVectors()
	lo := newLayout(m.Dim, m.Layers)
	s := newScratch(m.Dim, m.Layers)
	for u := 0; u < 3; u++ {
		for i := 0; i < 4; i++ {
			full := m.forward(&lo, u, i, s, nil)
			// The GMF part is the full logit minus the MLP part and the bias.
			mlp := dot(m.Dense[lo.hM:lo.hM+2], s.z[len(s.z)-1]) + m.Dense[lo.bias]
			got := dot(users[u*5:(u+1)*5], items[i*5:(i+1)*5])
			if math.Abs(float64(got-(full-mlp))) > 1e-5 {
				t.Fatalf("(%d,%d): retrieval dot %v, GMF part %v", u, i, got, full-mlp)
			}
		}
	}
}

func TestNeuMFPlantedAndDeterministic(t *testing.T) {
	d := planted(3, 10, 60, 60, 20)
	cfg := DefaultNeuMFConfig()
	cfg.Dim, cfg.Layers, cfg.Epochs, cfg.LR = 8, []int{16, 8}, 5, 0.01
	m, err := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := EvaluateLOO(m, d.Test)
	t.Logf("planted NeuMF: HR@1 %.3f HR@5 %.3f HR@10 %.3f", r.HR1, r.HR5, r.HR10)
	if r.HR10 < .95 || math.Abs(r.HR5-.5) > .1 {
		t.Fatalf("planted NeuMF: HR@5 %.3f HR@10 %.3f, want ≈ .5 / 1", r.HR5, r.HR10)
	}
	cfg.Epochs = 2
	a, _ := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg)
	b, _ := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg)
	if !slices.Equal(a.Dense, b.Dense) || !slices.Equal(a.PG, b.PG) || !slices.Equal(a.QM, b.QM) {
		t.Fatal("same seed, different weights")
	}
	cfg.Workers = 1
	c, _ := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg)
	if !slices.Equal(a.PG, c.PG) {
		// The reduction order differs with the worker count, so only near-equality holds.
		for k := range a.PG {
			if math.Abs(float64(a.PG[k]-c.PG[k])) > 1e-3 {
				t.Fatalf("1 worker vs %d: PG[%d] %v vs %v", len(a.PG), k, c.PG[k], a.PG[k])
			}
		}
	}
}

func TestNeuMFRefusals(t *testing.T) {
	d := planted(1, 10, 5, 20, 3)
	cfg := DefaultNeuMFConfig()
	cfg.LR = 1e30 // diverges at once
	cfg.Epochs = 3
	if _, err := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg); err == nil || !strings.Contains(err.Error(), "diverged") {
		t.Fatalf("huge lr: err = %v", err)
	}
	for _, f := range []func(*NeuMFConfig){
		func(c *NeuMFConfig) { c.Layers = []int{3} },
		func(c *NeuMFConfig) { c.Layers = nil },
		func(c *NeuMFConfig) { c.Batch = 0 },
		func(c *NeuMFConfig) { c.Dim = -1 },
	} {
		cfg := DefaultNeuMFConfig()
		f(&cfg)
		if _, err := TrainNeuMF(context.Background(), d.Train, d.NUsers, d.NItems, cfg); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := TrainNeuMF(context.Background(), nil, 3, 3, DefaultNeuMFConfig()); err == nil {
		t.Error("empty training set accepted")
	}
}

// TestNeuMFUserCacheMatchesPerSample checks the training path, which shares
// the user half of the first layer across a run of one user's samples,
// against plain per-sample forward and backward passes.
func TestNeuMFUserCacheMatchesPerSample(t *testing.T) {
	cfg := DefaultNeuMFConfig()
	cfg.Dim, cfg.Layers, cfg.InitStd, cfg.Batch, cfg.Workers = 4, []int{6, 5, 3}, 0.7, 16, 1
	m := newNeuMF(3, 5, cfg, rand.New(rand.NewPCG(4, 4)))
	tr := &nmfTrainer{m: m, cfg: cfg, lo: newLayout(cfg.Dim, cfg.Layers)}
	tr.init()
	batch := []sample{{0, 1, 1}, {0, 2, 0}, {0, 4, 0}, {2, 3, 1}, {2, 0, 0}, {1, 1, 1}, {0, 3, 0}}
	inv := float32(1) / float32(len(batch))
	w := tr.workers[0]
	tr.run(w, batch, 0, len(batch), inv)
	e := m.mlpDim()
	gotPM := make([]float32, m.NUsers*e)
	for k, sm := range batch {
		addTo(gotPM[int(sm.u)*e:int(sm.u+1)*e], tr.gpm[k*e:(k+1)*e])
	}
	lo := newLayout(m.Dim, m.Layers)
	s := newScratch(m.Dim, m.Layers)
	wantDense := make([]float32, lo.size)
	wantPM := make([]float32, m.NUsers*e)
	dpg, dqg, dpm, dqm := make([]float32, m.Dim), make([]float32, m.Dim), make([]float32, e), make([]float32, e)
	for _, sm := range batch {
		z := m.forward(&lo, int(sm.u), int(sm.i), s, nil)
		g := float32(1/(1+math.Exp(-float64(z)))-float64(sm.label)) * inv
		m.backward(&lo, int(sm.u), int(sm.i), g, s, nil, wantDense, dpg, dqg, dpm, dqm)
		addTo(wantPM[int(sm.u)*e:int(sm.u+1)*e], dpm)
	}
	for k := range wantDense {
		if math.Abs(float64(wantDense[k]-w.dense[k])) > 1e-6 {
			t.Fatalf("dense[%d]: cached %v, per-sample %v", k, w.dense[k], wantDense[k])
		}
	}
	for k := range wantPM {
		if math.Abs(float64(wantPM[k]-gotPM[k])) > 1e-6 {
			t.Fatalf("PM grad[%d]: cached %v, per-sample %v", k, gotPM[k], wantPM[k])
		}
	}
}

// TestNeuMFQualityLastfm is the NeuMF quality regression test on the
// published Last.fm split with the tuned defaults (HR@10 .894, NDCG@10 .594
// when written). It takes ~20 s, several minutes under the race detector,
// so it runs only without -race.
func TestNeuMFQualityLastfm(t *testing.T) {
	if raceEnabled {
		t.Skip("skipping: NeuMF on lastfm is too slow under the race detector; run go test ./embed without -race")
	}
	d, err := LoadNamed(datasets(t), "lastfm")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Train(context.Background(), "ncf", d, Params{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lastfm NeuMF: HR@10 %.4f NDCG@10 %.4f in %.1f s", r.Metrics.HR10, r.Metrics.NDCG10, r.TrainS)
	if r.Metrics.HR10 < .885 || r.Metrics.NDCG10 < .585 {
		t.Fatalf("lastfm NeuMF regressed: HR@10 %.4f NDCG@10 %.4f, floor .885 / .585", r.Metrics.HR10, r.Metrics.NDCG10)
	}
}
