package index

import (
	"context"
	"fmt"
	"iter"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/viterin/vek/vek32"

	"github.com/liverecall/liverecall/internal/offheap"
)

// Inner product. The models rank by dot product, which is not a metric.
// Two ways to put it in a graph were measured (20k low-rank 64-d vectors,
// recall@10 vs exact at ef 64): the classic MIPS-to-L2 reduction (Bachrach
// et al. 2014: one extra component sqrt(R² - |x|²) so all stored vectors
// have norm R, queries get 0) reached 0.93; building the graph directly on
// the inner product as the similarity, the way hnswlib's "ip" space and
// ip-NSW (Morozov & Babenko 2018) do, reached 0.998 at the same cost,
// because the reduction squashes vectors of varied norm together near the
// new axis. So the default graph uses the plain inner product for both the
// beam search and the neighbour-selection heuristic (keep c if q·c ≥ r·c for
// every kept r), and Params.Augment selects the reduction. Either way a
// query computes plain dim-long dot products (the extra component is
// multiplied by 0), so every returned score is the exact model score.

// Params are the HNSW construction and search parameters.
type Params struct {
	M              int    // links per node on layers ≥ 1; layer 0 has M0 = 2M. Default 16.
	EfConstruction int    // beam width while building. Default 64.
	EfSearch       int    // default beam width of a search (raised to k when smaller). Default 64.
	Seed           uint64 // seeds the level draws; a fixed seed gives the same graph whatever Workers is.
	Workers        int    // build goroutines. Default GOMAXPROCS.
	Augment        bool   // build on the MIPS-to-L2 reduction instead of the plain inner product (see above).
	// Duty, in (0, 1), is the share of wall time each build goroutine
	// works: after every millisecond or so of insertions it pauses
	// (1-Duty)/Duty times as long, so a rebuild beside a serving index
	// leaves the CPU to the requests more often, and a request never waits
	// longer than about a millisecond for a core the build holds. 0 (or
	// ≥ 1): no pause. The graph is the same.
	Duty float64
	// RecallTarget is the recall@10 the planner aims for (see planner.go):
	// searches use the smallest ef the self-check measured reaching it, or
	// scan exactly when none does or a scan is cheaper. 0 takes
	// DefaultRecallTarget; negative turns the measured planning off (the
	// fixed threshold and EfSearch). It does not change the graph.
	RecallTarget float64
}

func (p Params) withDefaults() Params {
	if p.M <= 0 {
		p.M = 16
	}
	if p.EfConstruction <= 0 {
		p.EfConstruction = 64
	}
	if p.EfSearch <= 0 {
		p.EfSearch = 64
	}
	if p.Workers <= 0 {
		p.Workers = runtime.GOMAXPROCS(0)
	}
	if p.RecallTarget == 0 {
		p.RecallTarget = DefaultRecallTarget
	}
	return p
}

// Hit is one search result: an ordinal and its dot product with the query.
type Hit struct {
	Ord   uint32
	Score float32
}

// Allowed is the accept predicate of a filtered search, over ordinals.
// A *live.Snapshot (a roaring bitmap of live ordinals) satisfies it, and
// LiveSet.
type Allowed interface {
	Contains(ord uint32) bool
	GetCardinality() uint64
}

// LiveSet is one published version of the live set, which live/ owns and
// publishes (*live.Snapshot satisfies it): immutable, numbered, and
// carrying the changes from the version before. An Index's live matrix
// mirrors the versions it is given (Index.SetLive, Manager.SetLive), and a
// search whose filter is a LiveSet of a version the matrix has reached
// scans the matrix; any other filter, whatever its size, is not taken for
// the live set.
type LiveSet interface {
	Allowed
	// Version is 0 for the empty set before any change and goes up by
	// one with each published version.
	Version() uint64
	// Changes yields the changes from the previous version in order: the
	// ordinal went live (true) or offline (false).
	Changes() iter.Seq2[uint32, bool]
	// Ordinals returns the live ordinals (a new slice).
	Ordinals() []uint32
}

const maxLevels = 16

