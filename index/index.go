package index

import (
	"context"
	"fmt"
	"iter"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Strategy names how a search was answered; it labels the searches metric.
type Strategy string

const (
	StrategyHNSW  Strategy = "hnsw"  // beam search of the graph, filter applied during traversal
	StrategyExact Strategy = "exact" // SIMD scan of the compact live matrix (or of every vector)
	// StrategyLiveInt8 is the 8-bit scan of the live matrix with exact
	// rescoring of the best rescoreFor(k) rows (qscan.go), used from
	// qscanMin live vectors on unless the caller asks for a precise search.
	StrategyLiveInt8 Strategy = "live_int8"
)

// DefaultExactThreshold is the allowed-set size at or below which the planner
// scans exactly instead of searching the graph with the filter. Measured by
// cmd/bench-index on 1M low-rank 64-d vectors (2 shared cores, make bench-index):
// an exact scan costs ~9 ns per allowed vector (20k live: 0.11 ms, 50k:
// 0.36 ms, 200k: 1.8 ms); the filtered graph search took 9.8 ms at 5%
// allowed (recall 0.77) and 0.49 ms at 20% (two-hop traversal, recall 0.84).
// Time break-even at 20%: ~55k allowed vectors (at 100k vectors: ~23k).
// Below 10% allowed the filtered graph is slower and far less accurate at
// any size, so the planner also scans exactly there (see plan).
const DefaultExactThreshold = 50_000

// smallIndex is the index size up to which even an unfiltered search scans
// every vector (≤ ~0.2 ms at 6-10 ns per vector).
const smallIndex = 20_000

// Index is one immutable, validated model version of one kind: the graph
// over its streamer vectors and the compact matrix of its live streamers'
// vectors. It holds nothing per user: user vectors are read from the user
// store (userstore/) on demand. Searches and lookups are safe for concurrent use;
// the graph and the vectors are never modified after the Index is built,
// only the live matrix changes (under its own lock), following the
// published versions of the live set given to SetLive.
type Index struct {
	Model   lr.ModelVersion
	BuiltIn time.Duration // graph build time (0 when loaded from a snapshot)
	Recall  float64       // self-check recall@10 against exact search of the searches as planned (see servingRecall)
	graph   *Graph
	ids     []int64 // node -> streamer id
	nodeOf  []int32 // streamer ordinal -> node, -1 for none
	// UserRows is how many user vectors the store held for this version
	// when it was loaded (CountEmbeddings; -1 when not counted): a figure
	// for the status, not data the index holds.
	UserRows  int64
	live      *liveMatrix
	threshold int
	// target is the recall target (Params.RecallTarget; ≤ 0: off);
	// profile what the self-check measured (nil: nothing), planner the
	// plan derived from both (nil: the threshold rule). Set before the
	// index serves, never after.
	target  float64
	profile *Profile
	planner *planner
}

// Len returns the number of streamer vectors.
func (x *Index) Len() int { return x.graph.Len() }

// Dim returns the vector dimension.
func (x *Index) Dim() int { return x.graph.dim }

// LiveLen returns the number of rows of the live matrix.
func (x *Index) LiveLen() int { return x.live.len() }

// node returns ord's node, or false when this version has no vector for it.
func (x *Index) node(ord uint32) (uint32, bool) {
	if int(ord) >= len(x.nodeOf) || x.nodeOf[ord] < 0 {
		return 0, false
	}
	return uint32(x.nodeOf[ord]), true
}

// StreamerVector returns a copy of the vector of the streamer with ordinal
// ord, or false when this version has none. (A copy: the graph's vectors
// live outside the Go heap as long as x, see Graph.)
func (x *Index) StreamerVector(ord uint32) ([]float32, bool) {
	v, ok := x.streamerVector(ord)
	if !ok {
		return nil, false
	}
	c := slices.Clone(v)
	runtime.KeepAlive(x)
	return c, true
}

// HasStreamer reports whether this version has a vector for the streamer
// with ordinal ord.
func (x *Index) HasStreamer(ord uint32) bool {
	_, ok := x.node(ord)
	return ok
}

// streamerVector is StreamerVector without the copy: valid while x is
// reachable.
func (x *Index) streamerVector(ord uint32) ([]float32, bool) {
	n, ok := x.node(ord)
	if !ok {
		return nil, false
	}
	return x.graph.Vector(n), true
}

// Vectors yields every streamer vector of this version, in node order.
// The slices are shared and may lie outside the Go heap (internal/offheap):
// do not modify them, and do not keep them beyond the loop's body, which
// is the only time x is sure to be reachable.
func (x *Index) Vectors() iter.Seq[[]float32] {
	return func(yield func([]float32) bool) {
		defer runtime.KeepAlive(x)
		for n := 0; n < x.graph.Len(); n++ {
			if !yield(x.graph.Vector(uint32(n))) {
				return
			}
		}
	}
}

// Dots writes q's dot product with the vector of each of ords to out
// (ok[i] false, out[i] 0, for an ordinal this version has no vector for).
// Live streamers are read from the live matrix, whose rows sit together in
// a few megabytes, instead of from the graph's vectors of every streamer.
func (x *Index) Dots(q []float32, ords []uint32, out []float32, ok []bool) {
	m := x.live
	m.mu.RLock()
	defer m.mu.RUnlock()
	// First find every row and touch its cache lines (independent loads,
	// so the misses overlap), then take the dot products.
	rows := rowsPool.Get().(*[][]float32)
	defer rowsPool.Put(rows)
	vs := (*rows)[:0]
	var touch float32
	for _, ord := range ords {
		var v []float32
		if r, live := m.pos[ord]; live {
			v = m.rows[r*m.dim : (r+1)*m.dim]
		} else if n, known := x.node(ord); known {
			v = x.graph.Vector(n)
		}
		for o := 0; o < len(v); o += 16 {
			touch += v[o]
		}
		vs = append(vs, v)
	}
	touchSink.Store(math.Float32bits(touch))
	for i, v := range vs {
		out[i], ok[i] = 0, false
		if v != nil && len(v) == len(q) {
			out[i], ok[i] = Dot(q, v), true
		}
	}
	clear(vs)
	*rows = vs[:0]
	runtime.KeepAlive(x) // vs pointed into the graph's vectors
}

var rowsPool = sync.Pool{New: func() any { s := make([][]float32, 0, 256); return &s }}

// SetLive brings the live matrix to ls, a published version of the live
// set: the vectors (copied) of its live streamers that this version has a
// vector for. When ls is the version after the one mirrored its changes
// are applied (the cost is per change, not per live streamer); after a gap
// (a new index, or one that was not serving) the matrix is refilled from
// ls; a version already reached changes nothing. Give versions in order
// (Manager.SetLive does). Safe to call concurrently with searches (it takes
// the live matrix's write lock). It reports whether the matrix moved to ls.
func (x *Index) SetLive(ls LiveSet) bool {
	return x.live.follow(ls, x.streamerVector) // copies each vector while x is held
}

// LiveVersion returns the version of the live set the live matrix mirrors.
func (x *Index) LiveVersion() uint64 { return x.live.version.Load() }

// Plan returns the strategy Search would use for allowed.
func (x *Index) Plan(allowed Allowed) Strategy {
	st, _, _ := x.plan(allowed)
	return st
}

// plan decides, and for exact scans whether the live matrix is the one,
// and for the graph the ef (0: the default). With a measured plan (see
// planner.go) the choice is by recall and cost; otherwise by the threshold:
//   - nil allowed (every streamer): the graph, or an exact scan of every
//     vector when the index is small (≤ 20k vectors);
//   - an allowed set no larger than the threshold, or under 10% of the
//     index: an exact scan — of the live matrix, filtered by allowed, when
//     allowed is a LiveSet whose version the matrix has reached (live/
//     gives each version to the index before anyone can read it, so a
//     request's snapshot always qualifies), else of every vector,
//     filtered (any other filter, whatever its size);
//   - otherwise the graph, filtered during traversal.
func (x *Index) plan(allowed Allowed) (Strategy, bool, int) {
	n := x.graph.Len()
	if p := x.planner; p != nil {
		if allowed == nil {
			st, ef := p.choose(-1, n, false)
			return st, false, ef
		}
		ls, ok := allowed.(LiveSet)
		live := ok && x.live.reached(ls.Version())
		st, ef := p.choose(int(min(allowed.GetCardinality(), math.MaxInt32)), n, live)
		return st, live && st == StrategyExact, ef
	}
	if allowed == nil {
		if n <= smallIndex {
			return StrategyExact, false, 0
		}
		return StrategyHNSW, false, 0
	}
	card := allowed.GetCardinality()
	if card <= uint64(x.threshold) || float64(card) < twoHopFrom*float64(n) {
		ls, ok := allowed.(LiveSet)
		return StrategyExact, ok && x.live.reached(ls.Version()), 0
	}
	return StrategyHNSW, false, 0
}

// Search returns up to k streamers (by ordinal) in allowed with the highest
// dot product with q, best first, and the strategy used. q must have the
// index's dimension. allowed nil means every streamer of the version. When
// allowed is a LiveSet older than the version the live matrix has reached
// and the live matrix answers, the streamers of allowed that went offline
// since are not returned (they are about to be filtered as ended). It
// reads only immutable data and the live matrix under a read lock, so any
// number of goroutines may call it. ef ≤ 0 takes the graph's default.
// A scan of a live matrix of qscanMin rows or more uses the 8-bit scan
// with exact rescoring; SearchPrecise never does.
func (x *Index) Search(ctx context.Context, q []float32, k, ef int, allowed Allowed) ([]Hit, Strategy, error) {
	return x.search(ctx, q, k, ef, allowed, false)
}

// SearchPrecise is Search with exact float32 scans only, whatever the size
// of allowed (the operators' neighbours queries: what they see must be the
// exact answer, never the graph's or the 8-bit scan's): the live matrix
// when allowed is a LiveSet it has reached, else every vector, filtered.
func (x *Index) SearchPrecise(ctx context.Context, q []float32, k, ef int, allowed Allowed) ([]Hit, Strategy, error) {
	return x.search(ctx, q, k, ef, allowed, true)
}

func (x *Index) search(ctx context.Context, q []float32, k, ef int, allowed Allowed, precise bool) ([]Hit, Strategy, error) {
	if len(q) != x.graph.dim {
		return nil, "", lr.Errorf(lr.EINVALID, "query vector has dimension %d, index %s has %d", len(q), x.Model.Version, x.graph.dim)
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	st, scanLive, planEf := x.plan(allowed)
	if ef <= 0 {
		ef = planEf
	}
	if precise && st == StrategyHNSW {
		st = StrategyExact
		if ls, ok := allowed.(LiveSet); ok {
			scanLive = x.live.reached(ls.Version())
		}
	}
	switch {
	case st == StrategyHNSW:
		return x.graph.Search(q, k, ef, allowed), st, nil
	case scanLive && precise:
		return x.live.searchExact(q, k, allowed), st, nil
	case scanLive:
		hits, st := x.live.search(q, k, allowed)
		return hits, st, nil
	}
	hits := ExactScan(q, x.graph.vecs, x.graph.stride, x.graph.labels, k, allowed)
	runtime.KeepAlive(x) // the scan read the graph's vectors
	return hits, st, nil
}

// SearchWith answers like Search but with a forced strategy; for the
// benchmark and tests. StrategyExact scans the live matrix exactly when
// allowed is non-nil, every vector otherwise; StrategyLiveInt8 scans the
// live matrix's 8-bit copy whatever its size (allowed must be non-nil).
func (x *Index) SearchWith(st Strategy, q []float32, k, ef int, allowed Allowed) []Hit {
	switch {
	case st == StrategyHNSW:
		return x.graph.Search(q, k, ef, allowed)
	case st == StrategyLiveInt8:
		return x.live.searchInt8(q, k, allowed)
	case allowed != nil:
		return x.live.searchExact(q, k, allowed)
	}
	hits := ExactScan(q, x.graph.vecs, x.graph.stride, x.graph.labels, k, nil)
	runtime.KeepAlive(x)
	return hits
}

// New builds an Index over streamer vectors (row-major, dim each; copied)
// with the given streamer ids and ordinals. It does not validate (see
// Validate) and does not self-check.
func New(ctx context.Context, mv lr.ModelVersion, ids []int64, ords []uint32, vecs []float32, p Params, exactThreshold int) (*Index, error) {
	dim := mv.Dim
	if len(ids) != len(ords) || len(vecs) != len(ids)*dim {
		return nil, fmt.Errorf("index.New: %d ids, %d ordinals, %d floats at dim %d", len(ids), len(ords), len(vecs), dim)
	}
	t0 := time.Now()
	g, err := Build(ctx, vecs, dim, ords, p)
	if err != nil {
		return nil, err
	}
	x := assemble(mv, g, ids, exactThreshold, p.withDefaults().RecallTarget)
	x.BuiltIn = time.Since(t0)
	return x, nil
}

func assemble(mv lr.ModelVersion, g *Graph, ids []int64, exactThreshold int, target float64) *Index {
	if exactThreshold <= 0 {
		exactThreshold = DefaultExactThreshold
	}
	x := &Index{Model: mv, graph: g, ids: ids, UserRows: -1, live: newLiveMatrix(g.dim), threshold: exactThreshold, target: target}
	maxOrd := -1
	for _, o := range g.labels {
		maxOrd = max(maxOrd, int(o))
	}
	x.nodeOf = make([]int32, maxOrd+1)
	for i := range x.nodeOf {
		x.nodeOf[i] = -1
	}
	for n, o := range g.labels {
		x.nodeOf[o] = int32(n)
	}
	return x
}
