package index

import (
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/viterin/vek/vek32"
)

// The live matrix keeps, beside its float32 rows, an 8-bit copy that a
// request's channels scan first: a quarter of the bytes (20k live streamers
// of dim 64: 1.3 MB, which stays in a core's L2 cache where the float rows,
// 5 MB, do not), multiplied with AVX-512 VNNI: one instruction multiplies
// and adds 4 dimensions of 16 rows. The best rescoreFor(k) rows by the 8-bit
// score are then rescored exactly with the float32 rows and the best k of
// those returned, with exact scores. A row whose true score is in the top k
// is lost only when quantization error moves it below rescoreFor(k) others;
// TestQuantizedScanRecall and `make bench-index` measure how often.
// On a CPU without AVX-512 VNNI the live matrix is scanned in float32 only
// (qdotGo, the portable kernel, would be slower than that).
//
// Layout: rows are quantized symmetrically, each with its own scale
// (max |x| / 127), and stored in blocks of 16 rows. Dimensions are padded
// with zeros to a multiple of 16 (qdim). Within a block, for each group of
// 4 dimensions, 64 bytes hold the group of every row of the block: row l's
// four values at bytes 4l..4l+3, so one 64-byte load is the operand of one
// VPDPBUSD and a block's 16 dot products need no horizontal reduction. The
// instruction multiplies unsigned by signed bytes: the query, quantized to
// ±127, is offset by 128 to be unsigned, and 128·Σx of each row (its bias,
// kept per row) is subtracted from the sum.

const (
	qRowMax   = 127
	qQueryMax = 127
	qBlock    = 16 // rows per block
	// qscanMin is the live-matrix size from which searches use the 8-bit
	// scan; below it the float scan costs a few microseconds anyway.
	qscanMin = 1024
)

// LiveInt8 reports whether live-matrix searches use the 8-bit scan on this
// CPU (AVX-512 VNNI); without it they scan in float32.
func LiveInt8() bool { return hasVNNI }

// rescoreFor is how many 8-bit candidates are rescored exactly for a
// request of k.
func rescoreFor(k int) int { return k + k/4 + 8 }

// qmatrix is the 8-bit, blocked copy of a live matrix's rows. It is not
// safe for concurrent use: the live matrix's lock guards it.
type qmatrix struct {
	dim, qdim int
	n         int
	data      []int8    // ceil(n/16) blocks of 16*qdim bytes
	scales    []float32 // per row, len ceil(n/16)*16; 0 beyond n
	bias      []int32   // per row: 128·Σ quantized values; 0 beyond n
}

func newQMatrix(dim int) *qmatrix {
	return &qmatrix{dim: dim, qdim: (dim + 15) &^ 15}
}

func (m *qmatrix) blockBytes() int { return qBlock * m.qdim }

// at returns the offset of row r's dimension d in data.
func (m *qmatrix) at(r, d int) int {
	return (r/qBlock)*m.blockBytes() + (d/4)*4*qBlock + 4*(r%qBlock) + d%4
}

// push appends a row.
func (m *qmatrix) push(vec []float32) {
	r := m.n
	if r%qBlock == 0 {
		m.data = append(m.data, make([]int8, m.blockBytes())...)
		m.scales = append(m.scales, make([]float32, qBlock)...)
		m.bias = append(m.bias, make([]int32, qBlock)...)
	}
	m.n++
	m.write(r, vec)
}

// write quantizes vec into row r.
func (m *qmatrix) write(r int, vec []float32) {
	var mx float32
	for _, x := range vec {
		mx = max(mx, float32(math.Abs(float64(x))))
	}
	scale, inv := float32(0), float32(0)
	if mx > 0 && !math.IsInf(float64(mx), 0) {
		scale, inv = mx/qRowMax, qRowMax/mx
	}
	var sum int32
	for d, x := range vec {
		v := clampRound(x*inv, qRowMax)
		m.data[m.at(r, d)] = int8(v)
		sum += v
	}
	m.scales[r], m.bias[r] = scale, 128*sum
}

// move copies row src over row dst.
func (m *qmatrix) move(dst, src int) {
	for d := 0; d < m.dim; d++ {
		m.data[m.at(dst, d)] = m.data[m.at(src, d)]
	}
	m.scales[dst], m.bias[dst] = m.scales[src], m.bias[src]
}

// pop removes the last row, zeroing it so a partly filled block's unused
// lanes stay zero.
func (m *qmatrix) pop() {
	m.n--
	r := m.n
	for d := 0; d < m.dim; d++ {
		m.data[m.at(r, d)] = 0
	}
	m.scales[r], m.bias[r] = 0, 0
	if r%qBlock == 0 {
		m.data = m.data[:len(m.data)-m.blockBytes()]
		m.scales = m.scales[:len(m.scales)-qBlock]
		m.bias = m.bias[:len(m.bias)-qBlock]
	}
}