// Graph is an immutable HNSW graph (Malkov & Yashunin 2018) over dense node
// ids 0..n-1. Nodes carry labels (streamer ordinals); searches take and
// return labels. Once Build returns, a Graph is never modified: any number of
// goroutines may search it concurrently.
//
// Its vectors, links, levels and offsets lie outside the Go heap
// (internal/offheap), unmapped when the Graph becomes unreachable: a slice
// of them (Vector) is valid only while the Graph is, so code that reads one
// holds the Graph (or its Index) until done (runtime.KeepAlive) and never
// hands one out of the package (Index.StreamerVector copies).
type Graph struct {
	n, dim, stride int // stride = dim+1, room for the augmented component
	bdim           int // length of build-time dot products: stride with Augment, else dim
	m, m0          int
	efSearch       int
	vecs           []float32 // n*stride, augmented
	labels         []uint32  // node -> label; nil means label = node
	levels         []uint8
	layer0         []uint32 // n*(m0+1): header (see links), then links
	upperOff       []int64  // node -> start in upper, or -1
	upper          []uint32 // per node with level ≥ 1: level blocks of (m+1)
	entry          uint32
	maxLevel       int
	noTwoHop       bool      // for comparisons only: filtered searches never use searchTwoHop
	pool           sync.Pool // *scratch
}

// Len returns the number of vectors.
func (g *Graph) Len() int { return g.n }

// Dim returns the vector dimension (without the augmentation).
func (g *Graph) Dim() int { return g.dim }

// Vector returns node's stored vector (dim long, not a copy: do not modify;
// valid only while g is reachable, see Graph).
func (g *Graph) Vector(node uint32) []float32 {
	o := int(node) * g.stride
	return g.vecs[o : o+g.dim : o+g.dim]
}

func (g *Graph) aug(node uint32) []float32 {
	o := int(node) * g.stride
	return g.vecs[o : o+g.bdim : o+g.bdim]
}

func (g *Graph) label(node uint32) uint32 {
	if g.labels == nil {
		return node
	}
	return g.labels[node]
}

// A list's header counts its links. On layer 0 the low 16 bits count them
// and the high 16 bits say how many of them, the last ones, repair added:
// links to nodes no search would otherwise reach, which only filtered
// searches follow (see repair). An upper-layer header is the count.
const repairShift = 16

// links returns all of node's links on layer l.
func (g *Graph) links(node uint32, l int) []uint32 {
	var blk []uint32
	if l == 0 {
		o := int(node) * (g.m0 + 1)
		blk = g.layer0[o : o+g.m0+1]
		return blk[1 : 1+blk[0]&(1<<repairShift-1)]
	}
	o := int(g.upperOff[node]) + (l-1)*(g.m+1)
	blk = g.upper[o : o+g.m+1]
	return blk[1 : 1+blk[0]]
}

// searchLinks is links without the repair links unless filtered.
func (g *Graph) searchLinks(node uint32, l int, filtered bool) []uint32 {
	if l != 0 || filtered {
		return g.links(node, l)
	}
	o := int(node) * (g.m0 + 1)
	h := g.layer0[o]
	return g.layer0[o+1 : o+1+int(h&(1<<repairShift-1))-int(h>>repairShift)]
}

func (g *Graph) setLinks(node uint32, l int, ids []cand) {
	var blk []uint32
	if l == 0 {
		o := int(node) * (g.m0 + 1)
		blk = g.layer0[o : o+g.m0+1]
	} else {
		o := int(g.upperOff[node]) + (l-1)*(g.m+1)
		blk = g.upper[o : o+g.m+1]
	}
	blk[0] = uint32(len(ids))
	for i, c := range ids {
		blk[1+i] = c.id
	}
}

func (g *Graph) maxLinks(l int) int {
	if l == 0 {
		return g.m0
	}
	return g.m
}

// visited is a generation-stamped visited set: reset is O(1) except once
// every 65535 uses.
type visited struct {
	marks []uint16
	epoch uint16
}

func (v *visited) reset() {
	v.epoch++
	if v.epoch == 0 {
		clear(v.marks)
		v.epoch = 1
	}
}

// visit marks id and reports whether it was unvisited.
func (v *visited) visit(id uint32) bool {
	if v.marks[id] == v.epoch {
		return false
	}
	v.marks[id] = v.epoch
	return true
}

// scratch is the per-goroutine working memory of a search; pooled.
type scratch struct {
	vis      visited
	frontier maxHeap
	results  minHeap
	w, eps   []cand
	sel      []cand
	ids      []uint32  // a node's unvisited neighbours
	scores   []float32 // their scores
	inserts  int       // links insertClean added (builds)
}

func (g *Graph) getScratch() *scratch {
	if s, ok := g.pool.Get().(*scratch); ok {
		return s
	}
	return &scratch{vis: visited{marks: make([]uint16, g.n)}}
}

func (g *Graph) putScratch(s *scratch) { g.pool.Put(s) }

