// Command bench-scale measures a replica's memory and latency against a
// platform of many users: it writes a synthetic platform into a fresh
// PostgreSQL database (USERS users and 1M streamers, an MF and an NCF
// version of dim 64, by binary COPY; the NCF version a random NeuMF with the
// default layers, its scorer stored beside it and each user's MLP embedding
// with the user's vector), starts an in-process Kafka-protocol
// broker with 20,000 live streams on it, then runs `bin/liverecall serve`
// as a child process (so its memory is its own) and drives it over
// loopback HTTP at a fixed open-loop rate from users drawn Zipf(1.1) over
// all users. It reports, for the first seconds after the replica became
// ready (cold) and after a warm-up (warm): latency, errors, recall channels
// dropped, the user cache's hit rate, peak RSS and Go heap. The replica runs
// twice, against versions holding a small number of users and all of them,
// with the same streamers: the growth of its peak RSS per added user is
// bytes_per_user. The last line is the JSON headline.
//
// QUICK=1: 1M users instead of 10M, shorter rows.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/internal/loadgen"
	"github.com/liverecall/liverecall/postgres"
)

type config struct {
	users, streamers, live, dim, smallUsers int
	rate                                    int
	zipf                                    float64
	cold, warmup, duration                  time.Duration
	bin, baseURL, db                        string
	keep, reuse                             bool
	workers                                 int
	cacheBytes                              string
	readyTimeout                            time.Duration
	logDir                                  string
	k                                       int
	replicaFlags                            []string
	memLimit                                string
	maxProcs                                int
	replicaNice                             int
	prewarm                                 bool
	profileDir                              string
	snapshotDir                             string
	compareStores                           bool
	redisAddr                               string
	storeSeconds                            time.Duration
	client                                  string
}

