package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
)

// solveDense solves A x = b by Gaussian elimination with partial pivoting
// (a reference independent of FoldIn's Cholesky).
func solveDense(A []float64, b []float64) []float64 {
	k := len(b)
	M := slices.Clone(A)
	x := slices.Clone(b)
	for c := 0; c < k; c++ {
		p := c
		for r := c + 1; r < k; r++ {
			if math.Abs(M[r*k+c]) > math.Abs(M[p*k+c]) {
				p = r
			}
		}
		for j := 0; j < k; j++ {
			M[c*k+j], M[p*k+j] = M[p*k+j], M[c*k+j]
		}
		x[c], x[p] = x[p], x[c]
		for r := c + 1; r < k; r++ {
			f := M[r*k+c] / M[c*k+c]
			for j := c; j < k; j++ {
				M[r*k+j] -= f * M[c*k+j]
			}
			x[r] -= f * x[c]
		}
	}
	for r := k - 1; r >= 0; r-- {
		s := x[r]
		for j := r + 1; j < k; j++ {
			s -= M[r*k+j] * x[j]
		}
		x[r] = s / M[r*k+r]
	}
	return x
}

func randVecs(rng *rand.Rand, n, dim int, scale float64) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, dim)
		for a := range out[i] {
			out[i][a] = float32(rng.NormFloat64() * scale)
		}
	}
	return out
}

func gramOf(t *testing.T, dim int, Y [][]float32) *Gramian {
	t.Helper()
	g, err := NewGramian(dim, slices.Values(Y))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestFoldInMatchesBruteForce: on small data the fold-in equals the
// minimiser of the implicit-ALS objective written out over every streamer
// (no Gramian trick), solved by Gaussian elimination: without a prior the
// training's user solve, Σ_all c_i (p_i − xᵀy_i)² + λ‖x‖²; with one, the
// same objective's change from the prior's (see FoldIn).
func TestFoldInMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const dim, n = 6, 40
	Y := randVecs(rng, n, dim, 0.5)
	g := gramOf(t, dim, Y)
	p := FoldInParams{Reg: 2, Alpha: 4, Eps: 1}
	watched := map[int]float64{3: 1800, 7: 60, 21: 5, 4: 0} // item → watch seconds
	var items []FoldInItem
	for _, i := range []int{3, 7, 21, 4} {
		items = append(items, FoldInItem{Vec: Y[i], Value: watched[i]})
	}
	prior := randVecs(rng, 1, dim, 0.3)[0]
	for _, withPrior := range []bool{false, true} {
		// Normal equations of the objective summed over all n streamers.
		A := make([]float64, dim*dim)
		b := make([]float64, dim)
		for a := 0; a < dim; a++ {
			A[a*dim+a] = p.Reg
		}
		var P0 []float64 // (Σ_all y yᵀ + λI) x0, the prior's right-hand side
		if withPrior {
			P0 = make([]float64, dim)
		}
		for i, y := range Y {
			c, pref := 1.0, 0.0
			if v, ok := watched[i]; ok {
				c, pref = 1+p.Alpha*math.Log1p(v/p.Eps), 1
			}
			for a := 0; a < dim; a++ {
				for bb := 0; bb < dim; bb++ {
					A[a*dim+bb] += c * float64(y[a]) * float64(y[bb])
				}
				b[a] += c * pref * float64(y[a])
				if withPrior {
					yx := 0.0
					for bb := 0; bb < dim; bb++ {
						yx += float64(y[bb]) * float64(prior[bb])
					}
					P0[a] += float64(y[a]) * yx
				}
			}
		}
		var pr []float32
		if withPrior {
			pr = prior
			for a := 0; a < dim; a++ {
				b[a] += P0[a] + p.Reg*float64(prior[a])
			}
		}
		want := solveDense(A, b)
		got, err := FoldIn(g, p, pr, items)
		if err != nil {
			t.Fatal(err)
		}
		for a := range want {
			if math.Abs(float64(got[a])-want[a]) > 1e-4*(1+math.Abs(want[a])) {
				t.Fatalf("prior %v: component %d: fold-in %v, brute force %v", withPrior, a, got, want)
			}
		}
	}
}

