// Command bench-index measures the index side by side with coder/hnsw (the
// version in go.mod, with the inner product as -dot and with the MIPS→L2
// transform, EfSearch swept; at 100k only) and an exact scan on synthetic
// 64-d data (uniform and low-rank), at 100k and 1M vectors (QUICK=1: 100k
// only), plus filtered search at 1%, 5%, 20% and 50% allowed (planner vs
// forced HNSW vs forced exact and 8-bit scans), memory per vector of each
// library, and the exact scan of 20k live vectors. hnswlib, the reference
// C++ HNSW, is run on the same vectors when python3-hnswlib is installed
// (hnswlib.go); `bench-index -curve N` prints only the recall-vs-µs curve
// of ours and hnswlib on N low-rank vectors (make bench-index-curve), and
// `bench-index -build N` only the two builds' times and memory (make
// bench-index-build). Query timings are single-threaded (one query at a
// time); builds use every core. The last line is one JSON object with the
// headline figures for low-rank data at the largest n (and uniform_*: the
// uniform data's).
//
// With the recall target (0.95) the index is self-checked like a
// rebuild's (recall and time per ef and accepted share, scan costs) and
// the planner's choice per allowed share is printed with its measured
// recall and time.
//
// Run: make bench-index (or QUICK=1 make bench-index). Flags for a small
// run: -n 20000 -queries 200 -coder=false -rebuild=false (-data lowrank
// or uniform for one data set).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"math"
	mrand "math/rand"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coder/hnsw"
	"github.com/viterin/vek/vek32"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/offheap"
	"github.com/liverecall/liverecall/internal/synth"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

const (
	dim = 64
	k   = 10
)

type headline struct {
	N               int     `json:"n"`
	Dim             int     `json:"dim"`
	RecallAt10      float64 `json:"recall_at_10"`
	UsPerQuery      float64 `json:"us_per_query"`
	CoderRecallAt10 float64 `json:"coder_hnsw_recall_at_10"`
	CoderUsPerQuery float64 `json:"coder_hnsw_us_per_query"`
	CoderDistance   string  `json:"coder_hnsw_distance"`
	CoderEfSearch   int     `json:"coder_hnsw_ef_search"`
	CoderVersion    string  `json:"coder_hnsw_version"`
	// CoderN is the n of the coder_hnsw_* figures: low-rank data at the
	// largest n coder/hnsw ran at (-coder-max), which may be below N.
	CoderN          int     `json:"coder_hnsw_n,omitempty"`
	ExactUsPerQuery float64 `json:"exact_us_per_query"`
	Exact20kLiveUs  float64 `json:"exact_20k_live_us"`
	Int8LiveUs      float64 `json:"int8_20k_live_us"`
	Int8LiveRecall  float64 `json:"int8_20k_live_recall"`
	BuildS          float64 `json:"build_s"`
	BytesPerVector  float64 `json:"bytes_per_vector"`
	// The planner for the recall target 0.95 (measured by the self-check):
	// the ef of unfiltered searches (0: exact scans), and at 20% allowed
	// (live) its strategy, recall and µs.
	PlanEf       int     `json:"plan_ef"`
	Plan20       string  `json:"plan_20_strategy"`
	Plan20Recall float64 `json:"plan_20_recall"`
	Plan20Us     float64 `json:"plan_20_us"`
	// Uniform (iid) data at the largest size it ran (UniformN): our
	// graph's recall and µs at its headline ef (the smallest reaching 0.95,
	// else 256) and its build time; zero when uniform did not run.
	UniformN      int     `json:"uniform_n,omitempty"`
	UniformRecall float64 `json:"uniform_recall_at_10,omitempty"`
	UniformUs     float64 `json:"uniform_us_per_query,omitempty"`
	BuildSUniform float64 `json:"build_s_uniform,omitempty"`
	// hnswlib's build (every core, like ours) on the same vectors, low-rank
	// at the largest n and uniform at UniformN; zero without hnswlib.
	HnswlibBuildS        float64 `json:"hnswlib_build_s,omitempty"`
	HnswlibBuildSUniform float64 `json:"hnswlib_build_s_uniform,omitempty"`
	EfSearch             int     `json:"-"`
}