func parseConfig() config {
	quick := os.Getenv("QUICK") != ""
	c := config{users: 10_000_000, cold: 10 * time.Second, warmup: 30 * time.Second, duration: 60 * time.Second}
	if quick {
		c.users, c.warmup, c.duration = 1_000_000, 10*time.Second, 20*time.Second
	}
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	flag.IntVar(&c.users, "users", c.users, "users on the platform (QUICK=1: 1,000,000)")
	flag.IntVar(&c.streamers, "streamers", 1_000_000, "streamers on the platform")
	flag.IntVar(&c.live, "live", 20_000, "streamers live (stream.started events on the broker)")
	flag.IntVar(&c.dim, "dim", 64, "vector dimension of both models")
	flag.IntVar(&c.smallUsers, "small-users", 10_000, "users of the baseline run for bytes_per_user (0: no baseline run; capped at users/10)")
	flag.IntVar(&c.rate, "rate", 2000, "requests per second, open loop")
	flag.Float64Var(&c.zipf, "zipf", 1.1, "Zipf exponent s (> 1) of the users' request popularity")
	flag.DurationVar(&c.cold, "cold", c.cold, "length of the cold row: from the moment the replica is ready")
	flag.DurationVar(&c.warmup, "warmup", c.warmup, "load between the cold and the warm row, not reported")
	flag.DurationVar(&c.duration, "duration", c.duration, "length of the warm row")
	flag.StringVar(&c.bin, "bin", "bin/liverecall", "the service binary (make build)")
	flag.StringVar(&c.baseURL, "database-url", base, "PostgreSQL server (any database on it; $DATABASE_URL); the benchmark creates its own database there")
	flag.StringVar(&c.db, "db", "liverecall_bench_scale", "name of the database the benchmark creates (dropped at the end unless -keep)")
	flag.BoolVar(&c.keep, "keep", false, "keep the database at the end")
	flag.BoolVar(&c.reuse, "reuse", false, "reuse the database a -keep run left, when it holds this platform (skips loading)")
	flag.IntVar(&c.workers, "load-workers", 2, "goroutines (and connections) writing by COPY")
	flag.StringVar(&c.cacheBytes, "user-cache-bytes", "", "passed as is to the replica as --user-cache-bytes when its binary has that flag (empty: its default)")
	flag.DurationVar(&c.readyTimeout, "ready-timeout", 30*time.Minute, "how long a replica may take to become ready (index builds)")
	flag.StringVar(&c.logDir, "log-dir", ".bench", "where the replicas' logs go")
	flag.IntVar(&c.k, "k", 20, "items per request")
	flag.BoolVar(&c.prewarm, "prewarm", true, "before the replicas start, read the vector tables and their keys into the OS page cache (pg_prewarm), so that the rows measure a database whose working set is in memory; each row reports the machine's disk reads")
	flag.IntVar(&c.replicaNice, "replica-nice", 0, "niceness of the replica's process (nice -n), relative to this one, the broker's and PostgreSQL's: with a positive value the replica takes the CPU they leave, as it would on cores of its own, and they answer and time its requests without waiting behind it (0: all share the cores alike)")
	flag.IntVar(&c.maxProcs, "replica-gomaxprocs", 0, "GOMAXPROCS of the replica (0: this process's environment, else the Go runtime's default, the CPUs it may use)")
	flag.StringVar(&c.memLimit, "replica-gomemlimit", "", "GOMEMLIMIT of the replica (e.g. 1800MiB; empty: this process's environment), as deploy/kubernetes/server.yaml sets it")
	flag.StringVar(&c.snapshotDir, "snapshot-dir", "", "when set, each replica keeps its index snapshots in <dir>/<small|full> (--index-snapshot-dir), so a rerun on a kept platform (-keep, -reuse) loads them instead of building the indexes")
	flag.StringVar(&c.profileDir, "profile-dir", "", "when set, the replica serves Go's profiles (--pprof-addr) and the benchmark saves into this directory, per replica, its heap when ready (<name>-heap-ready.pb.gz), an execution trace of the last 5 s of the warm-up (<name>-trace-warmup.out, for go tool trace: what requests wait for off the CPU), a CPU profile of the warm row (<name>-cpu-warm.pb.gz) and its heap after it (<name>-heap-warm.pb.gz), for go tool pprof")
	flag.BoolVar(&c.compareStores, "compare-stores", false, "instead of running replicas, compare the user store's batched reads from PostgreSQL with MGETs of the same rows from Redis (-redis-addr)")
	flag.StringVar(&c.redisAddr, "redis-addr", "127.0.0.1:6379", "Redis server of -compare-stores (its keys are deleted at the end)")
	flag.DurationVar(&c.storeSeconds, "store-seconds", 5*time.Second, "length of each row of -compare-stores")
	flag.StringVar(&c.client, "client", "conns", "the load generator's HTTP client: conns (its own keep-alive connections, each request written and answered in one goroutine: loadgen.Conns) or net/http (net/http's Transport, which hands each request to two goroutines of its connection)")
	extra := flag.String("replica-flags", "", "more flags for the replica (liverecall serve), space-separated (e.g. \"--recall-budget 10ms\")")
	flag.Parse()
	c.replicaFlags = strings.Fields(*extra)
	switch {
	case c.users < 2 || c.streamers < 1 || c.live < 1 || c.live > c.streamers || c.dim < 1 || c.rate < 1 || c.zipf <= 1 || c.workers < 1:
		fail(fmt.Errorf("need users ≥ 2, streamers ≥ 1, 1 ≤ live ≤ streamers, dim ≥ 1, rate ≥ 1, zipf > 1, load-workers ≥ 1"))
	case c.smallUsers < 0:
		fail(fmt.Errorf("-small-users must be ≥ 0"))
	case c.client != "conns" && c.client != "net/http":
		fail(fmt.Errorf("-client %q: want conns or net/http", c.client))
	}
	if c.smallUsers > c.users/10 {
		c.smallUsers = c.users / 10
	}
	return c
}

// cleanups run, newest first, when the benchmark ends or fails.
var cleanups []func()

func cleanup() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench-scale:", err)
	cleanup()
	os.Exit(1)
}

func check(err error) {
	if err != nil {
		fail(err)
	}
}

// row is one measured stretch of load on one replica.
type row struct {
	Replica   string // "small" or "full"
	Users     int
	Name      string // "cold" or "warm"
	Seconds   float64
	Res       loadgen.Result
	Late      int
	LateBy    map[string]int
	LateByCh  map[string]int // by "channel status"
	Inner     string         // innerLatencies of the row
	HitRate   float64
	HitOK     bool
	HitMetric string
	Mem       memory // the largest seen during the row (PeakRSS: since the replica started)
	CPU       cpuUse
	DB        dbActivity // the benchmark database's, during the row
	// First and Again split the row's latencies: the requests of users
	// the replica had not been asked for before (in any row), and the
	// others.
	First, Again []time.Duration
}