// score is q's dot product with node; len(q) is dim for queries (the
// augmented component is 0) and stride while building.
func (g *Graph) score(q []float32, node uint32) float32 {
	o := int(node) * g.stride
	return vek32.Dot(q, g.vecs[o:o+len(q)])
}

// scoreLinks scores ids against q in one dotRows call, into s.scores,
// prefetching next's layer-0 list when next ≥ 0.
func (g *Graph) scoreLinks(q []float32, ids []uint32, s *scratch, next int64) []float32 {
	if cap(s.scores) < len(ids) {
		s.scores = make([]float32, max(len(ids), g.m0))
	}
	sc := s.scores[:len(ids)]
	var pf *uint32
	if next >= 0 {
		pf = &g.layer0[int(next)*(g.m0+1)]
	}
	dotRows(q, g.vecs, g.stride, ids, sc, pf)
	return sc
}

func (g *Graph) greedy(q []float32, cur cand, l int, s *scratch) cand {
	for changed := true; changed; {
		changed = false
		ids := g.links(cur.id, l)
		for i, sc := range g.scoreLinks(q, ids, s, -1) {
			if sc > cur.score {
				cur, changed = cand{sc, ids[i]}, true
			}
		}
	}
	return cur
}

// searchLayer is the paper's SEARCH-LAYER: a beam search of width ef from
// eps on layer l. Nodes the filter rejects are traversed but not returned.
// The results are left in s.results.
func (g *Graph) searchLayer(q []float32, eps []cand, ef, l int, accept Allowed, s *scratch) {
	s.vis.reset()
	s.frontier = s.frontier[:0]
	s.results = s.results[:0]
	for _, e := range eps {
		if !s.vis.visit(e.id) {
			continue
		}
		s.frontier.push(e)
		if accept == nil || accept.Contains(g.label(e.id)) {
			s.results.offer(e, ef)
		}
	}
	for len(s.frontier) > 0 {
		c := s.frontier.pop()
		if len(s.results) >= ef && c.score < s.results[0].score {
			break
		}
		// Score the unvisited neighbours together (dotRows prefetches
		// their rows), then queue them in link order as if one by one.
		ids := s.ids[:0]
		for _, nb := range g.searchLinks(c.id, l, accept != nil) {
			if s.vis.visit(nb) {
				ids = append(ids, nb)
			}
		}
		s.ids = ids
		// The frontier's best is likely the next node expanded: its list
		// is fetched while these rows are scored.
		next := int64(-1)
		if l == 0 && len(s.frontier) > 0 {
			next = int64(s.frontier[0].id)
		}
		for i, sc := range g.scoreLinks(q, ids, s, next) {
			nb := ids[i]
			if len(s.results) < ef || sc > s.results[0].score {
				s.frontier.push(cand{sc, nb})
				if accept == nil || accept.Contains(g.label(nb)) {
					s.results.offer(cand{sc, nb}, ef)
				}
			}
		}
	}
}

// A filtered search with an accepted fraction in [twoHopFrom, twoHopBelow)
// walks the accepted nodes only, reaching them through rejected ones (see
// searchTwoHop). Measured on 100k low-rank vectors at ef 64: at 20% allowed
// recall 0.92 in 0.3 ms against 0.94 in 1.9 ms for the widened plain
// filtered search; at 5% 0.68 against 0.86 and at 1% 0.12 against 0.99 (the
// accepted subgraph falls apart), so below 10% the plain search is kept —
// the planner scans such sets exactly anyway.
const (
	twoHopFrom  = 0.1
	twoHopBelow = 0.3
)

// searchTwoHop is a filtered beam search on layer 0 that scores and queues
// accepted nodes only: a rejected neighbour is not scored or followed, but
// its own neighbours are looked at (ACORN-1, Patel et al. 2024). The beam
// then moves through the accepted subgraph, which two-hop links keep
// connected at low selectivity, instead of spending its width on rejected
// nodes. The entry point is queued even if rejected.
func (g *Graph) searchTwoHop(q []float32, ep cand, ef int, accept Allowed, s *scratch) {
	s.vis.reset()
	s.frontier = s.frontier[:0]
	s.results = s.results[:0]
	s.vis.visit(ep.id)
	s.frontier.push(ep)
	if accept.Contains(g.label(ep.id)) {
		s.results.offer(ep, ef)
	}
	consider := func(nb uint32) {
		if !s.vis.visit(nb) {
			return
		}
		sc := g.score(q, nb)
		if len(s.results) < ef || sc > s.results[0].score {
			s.frontier.push(cand{sc, nb})
			s.results.offer(cand{sc, nb}, ef)
		}
	}
	for len(s.frontier) > 0 {
		c := s.frontier.pop()
		if len(s.results) >= ef && c.score < s.results[0].score {
			break
		}
		for _, nb := range g.links(c.id, 0) {
			if s.vis.marks[nb] == s.vis.epoch {
				continue
			}
			if accept.Contains(g.label(nb)) {
				consider(nb)
				continue
			}
			for _, nb2 := range g.links(nb, 0) {
				if s.vis.marks[nb2] != s.vis.epoch && accept.Contains(g.label(nb2)) {
					consider(nb2)
				}
			}
		}
	}
}

