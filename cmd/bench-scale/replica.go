package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	lr "github.com/liverecall/liverecall"
)

// replica is `liverecall serve` running as a child process: its memory is
// its own, measured from /proc.
type replica struct {
	cmd     *exec.Cmd
	addr    string // host:port of its HTTP API
	pprof   string // host:port of its --pprof-addr listener, when it logged one
	logPath string
	exited  chan struct{}
	waitErr error
	tailMu  sync.Mutex // guards pprof
	client  *http.Client
	// brokerPID, when set, is the broker's process, whose CPU time
	// cpuNow samples too.
	brokerPID int
}

// supportsFlag says whether `bin serve -h` lists --name.
func supportsFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "serve", "-h").CombinedOutput()
	return bytes.Contains(out, []byte("-"+name+" "))
}

// replicaEnv is this process's environment without the service's own
// settings, so that only the flags configure the replica, and with
// GOMEMLIMIT and GOMAXPROCS set when memLimit and maxProcs are.
func replicaEnv(memLimit string, maxProcs int) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "LIVERECALL_") || strings.HasPrefix(kv, "DATABASE_URL=") || (memLimit != "" && strings.HasPrefix(kv, "GOMEMLIMIT=")) ||
			(maxProcs > 0 && strings.HasPrefix(kv, "GOMAXPROCS=")) {
			continue
		}
		env = append(env, kv)
	}
	if memLimit != "" {
		env = append(env, "GOMEMLIMIT="+memLimit)
	}
	if maxProcs > 0 {
		env = append(env, "GOMAXPROCS="+strconv.Itoa(maxProcs))
	}
	return append(env, "LIVERECALL_LOG_FORMAT=json") // the benchmark reads the address it serves on from its log
}

// startReplica starts bin serve with args (which must include
// --http-addr 127.0.0.1:0), logs to logPath, and returns once it logged the
// address it serves on.
func startReplica(ctx context.Context, bin string, args []string, memLimit string, maxProcs int, logPath string, timeout time.Duration, niceness int) (*replica, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	if niceness != 0 {
		// nice(1) execs the replica in its own process (the same pid).
		cmd = exec.Command("nice", append([]string{"-n", strconv.Itoa(niceness), bin, "serve"}, args...)...)
	}
	cmd.Env = replicaEnv(memLimit, maxProcs)
	// Its log goes straight to the file. (It went through a pipe that this
	// process read, line by line: when the load generator was short of CPU
	// the pipe filled, and the replica's log writes, made under its
	// logger's lock at the end of each request, held its requests back.)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	r := &replica{cmd: cmd, logPath: logPath, exited: make(chan struct{}), client: &http.Client{Timeout: 10 * time.Second}}
	addr := make(chan string, 1)
	go func() {
		// Reads the log as it grows until the replica says where it
		// serves (and its profiles, when asked to serve them), then stops.
		wantPprof := slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "pprof-addr") })
		served := false
		f, err := os.Open(logPath)
		if err != nil {
			return
		}
		defer f.Close()
		br := bufio.NewReaderSize(f, 64<<10)
		var part []byte
		for {
			b, err := br.ReadSlice('\n')
			part = append(part, b...)
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil { // at the end of what is written so far
				select {
				case <-r.exited:
					return
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
				continue
			}
			line := part
			part = nil
			if !bytes.Contains(line, []byte(`"serving`)) {
				continue
			}
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) != nil {
				continue
			}
			if rec.Msg == "serving Go profiles" {
				r.tailMu.Lock()
				r.pprof = rec.Addr
				r.tailMu.Unlock()
				wantPprof = false
			}
			if rec.Msg == "serving" && rec.Addr != "" && !served {
				served = true
				addr <- rec.Addr
			}
			if served && !wantPprof {
				return
			}
		}
	}()
	go func() {
		r.waitErr = cmd.Wait()
		logf.Close()
		close(r.exited)
	}()
	select {
	case r.addr = <-addr:
		return r, nil
	case <-r.exited:
		return nil, fmt.Errorf("replica exited before serving (%v); its log %s ends:\n%s", r.waitErr, logPath, r.logTail())
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	r.stop(5 * time.Second)
	return nil, fmt.Errorf("replica did not start serving within %s; its log %s ends:\n%s", timeout, logPath, r.logTail())
}