// dbActivity is what pg_stat_database counts of one database: transactions
// (each statement outside a transaction block is one) and rows fetched by
// index scans and returned by scans.
type dbActivity struct {
	Xacts, Fetched, Returned int64
	// BlocksRead are the blocks PostgreSQL read from the operating system
	// (its page cache or the disk) rather than found in its buffers.
	BlocksRead int64
	// DiskReads and DiskReadMS are the reads of the machine's disks and
	// the time spent in them (/proc/diskstats; -1 when unread).
	DiskReads, DiskReadMS int64
	OK                    bool
}

func readDBActivity(ctx context.Context, db *postgres.DB) dbActivity {
	var a dbActivity
	err := db.Pool.QueryRow(ctx, `SELECT xact_commit + xact_rollback, tup_fetched, tup_returned, blks_read
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&a.Xacts, &a.Fetched, &a.Returned, &a.BlocksRead)
	a.OK = err == nil
	a.DiskReads, a.DiskReadMS = diskReads()
	return a
}

func (a dbActivity) sub(b dbActivity) dbActivity {
	d := dbActivity{Xacts: a.Xacts - b.Xacts, Fetched: a.Fetched - b.Fetched, Returned: a.Returned - b.Returned,
		BlocksRead: a.BlocksRead - b.BlocksRead, DiskReads: -1, DiskReadMS: -1, OK: a.OK && b.OK}
	if a.DiskReads >= 0 && b.DiskReads >= 0 {
		d.DiskReads, d.DiskReadMS = a.DiskReads-b.DiskReads, a.DiskReadMS-b.DiskReadMS
	}
	return d
}

// diskReads sums the completed reads and the milliseconds spent reading
// of the machine's whole disks in /proc/diskstats (partitions, loop and
// ram devices left out); -1, -1 when it cannot be read.
func diskReads() (reads, ms int64) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return -1, -1
	}
	return parseDiskstats(string(b))
}

// prewarm reads the platform's vector tables and their keys into the
// operating system's page cache (pg_prewarm's read mode), so that the rows
// measure a database whose working set is in memory, as on a server sized
// for it, not this machine's disk: without it the 10M-user tables (9.7 GB)
// did not all stay cached beside everything else here, and a run's users
// new to the replica waited on disk reads. It returns the bytes read.
func prewarm(ctx context.Context, db *postgres.DB) (int64, error) {
	if _, err := db.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_prewarm`); err != nil {
		return 0, fmt.Errorf("pg_prewarm: %w", err)
	}
	var blocks int64
	err := db.Pool.QueryRow(ctx, `SELECT coalesce(sum(pg_prewarm(c.oid, 'read')), 0) FROM pg_class c
		WHERE c.relname IN ('user_embeddings', 'user_embeddings_pkey', 'streamer_embeddings', 'streamer_embeddings_pkey')
		AND c.relnamespace = 'public'::regnamespace`).Scan(&blocks)
	return blocks * 8192, err
}