func main() {
	quick := os.Getenv("QUICK") != ""
	sizes := []int{100_000, 1_000_000}
	nq := 1000
	// coder/hnsw adds one node at a time on one goroutine: at 100k its two
	// builds took ~6.5 minutes (uniform) and ~4 (low-rank), and at 1M they
	// would take well over an hour, so it runs at 100k only (-coder-max).
	coderMax := 100_000
	if quick {
		sizes = []int{100_000}
		nq = 500
	}
	nFlag := flag.String("n", "", "comma-separated index sizes (default 100000,1000000; QUICK: 100000)")
	qFlag := flag.Int("queries", 0, "queries per measurement (default 1000; QUICK: 500)")
	withCoder := flag.Bool("coder", true, "measure coder/hnsw too")
	withRebuild := flag.Bool("rebuild", true, "time a rebuild from Postgres at the largest size")
	dataFlag := flag.String("data", "uniform,lowrank", "comma-separated data sets: uniform (iid), lowrank")
	curveN := flag.Int("curve", 0, "only the recall-vs-µs curve of ours and hnswlib on this many low-rank vectors (see curve)")
	curveRounds := flag.Int("rounds", 4, "rounds of -curve (medians)")
	coderMaxFlag := flag.Int("coder-max", 0, "largest n coder/hnsw is measured at (default 100000)")
	buildN := flag.Int("build", 0, "only the build time and memory of ours and hnswlib on this many vectors of each -data set (see builds)")
	flag.Parse()
	if *curveN > 0 {
		curve(*curveN, 1000, *curveRounds)
		return
	}
	if *buildN > 0 {
		builds(*buildN, strings.Split(*dataFlag, ","))
		return
	}
	if *nFlag != "" {
		sizes = nil
		for _, f := range strings.Split(*nFlag, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || v < 1000 {
				fmt.Fprintf(os.Stderr, "bench-index: -n: %q is not a size of at least 1000\n", f)
				os.Exit(2)
			}
			sizes = append(sizes, v)
		}
	}
	if *qFlag > 0 {
		nq = *qFlag
	}
	if *coderMaxFlag > 0 {
		coderMax = *coderMaxFlag
	}
	fmt.Printf("index benchmark: dim %d, k %d, %d queries, GOMAXPROCS %d, quick=%v\n", dim, k, nq, runtime.GOMAXPROCS(0), quick)
	fmt.Printf("our HNSW: M 16 (M0 32), efConstruction 64, efSearch default 64, plain inner product; coder/hnsw %s: M 16, Ml 0.25, EfSearch %d while adding, distance -dot and MIPS→L2 (Euclidean), EfSearch swept %v, at n ≤ %d\n\n", coderVersion(), coderEfBuild, coderEfs, coderMax)
	var h, u, c headline // low-rank and uniform at the largest n; low-rank where coder/hnsw ran
	// Uniform (iid) 64-d data is not what embeddings look like, but the
	// flat case bounds the graph: it runs at every size (the headline's
	// uniform_* fields are its largest); INDEX_BENCH_SKIP_UNIFORM_1M=1 skips
	// it above 100k.
	for _, n := range sizes {
		for _, kind := range strings.Split(*dataFlag, ",") {
			if kind != "uniform" && kind != "lowrank" {
				fmt.Fprintf(os.Stderr, "bench-index: -data: unknown data set %q\n", kind)
				os.Exit(2)
			}
			if kind == "uniform" && n > 100_000 && os.Getenv("INDEX_BENCH_SKIP_UNIFORM_1M") != "" {
				fmt.Printf("== uniform, n=%d: skipped (INDEX_BENCH_SKIP_UNIFORM_1M is set) ==\n\n", n)
				continue
			}
			r := run(kind, n, nq, *withCoder && n <= coderMax)
			if kind == "lowrank" {
				h = r
				if r.CoderDistance != "" {
					c = r
				}
			} else {
				u = r
			}
		}
	}
	h.UniformN, h.UniformRecall, h.UniformUs, h.BuildSUniform = u.N, u.RecallAt10, u.UsPerQuery, u.BuildS
	h.HnswlibBuildSUniform = u.HnswlibBuildS
	h.CoderVersion = coderVersion()
	if c.CoderDistance != "" {
		h.CoderN = c.N
		h.CoderRecallAt10, h.CoderUsPerQuery = c.CoderRecallAt10, c.CoderUsPerQuery
		h.CoderDistance, h.CoderEfSearch = c.CoderDistance, c.CoderEfSearch
	}
	h.Exact20kLiveUs, h.Int8LiveUs, h.Int8LiveRecall = exact20k()
	if *withRebuild {
		rebuild(sizes[len(sizes)-1])
	}
	out, _ := json.Marshal(h)
	fmt.Println(string(out))
}

