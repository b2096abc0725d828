package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/liverecall/liverecall/internal/loadgen"
)

// userOfRank with coprimeStep is a bijection of the ranks onto 1..n.
func TestUserOfRankIsABijection(t *testing.T) {
	for _, n := range []int{2, 3, 10, 97, 1000, 10_000, 65_536} {
		a := coprimeStep(n)
		seen := make([]bool, n+1)
		for r := 0; r < n; r++ {
			u := userOfRank(uint64(r), a, n)
			if u < 1 || u > int64(n) || seen[u] {
				t.Fatalf("n=%d a=%d: rank %d gives user %d (out of range or repeated)", n, a, r, u)
			}
			seen[u] = true
		}
	}
}

// zipfUsers draws every id within 1..users, repeats the popular ones the
// way Zipf(s) says, reaches far into the tail, and is the same for a seed.
func TestZipfUsers(t *testing.T) {
	const users, n, s = 1_000_000, 200_000, 1.1
	ids := zipfUsers(1, users, s, n)
	counts := map[int64]int{}
	for _, u := range ids {
		if u < 1 || u > users {
			t.Fatalf("id %d outside 1..%d", u, users)
		}
		counts[u]++
	}
	// The most popular user's share is 1/H(users, s) (≈ 0.10 for s = 1.1
	// over a million); the sample's must be close.
	h := 0.0
	for r := 1; r <= users; r++ {
		h += math.Pow(float64(r), -s)
	}
	top := 0
	for _, c := range counts {
		top = max(top, c)
	}
	if got, want := float64(top)/n, 1/h; math.Abs(got-want) > 0.1*want {
		t.Errorf("most popular user's share %.4f, want ≈ %.4f", got, want)
	}
	// Some users are cold: many distinct users, most of them seen once.
	once := 0
	for _, c := range counts {
		if c == 1 {
			once++
		}
	}
	if len(counts) < n/10 || once < len(counts)/2 {
		t.Errorf("%d distinct users in %d draws, %d seen once: the tail is missing", len(counts), n, once)
	}
	again := zipfUsers(1, users, s, n)
	for i := range ids {
		if ids[i] != again[i] {
			t.Fatalf("draw %d differs for the same seed", i)
		}
	}
}

const scrape = `# HELP liverecall_recall_channel_outcomes_total Recall channel outcomes.
# TYPE liverecall_recall_channel_outcomes_total counter
liverecall_recall_channel_outcomes_total{channel="mf",status="ok"} 100
liverecall_recall_channel_outcomes_total{channel="mf",status="late"} 3
liverecall_recall_channel_outcomes_total{channel="ncf",status="timeout"} 2
liverecall_recall_channel_outcomes_total{channel="trending",status="error"} 1
liverecall_recall_channel_outcomes_total{channel="odd \"name\", with {braces}",status="skipped"} 7
liverecall_userstore_lookups_total{result="hit"} 90
liverecall_userstore_lookups_total{result="miss"} 10
liverecall_userstore_fetch_seconds_bucket{le="0.001"} 5
liverecall_userstore_bytes 1.5e+06
go_memstats_heap_inuse_bytes 2.5e+07
not a sample
`

func TestParseMetricsAndDeltas(t *testing.T) {
	m := parseMetrics(strings.NewReader(scrape))
	if len(m) != 10 {
		t.Fatalf("parsed %d samples, want 10: %+v", len(m), m)
	}
	if v, ok := m.Get("go_memstats_heap_inuse_bytes", nil); !ok || v != 25e6 {
		t.Errorf("heap in use %v %v", v, ok)
	}
	if v, ok := m.Get("liverecall_recall_channel_outcomes_total", map[string]string{"channel": `odd "name", with {braces}`}); !ok || v != 7 {
		t.Errorf("escaped label value: %v %v", v, ok)
	}
	if _, ok := m.Get("liverecall_missing", nil); ok {
		t.Error("a missing metric was found")
	}
	// Later: 10 more hits, 10 more misses, one more late channel.
	later := strings.NewReplacer(`"hit"} 90`, `"hit"} 100`, `"miss"} 10`, `"miss"} 20`, `status="late"} 3`, `status="late"} 4`).Replace(scrape)
	d := delta(m, parseMetrics(strings.NewReader(later)))
	n, by, byCh := lateChannels(d)
	if n != 1 || by["late"] != 1 || by["timeout"] != 0 || len(byCh) != 1 || byCh["mf late"] != 1 {
		t.Errorf("late channels in the delta: %d %v %v, want 1 late, of mf", n, by, byCh)
	}
	if n, _, _ := lateChannels(m); n != 6 {
		t.Errorf("late channels of one scrape: %d, want 6 (late, timeout, error)", n)
	}
	rate, cc, ok := hitRate(d)
	if !ok || rate != 0.5 || cc.Hits != 10 || cc.Misses != 10 {
		t.Errorf("hit rate %v %+v %v, want 0.5 from 10 hits and 10 misses", rate, cc, ok)
	}
}