// runResult is one replica's run.
type runResult struct {
	Users     int
	ReadySecs float64
	Rows      []row
	Live      float64  // live streamers it reported
	NCF       ncfProbe // debug requests after the warm row
	Idle      memory   // memory when ready, before any request
	End       memory   // at the end
	Metrics   []string // the user store's series at the end of the warm row, "name{labels} value"
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == brokerFlag {
		serveBroker()
		return
	}
	c := parseConfig()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if _, err := os.Stat(c.bin); err != nil {
		fail(fmt.Errorf("%s: %v (build it with `make build`)", c.bin, err))
	}
	check(os.MkdirAll(c.logDir, 0o755))
	fmt.Printf("# scale: %d users, %d streamers (%d live), MF + NCF dim %d; the replica is `%s serve` in its own process\n",
		c.users, c.streamers, c.live, c.dim, c.bin)
	fmt.Printf("# load: %d req/s open loop over loopback HTTP (client %s), k=%d, users Zipf(s=%.2f) over all users; rows: cold (first %s after ready), warm (%s after %s more of warm-up)\n",
		c.rate, c.client, c.k, c.zipf, c.cold, c.duration, c.warmup)

	// The platform.
	url, existed, err := createDatabase(ctx, c.baseURL, c.db, c.reuse)
	check(err)
	if !c.keep {
		cleanups = append(cleanups, func() {
			if err := dropDatabase(context.Background(), c.baseURL, c.db); err != nil {
				fmt.Fprintln(os.Stderr, "bench-scale: dropping the database:", err)
			}
		})
	}
	db, err := postgres.Open(ctx, url)
	check(err)
	cleanups = append(cleanups, db.Close)
	p := &platform{users: c.users, streamers: c.streamers, smallUsers: c.smallUsers, dim: c.dim}
	var rep loadReport
	if existed {
		ok, err := p.find(ctx, db)
		check(err)
		if !ok {
			fail(fmt.Errorf("-reuse: database %s does not hold this platform (users, streamers, dim, small-users); run without -reuse to write it anew", c.db))
		}
		rep.Reused = true
	} else {
		fmt.Fprintf(os.Stderr, "writing the platform into database %s with %d COPY workers\n", c.db, c.workers)
		rep, err = p.load(ctx, db, c.workers)
		check(err)
	}
	rep.DBBytes, err = dbSize(ctx, db)
	check(err)
	fmt.Println("\n| platform | vectors | seconds | vectors/s |")
	fmt.Println("|---|---|---|---|")
	if rep.Reused {
		fmt.Println("| reused from an earlier run (-reuse) | - | - | - |")
	} else {
		fmt.Printf("| users and streamers, both models, binary COPY (%d workers) | %d | %.1f | %.0f |\n", c.workers, rep.Rows, rep.CopySeconds, float64(rep.Rows)/rep.CopySeconds)
		if c.smallUsers > 0 {
			fmt.Printf("| baseline versions (%d users, same streamers), INSERT … SELECT | %d | %.1f | %.0f |\n", c.smallUsers, rep.SmallRows, rep.SmallSecs, float64(rep.SmallRows)/max(rep.SmallSecs, 1e-9))
		}
		fmt.Printf("| primary keys of both tables, built after the load | %d | %.1f | %.0f |\n", rep.Rows+rep.SmallRows, rep.KeySeconds, float64(rep.Rows+rep.SmallRows)/max(rep.KeySeconds, 1e-9))
		fmt.Printf("NeuMF scorer of the NCF versions (%s, streamer side and dense weights): %.1f MB, generated and stored in %.1f s\n",
			embed.ScorerFormat, float64(rep.ScorerBytes)/1e6, rep.ScorerSecs)
		fmt.Printf("load time: %.1f s\n", rep.ScorerSecs+rep.CopySeconds+rep.SmallSecs+rep.KeySeconds)
	}
	fmt.Printf("database size: %.2f GB (%d bytes; both version pairs)\n", float64(rep.DBBytes)/1e9, rep.DBBytes)
	if c.prewarm {
		t := time.Now()
		n, err := prewarm(ctx, db)
		if err != nil {
			fmt.Printf("prewarm: not done (%v): the rows' users may wait on the disk\n", err)
		} else {
			fmt.Printf("prewarm: the vector tables and their keys, %.2f GB, read into the OS page cache in %.1f s (pg_prewarm, read mode)\n", float64(n)/1e9, time.Since(t).Seconds())
		}
	}

	if c.compareStores {
		compareStores(ctx, c, db, p.full)
		return
	}

	cacheFlag := supportsFlag(c.bin, "user-cache-bytes")
	switch {
	case cacheFlag && c.cacheBytes != "":
		fmt.Printf("replica: --user-cache-bytes %s\n", c.cacheBytes)
	case cacheFlag:
		fmt.Println("replica: its default --user-cache-bytes")
	default:
		fmt.Println("replica: this binary has no --user-cache-bytes flag (it holds every user's vectors in memory)")
	}
	if lim := c.memLimit; lim != "" {
		fmt.Printf("replica: GOMEMLIMIT=%s\n", lim)
	} else if lim = os.Getenv("GOMEMLIMIT"); lim != "" {
		fmt.Printf("replica: GOMEMLIMIT=%s (inherited)\n", lim)
	} else {
		fmt.Println("replica: no GOMEMLIMIT (the collector lets the heap grow to twice what is live)")
	}
	if c.maxProcs > 0 {
		fmt.Printf("replica: GOMAXPROCS=%d (the machine has %d CPUs)\n", c.maxProcs, runtime.NumCPU())
	}
	if c.replicaNice != 0 {
		fmt.Printf("replica: niceness %d (nice -n %d) against 0 for the load generator, the broker and PostgreSQL\n", c.replicaNice, c.replicaNice)
	} else {
		fmt.Println("replica: the same niceness as the load generator, the broker and PostgreSQL (all share the two cores alike)")
	}

	var runs []runResult
	if c.smallUsers > 0 {
		runs = append(runs, runReplica(ctx, c, db, p.small, c.smallUsers, "small", cacheFlag))
	}
	full := runReplica(ctx, c, db, p.full, c.users, "full", cacheFlag)
	runs = append(runs, full)

	fmt.Println("\n| replica users | row | seconds | requests | errors | p50 ms | p99 ms | max ms | late channels | cache hit rate | peak RSS MB | RSS MB | Go heap in use MB |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, run := range runs {
		fmt.Printf("| %d | ready, idle | - | - | - | - | - | - | - | - | %.0f | %.0f | %.0f |\n", run.Users, mb(run.Idle.PeakRSS), mb(run.Idle.RSS), mb(run.Idle.HeapInuse))
		for _, r := range run.Rows {
			hit := "n/a"
			if r.HitOK {
				hit = fmt.Sprintf("%.3f", r.HitRate)
			}
			fmt.Printf("| %d | %s | %.0f | %d | %d | %.2f | %.2f | %.2f | %d%s | %s | %.0f | %.0f | %.0f |\n", run.Users, r.Name, r.Seconds, r.Res.Sent, r.Res.Errors,
				msf(r.Res.Pct(.5)), msf(r.Res.Pct(.99)), msf(r.Res.Pct(1)), r.Late, lateDetail(r.LateBy), hit, mb(r.Mem.PeakRSS), mb(r.Mem.RSS), mb(r.Mem.HeapInuse))
		}
	}
	fmt.Println("(peak RSS: the replica's VmHWM, its most resident memory since it started, index builds included; RSS and Go heap: the largest sampled each second during the row;")
	fmt.Println(" late channels: recall channel answers dropped — status late, timeout or error in liverecall_recall_channel_outcomes_total)")
	for _, run := range runs {
		fmt.Printf("replica with %d users: ready %.1f s after start, %0.f live streamers in its view\n", run.Users, run.ReadySecs, run.Live)
		fmt.Printf("  NeuMF rerank: %s\n", run.NCF)
		for _, r := range run.Rows {
			fmt.Printf("  %s row: %s\n", r.Name, r.CPU)
			if ws := r.Res.Worst(5*time.Second, 1<<30); len(ws) > 1 {
				// Whether the tail is spread over the row or comes from a few
				// seconds of it.
				p99s := make([]float64, len(ws))
				for i, w := range ws {
					p99s[i] = msf(w.P99)
				}
				slices.Sort(p99s)
				var worst []string
				for _, w := range ws[:min(3, len(ws))] {
					worst = append(worst, fmt.Sprintf("%.1f ms at %.0f s", msf(w.P99), w.Start.Seconds()))
				}
				fmt.Printf("  %s row: p99 of each 5 s of it: median %.1f ms, best %.1f, worst %s\n", r.Name, p99s[len(p99s)/2], p99s[0], strings.Join(worst, ", "))
			}
			if len(r.First)+len(r.Again) > 0 {
				fmt.Printf("  %s row: users new to the replica: %d requests, p50 / p99 %s ms; users asked for before: %d, %s ms\n", r.Name,
					len(r.First), quantiles(r.First), len(r.Again), quantiles(r.Again))
			}
			if r.Inner != "" {
				fmt.Printf("  %s row: inside the replica, p50 / p99 ms (from its histograms, interpolated within buckets): %s\n", r.Name, r.Inner)
			}
			if len(r.LateByCh) > 0 {
				fmt.Printf("  %s row: late channels by channel: %s\n", r.Name, lateDetail(r.LateByCh))
			}
			if r.DB.OK && r.Res.Sent > 0 {
				fmt.Printf("  %s row: PostgreSQL (pg_stat_database of the platform's database, the benchmark's own reads included): %d transactions (%.2f per request), %d rows fetched, %d returned\n",
					r.Name, r.DB.Xacts, float64(r.DB.Xacts)/float64(r.Res.Sent), r.DB.Fetched, r.DB.Returned)
				if r.DB.DiskReads >= 0 {
					fmt.Printf("  %s row: %d blocks PostgreSQL read past its buffers; the machine's disks: %d reads, %d ms reading\n",
						r.Name, r.DB.BlocksRead, r.DB.DiskReads, r.DB.DiskReadMS)
				}
			}
		}
		for _, r := range run.Rows {
			for _, f := range r.Res.Failures {
				fmt.Printf("  %s row, a failed request: %s\n", r.Name, f)
			}
		}
	}
	hitNote := "cache hit rate: "
	warm := full.Rows[1]
	if warm.HitOK {
		hitNote += "from " + warm.HitMetric + " (hits and misses of the user store's metrics)"
	} else {
		hitNote += "not reported — the replica's /metrics has no user store metric (a name with userstore, user_cache or user_store) counting hits and misses"
	}
	if len(full.Metrics) > 0 {
		hitNote += "\nthe user store's metrics and the live state's user loads at the end of the warm row: " + strings.Join(full.Metrics, "; ")
	}
	fmt.Println(hitNote)

	var bpu any
	if len(runs) == 2 {
		s, f := runs[0], runs[1]
		per := func(a, b int64) float64 { return float64(a-b) / float64(f.Users-s.Users) }
		v := per(f.End.PeakRSS, s.End.PeakRSS)
		fmt.Printf("bytes per user: (peak RSS with %d users %.0f MB − with %d users %.0f MB) ÷ %d = %.1f\n",
			f.Users, mb(f.End.PeakRSS), s.Users, mb(s.End.PeakRSS), f.Users-s.Users, v)
		fmt.Printf("  the same from RSS at the end of the warm row: %.1f; from RSS when ready, before any request (model state only): %.1f\n",
			per(f.End.RSS, s.End.RSS), per(f.Idle.RSS, s.Idle.RSS))
		bpu = round2(v)
		for _, run := range runs {
			if w := run.Rows[len(run.Rows)-1]; w.Res.Errors > 0 || w.Res.Pct(.99) > time.Second/10 {
				fmt.Printf("WARNING: the replica with %d users fell behind the offered load (warm p99 %.0f ms, %d errors): its memory includes the backlog of queued requests, so bytes per user measures that too; rerun on a quiet machine or at a lower -rate\n",
					run.Users, msf(w.Res.Pct(.99)), w.Res.Errors)
			}
		}
	} else {
		fmt.Println("bytes per user: not measured (-small-users 0: no baseline run)")
	}
	var hr any
	if warm.HitOK {
		hr = math.Round(warm.HitRate*1000) / 1000
	}
	lateAll, errAll := 0, 0
	for _, r := range full.Rows {
		lateAll += r.Late
		errAll += r.Res.Errors
	}
	fmt.Println("headline: the full replica; p99 of its warm row, errors and late channels of its cold and warm rows together, hit rate of the warm row, rss_mb its peak RSS")
	cleanup()
	out, _ := json.Marshal(map[string]any{
		"users": c.users, "streamers": c.streamers, "live": c.live, "rate": c.rate,
		"p99_ms": round2(msf(warm.Res.Pct(.99))), "errors": errAll, "late_channels": lateAll, "hit_rate": hr,
		"rss_mb": round2(mb(full.End.PeakRSS)), "bytes_per_user": bpu,
	})
	fmt.Println(orderedHeadline(out))
}