// heap returns the bytes the process holds for its data: the Go heap in
// use plus the anonymous mappings our index keeps its arrays in
// (internal/offheap), so an index's footprint counts wherever it lies.
func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	mapped, _ := offheap.Mapped()
	return m.HeapAlloc + uint64(mapped)
}

// truth computes exact top-k for every query (in parallel; not timed).
func truth(s *synth.Set, nq int) [][]index.Hit {
	out := make([][]index.Hit, nq)
	work := make(chan int)
	done := make(chan struct{})
	for range runtime.GOMAXPROCS(0) {
		go func() {
			for i := range work {
				out[i] = index.ExactScan(s.Query(i), s.Base, dim, nil, k, nil)
			}
			done <- struct{}{}
		}()
	}
	for i := range nq {
		work <- i
	}
	close(work)
	for range runtime.GOMAXPROCS(0) {
		<-done
	}
	return out
}

func recall(got []uint32, want []index.Hit) float64 {
	hit := 0
	for _, w := range want {
		if slices.Contains(got, w.Ord) {
			hit++
		}
	}
	return float64(hit) / float64(len(want))
}

func ords(hs []index.Hit) []uint32 {
	o := make([]uint32, len(hs))
	for i, h := range hs {
		o[i] = h.Ord
	}
	return o
}

// measure runs fn over the queries one at a time and returns mean recall@k
// and mean µs per query.
func measure(nq int, want [][]index.Hit, fn func(i int) []uint32) (float64, float64) {
	sum := 0.0
	t0 := time.Now()
	for i := range nq {
		sum += recall(fn(i), want[i])
	}
	return sum / float64(nq), float64(time.Since(t0).Microseconds()) / float64(nq)
}

