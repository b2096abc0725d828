package embed

import (
	"encoding/json"
	"iter"
	"math"

	lr "github.com/liverecall/liverecall"
)

// FoldInParams are the hyper-parameters of an MF version's user solve (the
// implicit-ALS ones it was trained with): λ, α and the strength scale ε.
type FoldInParams struct {
	Reg   float64 // λ
	Alpha float64 // confidence slope: c = 1 + α·s
	Eps   float64 // s = log(1 + value/ε); 0 means s = value
}

// FoldInParamsOf reads the hyper-parameters stored with an MF version
// (embedding_models.params: "reg", "alpha", "eps", as train writes them);
// a field that is missing or not a finite non-negative number (an imported
// version stores none) takes DefaultALSConfig's value.
func FoldInParamsOf(params json.RawMessage) FoldInParams {
	d := DefaultALSConfig()
	p := FoldInParams{Reg: d.Reg, Alpha: d.Alpha, Eps: d.Eps}
	var stored map[string]any
	if len(params) == 0 || json.Unmarshal(params, &stored) != nil {
		return p
	}
	for key, dst := range map[string]*float64{"reg": &p.Reg, "alpha": &p.Alpha, "eps": &p.Eps} {
		if v, ok := stored[key].(float64); ok && !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 {
			*dst = v
		}
	}
	return p
}

// Gramian is YᵀY of an MF version's streamer factors (Dim×Dim, row-major,
// float64): the part of every user's implicit-ALS system that does not
// depend on the user. Compute it once per version (NewGramian); it is
// read-only afterwards and safe for concurrent use.
type Gramian struct {
	Dim int
	G   []float64
}

// NewGramian sums y·yᵀ over the streamer vectors rows gives (all of one
// version's, each of length dim). EINVALID for a dim outside [1, 4096], a
// vector of another length or a non-finite entry. It costs
// O(streamers·dim²): about a second per million 64-d streamers on one core.
func NewGramian(dim int, rows iter.Seq[[]float32]) (*Gramian, error) {
	if dim <= 0 || dim > 4096 {
		return nil, lr.Errorf(lr.EINVALID, "gramian: dim must be in [1, 4096], got %d", dim)
	}
	g := &Gramian{Dim: dim, G: make([]float64, dim*dim)}
	y := make([]float64, dim)
	n := 0
	for v := range rows {
		if len(v) != dim {
			return nil, lr.Errorf(lr.EINVALID, "gramian: streamer vector %d has %d dimensions, want %d", n, len(v), dim)
		}
		for a, f := range v {
			y[a] = float64(f)
		}
		if !finite64(y) {
			return nil, lr.Errorf(lr.EINVALID, "gramian: streamer vector %d is not finite", n)
		}
		// Upper triangle only; mirrored below.
		for a := 0; a < dim; a++ {
			if y[a] == 0 {
				continue
			}
			axpy64(y[a], y[a:], g.G[a*dim+a:(a+1)*dim])
		}
		n++
	}
	for a := 0; a < dim; a++ {
		for b := 0; b < a; b++ {
			g.G[a*dim+b] = g.G[b*dim+a]
		}
	}
	return g, nil
}

// FoldInItem is one streamer a user interacted with in the fold-in window:
// its vector under the version and the interaction's raw value (watch
// seconds, summed over the user's sessions with it, as training sums them).
type FoldInItem struct {
	Vec   []float32
	Value float64
}