// saveProfile writes the replica's profile at path (a /debug/pprof/ path
// and query, e.g. "heap?gc=1") to file, when it serves profiles.
func (r *replica) saveProfile(path, file string, timeout time.Duration) error {
	r.tailMu.Lock()
	addr := r.pprof
	r.tailMu.Unlock()
	if addr == "" {
		return fmt.Errorf("the replica serves no profiles (no --pprof-addr)")
	}
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + addr + "/debug/pprof/" + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/%s: %s", path, resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// logTail returns the last 20 lines of the replica's log.
func (r *replica) logTail() string {
	b, err := os.ReadFile(r.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (r *replica) pid() int { return r.cmd.Process.Pid }

// stop sends SIGTERM, waits up to grace, then kills.
func (r *replica) stop(grace time.Duration) {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(grace):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// metrics scrapes /metrics.
func (r *replica) metrics() (metricSet, error) {
	resp, err := r.client.Get("http://" + r.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body), nil
}

// waitReady waits until /readyz answers 200 and both indexes serve the
// expected versions (/readyz checks only the MF index), or the replica exits.
func (r *replica) waitReady(ctx context.Context, want map[lr.ModelKind]lr.ModelVersion, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		select {
		case <-r.exited:
			return fmt.Errorf("replica exited while starting (%v); its log %s ends:\n%s", r.waitErr, r.logPath, r.logTail())
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if ok, why := r.ready(want); ok {
			return nil
		} else {
			last = why
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica not ready within %s: %s", timeout, last)
		}
		time.Sleep(250 * time.Millisecond) // polling interval, not a wait for a condition
	}
}

func (r *replica) ready(want map[lr.ModelKind]lr.ModelVersion) (bool, string) {
	resp, err := r.client.Get("http://" + r.addr + "/readyz")
	if err != nil {
		return false, err.Error()
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, "/readyz " + resp.Status + ": " + strings.TrimSpace(string(body))
	}
	m, err := r.metrics()
	if err != nil {
		return false, err.Error()
	}
	for kind, mv := range want {
		id, ok := m.Get("liverecall_index_model_id", map[string]string{"kind": string(kind)})
		if !ok || int64(id) != mv.ID {
			return false, fmt.Sprintf("the %s index does not serve version id %d yet", kind, mv.ID)
		}
	}
	return true, ""
}

// memory is the replica's memory as /proc and its /metrics report it.
type memory struct {
	PeakRSS   int64 // VmHWM: the most resident memory since it started
	RSS       int64 // VmRSS now
	HeapInuse int64 // go_memstats_heap_inuse_bytes (0: not reported)
}

func (r *replica) memory() memory {
	var m memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.pid()))
	if err == nil {
		if kb, ok := procStatusKB(string(b), "VmHWM"); ok {
			m.PeakRSS = kb << 10
		}
		if kb, ok := procStatusKB(string(b), "VmRSS"); ok {
			m.RSS = kb << 10
		}
	}
	if ms, err := r.metrics(); err == nil {
		if v, ok := ms.Get("go_memstats_heap_inuse_bytes", nil); ok {
			m.HeapInuse = int64(v)
		}
	}
	return m
}

// watchMemory samples the replica's memory every interval until stop is
// called, and returns the largest of each figure seen (the last sample is
// taken when stop is called).
func (r *replica) watchMemory(interval time.Duration) (stop func() memory) {
	var mu sync.Mutex
	var peak memory
	take := func() {
		m := r.memory()
		mu.Lock()
		peak.PeakRSS, peak.RSS, peak.HeapInuse = max(peak.PeakRSS, m.PeakRSS), max(peak.RSS, m.RSS), max(peak.HeapInuse, m.HeapInuse)
		mu.Unlock()
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				take()
			}
		}
	}()
	return func() memory {
		close(done)
		<-finished
		take()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

// ncfProbes is the number of debug requests probeNCF sends.
const ncfProbes = 20

// ncfProbe counts the items of debug requests that had an NCF score
// (feature has_ncf = 1) and those whose NCF score is the version's NeuMF
// logit (the rerank read the user's NeuMF weights), not only the GMF dot
// product of the NCF channel.
type ncfProbe struct {
	Requests, Items, WithNCF, NeuMF int
}

func (p ncfProbe) String() string {
	if p.Requests == 0 {
		return "not probed"
	}
	return fmt.Sprintf("%d of %d items in %d debug requests scored by the NeuMF scorer (ncf_score is its logit); %d had an NCF score (has_ncf)",
		p.NeuMF, p.Items, p.Requests, p.WithNCF)
}

// probeNCF sends a debug request for each of users, one at a time, and
// counts the items with an NCF score, and those whose score is what
// neumf gives.
func probeNCF(ctx context.Context, client *http.Client, url string, users []int64, k int, neumf func(user, streamer int64) (float32, bool)) (ncfProbe, error) {
	var p ncfProbe
	for _, u := range users {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"user_id":%d,"k":%d,"debug":true}`, u, k)))
		if err != nil {
			return p, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return p, err
		}
		var out struct {
			Items []struct {
				StreamerID int64 `json:"streamer_id"`
				Debug      *struct {
					Features map[string]float64 `json:"features"`
				} `json:"debug"`
			} `json:"items"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return p, fmt.Errorf("user %d: %s", u, resp.Status)
		}
		if err != nil {
			return p, fmt.Errorf("user %d: %v", u, err)
		}
		p.Requests++
		for _, it := range out.Items {
			p.Items++
			if it.Debug == nil || it.Debug.Features["has_ncf"] != 1 {
				continue
			}
			p.WithNCF++
			got := it.Debug.Features["ncf_score"]
			if want, ok := neumf(u, it.StreamerID); ok && math.Abs(got-float64(want)) <= 1e-4*max(1, math.Abs(float64(want))) {
				p.NeuMF++
			}
		}
	}
	return p, nil
}

