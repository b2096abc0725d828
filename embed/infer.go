package embed

import (
	"math"
	"slices"
	"sync"

	"github.com/viterin/vek/vek32"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// Inference scores (user, item) pairs with a trained NeuMF for serving, where
// one user is scored against ~100 candidates per request. It computes the
// same logit as NeuMF.Score (up to float32 rounding order) for a fraction of
// the work:
//   - the first MLP layer is linear in the concatenation [p_u; q_i], so its
//     item half W₁ᵢ·q_i is precomputed once per item (Layers[1] floats per
//     item, as many as the item's MLP embedding) and its user half W₁ᵤ·p_u
//     once per request: the layer costs Layers[1] additions per candidate
//     instead of Layers[0]·Layers[1] multiply-adds;
//   - the GMF term h_G·(p_u ⊙ q_i) is (h_G ⊙ p_u)·q_i, one SIMD dot product;
//   - the remaining layers run on all of a request's candidates at once, one
//     SIMD matrix product per layer (candidates × Layers[l-1] by the
//     transposed weights), instead of one small product per candidate.
//
// It is read-only after NewInference and safe for concurrent use.
type Inference struct {
	m      *NeuMF
	direct bool // no hidden MLP layer: nothing to precompute
	lo     layout
	h1     int         // Layers[1]
	itemP  []float32   // NItems × h1: W₁ᵢ·q_i
	wT     [][]float32 // wT[l] (l ≥ 2): W_l transposed, Layers[l-1] × Layers[l]
	pool   sync.Pool   // *inferScratch
}

type inferScratch struct {
	uG    []float32   // h_G ⊙ p_u
	part  []float32   // b₁ + W₁ᵤ·p_u
	z     [][]float32 // z[l]: the candidates' layer-l activations, n × Layers[l]
	rows  []int       // the candidates' item rows (-1: out of range)
	touch float32     // keeps the prefetching loads
}

// NewInference precomputes the item side of m's first MLP layer.
func NewInference(m *NeuMF) *Inference {
	lo := newLayout(m.Dim, m.Layers)
	if len(m.Layers) < 2 {
		return &Inference{m: m, direct: true, lo: lo}
	}
	e := m.mlpDim()
	in, h1 := m.Layers[0], m.Layers[1]
	x := &Inference{m: m, lo: lo, h1: h1, wT: make([][]float32, len(m.Layers))}
	// Outside the Go heap for as long as x (internal/offheap); x's methods
	// hold x while they read it.
	x.itemP = offheap.Make[float32](x, m.NItems*h1)
	W := m.Dense[lo.w[0] : lo.w[0]+in*h1]
	// W₁ᵢ as its own contiguous h1 × e matrix, so that one matrix-vector
	// product gives an item's projection.
	wi := make([]float32, h1*e)
	for j := 0; j < h1; j++ {
		copy(wi[j*e:(j+1)*e], W[j*in+e:(j+1)*in])
	}
	for i := 0; i < m.NItems; i++ {
		vek32.MatMul_Into(x.itemP[i*h1:(i+1)*h1], wi, m.QM[i*e:(i+1)*e], e)
	}
	for l := 2; l < len(m.Layers); l++ {
		pin, pout := m.Layers[l-1], m.Layers[l]
		Wl := m.Dense[lo.w[l-1] : lo.w[l-1]+pin*pout]
		t := make([]float32, pin*pout)
		for r := 0; r < pout; r++ {
			for c := 0; c < pin; c++ {
				t[c*pout+r] = Wl[r*pin+c]
			}
		}
		x.wT[l] = t
	}
	return x
}

func (x *Inference) scratch() *inferScratch {
	if s, ok := x.pool.Get().(*inferScratch); ok {
		return s
	}
	return &inferScratch{uG: make([]float32, x.m.Dim), part: make([]float32, x.h1), z: make([][]float32, len(x.m.Layers))}
}

// grow returns b resliced to n, reallocated when too short.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n)
	}
	return b[:n]
}

// ScoreItems writes the logit of user with each of items to out; an item
// (or user) out of range gets -MaxFloat32. It needs the model's per-user
// weights (a scorer decoded from a neumf-v2 blob has none: ScoreItemsFor).
func (x *Inference) ScoreItems(user int32, items []int32, out []float32) {
	m := x.m
	if user < 0 || int(user) >= m.NUsers {
		fill(out[:len(items)], -math.MaxFloat32)
		return
	}
	s := x.scratch()
	defer x.pool.Put(s)
	d, e, u := m.Dim, m.mlpDim(), int(user)
	vek32.Mul_Into(s.uG, m.Dense[x.lo.hG:x.lo.hG+d], m.PG[u*d:(u+1)*d])
	x.score(s, s.uG, m.PM[u*e:(u+1)*e], items, out)
}