func run(kind string, n, nq int, withCoder bool) headline {
	h := headline{N: n, Dim: dim}
	s, err := synth.Generate(kind, n, nq, dim, 2026)
	if err != nil {
		panic(err)
	}
	fmt.Printf("== %s, n=%d ==\n", kind, n)
	t0 := time.Now()
	want := truth(s, nq)
	fmt.Printf("ground truth: %.1fs\n", time.Since(t0).Seconds())

	// Our index (through index.New: graph + ordinals + live matrix).
	ids := make([]int64, n)
	ordv := make([]uint32, n)
	for i := range n {
		ids[i], ordv[i] = int64(i), uint32(i)
	}
	before := heap()
	t0 = time.Now()
	x, err := index.New(context.Background(), lr.ModelVersion{ID: 1, Kind: lr.ModelMF, Version: "bench", Dim: dim},
		ids, ordv, s.Base, index.Params{Seed: 1}, 0)
	if err != nil {
		panic(err)
	}
	h.BuildS = time.Since(t0).Seconds()
	h.BytesPerVector = float64(heap()-before) / float64(n)
	fmt.Printf("\n%-28s %8s %10s %10s %12s\n", "method", "ef", "recall@10", "µs/query", "")
	fmt.Printf("%-28s %8s %10s %10s   build %.1fs, %.0f B/vector (heap and mappings)\n", "ours (HNSW)", "", "", "", h.BuildS, h.BytesPerVector)
	h.EfSearch = 0
	for _, ef := range []int{16, 32, 64, 96, 128, 256} {
		rec, us := measure(nq, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyHNSW, s.Query(i), k, ef, nil)) })
		fmt.Printf("%-28s %8d %10.4f %10.1f\n", "ours (HNSW)", ef, rec, us)
		if h.EfSearch == 0 && rec >= 0.95 {
			h.EfSearch, h.RecallAt10, h.UsPerQuery = ef, rec, us
		}
	}
	if h.EfSearch == 0 { // never reached 0.95: report the widest beam
		h.EfSearch = 256
		h.RecallAt10, h.UsPerQuery = measure(nq, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyHNSW, s.Query(i), k, 256, nil)) })
	}
	fmt.Printf("(headline: smallest ef with recall ≥ 0.95 → ef %d)\n", h.EfSearch)
	exactN := min(nq, 200)
	_, h.ExactUsPerQuery = measure(exactN, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyExact, s.Query(i), k, 0, nil)) })
	fmt.Printf("%-28s %8s %10.4f %10.1f\n", "exact scan (all n)", "-", 1.0, h.ExactUsPerQuery)

	if n <= 100_000 {
		augmented(s, nq, want)
	}

	var hnswlibBPV float64
	h.HnswlibBuildS, hnswlibBPV = hnswlibRows(s, nq, want)

	planned(x, s, nq, want, &h)
	filtered(x, s, n, min(nq, 300), &h)

	var coderBPV []string
	if withCoder {
		b := coder(s, n, nq, want)
		h.CoderRecallAt10, h.CoderUsPerQuery = b.recall, b.us
		h.CoderDistance, h.CoderEfSearch = b.distance, b.ef
		for _, m := range b.mem {
			coderBPV = append(coderBPV, fmt.Sprintf("coder/hnsw %s %.0f (its graph's heap %.0f + the %d-float vectors it keeps, %d)", m.name, m.graph+float64(m.vec), m.graph, m.vec/4, m.vec))
		}
	}
	// Memory per vector of each library on these vectors, the vectors
	// included.
	fmt.Printf("\nmemory per vector (bytes, %s n=%d, vectors included): ours %.0f (heap and mappings after index.New: vectors, graph, ids)", kind, n, h.BytesPerVector)
	if hnswlibBPV > 0 {
		fmt.Printf("; hnswlib %.0f (its process's RSS growth over init_index+add_items)", hnswlibBPV)
	}
	if len(coderBPV) > 0 {
		fmt.Printf("; %s", strings.Join(coderBPV, "; "))
	} else if !withCoder {
		fmt.Printf("; coder/hnsw not run at this n (above -coder-max: it adds one node at a time on one goroutine; its two builds at 1M would take over an hour)")
	}
	fmt.Println()
	fmt.Println()
	x = nil
	debug.FreeOSMemory()
	return h
}

// coderEfs is the EfSearch sweep for coder/hnsw (the same beams as ours).
var coderEfs = []int{16, 32, 64, 96, 128, 256}

// coderEfBuild is coder/hnsw's EfSearch while adding nodes (its Add searches
// with EfSearch): 64, like our efConstruction.
const coderEfBuild = 64

// coderVersion is the coder/hnsw module version this binary was built with.
func coderVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/coder/hnsw" {
				if d.Replace != nil {
					return d.Replace.Version
				}
				return d.Version
			}
		}
	}
	return "unknown"
}

// coderBest is coder/hnsw's best setting on one data set: the fastest with
// recall ≥ 0.95, or the highest recall if no setting reaches 0.95.
type coderBest struct {
	distance string
	ef       int
	recall   float64
	us       float64
	mem      []coderMem // per variant
}

// coderMem is one coder/hnsw variant's memory per vector: its graph's heap
// and the vectors it keeps (the slices it was given, dim floats each, dim+1
// with MIPS→L2).
type coderMem struct {
	name  string
	graph float64
	vec   int
}

func (b *coderBest) offer(distance string, ef int, rec, us float64) {
	better := b.ef == 0
	switch {
	case better:
	case rec >= 0.95 && b.recall >= 0.95:
		better = us < b.us
	case rec >= 0.95 || b.recall >= 0.95:
		better = rec >= 0.95
	default:
		better = rec > b.recall
	}
	if better {
		b.distance, b.ef, b.recall, b.us = distance, ef, rec, us
	}
}

