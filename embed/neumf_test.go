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
			z := m.forward(&lo, u, i, s)
			g := float32(1/(1+math.Exp(-float64(z))) - y)
			dDense := make([]float32, lo.size)
			e := m.mlpDim()
			dpg, dqg, dpm, dqm := make([]float32, m.Dim), make([]float32, m.Dim), make([]float32, e), make([]float32, e)
			m.backward(&lo, u, i, g, s, dDense, dpg, dqg, dpm, dqm)
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
			full := m.forward(&lo, u, i, s)
			// The GMF part is the full logit minus the MLP part and the bias.
			mlp := dot32(m.Dense[lo.hM:lo.hM+2], s.z[len(s.z)-1]) + m.Dense[lo.bias]
			got := dot32(users[u*5:(u+1)*5], items[i*5:(i+1)*5])
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