// ScoreItemsFor is ScoreItems for a user given by vectors instead of a
// dense index: uG is the user's retrieval vector h_G ⊙ p_u (what
// NeuMF.RetrievalVectors gives, the NCF version's stored user vector) and pm
// the user's MLP embedding p_u^M. It gives ScoreItems' logits bit for bit
// when the vectors are the model's own. Vectors of the wrong length (a user
// of another architecture) give -MaxFloat32 for every item. uG and pm are
// only read.
func (x *Inference) ScoreItemsFor(uG, pm []float32, items []int32, out []float32) {
	if !x.fits(uG, pm) {
		fill(out[:len(items)], -math.MaxFloat32)
		return
	}
	s := x.scratch()
	defer x.pool.Put(s)
	x.score(s, uG, pm, items, out)
}

// fits says whether uG and pm are user vectors of the model's shape.
func (x *Inference) fits(uG, pm []float32) bool {
	return len(uG) == x.m.Dim && len(pm) == x.m.mlpDim()
}

func fill(out []float32, v float32) {
	for k := range out {
		out[k] = v
	}
}

// score is the kernel of ScoreItems and ScoreItemsFor: the logits of the
// user with retrieval vector uG and MLP embedding pm (both of the model's
// shape) with each of items, using s's buffers.
func (x *Inference) score(s *inferScratch, uG, pm []float32, items []int32, out []float32) {
	m := x.m
	lo, d, e := &x.lo, m.Dim, m.mlpDim()
	bias := m.Dense[lo.bias]
	if x.direct {
		// No hidden layer: the output weights over the MLP tower apply to
		// [p_u; q_i] directly.
		hM := m.Dense[lo.hM : lo.hM+m.Layers[0]]
		up := vek32.Dot(hM[:e], pm) + bias
		for k, it := range items {
			if it < 0 || int(it) >= m.NItems {
				out[k] = -math.MaxFloat32
				continue
			}
			i := int(it)
			out[k] = vek32.Dot(uG, m.QG[i*d:(i+1)*d]) + vek32.Dot(hM[e:], m.QM[i*e:(i+1)*e]) + up
		}
		return
	}
	in := m.Layers[0]
	W1 := m.Dense[lo.w[0] : lo.w[0]+in*x.h1]
	for j := 0; j < x.h1; j++ {
		s.part[j] = m.Dense[lo.b[0]+j] + vek32.Dot(W1[j*in:j*in+e], pm)
	}
	// Layer 1 for every in-range candidate: relu(b₁ + W₁ᵤ·p_u + W₁ᵢ·q_i).
	// The candidates' rows are scattered over tables of every item: touch
	// each cache line of them first, in a loop whose loads do not depend on
	// each other, so the misses overlap instead of stalling the arithmetic
	// one candidate at a time.
	n := 0
	s.rows = grow(s.rows, len(items))
	var touch float32
	for k, it := range items {
		s.rows[k] = -1
		if it >= 0 && int(it) < m.NItems {
			s.rows[k] = n
			n++
			i := int(it)
			for o := i * d; o < (i+1)*d; o += 16 {
				touch += m.QG[o]
			}
			for o := i * x.h1; o < (i+1)*x.h1; o += 16 {
				touch += x.itemP[o]
			}
		}
	}
	s.touch = touch
	L := len(m.Layers)
	h1 := x.h1
	s.z[1] = grow(s.z[1], n*h1)
	z1 := s.z[1]
	for k, it := range items {
		r := s.rows[k]
		if r < 0 {
			continue
		}
		dst, ip := z1[r*h1:(r+1)*h1], x.itemP[int(it)*h1:(int(it)+1)*h1]
		for j, p := range s.part {
			dst[j] = max(p+ip[j], 0)
		}
	}
	// The hidden layers, all candidates at once.
	for l := 2; l < L && n > 0; l++ {
		pout := m.Layers[l]
		b := m.Dense[lo.b[l-1] : lo.b[l-1]+pout]
		s.z[l] = grow(s.z[l], n*pout)
		layer(s.z[l], s.z[l-1], x.wT[l], b, m.Layers[l-1], pout)
	}
	last := m.Layers[L-1]
	hM := m.Dense[lo.hM : lo.hM+last]
	zl := s.z[L-1]
	for k, it := range items {
		r := s.rows[k]
		if r < 0 {
			out[k] = -math.MaxFloat32
			continue
		}
		i := int(it)
		var h float32
		for j, v := range zl[r*last : (r+1)*last] {
			h += hM[j] * v
		}
		out[k] = vek32.Dot(uG, m.QG[i*d:(i+1)*d]) + h + bias
	}
}

