// Command bench-recall measures the recall request path at the scale of the design:
// 1M streamers known (QUICK=1: 100k), 20k live, MF and NCF indexes of dim
// 64, k=20, and the full NeuMF scorer in rerank. It builds the real index manager, live state, recall engine,
// reranker and HTTP server in this process, then measures (1) the request
// path in-process and (2) over loopback HTTP at fixed open-loop rates with
// a load generator sharing the machine, and the highest rate whose p99 stays
// within 10 ms with no errors. The last line is the JSON headline.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/loadgen"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

const (
	dim    = 64
	rank   = 12
	nLive  = 20_000
	nUsers = 100_000
	k      = 20
)

// synthStore serves two synthetic, low-rank model versions (like trained
// embeddings) to the index manager, generated on the fly from a seed.
type synthStore struct {
	n      int
	models map[lr.ModelKind]lr.ModelVersion

	usersOnce sync.Once
	users     map[int64][]float32 // model id -> nUsers*dim, user i at i-1
}

// SampleUserEmbeddings gives the self-check the first n users.
func (s *synthStore) SampleUserEmbeddings(ctx context.Context, id int64, n int) ([][]float32, error) {
	var out [][]float32
	err := s.StreamEmbeddings(ctx, id, lr.SideUser, func(_ int64, v []float32) error {
		if len(out) == n {
			return errEnough
		}
		out = append(out, v)
		return nil
	})
	if err == errEnough {
		err = nil
	}
	return out, err
}

var errEnough = errors.New("enough")

// UserRows makes synthStore the user store's source (userstore.Source):
// the user vectors are generated once, then looked up.
func (s *synthStore) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	s.usersOnce.Do(func() {
		s.users = map[int64][]float32{}
		for _, mv := range s.models {
			all := make([]float32, 0, nUsers*dim)
			_ = s.StreamEmbeddings(ctx, mv.ID, lr.SideUser, func(_ int64, v []float32) error { all = append(all, v...); return nil })
			s.users[mv.ID] = all
		}
	})
	for _, id := range models {
		all := s.users[id]
		for _, u := range users {
			if u < 1 || u > nUsers || all == nil {
				continue
			}
			if err := fn(id, u, all[(u-1)*dim:u*dim:u*dim], nil); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *synthStore) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	return s.models[kind], nil
}

func (s *synthStore) CountEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide) (int64, error) {
	if side == lr.SideUser {
		return nUsers, nil
	}
	return int64(s.n), nil
}