func (m *qmatrix) reset() {
	m.n, m.data, m.scales, m.bias = 0, m.data[:0], m.scales[:0], m.bias[:0]
}

// quantizeQuery writes q, scaled to ±qQueryMax and offset by 128 (unsigned
// bytes), into dst (qdim/4 words of 4 bytes, little-endian); padding
// dimensions are 128, that is 0. The query's scale is not needed: it orders
// every row alike.
func (m *qmatrix) quantizeQuery(q []float32, dst []uint32) {
	var mx float32
	for _, x := range q {
		mx = max(mx, float32(math.Abs(float64(x))))
	}
	inv := float32(0)
	if mx > 0 && !math.IsInf(float64(mx), 0) {
		inv = qQueryMax / mx
	}
	for i := range dst {
		dst[i] = 0x80808080
	}
	for d, x := range q {
		u := uint32(clampRound(x*inv, qQueryMax) + 128)
		sh := 8 * (d % 4)
		dst[d/4] = dst[d/4]&^(0xff<<sh) | u<<sh
	}
}

// clampRound rounds x to the nearest integer within ±lim (NaN gives 0).
func clampRound(x float32, lim int32) int32 {
	switch {
	case x != x:
		return 0
	case x >= float32(lim):
		return lim
	case x <= -float32(lim):
		return -lim
	}
	return int32(math.Round(float64(x)))
}

// approx writes the 8-bit score (up to the query's scale) of every row,
// rounded up to whole blocks, into out, and each block's largest score of
// a real row into bmax.
func (m *qmatrix) approx(qu []uint32, out, bmax []float32) {
	nb := (m.n + qBlock - 1) / qBlock
	if nb == 0 {
		return
	}
	qdot(m.data, m.scales, m.bias, nb, m.qdim/4, qu, out[:nb*qBlock], bmax[:nb])
	if tail := m.n % qBlock; tail != 0 {
		// The last block's padding lanes score 0: its maximum is over
		// its real rows only.
		mx := float32(math.Inf(-1))
		for _, v := range out[(nb-1)*qBlock : (nb-1)*qBlock+tail] {
			mx = max(mx, v)
		}
		bmax[nb-1] = mx
	}
}

// qdotGo is the portable kernel: for each of nb blocks, the 16 rows'
// integer dot products with the query (Σ (q+128)·x − bias = Σ q·x), times
// the rows' scales, and the block's largest score. The assembly kernel
// computes exactly the same values (integer sums are exact; the conversion
// and the product round the same way).
func qdotGo(data []int8, scales []float32, bias []int32, nb, quads int, qu []uint32, out, bmax []float32) {
	bb := qBlock * 4 * quads
	for b := 0; b < nb; b++ {
		blk := data[b*bb : (b+1)*bb]
		var acc [qBlock]int32
		for g := 0; g < quads; g++ {
			w := qu[g]
			grp := blk[g*4*qBlock : (g+1)*4*qBlock]
			for l := 0; l < qBlock; l++ {
				for j := 0; j < 4; j++ {
					acc[l] += int32(uint8(w>>(8*j))) * int32(grp[4*l+j])
				}
			}
		}
		mx := float32(math.Inf(-1))
		for l := 0; l < qBlock; l++ {
			v := float32(acc[l]-bias[b*qBlock+l]) * scales[b*qBlock+l]
			out[b*qBlock+l] = v
			mx = max(mx, v)
		}
		bmax[b] = mx
	}
}

var (
	qpPool   = sync.Pool{New: func() any { b := make([]uint32, 0, 16); return &b }}
	candPool = sync.Pool{New: func() any { h := make(minHeap, 0, 128); return &h }}
)