// The hit rate is found whatever the user store calls its counters: hits
// and misses in the names, or in a label; without such metrics it says so.
func TestHitRateNames(t *testing.T) {
	for _, tc := range []struct {
		text string
		want float64
		ok   bool
	}{
		{"liverecall_userstore_hits_total 3\nliverecall_userstore_misses_total 1\n", 0.75, true},
		{"liverecall_user_cache_requests_total{outcome=\"hit\"} 1\nliverecall_user_cache_requests_total{outcome=\"miss\"} 3\n", 0.25, true},
		{"liverecall_user_cache_bytes 100\nliverecall_recall_channel_outcomes_total{status=\"ok\"} 5\n", 0, false},
		{"", 0, false},
	} {
		got, _, ok := hitRate(parseMetrics(strings.NewReader(tc.text)))
		if ok != tc.ok || got != tc.want {
			t.Errorf("%q: %v %v, want %v %v", tc.text, got, ok, tc.want, tc.ok)
		}
	}
}

func TestProcStatusKB(t *testing.T) {
	status := "Name:\tliverecall\nVmPeak:\t 2000000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n"
	if v, ok := procStatusKB(status, "VmHWM"); !ok || v != 123456 {
		t.Errorf("VmHWM %v %v", v, ok)
	}
	if _, ok := procStatusKB(status, "VmSwap"); ok {
		t.Error("a missing field was found")
	}
}

func TestSampleString(t *testing.T) {
	s, ok := parseSample(`liverecall_user_cache_bytes{kind="ncf",a="x\"y"} 1.5e+06`)
	if !ok {
		t.Fatal("not parsed")
	}
	if got, want := s.String(), `liverecall_user_cache_bytes{a="x\"y",kind="ncf"} 1.5e+06`; got != want {
		t.Errorf("%s, want %s", got, want)
	}
}

func TestCPUTicks(t *testing.T) {
	if v, ok := procCPUTicks("4242 (live recall) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 0 0"); !ok || v != 325 {
		t.Errorf("procCPUTicks: %d %v, want 325 (a name with a space)", v, ok)
	}
	if _, ok := procCPUTicks("garbage"); ok {
		t.Error("procCPUTicks accepted garbage")
	}
	// PostgreSQL's server: its own time and its reaped children's.
	if v, ok := postgresTicks("880 (postgres) S 1 880 880 0 -1 4194560 100 0 0 0 250 75 1000 20 20 0 9 0 100 0 0"); !ok || v != 1345 {
		t.Errorf("postgresTicks: %d %v, want 1345 (utime+stime+cutime+cstime)", v, ok)
	}
	if _, ok := postgresTicks("4242 (liverecall) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 100 0 0"); ok {
		t.Error("postgresTicks counted another process")
	}
	if _, ok := postgresTicks("881 (postgres) S 1"); ok {
		t.Error("postgresTicks accepted a short line")
	}
	busy, total, ok := machineCPUTicks("cpu  100 5 50 800 40 3 2 0 7 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if !ok || busy != 160 || total != 1000 {
		t.Errorf("machineCPUTicks: %d/%d %v, want 160/1000", busy, total, ok)
	}
}

