package index

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"
)

// Recall-aware planning by measured cost.
//
// The self-check of a build (selfCheck) measures, on the sampled user
// vectors, the graph's recall@10 against exact search and its time per
// search for each beam of a sweep (sweepEfs, plus the configured default)
// with no filter and with a random accepted share of the vectors (the
// shares of sweepShares, nested subsets); and the time of an exact scan of
// every vector, and of the live matrix's scans (float32, and 8-bit with
// exact rescoring on CPUs with AVX-512 VNNI) at two sizes. That is the
// index's Profile. From it and the configured recall target
// (Params.RecallTarget) each share gets the smallest swept ef whose
// measured recall reaches the target, and the time the graph takes at it
// (a PlanRow). A search then picks, from the size of its allowed set:
//   - an exact scan when under 10% of the index is allowed (the filtered
//     graph is slow and inaccurate there, see twoHopFrom), or when no swept
//     ef reaches the target at the share (the widest, 256, is the budget),
//     or when the scan — of the live matrix when the filter is a live set
//     it has reached, else of every vector — is estimated to take less
//     than graphMargin times the graph's measured time at its ef;
//   - otherwise the graph, with the chosen ef of the share.
//
// A share between two measured ones takes the row of the smaller (the
// graph's recall falls, and its time rises, as the share falls), so the
// estimate is on the safe side. Without a profile (an index made by New
// and not self-checked, or loaded from a format-2 snapshot) or with the
// target off (negative), the planner falls back to the fixed threshold
// (Config.ExactThreshold, DefaultExactThreshold) and the default ef.

// DefaultRecallTarget is the recall@10 the planner aims for when
// Params.RecallTarget is 0.
const DefaultRecallTarget = 0.95

var (
	// sweepEfs are the beams the self-check measures; the widest is the
	// per-query budget: a target no swept ef reaches is met by scanning.
	sweepEfs = []int{16, 32, 64, 128, 256}
	// sweepShares are the accepted shares measured: 1 is no filter; the
	// others are random nested subsets. 0.1 is twoHopFrom, below which the
	// planner always scans; 0.3 is twoHopBelow (another traversal).
	sweepShares = []float64{1, 0.5, 0.3, 0.2, 0.1}
	// liveSizes are the live-matrix sizes whose scans are timed (capped at
	// the index's size): one that stays in a core's caches, one that does
	// not; the cost of other sizes is interpolated (extrapolated linearly
	// beyond the largest).
	liveSizes = []int{16_384, 131_072}
)

// sweepFilteredFrom is the index size above which the self-check measures
// the filtered graph (smallIndex: at most that many vectors scan in
// ≤ ~0.2 ms; a variable for tests).
var sweepFilteredFrom = smallIndex

// filteredQueries is how many of the sampled queries measure the graph
// with a filter (all of them measure it without): enough for the recall
// of a share to ±0.02, at a fraction of the cost.
const filteredQueries = 100

// scanQueries is how many of the sampled queries time the live scans.
const scanQueries = 50

// graphMargin: the graph is chosen over the scan only when its measured
// time times graphMargin is below the scan's estimated time. The scan's
// answer is exact and its time steady; the graph's varies per query and
// its recall is an estimate from a sample.
const graphMargin = 1.2

// Profile is what a build's self-check measured of an index: recall@10
// and median µs per search of the graph for each swept ef and accepted
// share, and the scans' times. Times are medians over the sampled queries,
// measured while the build shared the machine (the duty cycle's pauses are
// not counted); they are used as ratios.
type Profile struct {
	Queries int       `json:"queries"`
	Efs     []int     `json:"efs"`
	Shares  []float64 `json:"shares"`
	// Recall and GraphUs are indexed [share][ef]. A share's row stops at
	// the first ef whose recall was 1 (wider beams were not measured: they
	// cannot do better, and the planner takes the smallest).
	Recall  [][]float64 `json:"recall"`
	GraphUs [][]float64 `json:"graph_us"`
	// FullScanUs is an exact scan of every vector (what answers a filter
	// that is not the live set).
	FullScanUs float64 `json:"full_scan_us"`
	// LiveRows are the live-matrix sizes timed; LiveExactUs the float32
	// scan at each, LiveInt8Us the 8-bit scan with rescoring (empty when
	// the CPU has no AVX-512 VNNI), Int8Recall its recall@10 against the
	// float32 scan at the largest size.
	LiveRows    []int     `json:"live_rows"`
	LiveExactUs []float64 `json:"live_exact_us"`
	LiveInt8Us  []float64 `json:"live_int8_us,omitempty"`
	Int8Recall  float64   `json:"int8_recall,omitempty"`
}

