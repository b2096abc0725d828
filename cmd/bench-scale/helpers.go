package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/liverecall/liverecall/internal/loadgen"
)

// zipfUsers draws n user ids from 1..users with Zipf(s) popularity: rank r
// (0 the most popular) has weight 1/(r+1)^s. Ranks are scattered over the
// id space by an affine bijection (userOfRank), so popular users are not
// the lowest ids (whose rows sit together in the table and its index).
// The same seed gives the same sequence.
func zipfUsers(seed uint64, users int, s float64, n int) []int64 {
	rng := rand.New(rand.NewPCG(seed, 0x5ca1e))
	z := rand.NewZipf(rng, s, 1, uint64(users-1))
	a := coprimeStep(users)
	out := make([]int64, n)
	for i := range out {
		out[i] = userOfRank(z.Uint64(), a, users)
	}
	return out
}

// coprimeStep returns a multiplier coprime with n (so r ↦ r·a mod n is a
// bijection of 0..n-1), far from 1 so neighbouring ranks land far apart.
func coprimeStep(n int) uint64 {
	if n <= 2 {
		return 1
	}
	m := uint64(n)
	a := uint64(2654435761) % m
	for a < 2 || gcd(a, m) != 1 { // ends: n-1 ≥ 2 is coprime with n
		a = (a + 1) % m
	}
	return a
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// userOfRank maps a popularity rank in 0..n-1 to a user id in 1..n.
func userOfRank(rank, a uint64, n int) int64 {
	return int64((rank*a+12345)%uint64(n)) + 1
}

// sample is one line of the Prometheus text format.
type sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// metricSet is a scrape of /metrics.
type metricSet []sample

// parseMetrics reads the Prometheus text exposition format. It is lenient:
// comments, blank lines and lines it cannot read are skipped.
func parseMetrics(r io.Reader) metricSet {
	var out metricSet
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if s, ok := parseSample(line); ok {
			out = append(out, s)
		}
	}
	return out
}