// coder builds coder/hnsw twice on the same vectors: with the inner product
// as a distance (-dot, its custom distance hook) and with the MIPS→L2
// transform (each vector gets sqrt(maxnorm² − ‖x‖²) appended, the query 0,
// so the nearest by its own Euclidean distance is the largest inner
// product). Each is searched with EfSearch swept; the best setting is
// printed and returned.
func coder(s *synth.Set, n, nq int, want [][]index.Hit) coderBest {
	ver := coderVersion()
	var best coderBest
	// The MIPS→L2 transform: base vectors with one more coordinate.
	maxNorm2 := float32(0)
	for i := range n {
		v := s.Base[i*dim : (i+1)*dim]
		maxNorm2 = max(maxNorm2, vek32.Dot(v, v))
	}
	for _, variant := range []struct {
		name string
		dist hnsw.DistanceFunc
		l2   bool
	}{
		{"-dot", func(a, b []float32) float32 { return -vek32.Dot(a, b) }, false},
		{"MIPS→L2, Euclidean", hnsw.EuclideanDistance, true},
	} {
		g := hnsw.NewGraph[int]()
		g.M = 16
		g.Ml = 0.25
		g.Distance = variant.dist
		g.EfSearch = coderEfBuild
		g.Rng = mrand.New(mrand.NewSource(1))
		d := dim
		if variant.l2 {
			d = dim + 1
		}
		var aug []float32
		if variant.l2 {
			aug = make([]float32, n*d)
			for i := range n {
				v := s.Base[i*dim : (i+1)*dim]
				copy(aug[i*d:], v)
				aug[i*d+dim] = float32(math.Sqrt(float64(max(0, maxNorm2-vek32.Dot(v, v)))))
			}
		}
		// The vectors themselves (s.Base, or its augmented copy) are not
		// counted: coder/hnsw keeps the slices it is given, so its heap
		// figure is the graph alone.
		before := heap()
		t0 := time.Now()
		const batch = 1000
		nodes := make([]hnsw.Node[int], 0, batch)
		for i := 0; i < n; i++ {
			v := s.Base[i*dim : (i+1)*dim]
			if variant.l2 {
				v = aug[i*d : (i+1)*d]
			}
			nodes = append(nodes, hnsw.MakeNode(i, v))
			if len(nodes) == batch || i == n-1 {
				g.Add(nodes...)
				nodes = nodes[:0]
			}
		}
		bt := time.Since(t0).Seconds()
		bpv := float64(heap()-before) / float64(n)
		best.mem = append(best.mem, coderMem{variant.name, bpv, 4 * d})
		label := "coder/hnsw " + variant.name
		fmt.Printf("%-28s %8s %10s %10s   build %.1fs (EfSearch %d while adding; single goroutine: no concurrent Add), %.0f B/vector (heap, vectors not counted)\n",
			label, "", "", "", bt, coderEfBuild, bpv)
		q := make([]float32, d) // query, with 0 appended for MIPS→L2
		for _, ef := range coderEfs {
			g.EfSearch = ef
			rec, us := measure(nq, want, func(i int) []uint32 {
				copy(q, s.Query(i))
				res := g.Search(q, k)
				o := make([]uint32, len(res))
				for j, r := range res {
					o[j] = uint32(r.Key)
				}
				return o
			})
			fmt.Printf("%-28s %8d %10.4f %10.1f\n", label, ef, rec, us)
			best.offer(variant.name, ef, rec, us)
		}
		runtime.KeepAlive(g)
	}
	if best.recall >= 0.95 {
		fmt.Printf("(coder/hnsw %s best at recall ≥ 0.95: %s, EfSearch %d → recall %.4f, %.1f µs/query)\n", ver, best.distance, best.ef, best.recall, best.us)
	} else {
		fmt.Printf("(coder/hnsw %s never reaches recall 0.95; its best recall: %s, EfSearch %d → recall %.4f, %.1f µs/query)\n", ver, best.distance, best.ef, best.recall, best.us)
	}
	return best
}

// set is an allowed set over ordinals 0..n-1, and a version of the live
// set (index.LiveSet): the live matrix mirrors the sets given to SetLive.
type set struct {
	bits    []bool
	n       uint64
	version uint64
	changed []uint32 // ordinals whose membership differs from the version before
}

func (b *set) Contains(o uint32) bool { return int(o) < len(b.bits) && b.bits[o] }
func (b *set) GetCardinality() uint64 { return b.n }
func (b *set) Version() uint64        { return b.version }
func (b *set) Changes() iter.Seq2[uint32, bool] {
	return func(yield func(uint32, bool) bool) {
		for _, o := range b.changed {
			if !yield(o, b.bits[o]) {
				return
			}
		}
	}
}
func (b *set) Ordinals() []uint32 {
	var out []uint32
	for o, in := range b.bits {
		if in {
			out = append(out, uint32(o))
		}
	}
	return out
}