// FoldIn solves for a user's MF vector given the fixed streamer factors,
// the implicit-ALS user solve of training (Hu, Koren & Volinsky 2008) over
// the interactions in items, started from the prior (the user's nightly
// vector; nil: a user the version does not know). With confidences
// c_i = 1 + α·s_i (s_i = log(1 + value_i/ε) as in training) it minimises
//
//	(x − x_prior)ᵀ(YᵀY + λI)(x − x_prior) + Σ_i [c_i (1 − xᵀy_i)² − (xᵀy_i)²]
//
// (the training objective's change when the items turn from unobserved,
// preference 0 at confidence 1, to observed), that is, it returns the x with
//
//	(YᵀY + λI + Σ_i (c_i − 1) y_i y_iᵀ) x = (YᵀY + λI) x_prior + Σ_i c_i y_i.
//
// The prior enters with the precision of the model's own user solve
// (YᵀY + λI) rather than λI alone: its right-hand side stands in for the
// interactions the nightly vector was trained on (exactly so when those
// carried no extra confidence), so with no interaction the nightly vector
// comes back unchanged, and each interaction moves it as one more
// interaction of the training data would. With no prior it is exactly the
// training's user solve. Cost: O(len(items)·d² + d³), by Cholesky.
//
// It fails (EINVALID, nothing returned) when an item's vector or the prior
// has the wrong length, a value is negative or not finite, the system is
// not positive definite (singular: λ = 0 with too few streamers) or the
// solution is not finite; the caller then keeps the nightly vector.
func FoldIn(g *Gramian, p FoldInParams, prior []float32, items []FoldInItem) ([]float32, error) {
	k := g.Dim
	if prior != nil && len(prior) != k {
		return nil, lr.Errorf(lr.EINVALID, "fold-in: prior has %d dimensions, want %d", len(prior), k)
	}
	A := make([]float64, k*k)
	copy(A, g.G)
	for a := 0; a < k; a++ {
		A[a*k+a] += p.Reg
	}
	b := make([]float64, k)
	if prior != nil {
		x0 := make([]float64, k)
		for a, v := range prior {
			x0[a] = float64(v)
		}
		for a := 0; a < k; a++ {
			b[a] = dot(A[a*k:(a+1)*k], x0)
		}
	}
	y := make([]float64, k)
	for n, it := range items {
		if len(it.Vec) != k {
			return nil, lr.Errorf(lr.EINVALID, "fold-in: streamer vector %d has %d dimensions, want %d", n, len(it.Vec), k)
		}
		if math.IsNaN(it.Value) || math.IsInf(it.Value, 0) || it.Value < 0 {
			return nil, lr.Errorf(lr.EINVALID, "fold-in: interaction %d has value %v, want finite and non-negative", n, it.Value)
		}
		s := it.Value
		if p.Eps > 0 {
			s = math.Log1p(s / p.Eps)
		}
		c1 := p.Alpha * s // c − 1
		for a, v := range it.Vec {
			y[a] = float64(v)
		}
		for a := 0; a < k; a++ {
			if y[a] != 0 {
				axpy64(c1*y[a], y, A[a*k:(a+1)*k])
			}
		}
		axpy64(1+c1, y, b)
	}
	if !finite64(A) || !finite64(b) {
		return nil, lr.Errorf(lr.EINVALID, "fold-in: the system is not finite (a streamer vector or the prior holds NaN or Inf)")
	}
	if !cholesky(A, k) {
		return nil, lr.Errorf(lr.EINVALID, "fold-in: the system is not positive definite (singular; raise reg)")
	}
	cholSolve(A, k, b)
	out := make([]float32, k)
	for a, v := range b {
		f := float32(v)
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, lr.Errorf(lr.EINVALID, "fold-in: the solution is not finite")
		}
		out[a] = f
	}
	return out, nil
}

// cholesky factors the symmetric k×k matrix A = L·Lᵀ in place (L in the
// lower triangle); false when A is not positive definite.
func cholesky(A []float64, k int) bool {
	for j := 0; j < k; j++ {
		d := A[j*k+j] - dot(A[j*k:j*k+j], A[j*k:j*k+j])
		if !(d > 0) || math.IsInf(d, 0) {
			return false
		}
		d = math.Sqrt(d)
		A[j*k+j] = d
		for i := j + 1; i < k; i++ {
			A[i*k+j] = (A[i*k+j] - dot(A[i*k:i*k+j], A[j*k:j*k+j])) / d
		}
	}
	return true
}

// cholSolve solves L·Lᵀ x = b in place given cholesky's factor.
func cholSolve(L []float64, k int, b []float64) {
	for i := 0; i < k; i++ {
		b[i] = (b[i] - dot(L[i*k:i*k+i], b[:i])) / L[i*k+i]
	}
	for i := k - 1; i >= 0; i-- {
		s := b[i]
		for j := i + 1; j < k; j++ {
			s -= L[j*k+i] * b[j]
		}
		b[i] = s / L[i*k+i]
	}
}