// Search returns up to k labels with the highest dot product with q (dim
// long), best first, scores exact. ef ≤ 0 uses the graph's EfSearch; ef is
// raised to k. With accept non-nil only accepted labels are returned; the
// filter is applied during traversal and the beam is widened by
// 1/sqrt(accepted fraction), so small accepted sets cost more (the planner
// sends them to an exact scan). It allocates only the result slice.
func (g *Graph) Search(q []float32, k, ef int, accept Allowed) []Hit {
	if g.n == 0 || k <= 0 {
		return nil
	}
	if len(q) != g.dim {
		panic(fmt.Sprintf("index: query of dim %d on a graph of dim %d", len(q), g.dim))
	}
	if ef <= 0 {
		ef = g.efSearch
	}
	twoHop := false
	if accept != nil {
		p := float64(accept.GetCardinality()) / float64(g.n)
		switch {
		case p >= twoHopFrom && p < twoHopBelow && !g.noTwoHop:
			twoHop = true
		case p < 1:
			// The best accepted nodes sit deeper in the overall ranking
			// the smaller the accepted fraction p is, where beam search is
			// less accurate: widen the beam by 1/sqrt(p), at most to 1024.
			ef = max(ef, min(int(float64(ef)/math.Sqrt(max(p, 1e-6))), 1024))
		}
	}
	ef = max(ef, k)
	s := g.getScratch()
	ep := cand{g.score(q, g.entry), g.entry}
	for l := g.maxLevel; l > 0; l-- {
		ep = g.greedy(q, ep, l, s)
	}
	s.eps = append(s.eps[:0], ep)
	if twoHop {
		g.searchTwoHop(q, ep, ef, accept, s)
	} else {
		g.searchLayer(q, s.eps, ef, 0, accept, s)
	}
	for len(s.results) > k {
		s.results.pop()
	}
	s.w = s.results.sorted(s.w[:0])
	// The beam scored with dotRows; the k returned are rescored with
	// vek32.Dot, the kernel of Dot and of the exact scans, so a hit's score
	// is the same whichever way it was found.
	for i := range s.w {
		s.w[i].score = g.score(q, s.w[i].id)
	}
	sortCands(s.w)
	out := make([]Hit, len(s.w))
	for i, c := range s.w {
		out[i] = Hit{Ord: g.label(c.id), Score: c.score}
	}
	g.putScratch(s)
	return out
}

// selectHeuristic is the paper's SELECT-NEIGHBORS-HEURISTIC: from cands
// (sorted best first, scored against the base node) keep c only if c is
// closer to the base than to every neighbour already kept. With fewer than
// max candidates all are kept (as hnswlib does). A candidate is scored
// against the kept ones in one dotRows call (the build's main cost on flat
// data, where most candidates are kept and every kept one is compared).
func (g *Graph) selectHeuristic(cands []cand, maxSel int, dst []cand, s *scratch) []cand {
	dst = dst[:0]
	if len(cands) <= maxSel {
		return append(dst, cands...)
	}
	kept := s.ids[:0]
	for _, c := range cands {
		if len(dst) >= maxSel {
			break
		}
		ok := true
		if len(kept) > 0 {
			for _, sc := range g.scoreRows(g.aug(c.id), kept, s) {
				if sc > c.score {
					ok = false
					break
				}
			}
		}
		if ok {
			dst = append(dst, c)
			kept = append(kept, c.id)
		}
	}
	s.ids = kept[:0]
	return dst
}

// scoreRows scores rows ids against q (bdim long while building) in one
// dotRows call, into s.scores.
func (g *Graph) scoreRows(q []float32, ids []uint32, s *scratch) []float32 {
	if cap(s.scores) < len(ids) {
		s.scores = make([]float32, max(len(ids), 2*g.m0))
	}
	sc := s.scores[:len(ids)]
	dotRows(q, g.vecs, g.stride, ids, sc, nil)
	return sc
}

func sortCands(c []cand) {
	slices.SortFunc(c, func(a, b cand) int {
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
	})
}