// after makes b the version after prev (nil: the empty version 0).
func (b *set) after(prev *set) *set {
	b.changed = b.changed[:0]
	if prev != nil {
		b.version = prev.version
	}
	b.version++
	for i, in := range b.bits {
		if was := prev != nil && prev.bits[i]; was != in {
			b.changed = append(b.changed, uint32(i))
		}
	}
	return b
}

// filtered measures planner vs forced strategies with 1%, 5% and 20% of
// the vectors allowed (and live: the live matrix holds the allowed set).
func filtered(x *index.Index, s *synth.Set, n, nq int, h *headline) {
	fmt.Printf("\nfiltered search, n=%d (allowed = live set; planner: %s, recall target %.2f; hnsw at the default ef)\n", n, x.Planner().Mode, x.Planner().RecallTarget)
	fmt.Printf("(µs: medians of 3 alternating rounds of the four; forced hnsw: one round when that round took over 10 s)\n")
	fmt.Printf("%-9s %9s %-10s %6s %10s %10s %10s %10s %10s %10s %10s\n", "allowed", "count", "planner→", "ef", "plan rec", "plan µs", "hnsw rec", "hnsw µs", "exact µs", "8-bit rec", "8-bit µs")
	r := rand.New(rand.NewPCG(7, 7))
	var prev *set
	var breakEven []string
	for _, frac := range []float64{0.01, 0.05, 0.2, 0.5} {
		a := &set{bits: make([]bool, n)}
		for i := range n {
			if r.Float64() < frac {
				a.bits[i] = true
				a.n++
			}
		}
		// Move the live matrix from the previous set to this one.
		x.SetLive(a.after(prev))
		prev = a
		want := make([][]index.Hit, nq)
		for i := range nq {
			want[i] = x.SearchWith(index.StrategyExact, s.Query(i), k, 0, a)
		}
		// Three alternating rounds of the four ways; medians of the µs.
		var st index.Strategy
		var pr, hr, ir float64
		var pusR, husR, eusR, iusR []float64
		for range 3 {
			var us float64
			pr, us = measure(nq, want, func(i int) []uint32 {
				hs, s2, _ := x.Search(context.Background(), s.Query(i), k, 0, a)
				st = s2
				return ords(hs)
			})
			pusR = append(pusR, us)
			// The forced graph search of a small allowed set at 1M costs
			// ~0.1 s a query: one round of it when a round takes over 10 s.
			if len(husR) == 0 || husR[0]*float64(nq) < 10e6 {
				hr, us = measure(nq, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyHNSW, s.Query(i), k, 0, a)) })
				husR = append(husR, us)
			}
			_, us = measure(nq, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyExact, s.Query(i), k, 0, a)) })
			eusR = append(eusR, us)
			ir, us = measure(nq, want, func(i int) []uint32 { return ords(x.SearchWith(index.StrategyLiveInt8, s.Query(i), k, 0, a)) })
			iusR = append(iusR, us)
		}
		pus, hus, eus, ius := median3(pusR), median3(husR), median3(eusR), median3(iusR)
		_, pef := x.PlanEf(a)
		fmt.Printf("%-9s %9d %-10s %6d %10.4f %10.1f %10.4f %10.1f %10.1f %10.4f %10.1f\n", fmt.Sprintf("%.0f%%", frac*100), a.n, st, pef, pr, pus, hr, hus, eus, ir, ius)
		if frac == 0.2 {
			h.Plan20, h.Plan20Recall, h.Plan20Us = string(st), pr, pus
		}
		perRow := eus / float64(a.n)
		breakEven = append(breakEven, fmt.Sprintf("%.0f%%: %.0f", frac*100, hus/perRow))
	}
	fmt.Printf("break-even allowed count (filtered HNSW µs ÷ exact µs per allowed row): %s\n", strings.Join(breakEven, ", "))
	x.SetLive((&set{bits: make([]bool, n)}).after(prev))
}