// PlanRow is the planner's choice for one measured accepted share.
type PlanRow struct {
	Share float64 `json:"share"`
	// Ef is the smallest swept ef whose measured recall reaches the
	// target; 0 when none does (searches at this share scan exactly).
	Ef int `json:"ef"`
	// Recall is the measured recall at Ef (at the widest ef when Ef is 0),
	// GraphUs the graph's median µs per search there.
	Recall  float64 `json:"recall"`
	GraphUs float64 `json:"graph_us"`
}

// PlannerStatus describes how an index plans its searches.
type PlannerStatus struct {
	// Mode is "measured" (by the profile and the recall target) or
	// "threshold" (no profile, or the target off: exact scans up to
	// Threshold allowed vectors or under 10% of the index, else the graph
	// at DefaultEf).
	Mode         string    `json:"mode"`
	RecallTarget float64   `json:"recall_target,omitempty"`
	Threshold    int       `json:"threshold,omitempty"`
	DefaultEf    int       `json:"default_ef"`
	Rows         []PlanRow `json:"rows,omitempty"`
	// Profile is what the self-check measured (nil when nothing was: an
	// index loaded from a format-2 snapshot).
	Profile *Profile `json:"profile,omitempty"`
}

// planner is an index's measured plan: the profile and the row per share
// for the recall target.
type planner struct {
	prof   *Profile
	target float64
	rows   []PlanRow
	int8   bool // live scans of qscanMin rows or more use the 8-bit scan, and it was timed
}

// newPlanner derives the rows from prof for target (> 0).
func newPlanner(prof *Profile, target float64) *planner {
	p := &planner{prof: prof, target: target, int8: hasVNNI && len(prof.LiveInt8Us) == len(prof.LiveRows)}
	for s, share := range prof.Shares {
		row := PlanRow{Share: share}
		for e, r := range prof.Recall[s] {
			row.Recall, row.GraphUs = r, prof.GraphUs[s][e]
			if r >= target {
				row.Ef = prof.Efs[e]
				break
			}
		}
		p.rows = append(p.rows, row)
	}
	return p
}

// row returns the row of the largest measured share ≤ share (shares are
// in descending order), or nil when share is below them all.
func (p *planner) row(share float64) *PlanRow {
	for i := range p.rows {
		if p.rows[i].Share <= share+1e-9 {
			return &p.rows[i]
		}
	}
	return nil
}

// liveScanUs estimates the live matrix's scan of c rows: linear through
// the origin and the timed sizes, extrapolated from the largest.
func (p *planner) liveScanUs(c int) float64 {
	ts := p.prof.LiveExactUs
	if p.int8 && c >= qscanMin {
		ts = p.prof.LiveInt8Us
	}
	return interpolate(p.prof.LiveRows, ts, c)
}

func interpolate(xs []int, ys []float64, c int) float64 {
	if len(xs) == 0 {
		return math.Inf(1)
	}
	x0, y0 := 0.0, 0.0
	for i, x := range xs {
		if c <= x || i == len(xs)-1 {
			if c > x { // beyond the largest: its rate per row
				return ys[i] * float64(c) / float64(x)
			}
			return y0 + (ys[i]-y0)*(float64(c)-x0)/(float64(x)-x0)
		}
		x0, y0 = float64(x), ys[i]
	}
	return math.Inf(1)
}