// TestFoldInWithoutInteractionsKeepsPrior: the prior's precision is the
// model's own, so nothing new gives the nightly vector back.
func TestFoldInWithoutInteractionsKeepsPrior(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	Y := randVecs(rng, 100, 8, 0.4)
	prior := randVecs(rng, 1, 8, 1)[0]
	got, err := FoldIn(gramOf(t, 8, Y), FoldInParams{Reg: 50, Alpha: 4, Eps: 1}, prior, nil)
	if err != nil {
		t.Fatal(err)
	}
	for a := range prior {
		if math.Abs(float64(got[a]-prior[a])) > 1e-4 {
			t.Fatalf("got %v, want the prior %v", got, prior)
		}
	}
}

// TestFoldInNewUserNearestCluster: a user unknown to the model (no prior)
// who watched three streamers of one cluster gets a vector that scores
// that cluster's streamers above every other.
func TestFoldInNewUserNearestCluster(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	const dim, clusters, per = 16, 4, 50
	centers := randVecs(rng, clusters, dim, 1)
	var Y [][]float32
	for c := 0; c < clusters; c++ {
		for _, noise := range randVecs(rng, per, dim, 0.15) {
			v := make([]float32, dim)
			for a := range v {
				v[a] = centers[c][a] + noise[a]
			}
			Y = append(Y, v)
		}
	}
	g := gramOf(t, dim, Y)
	p := FoldInParamsOf(nil)
	for c := 0; c < clusters; c++ {
		items := []FoldInItem{{Y[c*per+1], 600}, {Y[c*per+7], 120}, {Y[c*per+30], 1500}}
		x, err := FoldIn(g, p, nil, items)
		if err != nil {
			t.Fatal(err)
		}
		order := make([]int, len(Y))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return -cmpF(dot(x, Y[a]), dot(x, Y[b])) })
		for _, i := range order[:per] {
			if i/per != c {
				t.Fatalf("cluster %d: streamer %d of cluster %d among the top %d", c, i, i/per, per)
			}
		}
	}
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestFoldInFailures: a NaN in a streamer vector or the prior, a singular
// system, wrong lengths and bad values are refused, with nothing returned.
func TestFoldInFailures(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	Y := randVecs(rng, 30, 4, 0.5)
	g := gramOf(t, 4, Y)
	p := FoldInParams{Reg: 1, Alpha: 4, Eps: 1}
	nan := []float32{1, float32(math.NaN()), 0, 0}
	// Two streamers in 4 dimensions and no regularisation: YᵀY is singular.
	small := gramOf(t, 4, Y[:2])
	cases := map[string]func() ([]float32, error){
		"nan item":    func() ([]float32, error) { return FoldIn(g, p, nil, []FoldInItem{{nan, 10}}) },
		"nan prior":   func() ([]float32, error) { return FoldIn(g, p, nan, []FoldInItem{{Y[0], 10}}) },
		"inf value":   func() ([]float32, error) { return FoldIn(g, p, nil, []FoldInItem{{Y[0], math.Inf(1)}}) },
		"negative":    func() ([]float32, error) { return FoldIn(g, p, nil, []FoldInItem{{Y[0], -1}}) },
		"short item":  func() ([]float32, error) { return FoldIn(g, p, nil, []FoldInItem{{Y[0][:3], 1}}) },
		"short prior": func() ([]float32, error) { return FoldIn(g, p, Y[0][:2], nil) },
		"singular": func() ([]float32, error) {
			return FoldIn(small, FoldInParams{Reg: 0, Alpha: 4}, nil, []FoldInItem{{Y[0], 10}})
		},
		"inf item": func() ([]float32, error) {
			return FoldIn(g, p, nil, []FoldInItem{{[]float32{float32(math.Inf(1)), 0, 0, 0}, 1}})
		},
	}
	for name, f := range cases {
		x, err := f()
		if err == nil || x != nil || lr.ErrorCode(err) != lr.EINVALID {
			t.Errorf("%s: got %v, %v; want an EINVALID error and no vector", name, x, err)
		}
	}
	if _, err := NewGramian(4, slices.Values([][]float32{nan})); err == nil {
		t.Error("a Gramian of a NaN vector was accepted")
	}
}

func TestFoldInParamsOf(t *testing.T) {
	d := DefaultALSConfig()
	if got := FoldInParamsOf([]byte(`{"trainer":"implicit-als","reg":7.5,"alpha":2,"eps":0}`)); got != (FoldInParams{Reg: 7.5, Alpha: 2, Eps: 0}) {
		t.Errorf("stored params: %+v", got)
	}
	want := FoldInParams{Reg: d.Reg, Alpha: d.Alpha, Eps: d.Eps}
	for _, raw := range []string{``, `{}`, `not json`, `{"reg":-1,"alpha":"x"}`} {
		if got := FoldInParamsOf([]byte(raw)); got != want {
			t.Errorf("%q: %+v, want the defaults %+v", raw, got, want)
		}
	}
}