// planned self-checks x as a rebuild does (on 200 of the queries, every
// core) for the recall target, prints the recall table and the plan, and
// measures unfiltered searches as planned.
func planned(x *index.Index, s *synth.Set, nq int, want [][]index.Hit, h *headline) {
	users := make([][]float32, min(nq, 200))
	for i := range users {
		users[i] = s.Query(i)
	}
	t0 := time.Now()
	index.SelfCheck(x, users, 0, k)
	st := x.Planner()
	prof := st.Profile
	fmt.Printf("\nself-check as a rebuild's (%d queries, %.1fs): recall@10 [µs] per ef and allowed share\n", prof.Queries, time.Since(t0).Seconds())
	fmt.Printf("%-8s", "share")
	for _, ef := range prof.Efs {
		fmt.Printf(" %16s", fmt.Sprintf("ef %d", ef))
	}
	fmt.Printf("   planned (target %.2f)\n", st.RecallTarget)
	for si, share := range prof.Shares {
		fmt.Printf("%-8s", fmt.Sprintf("%.0f%%", share*100))
		for e := range prof.Efs {
			if e >= len(prof.Recall[si]) { // the sweep stopped at recall 1
				fmt.Printf(" %16s", "-")
				continue
			}
			fmt.Printf(" %16s", fmt.Sprintf("%.4f [%.0f]", prof.Recall[si][e], prof.GraphUs[si][e]))
		}
		r := st.Rows[si]
		if r.Ef == 0 {
			fmt.Printf("   no ef reaches it (best %.4f): exact scan\n", r.Recall)
		} else {
			fmt.Printf("   ef %d (%.4f)\n", r.Ef, r.Recall)
		}
	}
	fmt.Printf("scans: every vector %.0f µs; live matrix of %v rows: float %v µs, 8-bit %v µs (recall %.4f)\n",
		prof.FullScanUs, prof.LiveRows, roundAll(prof.LiveExactUs), roundAll(prof.LiveInt8Us), prof.Int8Recall)
	pst, ef := x.PlanEf(nil)
	rec, us := measure(nq, want, func(i int) []uint32 {
		hs, _, _ := x.Search(context.Background(), s.Query(i), k, 0, nil)
		return ords(hs)
	})
	if pst != index.StrategyHNSW {
		ef = 0
	}
	h.PlanEf = ef
	fmt.Printf("unfiltered, as planned: %s at ef %d → recall@10 %.4f, %.1f µs/query\n", pst, ef, rec, us)
}

// median3 is the median of a few figures.
func median3(xs []float64) float64 {
	c := slices.Clone(xs)
	slices.Sort(c)
	return c[len(c)/2]
}

func roundAll(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, v := range xs {
		out[i] = math.Round(v*10) / 10
	}
	return out
}

// exact20k times the exact scan of a 20k-row live matrix (dim 64), and the
// 8-bit scan with exact rescoring that recall channels use, with its
// recall@k against the exact scan.
func exact20k() (exactUs, int8Us, int8Recall float64) {
	const n = 20000
	s, _ := synth.Generate("lowrank", n, 200, dim, 99)
	ids := make([]int64, n)
	ordv := make([]uint32, n)
	for i := range n {
		ids[i], ordv[i] = int64(i), uint32(i)
	}
	x, err := index.New(context.Background(), lr.ModelVersion{ID: 1, Kind: lr.ModelMF, Version: "bench", Dim: dim},
		ids, ordv, s.Base, index.Params{Seed: 1, EfConstruction: 16}, 0)
	if err != nil {
		panic(err)
	}
	all := &set{bits: make([]bool, n), n: n}
	for i := range n {
		all.bits[i] = true
	}
	x.SetLive(all.after(nil))
	timeIt := func(st index.Strategy) float64 {
		best := time.Duration(1 << 62)
		for range 5 {
			t0 := time.Now()
			for i := range 200 {
				x.SearchWith(st, s.Query(i), k, 0, all)
			}
			best = min(best, time.Since(t0)/200)
		}
		return float64(best.Nanoseconds()) / 1000
	}
	exactUs, int8Us = timeIt(index.StrategyExact), timeIt(index.StrategyLiveInt8)
	found, total := 0, 0
	for i := range 200 {
		want := x.SearchWith(index.StrategyExact, s.Query(i), k, 0, all)
		got := x.SearchWith(index.StrategyLiveInt8, s.Query(i), k, 0, all)
		for _, h := range want {
			total++
			for _, g := range got {
				if g.Ord == h.Ord {
					found++
					break
				}
			}
		}
	}
	int8Recall = float64(found) / float64(total)
	fmt.Printf("exact scan of 20k live vectors (dim %d, k %d): %.1f µs/query (best of 5 rounds of 200)\n", dim, k, exactUs)
	kernel := "AVX-512 VNNI"
	if !index.LiveInt8() {
		kernel = "portable Go kernel: this CPU has no AVX-512 VNNI, so serving uses the float scan"
	}
	fmt.Printf("8-bit scan + exact rescoring of the same (%s): %.1f µs/query, recall@%d vs the exact scan %.4f\n", kernel, int8Us, k, int8Recall)
	return exactUs, int8Us, int8Recall
}