func parseSample(line string) (sample, bool) {
	s := sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ \t")
	if i <= 0 {
		return s, false
	}
	s.Name = line[:i]
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for {
			rest = strings.TrimLeft(rest, " ,")
			if rest == "" {
				return s, false
			}
			if rest[0] == '}' {
				rest = rest[1:]
				break
			}
			eq := strings.IndexByte(rest, '=')
			if eq <= 0 || len(rest) < eq+2 || rest[eq+1] != '"' {
				return s, false
			}
			key := strings.TrimSpace(rest[:eq])
			rest = rest[eq+2:]
			var val strings.Builder
			closed := false
			for j := 0; j < len(rest); j++ {
				c := rest[j]
				if c == '\\' && j+1 < len(rest) {
					j++
					switch rest[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(rest[j])
					}
					continue
				}
				if c == '"' {
					rest, closed = rest[j+1:], true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return s, false
			}
			s.Labels[key] = val.String()
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return s, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return s, false
	}
	s.Value = v
	return s, true
}

// key identifies a series: its name and sorted labels, as the text format
// writes them.
func (s sample) key() string {
	ks := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var b strings.Builder
	b.WriteString(s.Name)
	for i, k := range ks {
		if i == 0 {
			b.WriteByte('{')
		} else {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(s.Labels[k]))
	}
	if len(ks) > 0 {
		b.WriteByte('}')
	}
	return b.String()
}

// String gives the sample as the text format writes it (labels sorted).
func (s sample) String() string {
	return s.key() + " " + strconv.FormatFloat(s.Value, 'g', -1, 64)
}

// Get returns the sum of the series named name whose labels include want.
func (m metricSet) Get(name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
	for _, s := range m {
		if s.Name != name || !hasLabels(s, want) {
			continue
		}
		sum += s.Value
		found = true
	}
	return sum, found
}

func hasLabels(s sample, want map[string]string) bool {
	for k, v := range want {
		if s.Labels[k] != v {
			return false
		}
	}
	return true
}

// delta returns after − before per series of after (a series absent
// before counts from 0).
func delta(before, after metricSet) metricSet {
	prev := make(map[string]float64, len(before))
	for _, s := range before {
		prev[s.key()] = s.Value
	}
	out := make(metricSet, 0, len(after))
	for _, s := range after {
		d := s
		d.Value -= prev[s.key()]
		out = append(out, d)
	}
	return out
}

// lostStatuses are the channel outcomes that mean a request was answered
// without that channel: "late" (the user store's miss that was not answered
// in time), "timeout" (the recall budget) and "error".
var lostStatuses = map[string]bool{"late": true, "timeout": true, "error": true}

// lateChannels counts, in a delta of scrapes, the recall channel outcomes
// that dropped a channel, and returns them by status too, and by
// "channel status" (e.g. "mf late").
func lateChannels(d metricSet) (int, map[string]int, map[string]int) {
	by, byChannel := map[string]int{}, map[string]int{}
	n := 0
	for _, s := range d {
		if s.Name != "liverecall_recall_channel_outcomes_total" || !lostStatuses[s.Labels["status"]] {
			continue
		}
		v := int(s.Value + 0.5)
		if v == 0 {
			continue
		}
		by[s.Labels["status"]] += v
		byChannel[s.Labels["channel"]+" "+s.Labels["status"]] += v
		n += v
	}
	return n, by, byChannel
}

// cacheCounts is what hitRate found: the hits and misses of one metric.
type cacheCounts struct {
	Metric       string
	Hits, Misses float64
}

// userCacheMetric says whether name is one of the user store's metrics.
func userCacheMetric(name string) bool {
	return strings.Contains(name, "userstore") || strings.Contains(name, "user_cache") || strings.Contains(name, "user_store")
}

// hitRate finds the user cache's hits and misses in a delta of scrapes
// without knowing the exact metric names: among the series named like the
// user store's (userstore, user_cache, user_store), a series counts as hits
// when its name or a label value says hit, as misses when it says miss
// (histogram buckets and sums are skipped). Of several such metrics, the
// one with the most lookups is used. ok is false when none was found.
func hitRate(d metricSet) (rate float64, c cacheCounts, ok bool) {
	by := map[string]*cacheCounts{}
	for _, s := range d {
		if !userCacheMetric(s.Name) || strings.HasSuffix(s.Name, "_bucket") || strings.HasSuffix(s.Name, "_sum") {
			continue
		}
		kind := classify(s.Name)
		if kind == "" {
			for _, v := range s.Labels {
				if k := classify(v); k != "" {
					kind = k
					break
				}
			}
		}
		if kind == "" {
			continue
		}
		// The family: hits and misses counters of one cache share a stem.
		fam := strings.NewReplacer("misses", "", "miss", "", "hits", "", "hit", "").Replace(s.Name)
		cc := by[fam]
		if cc == nil {
			cc = &cacheCounts{Metric: fam}
			by[fam] = cc
		}
		if kind == "hit" {
			cc.Hits += s.Value
		} else {
			cc.Misses += s.Value
		}
	}
	var best *cacheCounts
	for _, cc := range by {
		if best == nil || cc.Hits+cc.Misses > best.Hits+best.Misses || (cc.Hits+cc.Misses == best.Hits+best.Misses && cc.Metric < best.Metric) {
			best = cc
		}
	}
	if best == nil || best.Hits+best.Misses == 0 {
		return 0, cacheCounts{}, false
	}
	return best.Hits / (best.Hits + best.Misses), *best, true
}

// classify says whether s (a metric name or label value) names hits or misses.
func classify(s string) string {
	s = strings.ToLower(s)
	switch {
	case strings.Contains(s, "miss"):
		return "miss"
	case strings.Contains(s, "hit"):
		return "hit"
	}
	return ""
}

// procStatusKB reads a "Vm...: N kB" field of /proc/PID/status text.
func procStatusKB(status, field string) (int64, bool) {
	for _, line := range strings.Split(status, "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		return v, err == nil
	}
	return 0, false
}

// clockTicks is Linux's USER_HZ, the unit of /proc's CPU times (100 on
// every architecture Go supports there).
const clockTicks = 100

// procCPUTicks parses the CPU time (utime + stime, in clock ticks) from
// /proc/PID/stat text.
func procCPUTicks(stat string) (int64, bool) {
	// The command name, field 2, is in parentheses and may hold spaces:
	// the fields after the last ')' start with field 3 (state).
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64) // field 14, utime
	s, err2 := strconv.ParseInt(f[12], 10, 64) // field 15, stime
	return u + s, err1 == nil && err2 == nil
}

// postgresTicks parses /proc/PID/stat text of a process named postgres:
// its CPU time and that of its reaped children (utime, stime, cutime,
// cstime), in clock ticks. ok is false for another process or bad text.
func postgresTicks(stat string) (int64, bool) {
	i, j := strings.IndexByte(stat, '('), strings.LastIndexByte(stat, ')')
	if i < 0 || j < i || stat[i+1:j] != "postgres" {
		return 0, false
	}
	f := strings.Fields(stat[j+1:])
	if len(f) < 15 {
		return 0, false
	}
	var sum int64
	for _, k := range []int{11, 12, 13, 14} { // fields 14-17
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return 0, false
		}
		sum += v
	}
	return sum, true
}