// choose plans a search with card allowed vectors of n (card < 0: no
// filter); live says the live matrix would answer a scan. It returns the
// strategy (StrategyHNSW or StrategyExact) and the graph's ef.
func (p *planner) choose(card, n int, live bool) (Strategy, int) {
	var r *PlanRow
	scanUs := p.prof.FullScanUs
	if card < 0 {
		r = &p.rows[0]
	} else {
		if n == 0 || float64(card) < twoHopFrom*float64(n) {
			return StrategyExact, 0
		}
		r = p.row(float64(card) / float64(n))
		if live {
			scanUs = p.liveScanUs(card)
		}
	}
	if r == nil || r.Ef == 0 || scanUs <= graphMargin*r.GraphUs {
		return StrategyExact, 0
	}
	return StrategyHNSW, r.Ef
}

// servingRecall is the recall@10 the self-check reports (and the floor is
// held against): the recall unfiltered searches are served with. With a
// target, the graph's at the chosen ef, or 1 when no ef reaches the target
// (they scan exactly: flat data the graph cannot search is served, exactly,
// rather than refused); without, the graph's at the default ef.
func (x *Index) servingRecall() float64 {
	prof := x.profile
	if prof == nil {
		return 0
	}
	if p := x.planner; p != nil {
		if p.rows[0].Ef == 0 {
			return 1
		}
		return p.rows[0].Recall
	}
	row := prof.Recall[0]
	if e := slices.Index(prof.Efs, x.graph.efSearch); e >= 0 && e < len(row) {
		return row[e]
	}
	return row[len(row)-1] // 1: the sweep stopped before the default ef
}

// setProfile gives x its measured profile and, with a recall target, the
// plan derived from it. Called before x serves (the build's self-check,
// or a snapshot load).
func (x *Index) setProfile(prof *Profile) {
	x.profile = prof
	x.planner = nil
	if prof != nil && x.target > 0 && prof.check() == nil {
		x.planner = newPlanner(prof, x.target)
	}
}

// Planner describes how x plans its searches: the recall target, the
// chosen ef and the measured recall per accepted share, and the profile.
func (x *Index) Planner() PlannerStatus {
	st := PlannerStatus{Mode: "threshold", Threshold: x.threshold, DefaultEf: x.graph.efSearch, Profile: x.profile}
	if p := x.planner; p != nil {
		st.Mode, st.Threshold, st.RecallTarget, st.Rows = "measured", 0, p.target, slices.Clone(p.rows)
	}
	return st
}

// PlanEf returns the strategy Search would use for allowed and, for the
// graph, the ef it would search with.
func (x *Index) PlanEf(allowed Allowed) (Strategy, int) {
	st, _, ef := x.plan(allowed)
	if st == StrategyHNSW && ef <= 0 {
		ef = x.graph.efSearch
	}
	return st, ef
}

// shareFilter accepts the first limit nodes of a random permutation, by
// ordinal: nested random subsets of the index for the self-check.
type shareFilter struct {
	pos   []uint32 // ordinal -> position in the permutation (MaxUint32: none)
	limit uint32
}

func (f *shareFilter) Contains(ord uint32) bool {
	return int(ord) < len(f.pos) && f.pos[ord] < f.limit
}
func (f *shareFilter) GetCardinality() uint64 { return uint64(f.limit) }

// SelfCheck measures x's profile on users (query vectors of x's dimension,
// e.g. user vectors sampled from the store), or on q of its streamer
// vectors sampled (seeded) when users is empty, gives it to x (its plan
// follows), and returns the recall@10 the self-check reports (see
// Index.Recall). It uses every core.
func SelfCheck(x *Index, users [][]float32, q, k int) float64 {
	r, _ := selfCheck(context.Background(), x, users, q, k, runtime.GOMAXPROCS(0), 0)
	return r
}