// Build builds a graph over n = len(vecs)/dim vectors stored row-major in
// vecs (copied; the caller keeps vecs). labels, if non-nil, gives each row's
// label (len n). The build runs on p.Workers goroutines and is deterministic
// for a fixed p.Seed: nodes are inserted in batches; within a batch each node
// searches the graph as it was before the batch (in parallel) plus the
// batch's earlier nodes (exactly), then links are written per node in
// parallel, each node's list by one goroutine in a fixed order. It returns
// ctx's error if ctx ends first.
func Build(ctx context.Context, vecs []float32, dim int, labels []uint32, p Params) (*Graph, error) {
	p = p.withDefaults()
	if dim <= 0 || len(vecs)%dim != 0 {
		return nil, fmt.Errorf("index: %d floats is not a whole number of rows of dim %d", len(vecs), dim)
	}
	n := len(vecs) / dim
	if labels != nil && len(labels) != n {
		return nil, fmt.Errorf("index: %d labels for %d vectors", len(labels), n)
	}
	g := &Graph{n: n, dim: dim, stride: dim, bdim: dim, m: p.M, m0: 2 * p.M, efSearch: p.EfSearch, labels: labels}
	if p.Augment {
		g.stride = dim + 1
		g.bdim = g.stride
	}
	// Augment (see the Inner product note above).
	g.vecs = offheap.Make[float32](g, n*g.stride)
	norms := make([]float64, n)
	var maxSq float64
	for i := range n {
		row := vecs[i*dim : (i+1)*dim]
		copy(g.vecs[i*g.stride:], row)
		sq := float64(vek32.Dot(row, row))
		norms[i] = sq
		maxSq = max(maxSq, sq)
	}
	for i := range n {
		if p.Augment {
			g.vecs[i*g.stride+dim] = float32(math.Sqrt(max(0, maxSq-norms[i])))
		}
	}
	// Levels.
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))
	ml := 1 / math.Log(float64(p.M))
	g.levels = offheap.Make[uint8](g, n)
	g.upperOff = offheap.Make[int64](g, n)
	var upper int64
	for i := range n {
		lv := min(int(-math.Log(1-rng.Float64())*ml), maxLevels-1)
		g.levels[i] = uint8(lv)
		if lv == 0 {
			g.upperOff[i] = -1
			continue
		}
		g.upperOff[i] = upper
		upper += int64(lv * (p.M + 1))
	}
	g.layer0 = offheap.Make[uint32](g, n*(g.m0+1))
	g.upper = offheap.Make[uint32](g, int(upper))
	if n == 0 {
		return g, nil
	}
	g.entry, g.maxLevel = 0, int(g.levels[0])
	b := &builder{g: g, ef: p.EfConstruction, workers: p.Workers, duty: p.Duty, pace: newPacer(p.Duty), clean: make([]bool, n)}
	for done := 1; done < n; {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		bs := min(max(done/32, 1), 256)
		hi := min(n, done+bs)
		b.batch(uint32(done), uint32(hi))
		done = hi
	}
	g.repair(b.scratch(0), p.EfConstruction, b.pace)
	if insertCleanHook != nil {
		total := 0
		for _, sc := range b.scr {
			total += sc.inserts
		}
		insertCleanHook(total)
	}
	return g, nil
}

