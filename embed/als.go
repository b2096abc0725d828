package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"

	lr "github.com/liverecall/liverecall"
)

// ALSConfig holds the hyper-parameters of implicit-feedback ALS (Hu, Koren &
// Volinsky, ICDM 2008). The defaults (DefaultALSConfig) were tuned on
// validation splits carved out of the training files and are the same on
// every dataset.
type ALSConfig struct {
	Dim     int     // latent factors
	Epochs  int     // alternating sweeps (users then items)
	Reg     float64 // L2 regularisation λ
	Alpha   float64 // confidence slope: c = 1 + Alpha·s
	Eps     float64 // strength scale: s = log(1 + value/Eps) (Hu et al.'s log scaling); 0 means s = value
	CGSteps int     // conjugate-gradient steps per solve (warm-started)
	InitStd float64 // standard deviation of the random initial factors
	Seed    uint64
	// Progress, if set, is called after each epoch from the training goroutine.
	Progress func(epoch, epochs int)
}

// DefaultALSConfig returns the tuned defaults.
func DefaultALSConfig() ALSConfig {
	return ALSConfig{Dim: 64, Epochs: 15, Reg: 50, Alpha: 4, Eps: 1, CGSteps: 3, InitStd: 0.01, Seed: 1}
}

// MF is a trained matrix factorization: a user's score for an item is the
// dot product of their vectors. Vectors are row-major in User (NUsers×Dim)
// and Item (NItems×Dim). An MF is read-only after training and safe for
// concurrent use.
type MF struct {
	Dim        int
	NUsers     int
	NItems     int
	User, Item []float32
}

// UserVec returns user u's vector (a view, not a copy).
func (m *MF) UserVec(u int) []float32 { return m.User[u*m.Dim : (u+1)*m.Dim] }

// ItemVec returns item i's vector (a view, not a copy).
func (m *MF) ItemVec(i int) []float32 { return m.Item[i*m.Dim : (i+1)*m.Dim] }

// ScoreItems implements Scorer: the dot product of the vectors. Ids outside
// the trained range score -MaxFloat32 (ranked last).
func (m *MF) ScoreItems(user int32, items []int32, out []float32) {
	if user < 0 || int(user) >= m.NUsers {
		for i := range out {
			out[i] = -math.MaxFloat32
		}
		return
	}
	u := m.UserVec(int(user))
	for i, it := range items {
		if it < 0 || int(it) >= m.NItems {
			out[i] = -math.MaxFloat32
			continue
		}
		out[i] = dot(u, m.ItemVec(int(it)))
	}
}

// dot is the dot product with four accumulators (the trainers' inner loop).
func dot[T float32 | float64](a, b []T) T {
	b = b[:len(a)]
	var s0, s1, s2, s3 T
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

// axpy64 does y += a·x.
func axpy64(a float64, x, y []float64) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

// csr is a sparse row-major matrix of confidences.
type csr struct {
	ptr []int
	idx []int32
	val []float64 // strength s ≥ 0 (confidence is 1 + α·s)
}

// buildCSR groups interactions by row (users when byUser, else items),
// summing the values of duplicate (user, item) pairs, with columns sorted.
func buildCSR(train []Interaction, rows int, byUser bool, strength func(float64) float64) csr {
	type entry struct {
		r, c int32
		v    float64
	}
	es := make([]entry, len(train))
	for i, x := range train {
		r, c := x.User, x.Item
		if !byUser {
			r, c = c, r
		}
		es[i] = entry{r, c, float64(x.Value)}
	}
	slices.SortFunc(es, func(a, b entry) int {
		if a.r != b.r {
			return int(a.r - b.r)
		}
		return int(a.c - b.c)
	})
	m := csr{ptr: make([]int, rows+1)}
	for i := 0; i < len(es); {
		j := i
		v := 0.0
		for ; j < len(es) && es[j].r == es[i].r && es[j].c == es[i].c; j++ {
			v += es[j].v
		}
		m.idx = append(m.idx, es[i].c)
		m.val = append(m.val, strength(v))
		m.ptr[es[i].r+1]++
		i = j
	}
	for r := 0; r < rows; r++ {
		m.ptr[r+1] += m.ptr[r]
	}
	return m
}

// checkTrain validates the sizes and ids of a training set.
func checkTrain(train []Interaction, nUsers, nItems, dim int) error {
	if len(train) == 0 {
		return lr.Errorf(lr.EINVALID, "no training interactions")
	}
	if nUsers <= 0 || nItems <= 0 {
		return lr.Errorf(lr.EINVALID, "need at least one user and one item, got %d users and %d items", nUsers, nItems)
	}
	if dim <= 0 || dim > 4096 {
		return lr.Errorf(lr.EINVALID, "dim must be in [1, 4096], got %d", dim)
	}
	for i, x := range train {
		if x.User < 0 || int(x.User) >= nUsers || x.Item < 0 || int(x.Item) >= nItems {
			return lr.Errorf(lr.EINVALID, "interaction %d: (user %d, item %d) outside %d users × %d items", i, x.User, x.Item, nUsers, nItems)
		}
		if v := float64(x.Value); math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			return lr.Errorf(lr.EINVALID, "interaction %d: value %v is not finite and non-negative", i, x.Value)
		}
	}
	return nil
}