// rebuild times a Manager rebuild of n low-rank vectors from Postgres (the
// database liverecall_bench_index on the test server, created and migrated
// if missing; the vectors are written once and kept for later runs): count,
// binary stream, validation, parallel build, self-check, swap.
func rebuild(n int) {
	ctx := context.Background()
	url, err := pgtest.WithDatabase(pgtest.ServerURL(), "liverecall_bench_index")
	if err == nil {
		_, err = postgres.CreateDatabaseIfMissing(ctx, url)
	}
	if err == nil {
		_, err = postgres.Migrate(ctx, url, nil)
	}
	var db *postgres.DB
	if err == nil {
		db, err = postgres.Open(ctx, url)
	}
	if err != nil {
		fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
		return
	}
	defer db.Close()
	label := fmt.Sprintf("bench-lowrank-%d", n)
	var mv lr.ModelVersion
	models, err := db.ListModels(ctx, lr.ModelMF)
	if err != nil {
		fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
		return
	}
	for _, m := range models {
		if m.Version == label {
			mv = m
		}
	}
	if mv.ID == 0 {
		s, _ := synth.Generate("lowrank", n, 1000, dim, 31)
		if mv, err = db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: label, Dim: dim}); err != nil {
			fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
			return
		}
		t0 := time.Now()
		rows := make([]lr.Embedding, n)
		for i := range rows {
			rows[i] = lr.Embedding{ID: int64(i + 1), Vec: s.Base[i*dim : (i+1)*dim]}
		}
		users := make([]lr.Embedding, 1000)
		for i := range users {
			users[i] = lr.Embedding{ID: int64(i + 1), Vec: s.Query(i)}
		}
		if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, rows); err != nil {
			fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
			return
		}
		if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, users); err != nil {
			fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
			return
		}
		fmt.Printf("wrote %d vectors to Postgres with COPY in %.1fs (kept for later runs)\n", n, time.Since(t0).Seconds())
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		fmt.Printf("rebuild from Postgres: skipped (%v)\n", err)
		return
	}
	m, err := index.NewManager(index.Config{Store: db, Ordinals: lr.NewOrdinals(), Kinds: []lr.ModelKind{lr.ModelMF}, Params: index.Params{Seed: 1}})
	if err != nil {
		panic(err)
	}
	t0 := time.Now()
	res, err := m.ReloadKind(ctx, lr.ModelMF, true, false)
	if err != nil {
		fmt.Printf("rebuild from Postgres: FAILED: %v\n", err)
		return
	}
	fmt.Printf("rebuild of %d vectors from Postgres (stream, validate, build, self-check, swap): %.1fs, self-check recall@10 %.3f (graph build alone %.1fs)\n",
		res.Vectors, time.Since(t0).Seconds(), res.SelfCheck, m.Current(lr.ModelMF).BuiltIn.Seconds())
}

// augmented measures the alternative way to put the inner product in the
// graph (the MIPS-to-L2 reduction, Params.Augment) on the same data.
func augmented(s *synth.Set, nq int, want [][]index.Hit) {
	t0 := time.Now()
	g, err := index.Build(context.Background(), s.Base, dim, nil, index.Params{Seed: 1, Augment: true})
	if err != nil {
		panic(err)
	}
	bt := time.Since(t0).Seconds()
	for _, ef := range []int{32, 64, 128} {
		rec, us := measure(nq, want, func(i int) []uint32 { return ords(g.Search(s.Query(i), k, ef, nil)) })
		fmt.Printf("%-28s %8d %10.4f %10.1f   build %.1fs\n", "ours, MIPS→L2 augmented", ef, rec, us, bt)
	}
}