// repair links every node that cannot be reached on layer 0 from the
// entry point (searches end on layer 0, whatever node they enter it by). On
// the inner product a node of small norm is rarely anyone's best neighbour,
// so the heuristic prunes away all its in-links: on 8k low-rank 32-d vectors
// ~1.3% of nodes (TestRepairLinksOnlyToOtherwiseUnreachable logs the
// count). Unfiltered top-k never needs them, but a filtered search may. Each unreachable node, in id order, is added to the layer-0
// list of its best reachable match with room (found by a search from the
// entry point), or when none of the search's matches has room, of the
// reachable node with room fewest hops from the best (roomNear). The added
// links are marked (see links) and only filtered searches follow them:
// followed by every search they cost a dot product per link each time a
// hub holding them is expanded, for no recall (measured on 50k low-rank:
// ~35% more time per query at the same recall). Only when no reachable list has room does a link
// get replaced: the one to the node with the most in-links, so no node
// loses its only in-link. Sequential and deterministic. It returns the
// number of nodes linked.
func (g *Graph) repair(s *scratch, ef int, pace *pacer) int {
	in := make([]int32, g.n)
	for v := range g.n {
		for _, u := range g.links(uint32(v), 0) {
			in[u]++
		}
	}
	seen := make([]bool, g.n)
	var stack []uint32
	reach := func(from uint32) {
		if seen[from] {
			return
		}
		seen[from] = true
		stack = append(stack[:0], from)
		for len(stack) > 0 {
			v := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, u := range g.links(v, 0) {
				if !seen[u] {
					seen[u] = true
					stack = append(stack, u)
				}
			}
		}
	}
	reach(g.entry)
	fixed := 0
	for v := range uint32(g.n) {
		if seen[v] {
			continue
		}
		pace.tick()
		q := g.aug(v)
		ep := cand{vek32.Dot(q, g.aug(g.entry)), g.entry}
		for l := g.maxLevel; l > 0; l-- {
			ep = g.greedy(q, ep, l, s)
		}
		s.eps = append(s.eps[:0], ep)
		g.searchLayer(q, s.eps, ef, 0, nil, s)
		s.w = s.results.sorted(s.w[:0])
		// The best reachable match with room in its list; failing that,
		// the best reachable match, whose list then loses a link.
		u, ok, full := uint32(0), false, false
		for _, c := range s.w {
			if c.id == v || !seen[c.id] {
				continue
			}
			if len(g.links(c.id, 0)) < g.m0 {
				u, ok = c.id, true
				break
			}
			if !full {
				u, full = c.id, true
			}
		}
		if !ok && !full {
			continue
		}
		if !ok {
			u = g.roomNear(u, s)
		}
		o := int(u) * (g.m0 + 1)
		blk := g.layer0[o : o+g.m0+1]
		cnt, nrep := int(blk[0]&(1<<repairShift-1)), int(blk[0]>>repairShift)
		if cnt < g.m0 {
			blk[1+cnt] = v
			blk[0] = uint32(cnt+1) | uint32(nrep+1)<<repairShift
		} else {
			// No reachable list has room (not seen in practice): replace
			// the link to the node with the most in-links; the new link
			// joins the repair links at the end of the list.
			j := 1
			for i := 2; i <= g.m0; i++ {
				if in[blk[i]] > in[blk[j]] {
					j = i
				}
			}
			if in[blk[j]] <= 1 {
				continue
			}
			in[blk[j]]--
			if p := cnt - nrep; j <= p {
				blk[j], blk[p] = blk[p], v
				nrep++
			} else {
				blk[j] = v
			}
			blk[0] = uint32(cnt) | uint32(nrep)<<repairShift
		}
		in[v]++
		fixed++
		reach(v)
	}
	return fixed
}

// roomNear returns the node nearest from (fewest layer-0 hops, then link
// order) whose layer-0 list has room, or from itself if none has. Every
// node it reaches is reachable when from is.
func (g *Graph) roomNear(from uint32, s *scratch) uint32 {
	s.vis.reset()
	s.vis.visit(from)
	queue := append(s.ids[:0], from)
	defer func() { s.ids = queue[:0] }()
	for i := 0; i < len(queue); i++ {
		for _, u := range g.links(queue[i], 0) {
			if !s.vis.visit(u) {
				continue
			}
			if len(g.links(u, 0)) < g.m0 {
				return u
			}
			queue = append(queue, u)
		}
	}
	return from
}

type builder struct {
	g       *Graph
	ef      int
	workers int
	duty    float64
	pace    *pacer // the single-worker path's, kept across batches
	// clean[v]: v's layer-0 list is what the heuristic keeps of it, in
	// order (see link): it was the heuristic's output and nothing was
	// appended since.
	clean []bool
	// per batch
	sel    [][][]cand // [node-lo][layer] selected neighbours
	pairs  []pair
	groups []int
	scr    []*scratch
}

// pacer makes a goroutine work a share (duty) of wall time: after each
// paceQuantum of work it sleeps (1-duty)/duty times as long. The quantum
// is short so the goroutine's pauses come often: whatever else wants the
// core (a request) waits at most about a quantum for it, where one pause
// per batch of insertions left it waiting for the whole batch (tens of
// milliseconds). A nil pacer never pauses.
type pacer struct {
	duty  float64
	t0    time.Time
	now   func() time.Time    // time.Now but in tests
	sleep func(time.Duration) // time.Sleep but in tests
}

const paceQuantum = time.Millisecond

func newPacer(duty float64) *pacer {
	if duty <= 0 || duty >= 1 {
		return nil
	}
	return &pacer{duty: duty, t0: time.Now(), now: time.Now, sleep: time.Sleep}
}

// tick is called between units of work.
func (p *pacer) tick() {
	if p == nil {
		return
	}
	if el := p.now().Sub(p.t0); el >= paceQuantum {
		p.sleep(time.Duration(float64(el) * (1 - p.duty) / p.duty))
		p.t0 = p.now()
	}
}