// machineCPUTicks parses /proc/stat text: the clock ticks all cores spent
// busy (everything but idle and iowait) and in all.
func machineCPUTicks(stat string) (busy, total int64, ok bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, false
	}
	for i, s := range f[1:] {
		if i >= 8 { // guest times are counted in user already
			break
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, false
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, true
}

// histQuantile estimates the q-quantile of histogram name (its _bucket
// series, summed over the series with labels) in a delta of scrapes, by
// linear interpolation within the bucket it falls in, as Prometheus'
// histogram_quantile does. beyond says it falls past the last finite
// bound, which is then returned. ok is false when nothing was observed.
func histQuantile(d metricSet, name string, labels map[string]string, q float64) (v float64, beyond, ok bool) {
	cum := map[float64]float64{}
	for _, s := range d {
		if s.Name != name+"_bucket" || !hasLabels(s, labels) {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			continue
		}
		cum[le] += s.Value
	}
	bounds := make([]float64, 0, len(cum))
	for le := range cum {
		bounds = append(bounds, le)
	}
	slices.Sort(bounds)
	if len(bounds) == 0 || cum[bounds[len(bounds)-1]] <= 0 {
		return 0, false, false
	}
	rank := q * cum[bounds[len(bounds)-1]]
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		if cum[le] >= rank {
			if math.IsInf(le, 1) {
				return lower, true, true
			}
			if cum[le] == below {
				return le, false, true
			}
			return lower + (le-lower)*(rank-below)/(cum[le]-below), false, true
		}
		lower, below = le, cum[le]
	}
	return lower, true, true
}

// quantileText is histQuantile's estimate in milliseconds, as text ("-"
// when nothing was observed, "> X" past the last bound).
func quantileText(d metricSet, name string, labels map[string]string, q float64) string {
	v, beyond, ok := histQuantile(d, name, labels, q)
	switch {
	case !ok:
		return "-"
	case beyond:
		return fmt.Sprintf("> %.1f", v*1000)
	case v < 1e-4:
		return fmt.Sprintf("%.3f", v*1000) // under 0.1 ms (the scheduler's waits)
	}
	return fmt.Sprintf("%.1f", v*1000)
}

// innerLatencies is a row's latencies inside the replica, p50 / p99 in
// milliseconds from its histograms: the recall route's handling (from its
// middleware, so without the time a request waits to be read), the recall
// and rerank stages, the user store's queries, the live state's user
// loads, and the Go scheduler's: how long goroutines ready to run waited
// for a processor (go_sched_latencies_seconds).
func innerLatencies(d metricSet) string {
	var parts []string
	for _, h := range []struct {
		what, name string
		labels     map[string]string
	}{
		{"POST /v1/recall handled", "liverecall_http_request_duration_seconds", map[string]string{"route": "/v1/recall", "method": "POST"}},
		{"recall stage", "liverecall_recall_stage_seconds", map[string]string{"stage": "recall"}},
		{"rerank stage", "liverecall_recall_stage_seconds", map[string]string{"stage": "rerank"}},
		{"user store query", "liverecall_userstore_query_seconds", nil},
		{"user load", "liverecall_live_user_load_seconds", nil},
		{"goroutines ready waiting for a processor", "go_sched_latencies_seconds", nil},
	} {
		parts = append(parts, fmt.Sprintf("%s %s / %s", h.what, quantileText(d, h.name, h.labels, .5), quantileText(d, h.name, h.labels, .99)))
	}
	return strings.Join(parts, "; ")
}

// parseDiskstats sums, over the whole disks of a /proc/diskstats text
// (not partitions: a name ending in a digit after a letter other than a
// device's own, nor loop, ram or zram devices), the reads completed (field
// 4) and the milliseconds spent reading (field 7).
func parseDiskstats(text string) (reads, ms int64) {
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 7 {
			continue
		}
		name := f[2]
		if strings.HasPrefix(name, "loop") || strings.HasPrefix(name, "ram") || strings.HasPrefix(name, "zram") || isPartition(name) {
			continue
		}
		r, err1 := strconv.ParseInt(f[3], 10, 64)
		t, err2 := strconv.ParseInt(f[6], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		reads += r
		ms += t
	}
	return reads, ms
}

// isPartition says whether a block device name is a partition: vda1, sda2,
// nvme0n1p1, mmcblk0p1 (and not vda, sda, nvme0n1, mmcblk0).
func isPartition(name string) bool {
	if strings.HasPrefix(name, "nvme") || strings.HasPrefix(name, "mmcblk") {
		i := strings.LastIndexByte(name, 'p')
		return i > 0 && i < len(name)-1 && strings.Trim(name[i+1:], "0123456789") == "" && strings.ContainsAny(name[:i], "0123456789")
	}
	return len(name) > 0 && name[len(name)-1] >= '0' && name[len(name)-1] <= '9'
}

// splitFirst splits r's latencies by first: the requests whose index i
// has first[i] (its user's first request to the replica) and the others.
func splitFirst(r loadgen.Result, first []bool) (fst, again []time.Duration) {
	interval := time.Second / time.Duration(r.Rate)
	for j, l := range r.Lat {
		if i := int(r.At[j] / interval); i < len(first) && first[i] {
			fst = append(fst, l)
		} else {
			again = append(again, l)
		}
	}
	return fst, again
}

// quantiles is "p50 / p99" of ls in ms (loadgen.Result.Pct), or "-" when
// ls is empty.
func quantiles(ls []time.Duration) string {
	if len(ls) == 0 {
		return "-"
	}
	r := loadgen.Result{Lat: ls}
	return fmt.Sprintf("%.2f / %.2f", msf(r.Pct(.5)), msf(r.Pct(.99)))
}