// orderedHeadline rewrites the JSON object with the keys in the documented order.
func orderedHeadline(b []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return string(b)
	}
	var parts []string
	for _, k := range []string{"users", "streamers", "live", "rate", "p99_ms", "errors", "late_channels", "hit_rate", "rss_mb", "bytes_per_user"} {
		parts = append(parts, fmt.Sprintf("%q:%s", k, m[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func lateDetail(by map[string]int) string {
	if len(by) == 0 {
		return ""
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, by[k]))
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// runReplica activates set, starts a broker with the live streams, starts
// the replica against both, and measures the cold and the warm row.
func runReplica(ctx context.Context, c config, db *postgres.DB, set map[lr.ModelKind]lr.ModelVersion, users int, name string, cacheFlag bool) runResult {
	res := runResult{Users: users}
	fmt.Fprintf(os.Stderr, "replica %q: %d users\n", name, users)
	check(activate(ctx, db, set))

	broker, err := startBrokerProcess()
	check(err)
	defer broker.Close()
	check(publishLive(ctx, broker.brokers, c.streamers, c.live, users))

	args := []string{"--database-url", db.URL(), "--http-addr", "127.0.0.1:0", "--kafka-brokers", strings.Join(broker.brokers, ","),
		// The streams' only events are their starts: a run longer than
		// the default expiry (10m) would end them.
		"--live-expiry", "6h",
		// The synthetic vectors are random draws with no neighbourhood
		// structure, on which the graph's self-check measures ~0.84 at
		// 1M streamers, under the service's 0.9 floor: this benchmark
		// measures memory and request latency, not the graph's recall
		// (make bench-index does), so it accepts such an index.
		"--index-recall-floor", "0.5"}
	if cacheFlag && c.cacheBytes != "" {
		args = append(args, "--user-cache-bytes", c.cacheBytes)
	}
	if c.snapshotDir != "" {
		args = append(args, "--index-snapshot-dir", filepath.Join(c.snapshotDir, name))
	}
	if c.profileDir != "" {
		check(os.MkdirAll(c.profileDir, 0o755))
		args = append(args, "--pprof-addr", "127.0.0.1:0")
	}
	args = append(args, c.replicaFlags...)
	logPath := filepath.Join(c.logDir, fmt.Sprintf("scale-replica-%s.log", name))
	t0 := time.Now()
	rep, err := startReplica(ctx, c.bin, args, c.memLimit, c.maxProcs, logPath, c.readyTimeout, c.replicaNice)
	check(err)
	rep.brokerPID = broker.pid()
	profile := func(path, file string, timeout time.Duration) {
		if c.profileDir == "" {
			return
		}
		file = filepath.Join(c.profileDir, name+"-"+file)
		if err := rep.saveProfile(path, file, timeout); err != nil {
			fmt.Fprintf(os.Stderr, "replica %q: profile %s: %v\n", name, file, err)
		}
	}
	stopRep := func() { rep.stop(30 * time.Second) }
	cleanups = append(cleanups, stopRep)
	check(rep.waitReady(ctx, set, c.readyTimeout-time.Since(t0)))
	res.ReadySecs = time.Since(t0).Seconds()
	res.Idle = rep.memory()
	profile("heap?gc=1", "heap-ready.pb.gz", time.Minute)
	if m, err := rep.metrics(); err == nil {
		res.Live, _ = m.Get("liverecall_live_streamers", nil)
	}
	fmt.Fprintf(os.Stderr, "replica %q ready after %.1f s (peak RSS %.0f MB); load\n", name, res.ReadySecs, mb(res.Idle.PeakRSS))

	client := loadgen.NewClient()
	var poster loadgen.Poster = loadgen.HTTPClient{Client: client}
	if c.client == "conns" {
		conns := loadgen.NewConns(rep.addr, client.Timeout)
		defer conns.Close()
		poster = conns
	}
	url := "http://" + rep.addr + "/v1/recall"
	seq := 0
	asked := map[int64]bool{} // the users requested so far, every row
	measure := func(rowName string, d time.Duration, report bool) {
		n := int(float64(c.rate)*d.Seconds()) + 1
		ids := zipfUsers(uint64(1000+seq), users, c.zipf, n)
		seq++
		body := func(i int) []byte { return fmt.Appendf(nil, `{"user_id":%d,"k":%d}`, ids[i%len(ids)], c.k) }
		first := make([]bool, len(ids))
		for i, id := range ids {
			first[i] = !asked[id]
			asked[id] = true
		}
		before, err := rep.metrics()
		check(err)
		watch := rep.watchMemory(time.Second)
		cpu := make(chan struct{})
		if report && rowName == "warm" {
			go func() {
				defer close(cpu)
				profile(fmt.Sprintf("profile?seconds=%d", max(1, int(d.Seconds()))), "cpu-warm.pb.gz", d+time.Minute)
			}()
		} else if rowName == "warm-up" && c.profileDir != "" {
			// An execution trace of the warm-up's last seconds (the cache
			// warm, as in the warm row, which it does not slow down): what
			// the requests wait for off the CPU, for go tool trace.
			td := min(5*time.Second, d/2)
			go func() {
				defer close(cpu)
				select {
				case <-time.After(d - td):
				case <-ctx.Done():
					return
				}
				profile(fmt.Sprintf("trace?seconds=%d", max(1, int(td.Seconds()))), "trace-warmup.out", td+time.Minute)
			}()
		} else {
			close(cpu)
		}
		db0 := readDBActivity(ctx, db)
		cpu0 := rep.cpuNow()
		r := loadgen.OpenLoopWith(ctx, poster, url, c.rate, d, body)
		used := cpuBetween(cpu0, rep.cpuNow())
		// PostgreSQL publishes a backend's counts when it goes idle, at
		// most once a second.
		time.Sleep(1100 * time.Millisecond)
		dbUse := readDBActivity(ctx, db).sub(db0)
		mem := watch()
		<-cpu
		check(ctx.Err())
		after, err := rep.metrics()
		check(err)
		if !report {
			return
		}
		dl := delta(before, after)
		late, by, byCh := lateChannels(dl)
		hr, cc, ok := hitRate(dl)
		fst, again := splitFirst(r, first)
		res.Rows = append(res.Rows, row{Replica: name, Users: users, Name: rowName, Seconds: d.Seconds(), Res: r, Late: late, LateBy: by, LateByCh: byCh, Inner: innerLatencies(dl),
			HitRate: hr, HitOK: ok, HitMetric: cc.Metric, Mem: mem, CPU: used, DB: dbUse, First: fst, Again: again})
		res.Metrics = res.Metrics[:0]
		for _, s := range after {
			if (userCacheMetric(s.Name) || strings.HasPrefix(s.Name, "liverecall_live_user_load")) && !strings.HasSuffix(s.Name, "_bucket") {
				res.Metrics = append(res.Metrics, s.String())
			}
		}
		slices.Sort(res.Metrics)
	}
	measure("cold", c.cold, true)
	measure("warm-up", c.warmup, false)
	measure("warm", c.duration, true)
	res.End = rep.memory()
	profile("heap", "heap-warm.pb.gz", time.Minute)
	oracle, err := ncfOracle(ctx, db, set[lr.ModelNCF])
	if err == nil {
		res.NCF, err = probeNCF(ctx, client, url, zipfUsers(999, users, c.zipf, ncfProbes), c.k, oracle)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "replica %q: NeuMF probe: %v\n", name, err)
	}
	stopRep()
	return res
}

// publishLive publishes stream.started for live streamers drawn from
// 1..streamers, started within the last half hour, each with up to four
// viewers drawn from 1..users.
func publishLive(ctx context.Context, brokers []string, streamers, live, users int) error {
	prod := events.NewProducer(events.ProducerConfig{Brokers: brokers})
	defer prod.Close()
	rng := rand.New(rand.NewPCG(5, 5))
	now := time.Now().UTC()
	chosen := make(map[int]bool, live)
	var batch []lr.Event
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := prod.Publish(ctx, batch...)
		batch = batch[:0]
		return err
	}
	for i := 0; len(chosen) < live; {
		s := rng.IntN(streamers) + 1
		if chosen[s] {
			continue
		}
		chosen[s] = true
		i++
		sid, stream := lr.StreamerID(s), lr.StreamID(i)
		start := now.Add(-time.Duration(rng.IntN(1800)) * time.Second)
		batch = append(batch, lr.Event{ID: fmt.Sprint("bs-s", i), Type: lr.EventStreamStarted, TS: start, StreamerID: sid, StreamID: stream,
			Category: fmt.Sprint("c", i%12), V: lr.EventVersion})
		for v := 0; v < rng.IntN(5); v++ {
			batch = append(batch, lr.Event{ID: fmt.Sprint("bs-v", i, "-", v), Type: lr.EventViewerJoined, TS: start.Add(time.Duration(v+1) * time.Second),
				StreamerID: sid, StreamID: stream, UserID: lr.UserID(rng.IntN(users) + 1), V: lr.EventVersion})
		}
		if len(batch) >= 2000 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round2(x float64) float64 { return math.Round(x*100) / 100 }