type pair struct {
	to, from uint32
	layer    uint8
}

func (b *builder) scratch(w int) *scratch {
	for len(b.scr) <= w {
		b.scr = append(b.scr, &scratch{vis: visited{marks: make([]uint16, b.g.n)}})
	}
	return b.scr[w]
}

// parallel runs fn(worker, i) for i in [0, n) on the builder's workers.
func (b *builder) parallel(n int, fn func(w, i int)) {
	workers := min(b.workers, n)
	if workers <= 1 {
		for i := range n {
			fn(0, i)
			b.pace.tick()
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			pace := newPacer(b.duty)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(w, i)
				pace.tick()
			}
		})
	}
	wg.Wait()
}

func (b *builder) batch(lo, hi uint32) {
	g := b.g
	cnt := int(hi - lo)
	for len(b.sel) < cnt {
		b.sel = append(b.sel, nil)
	}
	for i := range b.workers {
		b.scratch(i)
	}
	// Phase A: choose every batch node's neighbours; the graph is only read.
	b.parallel(cnt, func(w, i int) {
		b.sel[i] = b.choose(lo+uint32(i), lo, b.scr[w], b.sel[i])
	})
	// Phase B1: forward links (each node's own lists).
	b.pairs = b.pairs[:0]
	for i := range cnt {
		v := lo + uint32(i)
		for l, sel := range b.sel[i] {
			g.setLinks(v, l, sel)
			for _, u := range sel {
				b.pairs = append(b.pairs, pair{to: u.id, from: v, layer: uint8(l)})
			}
		}
	}
	// Phase B2: reverse links, grouped by (node, layer); each group is owned
	// by one goroutine and processed in a fixed order.
	slices.SortFunc(b.pairs, func(x, y pair) int {
		if x.to != y.to {
			return int(int64(x.to) - int64(y.to))
		}
		if x.layer != y.layer {
			return int(x.layer) - int(y.layer)
		}
		return int(int64(x.from) - int64(y.from))
	})
	b.groups = b.groups[:0]
	for i := range b.pairs {
		if i == 0 || b.pairs[i].to != b.pairs[i-1].to || b.pairs[i].layer != b.pairs[i-1].layer {
			b.groups = append(b.groups, i)
		}
	}
	b.groups = append(b.groups, len(b.pairs))
	b.parallel(len(b.groups)-1, func(w, gi int) {
		b.link(b.pairs[b.groups[gi]:b.groups[gi+1]], b.scr[w])
	})
	// Entry point: the first node reaching a new top layer.
	for v := lo; v < hi; v++ {
		if int(g.levels[v]) > g.maxLevel {
			g.maxLevel, g.entry = int(g.levels[v]), v
		}
	}
}

// choose returns v's selected neighbours per layer 0..level(v).
func (b *builder) choose(v, lo uint32, s *scratch, out [][]cand) [][]cand {
	g := b.g
	q := g.aug(v)
	lv := int(g.levels[v])
	for len(out) <= lv {
		out = append(out, nil)
	}
	out = out[:lv+1]
	// intra appends the batch's earlier nodes on layer l, scored in one
	// dotRows call.
	intra := func(l int, w []cand) []cand {
		ids := s.ids[:0]
		for j := lo; j < v; j++ {
			if int(g.levels[j]) >= l {
				ids = append(ids, j)
			}
		}
		for i, sc := range g.scoreRows(q, ids, s) {
			w = append(w, cand{sc, ids[i]})
		}
		s.ids = ids[:0]
		return w
	}
	// Layers above the graph's top: only earlier nodes of this batch.
	for l := lv; l > g.maxLevel; l-- {
		s.w = intra(l, s.w[:0])
		sortCands(s.w)
		out[l] = append(out[l][:0], g.selectHeuristic(s.w, g.maxLinks(l), s.sel, s)...)
	}
	ep := cand{vek32.Dot(q, g.aug(g.entry)), g.entry}
	for l := g.maxLevel; l > lv; l-- {
		ep = g.greedy(q, ep, l, s)
	}
	s.eps = append(s.eps[:0], ep)
	for l := min(lv, g.maxLevel); l >= 0; l-- {
		g.searchLayer(q, s.eps, b.ef, l, nil, s)
		s.w = append(s.w[:0], s.results...)
		s.eps = append(s.eps[:0], s.results...)
		s.w = intra(l, s.w)
		sortCands(s.w)
		if l == 0 {
			b.clean[v] = len(s.w) > g.m0 // the heuristic ran
		}
		out[l] = append(out[l][:0], g.selectHeuristic(s.w, g.maxLinks(l), s.sel, s)...)
	}
	return out
}