// TrainALS fits implicit-feedback ALS to train (nUsers × nItems, dense ids)
// with conjugate-gradient solves, parallel over users and then items on all
// cores. The result depends only on the data and cfg (Seed included), not on
// scheduling. Duplicate (user, item) rows are summed. It returns an EINVALID
// error for empty or out-of-range input and when the factors stop being
// finite (a diverging fit); ctx is checked between sweeps.
func TrainALS(ctx context.Context, train []Interaction, nUsers, nItems int, cfg ALSConfig) (*MF, error) {
	if err := checkTrain(train, nUsers, nItems, cfg.Dim); err != nil {
		return nil, err
	}
	if cfg.Epochs <= 0 || cfg.CGSteps <= 0 || cfg.Reg < 0 || cfg.Alpha < 0 {
		return nil, lr.Errorf(lr.EINVALID, "ALS: epochs and cg steps must be positive, reg and alpha non-negative (got %d, %d, %v, %v)", cfg.Epochs, cfg.CGSteps, cfg.Reg, cfg.Alpha)
	}
	strength := func(v float64) float64 { return v }
	if cfg.Eps > 0 {
		strength = func(v float64) float64 { return math.Log1p(v / cfg.Eps) }
	}
	byUser := buildCSR(train, nUsers, true, strength)
	byItem := buildCSR(train, nItems, false, strength)
	k := cfg.Dim
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xa15))
	X := make([]float64, nUsers*k)
	Y := make([]float64, nItems*k)
	for i := range X {
		X[i] = rng.NormFloat64() * cfg.InitStd
	}
	for i := range Y {
		Y[i] = rng.NormFloat64() * cfg.InitStd
	}
	for ep := 0; ep < cfg.Epochs; ep++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		alsSweep(X, Y, byUser, k, cfg)
		alsSweep(Y, X, byItem, k, cfg)
		if !finite64(X) || !finite64(Y) {
			return nil, lr.Errorf(lr.EINVALID, "ALS diverged: factors are not finite after epoch %d (lower alpha or raise reg)", ep+1)
		}
		if cfg.Progress != nil {
			cfg.Progress(ep+1, cfg.Epochs)
		}
	}
	m := &MF{Dim: k, NUsers: nUsers, NItems: nItems, User: make([]float32, len(X)), Item: make([]float32, len(Y))}
	for i, v := range X {
		m.User[i] = float32(v)
	}
	for i, v := range Y {
		m.Item[i] = float32(v)
	}
	return m, nil
}

func finite64(xs []float64) bool {
	for _, v := range xs {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// gram returns YᵀY + reg·I (k×k, row-major), computed in parallel.
func gram(Y []float64, k int, reg float64) []float64 {
	n := len(Y) / k
	const chunk = 256
	parts := make([][]float64, (n+chunk-1)/chunk)
	parallelFor(len(parts), 1, func(lo, hi int) {
		for p := lo; p < hi; p++ {
			g := make([]float64, k*k)
			for r := p * chunk; r < min((p+1)*chunk, n); r++ {
				y := Y[r*k : (r+1)*k]
				for a := 0; a < k; a++ {
					axpy64(y[a], y, g[a*k:(a+1)*k])
				}
			}
			parts[p] = g
		}
	})
	G := make([]float64, k*k)
	for _, g := range parts { // summed in a fixed order: deterministic
		for i, v := range g {
			G[i] += v
		}
	}
	for a := 0; a < k; a++ {
		G[a*k+a] += reg
	}
	return G
}

// alsSweep recomputes every row of X given the fixed factors Y: for row u it
// runs CGSteps of conjugate gradient on
// (YᵀY + λI + Σ_i α·s_ui·y_i y_iᵀ) x_u = Σ_i (1 + α·s_ui) y_i,
// warm-started from the current x_u.
func alsSweep(X, Y []float64, m csr, k int, cfg ALSConfig) {
	G := gram(Y, k, cfg.Reg)
	rows := len(m.ptr) - 1
	parallelFor(rows, 64, func(lo, hi int) {
		r := make([]float64, k)
		p := make([]float64, k)
		ap := make([]float64, k)
		for u := lo; u < hi; u++ {
			x := X[u*k : (u+1)*k]
			idx, val := m.idx[m.ptr[u]:m.ptr[u+1]], m.val[m.ptr[u]:m.ptr[u+1]]
			if len(idx) == 0 {
				clear(x)
				continue
			}
			// r = b - A x
			for a := 0; a < k; a++ {
				r[a] = -dot(G[a*k:(a+1)*k], x)
			}
			for j, it := range idx {
				y := Y[int(it)*k : (int(it)+1)*k]
				c1 := cfg.Alpha * val[j] // c - 1
				axpy64((1+c1)-c1*dot(y, x), y, r)
			}
			copy(p, r)
			rs := dot(r, r)
			for step := 0; step < cfg.CGSteps && rs > 1e-20; step++ {
				for a := 0; a < k; a++ {
					ap[a] = dot(G[a*k:(a+1)*k], p)
				}
				for j, it := range idx {
					y := Y[int(it)*k : (int(it)+1)*k]
					axpy64(cfg.Alpha*val[j]*dot(y, p), y, ap)
				}
				pap := dot(p, ap)
				if pap <= 0 {
					break
				}
				a := rs / pap
				axpy64(a, p, x)
				axpy64(-a, ap, r)
				rsNew := dot(r, r)
				beta := rsNew / rs
				for i := range p {
					p[i] = r[i] + beta*p[i]
				}
				rs = rsNew
			}
		}
	})
}