// layerGo computes dst = relu(src·wT + b) for n rows: src is n × pin, wT is
// pin × pout (the layer's weights transposed), dst n × pout. Each input
// activation scales one row of wT into the output row; ReLU zeros, about
// half of the inputs, are skipped. layer (layer_amd64.go) uses an AVX2
// kernel for the same product where the shapes allow.
func layerGo(dst, src, wT, b []float32, pin, pout int) {
	n := len(src) / pin
	for r := 0; r < n; r++ {
		out := dst[r*pout : (r+1)*pout]
		copy(out, b)
		for c, v := range src[r*pin : (r+1)*pin] {
			if v == 0 {
				continue
			}
			w := wT[c*pout : (c+1)*pout]
			for j := range out {
				out[j] += v * w[j]
			}
		}
		for j, v := range out {
			out[j] = max(v, 0)
		}
	}
}

// Prepare builds the scorer's Inference if it has not been built yet (about
// a second per million streamers); ScoreMany calls it, so call it at load
// to keep that second off the first request.
func (s *IDScorer) Prepare() {
	s.infOnce.Do(func() { s.inf = NewInference(s.Model) })
}

// IndexOrdinals builds the table ScoreOrdinals uses, from the serving
// ordinals of streamer ids to the model's dense indices. It assigns an
// ordinal to every streamer of the model that has none yet, so the table
// covers the whole model. Call it once, before the scorer serves.
func (s *IDScorer) IndexOrdinals(ords *lr.Ordinals) {
	var t []int32
	for i, id := range s.StreamIDs {
		ord := int(ords.Ordinal(lr.StreamerID(id)))
		if ord >= len(t) {
			t = slices.Grow(t, ord+1-len(t))
			for len(t) <= ord {
				t = append(t, -1)
			}
		}
		t[ord] = int32(i)
	}
	s.byOrd = t
}

// ScoreOrdinals is ScoreMany for streamers given by their serving ordinals,
// through the table IndexOrdinals built (no map lookup per streamer): a
// streamer the model does not know, or any streamer before IndexOrdinals,
// gets -MaxFloat32. False means the user is unknown (out is not written);
// every user is unknown to a scorer without per-user weights (HoldsUsers).
func (s *IDScorer) ScoreOrdinals(user int64, ords []uint32, out []float32) bool {
	u, ok := s.user[user]
	if !ok {
		return false
	}
	s.Prepare()
	p, items := s.ordItems(ords)
	defer s.itemsPool.Put(p)
	s.inf.ScoreItems(int32(u), items, out)
	return true
}

// ScoreOrdinalsFor is ScoreOrdinals for a user given by vectors (see
// Inference.ScoreItemsFor): uG, the user's retrieval vector, and pm, the
// user's MLP embedding. False means the vectors are not of the model's
// shape (UserDims; out is not written). It needs no per-user weights, so it
// serves a scorer decoded from a neumf-v2 blob. uG and pm are only read.
func (s *IDScorer) ScoreOrdinalsFor(uG, pm []float32, ords []uint32, out []float32) bool {
	s.Prepare()
	if !s.inf.fits(uG, pm) {
		return false
	}
	p, items := s.ordItems(ords)
	defer s.itemsPool.Put(p)
	s.inf.ScoreItemsFor(uG, pm, items, out)
	return true
}

// ScoreFor is Score for a user given by vectors (see ScoreOrdinalsFor):
// false when the streamer is unknown or the vectors are not of the model's
// shape.
func (s *IDScorer) ScoreFor(uG, pm []float32, streamer int64) (float32, bool) {
	i, ok := s.streamer[streamer]
	if !ok {
		return 0, false
	}
	s.Prepare()
	if !s.inf.fits(uG, pm) {
		return 0, false
	}
	items, out := [1]int32{int32(i)}, [1]float32{}
	s.inf.ScoreItemsFor(uG, pm, items[:], out[:])
	return out[0], true
}

// ordItems maps serving ordinals to the model's dense indices (-1: none),
// in a pooled buffer the caller puts back.
func (s *IDScorer) ordItems(ords []uint32) (*[]int32, []int32) {
	p, _ := s.itemsPool.Get().(*[]int32)
	if p == nil {
		p = new([]int32)
	}
	items := grow(*p, len(ords))
	*p = items
	t := s.byOrd
	for k, ord := range ords {
		items[k] = -1
		if int(ord) < len(t) {
			items[k] = t[ord]
		}
	}
	return p, items
}

// ScoreMany is ScoreIDs through Inference: the same logits up to float32
// rounding, for a fraction of the work (the serving path: one user, the
// request's candidates).
func (s *IDScorer) ScoreMany(user int64, streamers []int64, out []float32) bool {
	u, ok := s.user[user]
	if !ok {
		return false
	}
	s.Prepare()
	items := make([]int32, len(streamers))
	for k, id := range streamers {
		items[k] = -1
		if i, ok := s.streamer[id]; ok {
			items[k] = int32(i)
		}
	}
	s.inf.ScoreItems(int32(u), items, out)
	return true
}