// BenchmarkFoldIn: one user with 20 interactions at the default 64
// dimensions (the serving cost per fold-in, the Gramian precomputed).
func BenchmarkFoldIn(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	Y := randVecs(rng, 2000, 64, 0.1)
	g, err := NewGramian(64, slices.Values(Y))
	if err != nil {
		b.Fatal(err)
	}
	items := make([]FoldInItem, 20)
	for i := range items {
		items[i] = FoldInItem{Vec: Y[i*7], Value: float64(60 * (i + 1))}
	}
	prior := randVecs(rng, 1, 64, 0.3)[0]
	p := FoldInParamsOf(nil)
	b.ResetTimer()
	for range b.N {
		if _, err := FoldIn(g, p, prior, items); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFoldInPriorKeepsNightlyDirection compares, on ALS factors trained on
// synthetic history, the prior FoldIn uses (the model's precision
// YᵀY + λI) with a plain λ‖x − x₀‖²: after one 600-second watch the
// folded vector keeps more of the nightly vector's direction and norm
// (the plain prior lets the YᵀY term pull every vector toward 0). The
// figures are logged (go test -v -run PriorKeeps ./embed).
func TestFoldInPriorKeepsNightlyDirection(t *testing.T) {
	cfg := DefaultLiveConfig(lr.ModelMF)
	cfg.ALS.Epochs = 8
	m, err := TrainLive(context.Background(), SyntheticHistory(1, 800, 200, 8, 5, 3), cfg)
	if err != nil {
		t.Fatal(err)
	}
	k := m.Dim
	var Y [][]float32
	for _, s := range m.Streamers {
		Y = append(Y, s.Vec)
	}
	g := gramOf(t, k, Y)
	p := FoldInParams{Reg: cfg.ALS.Reg, Alpha: cfg.ALS.Alpha, Eps: cfg.ALS.Eps}
	cos := func(a, b []float32) float64 {
		return float64(dot(a, b)) / math.Sqrt(float64(dot(a, a))*float64(dot(b, b)))
	}
	norm := func(a []float32) float64 { return math.Sqrt(float64(dot(a, a))) }
	const n = 200
	var cosP, cosL, normP, normL, norm0 float64
	for u := 0; u < n; u++ {
		x0 := m.Users[u].Vec
		it := FoldInItem{Vec: Y[(u*7)%len(Y)], Value: 600}
		xp, err := FoldIn(g, p, x0, []FoldInItem{it})
		if err != nil {
			t.Fatal(err)
		}
		// The plain prior: (YᵀY + λI + (c−1)yyᵀ) x = λx₀ + c·y.
		A := slices.Clone(g.G)
		b := make([]float64, k)
		y := make([]float64, k)
		c1 := p.Alpha * math.Log1p(it.Value/p.Eps)
		for a := 0; a < k; a++ {
			A[a*k+a] += p.Reg
			b[a] = p.Reg * float64(x0[a])
			y[a] = float64(it.Vec[a])
		}
		for a := 0; a < k; a++ {
			axpy64(c1*y[a], y, A[a*k:(a+1)*k])
		}
		axpy64(1+c1, y, b)
		xl := solveDense(A, b)
		xl32 := make([]float32, k)
		for a, v := range xl {
			xl32[a] = float32(v)
		}
		cosP, cosL = cosP+cos(xp, x0)/n, cosL+cos(xl32, x0)/n
		normP, normL, norm0 = normP+norm(xp)/n, normL+norm(xl32)/n, norm0+norm(x0)/n
	}
	t.Logf("%d users, %d streamers, dim %d; after one 600 s watch: mean cosine with the nightly vector %.3f (model precision prior), %.3f (plain λ prior); mean norm %.3f nightly, %.3f, %.3f",
		n, len(Y), k, cosP, cosL, norm0, normP, normL)
	if cosP <= cosL || math.Abs(normP-norm0) >= math.Abs(normL-norm0) {
		t.Fatalf("the model-precision prior keeps less of the nightly vector than the plain one")
	}
}