// histQuantile interpolates within the bucket the quantile falls in, sums
// the series of the labels asked for, and says when it falls past the last
// finite bound.
func TestHistQuantile(t *testing.T) {
	m := parseMetrics(strings.NewReader(`h_bucket{a="x",le="0.001"} 50
h_bucket{a="x",le="0.002"} 90
h_bucket{a="x",le="0.004"} 100
h_bucket{a="x",le="+Inf"} 100
h_bucket{a="y",le="0.001"} 0
h_bucket{a="y",le="0.002"} 0
h_bucket{a="y",le="0.004"} 0
h_bucket{a="y",le="+Inf"} 100
`))
	if v, beyond, ok := histQuantile(m, "h", map[string]string{"a": "x"}, .5); !ok || beyond || math.Abs(v-0.001) > 1e-12 {
		t.Errorf("p50 of x: %v %v %v, want 0.001", v, beyond, ok)
	}
	if v, _, _ := histQuantile(m, "h", map[string]string{"a": "x"}, .99); math.Abs(v-0.0038) > 1e-12 {
		t.Errorf("p99 of x: %v, want 0.0038 (0.002 + 0.002·9/10)", v)
	}
	if v, beyond, _ := histQuantile(m, "h", map[string]string{"a": "y"}, .5); !beyond || v != 0.004 {
		t.Errorf("p50 of y: %v beyond %v, want past 0.004", v, beyond)
	}
	if v, _, _ := histQuantile(m, "h", nil, .25); math.Abs(v-0.001) > 1e-12 {
		t.Errorf("p25 of both: %v, want 0.001 (50 of 200)", v)
	}
	if _, _, ok := histQuantile(m, "other", nil, .5); ok {
		t.Error("a histogram not scraped gave a quantile")
	}
	if got := quantileText(m, "h", map[string]string{"a": "y"}, .99); got != "> 4.0" {
		t.Errorf("quantileText past the last bound: %q", got)
	}
	if got := quantileText(m, "h", map[string]string{"a": "x"}, .5); got != "1.0" {
		t.Errorf("quantileText of 1 ms: %q", got)
	}
	// Under 0.1 ms (the Go scheduler's waits) it keeps three decimals.
	us := parseMetrics(strings.NewReader(`s_bucket{le="1e-05"} 10
s_bucket{le="0.0001"} 20
s_bucket{le="+Inf"} 20
`))
	if got := quantileText(us, "s", nil, .5); got != "0.010" {
		t.Errorf("quantileText of 10 µs: %q, want 0.010", got)
	}
}

// parseDiskstats counts whole disks only.
func TestParseDiskstats(t *testing.T) {
	text := ` 254       0 vda 100 0 800 40 5 0 8 1 0 50 41 0 0 0 0
 254       1 vda1 90 0 700 35 5 0 8 1 0 50 36 0 0 0 0
   7       0 loop0 7 0 14 1 0 0 0 0 0 1 1 0 0 0 0
 259       0 nvme0n1 20 0 160 4 0 0 0 0 0 4 4 0 0 0 0
 259       1 nvme0n1p1 19 0 150 3 0 0 0 0 0 3 3 0 0 0 0
`
	if r, ms := parseDiskstats(text); r != 120 || ms != 44 {
		t.Fatalf("reads %d, ms %d; want 120 and 44 (vda and nvme0n1)", r, ms)
	}
}

// splitFirst files each latency by the index of the request it measured
// (from its scheduled start), skipping the failed requests OpenLoop left
// out of Lat; quantiles reports their p50 / p99.
func TestSplitFirst(t *testing.T) {
	ms := time.Millisecond
	// 1,000 req/s: request i is scheduled at i ms. Requests 1 and 3 failed.
	r := loadgen.Result{Rate: 1000,
		Lat: []time.Duration{10 * ms, 30 * ms, 50 * ms, 60 * ms},
		At:  []time.Duration{0, 2 * ms, 4 * ms, 5 * ms}}
	first := []bool{true, true, false, false, true, false}
	fst, again := splitFirst(r, first)
	if len(fst) != 2 || fst[0] != 10*ms || fst[1] != 50*ms || len(again) != 2 || again[0] != 30*ms || again[1] != 60*ms {
		t.Fatalf("first %v, again %v; want [10ms 50ms] and [30ms 60ms]", fst, again)
	}
	if got := quantiles(fst); got != "10.00 / 10.00" {
		t.Errorf("quantiles(%v) = %q", fst, got)
	}
	var many []time.Duration
	for i := 100; i >= 1; i-- {
		many = append(many, time.Duration(i)*ms)
	}
	if got := quantiles(many); got != "50.00 / 99.00" {
		t.Errorf("quantiles of 1..100 ms = %q, want 50.00 / 99.00", got)
	}
	if got := quantiles(nil); got != "-" {
		t.Errorf("quantiles(nil) = %q", got)
	}
}