// qsearch is the 8-bit scan with exact rescoring (see the top of this file).
// rows/labels are the float matrix the quantized copy mirrors.
func (m *qmatrix) qsearch(q, rows []float32, labels []uint32, k int, accept Allowed) []Hit {
	if k <= 0 || m.n == 0 {
		return nil
	}
	qpp := qpPool.Get().(*[]uint32)
	defer qpPool.Put(qpp)
	*qpp = slices.Grow((*qpp)[:0], m.qdim/4)[:m.qdim/4]
	m.quantizeQuery(q, *qpp)

	nb := (m.n + qBlock - 1) / qBlock
	sp := scorePool.Get().(*[]float32)
	defer scorePool.Put(sp)
	kk := rescoreFor(k)
	*sp = slices.Grow((*sp)[:0], nb*qBlock+2*nb)[:nb*qBlock+2*nb]
	scores, bmax, tbuf := (*sp)[:nb*qBlock], (*sp)[nb*qBlock:nb*qBlock+nb], (*sp)[nb*qBlock+nb:]
	m.approx(*qpp, scores, bmax)

	// The best rescoreFor(k) accepted rows by the 8-bit score. The kk-th
	// largest block maximum t is a lower bound of the kk-th best row when
	// every row is accepted (kk blocks each hold a row reaching t), so the
	// answer is among the rows reaching t, all in blocks reaching t:
	// collect those and sort them. Should refused rows leave fewer than kk,
	// every row is considered instead.
	hp := candPool.Get().(*minHeap)
	defer candPool.Put(hp)
	h := (*hp)[:0]
	t := float32(math.Inf(-1)) // fewer blocks than kk: every row
	if kk <= len(bmax) {
		t = kthLargest(bmax, kk, tbuf)
	}
	collect := func(b int, min float32) {
		for r := b * qBlock; r < (b+1)*qBlock && r < m.n; r++ {
			if s := scores[r]; s >= min && (accept == nil || accept.Contains(labels[r])) {
				h = append(h, cand{s, uint32(r)})
			}
		}
	}
	for b, mx := range bmax {
		if mx >= t {
			collect(b, t)
		}
	}
	if len(h) < kk {
		h = h[:0]
		for r, s := range scores[:m.n] {
			if len(h) >= kk && s < h[0].score {
				continue
			}
			if accept == nil || accept.Contains(labels[r]) {
				h.offer(cand{s, uint32(r)}, kk)
			}
		}
	}
	slices.SortFunc(h, cmpCand)
	h = h[:min(kk, len(h))]
	// Rescore them exactly and keep the best k. The rows are scattered
	// over the float matrix (5 MB at 20k live of dim 64): touch their cache
	// lines first, in loads that do not depend on each other, so the misses
	// overlap instead of stalling each dot product in turn.
	var touch float32
	for i := range h {
		row := rows[int(h[i].id)*m.dim : (int(h[i].id)+1)*m.dim]
		for o := 0; o < len(row); o += 16 {
			touch += row[o]
		}
	}
	touchSink.Store(math.Float32bits(touch))
	for i := range h {
		r := int(h[i].id)
		h[i] = cand{vek32.Dot(q, rows[r*m.dim:(r+1)*m.dim]), labels[r]}
	}
	slices.SortFunc(h, cmpCand)
	h = h[:min(k, len(h))]
	out := make([]Hit, len(h))
	for i, c := range h {
		out[i] = Hit{Ord: c.id, Score: c.score}
	}
	*hp = h
	return out
}

// touchSink keeps the compiler from dropping the loads that warm rows
// (atomic: concurrent searches store to it).
var touchSink atomic.Uint32

// cmpCand orders candidates as better does, for slices.SortFunc.
func cmpCand(a, b cand) int {
	switch {
	case a.score > b.score:
		return -1
	case a.score < b.score:
		return 1
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}

// kthLargest returns the kth largest of xs (1 ≤ kth ≤ len(xs)) by
// quickselect on a copy in buf (len ≥ len(xs)): linear on average
// whatever the order of xs (a bounded heap sifts for every element that
// enters it: most of them when xs rises). The partition is branch-free
// (swap always, advance the boundary by the comparison's outcome), so
// scores in random order cost no mispredicted branches.
func kthLargest(xs []float32, kth int, buf []float32) float32 {
	a := buf[:len(xs)]
	copy(a, xs)
	target := kth - 1 // its index in descending order
	lo, hi := 0, len(a)-1
	for lo < hi {
		// Median of three as the pivot, moved to hi.
		mid := lo + (hi-lo)/2
		x, y, z := a[lo], a[mid], a[hi]
		p := max(min(x, y), min(max(x, y), z))
		switch p {
		case x:
			a[lo], a[hi] = a[hi], a[lo]
		case y:
			a[mid], a[hi] = a[hi], a[mid]
		}
		// a[lo:store] > p, a[store:i] ≤ p.
		store := lo
		for i := lo; i < hi; i++ {
			v := a[i]
			a[i] = a[store]
			a[store] = v
			store += gt(v, p)
		}
		a[store], a[hi] = a[hi], a[store] // the pivot in its place
		if target < store {
			hi = store - 1
			continue
		}
		// Gather the pivot's equals right after it, so many ties (a
		// zero query scores every row 0) end the search instead of
		// shrinking it by one element per pass.
		eq := store + 1
		for i := store + 1; i <= hi; i++ {
			v := a[i]
			a[i] = a[eq]
			a[eq] = v
			eq += ge(v, p)
		}
		if target < eq {
			return p
		}
		lo = eq
	}
	return a[target]
}

// ge is 1 when a ≥ b, else 0, without a branch.
func ge(a, b float32) int {
	r := 0
	if a >= b {
		r = 1
	}
	return r
}

// gt is 1 when a > b, else 0, without a branch.
func gt(a, b float32) int {
	r := 0
	if a > b {
		r = 1
	}
	return r
}