// selfCheck is SelfCheck on workers goroutines paced to duty; it stops
// early with ctx's error when ctx ends (a shutdown cancels a rebuild in
// every phase, not only while the graph is built).
func selfCheck(ctx context.Context, x *Index, users [][]float32, q, k, workers int, duty float64) (float64, error) {
	if x.graph.Len() == 0 {
		return 0, nil
	}
	prof, err := measureProfile(ctx, x, users, q, k, workers, duty)
	if err != nil {
		return 0, err
	}
	x.setProfile(prof)
	return x.servingRecall(), nil
}

// measureProfile runs the sweep (see the top of this file). Per query: an
// exact scan of every vector (the ground truth, timed), the ground truth of
// each accepted share (one pass over the largest subset), the graph at
// every ef and share, and the live-matrix scans at each size. The pacer
// ticks between searches, so the duty cycle holds within a query's work.
func measureProfile(ctx context.Context, x *Index, users [][]float32, q, k, workers int, duty float64) (*Profile, error) {
	g := x.graph
	n := g.Len()
	queries := users
	if len(queries) == 0 {
		r := rand.New(rand.NewPCG(uint64(x.Model.ID), 1))
		for range q {
			queries = append(queries, g.Vector(uint32(r.IntN(n))))
		}
	}
	nq := len(queries)
	efs := slices.Clone(sweepEfs)
	if !slices.Contains(efs, g.efSearch) {
		efs = append(efs, g.efSearch)
		slices.Sort(efs)
	}
	prof := &Profile{Queries: nq, Efs: efs, Shares: slices.Clone(sweepShares)}
	if n <= sweepFilteredFrom {
		// A small index scans any filtered set in ≤ ~0.2 ms: the filtered
		// graph is not measured, and the planner scans filtered searches.
		prof.Shares = prof.Shares[:1]
	}

	// Nested accepted subsets: the first ceil(share·n) nodes of a seeded
	// permutation.
	perm := rand.New(rand.NewPCG(uint64(x.Model.ID), 2)).Perm(n)
	pos := make([]uint32, len(x.nodeOf))
	for i := range pos {
		pos[i] = math.MaxUint32
	}
	for i, node := range perm {
		pos[g.label(uint32(node))] = uint32(i)
	}
	filters := make([]*shareFilter, len(prof.Shares))
	maxLimit := 0
	for s, share := range prof.Shares {
		if share < 1 {
			filters[s] = &shareFilter{pos: pos, limit: uint32(math.Ceil(share * float64(n)))}
			maxLimit = max(maxLimit, int(filters[s].limit))
		}
	}

	// Live matrices of the timed sizes: rows spread over the index.
	pace := newPacer(duty)
	type liveM struct {
		rows []float32
		ords []uint32
		q    *qmatrix
	}
	var lives []liveM
	for _, size := range liveSizes {
		size = min(size, n)
		if len(prof.LiveRows) > 0 && prof.LiveRows[len(prof.LiveRows)-1] == size {
			continue
		}
		lm := liveM{rows: make([]float32, 0, size*g.dim), ords: make([]uint32, 0, size), q: newQMatrix(g.dim)}
		for i := range size {
			if i%1024 == 0 {
				pace.tick()
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			node := uint32(int64(i) * int64(n) / int64(size))
			v := g.Vector(node)
			lm.rows = append(lm.rows, v...)
			lm.ords = append(lm.ords, g.label(node))
			if hasVNNI {
				lm.q.push(v)
			}
		}
		prof.LiveRows = append(prof.LiveRows, size)
		lives = append(lives, lm)
	}

	ns, nl := len(prof.Shares), len(lives)
	nw := max(workers, 1)
	// parallel runs fn for each query index below m on the workers, each
	// with its own pacer; it stops early when ctx ends.
	parallel := func(m int, fn func(i int, pace *pacer)) {
		var wg sync.WaitGroup
		for w := range nw {
			wg.Go(func() {
				pace := newPacer(duty)
				for i := w; i < m; i += nw {
					if ctx.Err() != nil {
						return
					}
					fn(i, pace)
				}
			})
		}
		wg.Wait()
	}
	us := func(t0 time.Time) float64 { return float64(time.Since(t0).Nanoseconds()) / 1e3 }

	// Phase 1, per query: the ground truth of every share (the exact scan
	// of every vector timed) and the live scans.
	ms := min(nq, scanQueries)
	want := make([][]Hit, nq*ns) // [query][share]
	full := make([]float64, nq)
	lexact := make([]float64, nq*nl)
	lint8 := make([]float64, nq*nl)
	int8Hits := make([]int, nq)
	int8Want := make([]int, nq)
	parallel(nq, func(i int, pace *pacer) {
		qv := queries[i]
		pace.tick()
		t0 := time.Now()
		want[i*ns] = ExactScan(qv, g.vecs, g.stride, g.labels, k, nil)
		full[i] = us(t0)
		// The accepted shares, in one pass over the largest subset.
		heaps := make([]minHeap, ns)
		for j, node := range perm[:maxLimit] {
			if j%4096 == 0 {
				pace.tick()
			}
			sc := g.score(qv, uint32(node))
			for s, f := range filters {
				if f != nil && uint32(j) < f.limit {
					heaps[s].offer(cand{sc, g.label(uint32(node))}, k)
				}
			}
		}
		for s, f := range filters {
			if f == nil {
				continue
			}
			for len(heaps[s]) > 0 {
				c := heaps[s].pop()
				want[i*ns+s] = append(want[i*ns+s], Hit{Ord: c.id, Score: c.score})
			}
		}
		// Each scan is timed the second time: requests scan the live
		// matrix one after another, so its rows are in the caches as far
		// as they fit; the ground truth above evicted them here. Their
		// time varies little from query to query: scanQueries suffice.
		if i >= ms {
			return
		}
		for l, lm := range lives {
			pace.tick()
			ExactScan(qv, lm.rows, g.dim, lm.ords, k, nil)
			t0 := time.Now()
			exact := ExactScan(qv, lm.rows, g.dim, lm.ords, k, nil)
			lexact[i*nl+l] = us(t0)
			if hasVNNI {
				pace.tick()
				lm.q.qsearch(qv, lm.rows, lm.ords, k, nil)
				t0 := time.Now()
				got := lm.q.qsearch(qv, lm.rows, lm.ords, k, nil)
				lint8[i*nl+l] = us(t0)
				if l == nl-1 {
					int8Want[i] = len(exact)
					int8Hits[i] = int(math.Round(overlap(got, exact) * float64(len(exact))))
				}
			}
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	col := make([]float64, nq)
	median := func(m int, at func(i int) float64) float64 {
		c := col[:m]
		for i := range c {
			c[i] = at(i)
		}
		slices.Sort(c)
		if m%2 == 1 {
			return c[m/2]
		}
		return (c[m/2-1] + c[m/2]) / 2
	}

	// Phase 2, per share and ef (ascending): the graph's recall and time
	// on the queries (on at most filteredQueries of them with a filter).
	// A share's sweep stops at the first ef whose recall is 1: a wider
	// beam cannot do better, and the planner takes the smallest.
	rec := make([]float64, nq)
	gus := make([]float64, nq)
	for s, f := range filters {
		var acc Allowed
		m := nq
		if f != nil {
			acc, m = f, min(nq, filteredQueries)
		}
		var rr, tt []float64
		for _, ef := range efs {
			parallel(m, func(i int, pace *pacer) {
				pace.tick()
				t0 := time.Now()
				got := g.Search(queries[i], k, ef, acc)
				gus[i] = us(t0)
				rec[i] = overlap(got, want[i*ns+s])
			})
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			sum := 0.0
			for _, r := range rec[:m] {
				sum += r
			}
			rr, tt = append(rr, sum/float64(m)), append(tt, median(m, func(i int) float64 { return gus[i] }))
			if sum == float64(m) {
				break
			}
		}
		prof.Recall, prof.GraphUs = append(prof.Recall, rr), append(prof.GraphUs, tt)
	}
	runtime.KeepAlive(x) // the searches read the graph's vectors
	prof.FullScanUs = median(nq, func(i int) float64 { return full[i] })
	for l := range nl {
		prof.LiveExactUs = append(prof.LiveExactUs, median(ms, func(i int) float64 { return lexact[i*nl+l] }))
		if hasVNNI {
			prof.LiveInt8Us = append(prof.LiveInt8Us, median(ms, func(i int) float64 { return lint8[i*nl+l] }))
		}
	}
	if hasVNNI {
		hits, total := 0, 0
		for i := range nq {
			hits, total = hits+int8Hits[i], total+int8Want[i]
		}
		prof.Int8Recall = 1
		if total > 0 {
			prof.Int8Recall = float64(hits) / float64(total)
		}
	}
	return prof, nil
}

// overlap is the share of want found in got (1 when want is empty).
func overlap(got, want []Hit) float64 {
	if len(want) == 0 {
		return 1
	}
	hit := 0
	for _, h := range want {
		if slices.ContainsFunc(got, func(o Hit) bool { return o.Ord == h.Ord }) {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

// check reports whether prof is consistent (a snapshot's profile is read
// back from a file): shapes, orders and finite, non-negative values.
func (prof *Profile) check() error {
	ns, ne := len(prof.Shares), len(prof.Efs)
	if ns == 0 || ne == 0 || ns > 64 || ne > 64 || prof.Shares[0] != 1 || len(prof.Recall) != ns || len(prof.GraphUs) != ns {
		return fmt.Errorf("%d shares (first must be 1), %d efs, %d×%d recall rows", ns, ne, len(prof.Recall), len(prof.GraphUs))
	}
	for e, ef := range prof.Efs {
		if ef <= 0 || ef > 1<<16 || (e > 0 && ef <= prof.Efs[e-1]) {
			return fmt.Errorf("efs %v: not ascending positive", prof.Efs)
		}
	}
	for s, share := range prof.Shares {
		if !(share > 0 && share <= 1) || (s > 0 && share >= prof.Shares[s-1]) {
			return fmt.Errorf("shares %v: not descending in (0, 1]", prof.Shares)
		}
		m := len(prof.Recall[s])
		if m == 0 || m > ne || len(prof.GraphUs[s]) != m || (m < ne && prof.Recall[s][m-1] != 1) {
			return fmt.Errorf("share %v: %d recalls and %d times for %d efs", share, m, len(prof.GraphUs[s]), ne)
		}
		for e := range m {
			if r := prof.Recall[s][e]; !(r >= 0 && r <= 1) || !finite(prof.GraphUs[s][e]) {
				return fmt.Errorf("share %v ef %d: recall %v, %v µs", share, prof.Efs[e], r, prof.GraphUs[s][e])
			}
		}
	}
	if len(prof.LiveRows) == 0 || len(prof.LiveExactUs) != len(prof.LiveRows) || (len(prof.LiveInt8Us) != 0 && len(prof.LiveInt8Us) != len(prof.LiveRows)) {
		return fmt.Errorf("%d live sizes, %d and %d times", len(prof.LiveRows), len(prof.LiveExactUs), len(prof.LiveInt8Us))
	}
	for i, n := range prof.LiveRows {
		if n <= 0 || (i > 0 && n <= prof.LiveRows[i-1]) {
			return fmt.Errorf("live sizes %v: not ascending positive", prof.LiveRows)
		}
	}
	for _, v := range append(append([]float64{prof.FullScanUs, prof.Int8Recall}, prof.LiveExactUs...), prof.LiveInt8Us...) {
		if !finite(v) {
			return fmt.Errorf("time %v", v)
		}
	}
	return nil
}

func finite(v float64) bool { return v >= 0 && !math.IsInf(v, 0) && !math.IsNaN(v) }