func (s *synthStore) StreamEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide, fn func(int64, []float32) error) error {
	rng := rand.New(rand.NewPCG(uint64(id), 7))
	basis := make([]float32, dim*rank)
	for i := range basis {
		basis[i] = float32(rng.NormFloat64() / 3)
	}
	n := s.n
	if side == lr.SideUser {
		n = nUsers
		rng = rand.New(rand.NewPCG(uint64(id), 11))
	}
	z := make([]float32, rank)
	for i := 1; i <= n; i++ {
		for j := range z {
			z[j] = float32(rng.NormFloat64())
		}
		v := make([]float32, dim)
		for d := 0; d < dim; d++ {
			var x float32
			for j := 0; j < rank; j++ {
				x += basis[d*rank+j] * z[j]
			}
			v[d] = x + float32(rng.NormFloat64()*0.05)
		}
		if err := fn(int64(i), v); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if os.Getenv(stallChildEnv) != "" {
		stallChild()
		return
	}
	quick := os.Getenv("QUICK") != ""
	n := 1_000_000
	dur, warm := 10*time.Second, 2*time.Second
	if quick {
		n, dur = 100_000, 4*time.Second
	}
	if v := os.Getenv("BENCH_HTTP_SECONDS"); v != "" { // per rate
		s, err := strconv.Atoi(v)
		check(err)
		dur = time.Duration(s) * time.Second
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ords := lr.NewOrdinals()
	store := &synthStore{n: n, models: map[lr.ModelKind]lr.ModelVersion{
		lr.ModelMF:  {ID: 1, Kind: lr.ModelMF, Version: "mf-bench", Dim: dim, Status: lr.StatusActive},
		lr.ModelNCF: {ID: 2, Kind: lr.ModelNCF, Version: "ncf-bench", Dim: dim, Status: lr.StatusActive},
	}}
	reg := prometheus.NewRegistry()
	// BENCH_SNAPSHOT_DIR keeps the built indexes between runs (the
	// service's own snapshots): a rerun loads them instead of building.
	mgr, err := index.NewManager(index.Config{Store: store, Ordinals: ords, Registerer: reg, Logger: log, SnapshotDir: os.Getenv("BENCH_SNAPSHOT_DIR")})
	check(err)
	fmt.Printf("# recall path: %d streamers known, %d live, MF + NCF dim %d, %d users, k=%d\n", n, nLive, dim, nUsers, k)
	t0 := time.Now()
	res, err := mgr.Load(ctx)
	check(err)
	fmt.Printf("built both indexes in %.1f s (", time.Since(t0).Seconds())
	for _, r := range res {
		if r.Outcome == "snapshot" {
			fmt.Printf(" %s loaded from its snapshot", r.Kind)
			continue
		}
		fmt.Printf(" %s %.1f s recall %.3f", r.Kind, r.Seconds, r.SelfCheck)
	}
	fmt.Println(" )")

	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }})
	rng := rand.New(rand.NewPCG(5, 5))
	var evs []lr.Event
	now := time.Now()
	for i, id := range rng.Perm(n)[:nLive] {
		sid := lr.StreamerID(id + 1)
		evs = append(evs, lr.Event{ID: fmt.Sprint("s", i), Type: lr.EventStreamStarted, TS: now.Add(-time.Duration(rng.IntN(7200)) * time.Second),
			StreamerID: sid, StreamID: lr.StreamID(i + 1), Category: fmt.Sprint("c", i%12), V: 1})
		for v := 0; v < rng.IntN(5); v++ {
			evs = append(evs, lr.Event{ID: fmt.Sprint("v", i, "-", v), Type: lr.EventViewerJoined, TS: now, StreamerID: sid, StreamID: lr.StreamID(i + 1),
				UserID: lr.UserID(rng.IntN(nUsers) + 1), V: 1})
		}
	}
	state.Apply(evs)

	// The full NeuMF scorer rerank uses (random weights of the default
	// architecture over every user and streamer: its cost, not its quality).
	t0 = time.Now()
	ncf, err := benchScorer(n, ords)
	check(err)
	fmt.Printf("NeuMF scorer for rerank (%d users, %d streamers) in %.1f s\n", nUsers, n, time.Since(t0).Seconds())

	// The service's composition: the defaults of recall, the already-shown
	// filter included (every page's streamers are remembered for 10
	// minutes per user), rerank with the default weights and the NeuMF
	// scorer, no impression log.
	users, err := userstore.New(userstore.Config{Source: store})
	check(err)
	eng := recall.New(recall.Config{}, state, ords, mgr, users, nil, nil)
	eng.RefreshRankings()
	var trace recommend.Trace
	svc := recommend.New(recommend.Config{Recall: eng, Users: state, Streams: state, Index: mgr, UserStore: users, Ordinals: ords,
		Scorers: recommend.Fixed(rerank.DefaultWeights(), ncf), Registerer: reg, Trace: func(t recommend.Trace) { trace = t }})
	srv := api.New(api.Config{}, log, reg, reg)
	srv.RegisterRecall(svc)

	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		check(err)
		check(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	// (1) In-process: the service's Recommend (recall, rerank, the page and
	// its shown-marking; no impression log), one request at a time.
	var inproc []time.Duration
	stages := map[string][]time.Duration{}
	cpu0 := cpuTime()
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	for i := 0; i < 3000; i++ {
		u := lr.UserID(rng.IntN(nUsers) + 1)
		s := time.Now()
		_, err := svc.Recommend(ctx, lr.RecommendRequest{User: u, K: k})
		check(err)
		inproc = append(inproc, time.Since(s))
		stages["recall (channels + merge)"] = append(stages["recall (channels + merge)"], trace.Recall)
		stages["rerank"] = append(stages["rerank"], trace.Rerank)
		for _, o := range trace.Outcomes {
			if o.Status == "ok" {
				stages["channel "+o.Channel] = append(stages["channel "+o.Channel], o.Took)
			}
		}
	}
	cpuPer := (cpuTime() - cpu0) / 3000
	runtime.ReadMemStats(&ms1)
	allocKB := float64(ms1.TotalAlloc-ms0.TotalAlloc) / 3000 / 1024
	allocs := (ms1.Mallocs - ms0.Mallocs) / 3000
	ip50, ip99 := pct(inproc, .5), pct(inproc, .99)
	if p := os.Getenv("BENCH_MEMPROFILE"); p != "" {
		f, err := os.Create(p)
		check(err)
		runtime.GC() // the profile is as of the last collection
		check(pprof.Lookup("allocs").WriteTo(f, 0))
		check(f.Close())
	}
	if os.Getenv("BENCH_CPUPROFILE") != "" {
		pprof.StopCPUProfile()
		fmt.Printf("in-process p50 %v p99 %v, CPU per request %v, %.1f KiB in %d allocations per request\n", ip50, ip99, cpuPer, allocKB, allocs)
		return
	}
	fmt.Printf("\nin-process recall+rerank (3000 requests, one at a time): p50 %d µs, p99 %d µs, CPU time per request %d µs (all cores, GC included), %.1f KiB in %d allocations per request\n",
		ip50.Microseconds(), ip99.Microseconds(), cpuPer.Microseconds(), allocKB, allocs)
	fmt.Println("\n| stage | requests | p50 µs | p99 µs |")
	fmt.Println("|---|---|---|---|")
	names := slices.Sorted(maps.Keys(stages))
	for _, name := range names {
		d := stages[name]
		fmt.Printf("| %s | %d | %d | %d |\n", name, len(d), pct(d, .5).Microseconds(), pct(d, .99).Microseconds())
	}
	fmt.Println("(channels run concurrently; each channel's time is from its start to its answer)")

	// (2) Loopback HTTP, open loop.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	check(err)
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(api.JSONTransportErrors(hs, ln)) // as the service serves
	url := "http://" + ln.Addr().String() + "/v1/recall"
	client := loadgen.NewClient()
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"user_id":%d,"k":%d}`, (i*7919)%nUsers+1, k)
	}
	fmt.Printf("\nloopback HTTP, open loop, %s per rate after %s of warm-up at that rate (latency from each request's scheduled start):\n", dur, warm)
	fmt.Println("| rate req/s | sent | errors | p50 ms | p90 ms | p99 ms | max ms | channels late or failed | CPU µs / request | scheduling p99 µs |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	var at2000 loadgen.Result
	lost2000 := 0
	var worst []string
	machine := startSampler(ctx)
	stalls := startStallWatch()
	maxOK := 0
	totalErr := 0
	for _, rate := range []int{500, 1000, 2000, 3000, 4000, 6000} {
		// Warm-up at the rate, not measured: the client opens the
		// connections this rate needs (and the server their goroutines
		// and buffers), which a service under steady load already has.
		loadgen.OpenLoop(ctx, client, url, rate, warm, body)
		var prof *os.File
		if p := os.Getenv("BENCH_HTTP_CPUPROFILE"); p != "" && rate == 2000 {
			prof, err = os.Create(p)
			check(err)
			check(pprof.StartCPUProfile(prof))
		}
		// BENCH_HTTP_MEMPROFILE: allocation profiles before and after the
		// 2,000 req/s run (go tool pprof -diff_base <p>.before <p>).
		memProf := os.Getenv("BENCH_HTTP_MEMPROFILE")
		if memProf != "" && rate == 2000 {
			writeAllocs(memProf + ".before")
		}
		before := channelOutcomes(reg)
		sched0, cpu0 := schedLatencies(), cpuTime()
		r := loadgen.OpenLoop(ctx, client, url, rate, dur, body)
		cpuReq := (cpuTime() - cpu0) / time.Duration(max(r.Sent, 1))
		schedP99 := sched0.p99Since(schedLatencies())
		lost := lostChannels(before, channelOutcomes(reg))
		if memProf != "" && rate == 2000 {
			writeAllocs(memProf)
		}
		if prof != nil {
			pprof.StopCPUProfile()
			check(prof.Close())
		}
		totalErr += r.Errors
		if rate == 2000 {
			lost2000 = lost
		}
		fmt.Printf("| %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %d | %d | %d |\n", rate, r.Sent, r.Errors, msf(r.Pct(.5)), msf(r.Pct(.9)), msf(r.Pct(.99)), msf(r.Pct(1)), lost,
			cpuReq.Microseconds(), schedP99.Microseconds())
		for _, f := range r.Failures {
			worst = append(worst, fmt.Sprintf("%d req/s, a failed request: %s", rate, f))
		}
		for _, w := range r.Worst(time.Second, 2) {
			at := r.Start.Add(w.Start)
			worst = append(worst, fmt.Sprintf("%d req/s, second %d (%s): p99 %.2f ms, max %.2f ms; %s; %s", rate, int(w.Start.Seconds()), at.UTC().Format("15:04:05"),
				msf(w.P99), msf(w.Max), machine.between(at, at.Add(time.Second)), stalls.between(at, at.Add(time.Second))))
		}
		if rate == 2000 {
			at2000 = r
		}
		if r.Errors == 0 && r.Pct(.99) <= 10*time.Millisecond {
			maxOK = rate
		} else if rate > 2000 {
			break
		}
	}
	hs.Close()
	fmt.Println("\nthe two worst seconds of each rate, by p99 (where the tail came from):")
	for _, w := range worst {
		fmt.Println("  " + w)
	}
	head := map[string]any{
		"streamers": n, "live": nLive,
		"inproc_p50_us": ip50.Microseconds(), "inproc_p99_us": ip99.Microseconds(), "inproc_cpu_us": cpuPer.Microseconds(),
		"http_rate": 2000, "http_p50_ms": round2(msf(at2000.Pct(.5))), "http_p99_ms": round2(msf(at2000.Pct(.99))),
		"http_max_rps": maxOK, "errors": totalErr, "http_channels_lost": lost2000,
	}
	b, _ := json.Marshal(head)
	fmt.Println()
	fmt.Println(string(b))
}

// sampler records, every 100 ms, the CPU time of the machine's other
// processes (/proc/<pid>/stat), the hypervisor's steal (/proc/stat), this
// process's CPU time and the collector's cycle count, so the worst seconds
// of a run can say what the machine and the runtime were doing then: a
// second of tail latency while other processes held the cores reads
// differently from one while this process ran a collection.
type sampler struct {
	mu      sync.Mutex
	samples []sample
}

type sample struct {
	at            time.Time
	others, steal float64 // CPU seconds so far: other processes; stolen by the hypervisor
	proc          time.Duration
	gcs           uint64
}

func startSampler(ctx context.Context) *sampler {
	s := &sampler{}
	self := strconv.Itoa(os.Getpid())
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		gc := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		for {
			metrics.Read(gc)
			x := sample{at: time.Now(), others: othersCPU(self), steal: stealCPU(), proc: cpuTime(), gcs: gc[0].Value.Uint64()}
			s.mu.Lock()
			s.samples = append(s.samples, x)
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// between describes the machine from a to b: the cores this process used,
// those the other processes used, those the hypervisor stole, and the
// collections that finished.
func (s *sampler) between(a, b time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.samples), func(i int) bool { return !s.samples[i].at.Before(a) })
	j := sort.Search(len(s.samples), func(i int) bool { return !s.samples[i].at.Before(b) })
	i, j = max(i-1, 0), min(j, len(s.samples)-1)
	if i >= j {
		return "machine not sampled"
	}
	x, y := s.samples[i], s.samples[j]
	secs := y.at.Sub(x.at).Seconds()
	return fmt.Sprintf("cores used: this process %.2f, other processes %.2f, stolen %.2f; %d collections",
		(y.proc-x.proc).Seconds()/secs, (y.others-x.others)/secs, (y.steal-x.steal)/secs, y.gcs-x.gcs)
}

const clockTicks = 100 // USER_HZ, the unit of /proc's CPU times

// othersCPU sums the CPU seconds (user + system) of every process but self.
func othersCPU(self string) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total float64
	for _, e := range ents {
		name := e.Name()
		if name == self || name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// Fields after the command (which may hold spaces), from state:
		// utime and stime are the 12th and 13th.
		k := strings.LastIndexByte(string(b), ')')
		if k < 0 {
			continue
		}
		f := strings.Fields(string(b[k+1:]))
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (u + st) / clockTicks
	}
	return total
}

// stealCPU returns the CPU seconds the hypervisor stole so far (/proc/stat).
func stealCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	v, _ := strconv.ParseFloat(f[8], 64)
	return v / clockTicks
}

// The stall watch: a child process (this program again, with stallChildEnv
// set) that sleeps 1 ms at a time and reports every oversleep of 4 ms or
// more. It shares nothing with this process but the machine, so a gap it
// sees in the same second as a latency spike says the whole machine
// stalled (the virtual machine paused, or its kernel ran nothing), not
// this process's scheduler or locks.
const stallChildEnv = "LIVERECALL_BENCH_STALL_CHILD"

func stallChild() {
	// Until the parent goes away (its end of stdin closes).
	go func() { io.Copy(io.Discard, os.Stdin); os.Exit(0) }()
	w := bufio.NewWriter(os.Stdout)
	for {
		t := time.Now()
		time.Sleep(time.Millisecond)
		if d := time.Since(t); d >= 4*time.Millisecond {
			fmt.Fprintf(w, "%d %d\n", t.UnixNano(), d.Nanoseconds())
			w.Flush()
		}
	}
}

type stallWatch struct {
	mu    sync.Mutex
	gaps  []stallGap
	err   error
	stdin io.WriteCloser // the child's stdin, held open (a collected pipe would close)
}

type stallGap struct {
	at  time.Time
	gap time.Duration
}

func startStallWatch() *stallWatch {
	s := &stallWatch{}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), stallChildEnv+"=1", "GOMAXPROCS=1")
	stdin, err := cmd.StdinPipe()
	if err == nil {
		var out io.Reader
		if out, err = cmd.StdoutPipe(); err == nil {
			if err = cmd.Start(); err == nil {
				s.stdin = stdin
				go func() {
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						var at, gap int64
						if _, err := fmt.Sscan(sc.Text(), &at, &gap); err == nil {
							s.mu.Lock()
							s.gaps = append(s.gaps, stallGap{time.Unix(0, at), time.Duration(gap)})
							s.mu.Unlock()
						}
					}
				}()
			}
		}
	}
	s.err = err
	return s
}

// between gives the longest gap the child saw that overlaps a to b.
func (s *stallWatch) between(a, b time.Time) string {
	if s.err != nil {
		return "stall watch not running: " + s.err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var longest time.Duration
	for _, g := range s.gaps {
		if g.at.Before(b) && g.at.Add(g.gap).After(a) {
			longest = max(longest, g.gap)
		}
	}
	if longest == 0 {
		return "an idle process on the machine overslept a 1 ms sleep by less than 3 ms"
	}
	return fmt.Sprintf("an idle process on the machine overslept a 1 ms sleep by up to %.1f ms", msf(longest-time.Millisecond))
}

// writeAllocs writes the allocation profile so far to path.
func writeAllocs(path string) {
	runtime.GC() // the profile is as of the last collection
	f, err := os.Create(path)
	check(err)
	check(pprof.Lookup("allocs").WriteTo(f, 0))
	check(f.Close())
}

// schedHist is a reading of the runtime's histogram of how long runnable
// goroutines waited for a thread (/sched/latencies:seconds).
type schedHist struct {
	counts  []uint64
	buckets []float64
}

func schedLatencies() schedHist {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	h := s[0].Value.Float64Histogram()
	return schedHist{counts: slices.Clone(h.Counts), buckets: h.Buckets}
}

// p99Since is the p99 scheduling latency between the reading h and a later
// one (the upper bound of the bucket holding it).
func (h schedHist) p99Since(later schedHist) time.Duration {
	var total uint64
	d := make([]uint64, len(later.counts))
	for i := range d {
		d[i] = later.counts[i] - h.counts[i]
		total += d[i]
	}
	want := uint64(float64(total) * .99)
	var acc uint64
	for i, c := range d {
		if acc += c; acc > want && c > 0 {
			ub := later.buckets[i+1]
			if math.IsInf(ub, 1) {
				ub = later.buckets[i]
			}
			return time.Duration(ub * 1e9)
		}
	}
	return 0
}

// channelOutcomes reads the recall channels' outcome counters.
func channelOutcomes(reg *prometheus.Registry) map[string]float64 {
	out := map[string]float64{}
	mfs, err := reg.Gather()
	check(err)
	for _, mf := range mfs {
		if mf.GetName() != "liverecall_recall_channel_outcomes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				key += l.GetValue() + "/"
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// lostChannels counts the channel answers between two readings that were
// late or failed (a request that dropped a channel answered with less).
func lostChannels(before, after map[string]float64) int {
	n := 0.0
	for k, v := range after {
		if strings.HasSuffix(k, "/timeout/") || strings.HasSuffix(k, "/error/") {
			n += v - before[k]
		}
	}
	return int(n)
}

// benchScorer builds a NeuMF of the default architecture over nUsers users
// and n streamers (ids from 1), trained for one epoch on a few random pairs:
// random weights, which cost what trained ones do. It holds its users'
// weights in memory (recommend.NeuMF's legacy mode), so rerank scores every
// user with it whatever row the request carries.
func benchScorer(n int, ords *lr.Ordinals) (*recommend.NeuMF, error) {
	cfg := embed.DefaultNeuMFConfig()
	cfg.Pretrain, cfg.Epochs = nil, 1
	rng := rand.New(rand.NewPCG(8, 8))
	train := make([]embed.Interaction, 2000)
	for i := range train {
		train[i] = embed.Interaction{User: int32(rng.IntN(nUsers)), Item: int32(rng.IntN(n)), Value: 1}
	}
	m, err := embed.TrainNeuMF(context.Background(), train, nUsers, n, cfg)
	if err != nil {
		return nil, err
	}
	uids, sids := make([]int64, nUsers), make([]int64, n)
	for i := range uids {
		uids[i] = int64(i + 1)
	}
	for i := range sids {
		sids[i] = int64(i + 1)
	}
	return recommend.NewNeuMF("ncf-bench", 2, embed.NewIDScorer(m, uids, sids), ords), nil
}

// cpuTime is the process's CPU time so far (user + system, every thread).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round2(x float64) float64 { return float64(int(x*100+0.5)) / 100 }

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-recall:", err)
		os.Exit(1)
	}
}