// cpuSample is the CPU time used so far by the replica, by this process
// (the load generator) and by the whole machine, in clock ticks.
type cpuSample struct {
	at                         time.Time
	replica, self, busy, total int64
	postgres                   int64 // PostgreSQL's processes (-1: none seen)
	broker                     int64 // the broker's process (-1: not sampled)
	ok                         bool
}

// cpuNow samples the CPU times (ok false when /proc cannot be read).
func (r *replica) cpuNow() cpuSample {
	s := cpuSample{at: time.Now()}
	rb, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.pid()))
	sb, err2 := os.ReadFile("/proc/self/stat")
	ms, err3 := os.ReadFile("/proc/stat")
	if err1 != nil || err2 != nil || err3 != nil {
		return s
	}
	var ok1, ok2, ok3 bool
	s.replica, ok1 = procCPUTicks(string(rb))
	s.self, ok2 = procCPUTicks(string(sb))
	s.busy, s.total, ok3 = machineCPUTicks(string(ms))
	s.postgres = postgresCPUTicks()
	s.broker = -1
	if r.brokerPID > 0 {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", r.brokerPID)); err == nil {
			if t, ok := procCPUTicks(string(b)); ok {
				s.broker = t
			}
		}
	}
	s.ok = ok1 && ok2 && ok3
	return s
}

// postgresCPUTicks sums the CPU time of this machine's processes named
// postgres (the server and its backends), with the time of the children
// that exited and were reaped (cutime, cstime: ended connections,
// autovacuum workers); -1 when there are none.
func postgresCPUTicks() int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	var sum int64
	seen := false
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		if t, ok := postgresTicks(string(b)); ok {
			sum += t
			seen = true
		}
	}
	if !seen {
		return -1
	}
	return sum
}

// cpuUse is the cores used during a row: by the replica, by the load
// generator (this process), by the rest of the machine (PostgreSQL, the
// broker's process, other work), of the machine's cores.
type cpuUse struct {
	Replica, LoadGen, Rest, Cores float64
	Postgres                      float64 // part of Rest; -1 when not measured
	Broker                        float64 // part of Rest; -1 when not measured
	OK                            bool
}

func (u cpuUse) String() string {
	if !u.OK {
		return "CPU not measured"
	}
	var parts []string
	if u.Postgres >= 0 {
		parts = append(parts, fmt.Sprintf("PostgreSQL %.2f", u.Postgres))
	}
	if u.Broker >= 0 {
		parts = append(parts, fmt.Sprintf("the broker's process %.2f", u.Broker))
	}
	pg := ""
	if len(parts) > 0 {
		pg = " (" + strings.Join(parts, ", ") + ")"
	}
	return fmt.Sprintf("CPU: replica %.2f cores, load generator %.2f, rest of the machine %.2f%s, idle %.2f of %.0f",
		u.Replica, u.LoadGen, u.Rest, pg, max(0, u.Cores-u.Replica-u.LoadGen-u.Rest), u.Cores)
}

// cpuBetween is the cores used between two samples.
func cpuBetween(a, b cpuSample) cpuUse {
	secs := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || secs <= 0 || b.total <= a.total {
		return cpuUse{}
	}
	cores := float64(b.total-a.total) / clockTicks / secs
	c := func(x, y int64) float64 { return float64(y-x) / clockTicks / secs }
	rep, self := c(a.replica, b.replica), c(a.self, b.self)
	pg := -1.0
	if a.postgres >= 0 && b.postgres >= a.postgres {
		pg = c(a.postgres, b.postgres)
	}
	brk := -1.0
	if a.broker >= 0 && b.broker >= a.broker {
		brk = c(a.broker, b.broker)
	}
	return cpuUse{Replica: rep, LoadGen: self, Rest: max(0, c(a.busy, b.busy)-rep-self), Postgres: pg, Broker: brk, Cores: cores, OK: true}
}
