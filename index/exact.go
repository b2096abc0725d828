package index

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/viterin/vek/vek32"
)

// scanPool holds result heaps for exact scans; scorePool score buffers.
var (
	scanPool  = sync.Pool{New: func() any { h := make(minHeap, 0, 64); return &h }}
	scorePool = sync.Pool{New: func() any { b := make([]float32, 0, 1024); return &b }}
)

// ExactScan returns the k rows of mat (row-major, rows of stride floats of
// which the first len(q) are the vector) with the highest dot product with
// q, best first, labelled by labels[row] (or the row number when labels is
// nil). With accept non-nil only accepted labels are returned; accept is only
// asked about rows that would enter the current top k, so a scan costs one
// SIMD dot product per row. Ties go to the lower label.
func ExactScan(q, mat []float32, stride int, labels []uint32, k int, accept Allowed) []Hit {
	if k <= 0 || stride <= 0 {
		return nil
	}
	hp := scanPool.Get().(*minHeap)
	h := (*hp)[:0]
	dim := len(q)
	rows := len(mat) / stride
	// A dense matrix (the live matrix) is scored in one matrix-vector
	// product, about twice as fast as a dot product call per row.
	var scores []float32
	if stride == dim && rows > 0 {
		sp := scorePool.Get().(*[]float32)
		defer scorePool.Put(sp)
		*sp = slices.Grow((*sp)[:0], rows)[:rows]
		scores = *sp
		vek32.MatMul_Into(scores, mat[:rows*dim], q, dim)
	}
	for r := 0; r < rows; r++ {
		var s float32
		if scores != nil {
			s = scores[r]
		} else {
			o := r * stride
			s = vek32.Dot(q, mat[o:o+dim])
		}
		if len(h) >= k && s <= h[0].score {
			continue
		}
		lab := uint32(r)
		if labels != nil {
			lab = labels[r]
		}
		if accept != nil && !accept.Contains(lab) {
			continue
		}
		h.offer(cand{s, lab}, k)
	}
	out := make([]Hit, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		c := h.pop()
		out[i] = Hit{Ord: c.id, Score: c.score}
	}
	*hp = h
	scanPool.Put(hp)
	return out
}

// liveMatrix is the compact, contiguous matrix of the vectors of the live
// streamers that an index knows: the rows of one version of the live set
// (a LiveSet), maintained in place as versions follow each other
// (swap-remove, so it stays dense). Its methods are safe for concurrent
// use: searches take a read lock, updates a write lock.
type liveMatrix struct {
	mu   sync.RWMutex
	dim  int
	q    *qmatrix // the 8-bit copy of rows (qscan.go)
	rows []float32
	ords []uint32
	pos  map[uint32]int // ordinal -> row
	// version is the LiveSet version the rows mirror (0, the empty set,
	// when new); written under mu, read without it by the planner.
	version atomic.Uint64
}

func newLiveMatrix(dim int) *liveMatrix {
	return &liveMatrix{dim: dim, q: newQMatrix(dim), pos: make(map[uint32]int)}
}

// follow brings the matrix to ls (vec gives an ordinal's vector, false for
// none): ls's changes are applied when ls is the version after the one
// mirrored, the matrix is refilled from ls's ordinals after a gap, and
// nothing is done for a version already reached. It reports whether the
// matrix moved to ls.
func (m *liveMatrix) follow(ls LiveSet, vec func(ord uint32) ([]float32, bool)) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, cur := ls.Version(), m.version.Load()
	switch {
	case v <= cur:
		return false
	case v == cur+1:
		for ord, live := range ls.Changes() {
			vv, ok := vec(ord)
			if !ok {
				continue
			}
			if !live {
				vv = nil
			}
			m.setLocked(ord, vv)
		}
	default:
		m.resetLocked()
		for _, ord := range ls.Ordinals() {
			if vv, ok := vec(ord); ok {
				m.setLocked(ord, vv)
			}
		}
	}
	m.version.Store(v)
	return true
}

// reached reports whether the matrix has mirrored version v of the live
// set (it may have moved on since).
func (m *liveMatrix) reached(v uint64) bool { return v <= m.version.Load() }

// set adds (vec non-nil, copied) or removes ord outside of any version
// (tests and the benchmark); it reports whether the matrix changed.
func (m *liveMatrix) set(ord uint32, vec []float32) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.setLocked(ord, vec)
}

func (m *liveMatrix) setLocked(ord uint32, vec []float32) bool {
	r, ok := m.pos[ord]
	if vec != nil {
		if ok {
			return false
		}
		m.pos[ord] = len(m.ords)
		m.ords = append(m.ords, ord)
		m.rows = append(m.rows, vec...)
		m.q.push(vec)
		return true
	}
	if !ok {
		return false
	}
	last := len(m.ords) - 1
	if r != last {
		m.ords[r] = m.ords[last]
		copy(m.rows[r*m.dim:(r+1)*m.dim], m.rows[last*m.dim:])
		m.q.move(r, last)
		m.pos[m.ords[r]] = r
	}
	m.q.pop()
	m.ords = m.ords[:last]
	m.rows = m.rows[:last*m.dim]
	delete(m.pos, ord)
	return true
}

func (m *liveMatrix) len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.ords)
}

// search returns the k live rows with the highest dot product with q: from
// qscanMin rows by the 8-bit scan with exact rescoring (on CPUs with
// AVX-512 VNNI), otherwise by the exact scan. It reports which.
func (m *liveMatrix) search(q []float32, k int, accept Allowed) ([]Hit, Strategy) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if hasVNNI && len(m.ords) >= qscanMin {
		return m.q.qsearch(q, m.rows, m.ords, k, accept), StrategyLiveInt8
	}
	return ExactScan(q, m.rows, m.dim, m.ords, k, accept), StrategyExact
}

// searchInt8 is search by the 8-bit scan whatever the size.
func (m *liveMatrix) searchInt8(q []float32, k int, accept Allowed) []Hit {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.q.qsearch(q, m.rows, m.ords, k, accept)
}

// searchExact is search by the exact float scan only.
func (m *liveMatrix) searchExact(q []float32, k int, accept Allowed) []Hit {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return ExactScan(q, m.rows, m.dim, m.ords, k, accept)
}

// resetLocked empties the matrix; the caller holds the write lock.
func (m *liveMatrix) resetLocked() {
	m.rows, m.ords = m.rows[:0], m.ords[:0]
	m.q.reset()
	clear(m.pos)
}