// link adds the reverse links in ps (all to one node on one layer),
// re-selecting with the heuristic when the list overflows. A single new
// link to a full layer-0 list that is clean (the heuristic's own output) is
// inserted by insertClean, which gives the same list for a fraction of the
// dot products.
func (b *builder) link(ps []pair, s *scratch) {
	g := b.g
	u, l := ps[0].to, int(ps[0].layer)
	cur := g.links(u, l)
	limit := g.maxLinks(l)
	if incrementalLinks && l == 0 && len(ps) == 1 && len(cur) == limit && b.clean[u] && !slices.Contains(cur, ps[0].from) {
		if b.insertClean(u, cur, ps[0].from, s) {
			return
		}
	}
	s.w = s.w[:0]
	for _, id := range cur {
		s.w = append(s.w, cand{id: id})
	}
	for _, p := range ps {
		if !slices.Contains(cur, p.from) {
			s.w = append(s.w, cand{id: p.from})
		}
	}
	if len(s.w) == len(cur) {
		return
	}
	if len(s.w) <= limit {
		g.setLinks(u, l, s.w)
		if l == 0 {
			b.clean[u] = false
		}
		return
	}
	ids := s.ids[:0]
	for _, c := range s.w {
		ids = append(ids, c.id)
	}
	for i, sc := range g.scoreRows(g.aug(u), ids, s) {
		s.w[i].score = sc
	}
	s.ids = ids[:0]
	sortCands(s.w)
	s.sel = g.selectHeuristic(s.w, limit, s.sel, s)
	g.setLinks(u, l, s.sel)
	if l == 0 {
		b.clean[u] = true
	}
}

// incrementalLinks turns insertClean on (tests compare the graphs built
// with and without it); insertCleanHook, when set, is told at the end of
// each Build how many links insertClean added.
var (
	incrementalLinks = true
	insertCleanHook  func(inserts int)
)

// insertClean adds link c to u's full layer-0 list cur, which the
// heuristic keeps whole in its order (clean). The heuristic over cur and c
// would keep cur's members ranked above c (they pass the same checks as
// before), keep c if none of them prunes it, and then keep each later
// member unless c prunes it, up to the limit: so it scores cur and c
// against u, c against the members above it, and the members below it
// against c, about 2·M0 dot products where the heuristic over the 2·M0+1
// spends up to ~M0²/2 (on flat data most candidates pass, and every pass
// costs a product with each kept one). Its dot products are the
// heuristic's own (dotRows, symmetric in its two rows), so the list is
// the one link's heuristic would give, and clean. It returns false,
// changing nothing, if cur's recomputed scores are not in order (a score
// computed another way when cur was chosen): link then runs the heuristic.
func (b *builder) insertClean(u uint32, cur []uint32, c uint32, s *scratch) bool {
	g := b.g
	limit := g.m0
	ids := append(s.ids[:0], cur...)
	ids = append(ids, c)
	s.ids = ids[:0]
	sc := g.scoreRows(g.aug(u), ids, s)
	s.w = s.w[:0]
	for i, id := range cur {
		s.w = append(s.w, cand{sc[i], id})
		if i > 0 && !better(s.w[i-1], s.w[i]) {
			return false
		}
	}
	nc := cand{sc[len(cur)], c}
	p := 0
	for p < len(s.w) && better(s.w[p], nc) {
		p++
	}
	if p >= limit {
		return true // the heuristic would stop before reaching c
	}
	// c against the members above it (all kept).
	if p > 0 {
		ids = ids[:0]
		for _, x := range s.w[:p] {
			ids = append(ids, x.id)
		}
		for _, d := range g.scoreRows(g.aug(c), ids, s) {
			if d > nc.score {
				return true // c pruned: the list stays as it is
			}
		}
	}
	// The members below c, each against c.
	rest := s.w[p:]
	ids = ids[:0]
	for _, x := range rest {
		ids = append(ids, x.id)
	}
	dc := g.scoreRows(g.aug(c), ids, s)
	s.sel = append(s.sel[:0], s.w[:p]...)
	s.sel = append(s.sel, nc)
	for i, x := range rest {
		if len(s.sel) >= limit {
			break
		}
		if dc[i] <= x.score {
			s.sel = append(s.sel, x)
		}
	}
	g.setLinks(u, 0, s.sel)
	s.inserts++
	return true
}
