package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
)

// The store comparison (-compare-stores): the user store's reads from
// PostgreSQL (postgres.DB.UserRows, the query a Store's batch runs, both
// model ids at once) against one MGET of the same rows from Redis, stored
// there as their floats. Same rows, same Zipf-drawn users, same batch
// sizes, same concurrency (the Store's MaxInflight of 4), each store alone
// on the machine in alternating rounds.

// storeKeyPrefix names the benchmark's keys in Redis (deleted at the end).
const storeKeyPrefix = "liverecall-bench-scale:"

// storeLookup reads the rows of users under both models.
type storeLookup func(ctx context.Context, users []int64) (rows int, err error)

type storeRow struct {
	Store, Mode      string
	Batch            int
	Batches, Rows    int
	Seconds          float64
	P50, P99, Max    time.Duration
	Errors           int
	RateBatchesPerS  float64
	AchievedBatchesS float64
}

func compareStores(ctx context.Context, c config, db *postgres.DB, set map[lr.ModelKind]lr.ModelVersion) {
	models := []int64{set[lr.ModelMF].ID, set[lr.ModelNCF].ID}
	ids := zipfUsers(4242, c.users, c.zipf, 400_000)
	distinct := slices.Clone(ids)
	slices.Sort(distinct)
	distinct = slices.Compact(distinct)
	fmt.Printf("\n# stores: %d lookups of Zipf(%.2f) users over %d users (%d distinct), both models per user; PostgreSQL %s, Redis %s\n",
		len(ids), c.zipf, c.users, len(distinct), "user_embeddings (UserRows)", c.redisAddr)

	// Copy the distinct users' rows into Redis, as the little-endian
	// float32s of the vector then the MLP embedding after a uint16 length.
	rc, err := dialRESP(c.redisAddr)
	check(err)
	defer rc.Close()
	key := func(model, user int64) []byte {
		return strconv.AppendInt(strconv.AppendInt(append([]byte(storeKeyPrefix), 'u', ':'), model, 10), user, 10)
	}
	cleanups = append(cleanups, func() { deleteKeys(c.redisAddr, models, distinct, key) })
	t0 := time.Now()
	copied := 0
	for lo := 0; lo < len(distinct); lo += 1000 {
		batch := distinct[lo:min(lo+1000, len(distinct))]
		args := [][]byte{[]byte("MSET")}
		err := db.UserRows(ctx, models, batch, func(model, user int64, vec, mlp []float32) error {
			args = append(args, key(model, user), encodeRow(vec, mlp))
			copied++
			return nil
		})
		check(err)
		if len(args) > 1 {
			_, err = rc.do(args...)
			check(err)
		}
	}
	fmt.Printf("copied %d rows into Redis in %.1f s\n", copied, time.Since(t0).Seconds())

	pg := func(ctx context.Context, users []int64) (int, error) {
		n := 0
		err := db.UserRows(ctx, models, users, func(model, user int64, vec, mlp []float32) error {
			n++
			return nil
		})
		return n, err
	}
	conns := make(chan *respConn, storeWorkers)
	for range storeWorkers {
		cn, err := dialRESP(c.redisAddr)
		check(err)
		defer cn.Close()
		conns <- cn
	}
	redis := func(ctx context.Context, users []int64) (int, error) {
		cn := <-conns
		defer func() { conns <- cn }()
		args := make([][]byte, 0, 1+len(models)*len(users))
		args = append(args, []byte("MGET"))
		for _, u := range users {
			for _, m := range models {
				args = append(args, key(m, u))
			}
		}
		if dl, ok := ctx.Deadline(); ok {
			cn.c.SetDeadline(dl)
		}
		rep, err := cn.do(args...)
		if err != nil {
			return 0, err
		}
		vals, _ := rep.([]any)
		n := 0
		for _, v := range vals {
			if b, _ := v.([]byte); b != nil {
				if _, _, err := decodeRow(b); err != nil {
					return n, err
				}
				n++
			}
		}
		return n, nil
	}
	stores := []struct {
		name string
		fn   storeLookup
	}{{"postgres", pg}, {"redis", redis}}
	var rows []storeRow
	for round := 0; round < 2; round++ {
		for _, b := range []int{2, 16} {
			for _, st := range stores {
				rows = append(rows, runStore(ctx, st.name, "open", b, storeRate, c.storeSeconds, ids, st.fn))
				rows = append(rows, runStore(ctx, st.name, "closed", b, 0, c.storeSeconds, ids, st.fn))
			}
		}
	}
	fmt.Println("\n| store | load | users per batch | batches | rows | batches/s | p50 ms | p99 ms | max ms | errors |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		load := fmt.Sprintf("open loop %.0f batches/s", r.RateBatchesPerS)
		if r.Mode == "closed" {
			load = fmt.Sprintf("closed loop, %d at once", storeWorkers)
		}
		fmt.Printf("| %s | %s | %d | %d | %d | %.0f | %.3f | %.3f | %.3f | %d |\n", r.Store, load, r.Batch, r.Batches, r.Rows, r.AchievedBatchesS,
			msf(r.P50), msf(r.P99), msf(r.Max), r.Errors)
	}
	// Medians of the rounds per (mode, batch, store).
	fmt.Println("\n| load | users per batch | PostgreSQL p50 / p99 ms, batches/s | Redis p50 / p99 ms, batches/s | p99 PostgreSQL ÷ Redis | throughput Redis ÷ PostgreSQL |")
	fmt.Println("|---|---|---|---|---|---|")
	summary := map[string]float64{}
	for _, mode := range []string{"open", "closed"} {
		for _, b := range []int{2, 16} {
			med := func(store string, f func(storeRow) float64) float64 {
				var v []float64
				for _, r := range rows {
					if r.Store == store && r.Mode == mode && r.Batch == b {
						v = append(v, f(r))
					}
				}
				slices.Sort(v)
				if len(v) == 0 {
					return math.NaN()
				}
				if len(v)%2 == 0 {
					return (v[len(v)/2-1] + v[len(v)/2]) / 2
				}
				return v[len(v)/2]
			}
			p50 := func(r storeRow) float64 { return msf(r.P50) }
			p99 := func(r storeRow) float64 { return msf(r.P99) }
			tput := func(r storeRow) float64 { return r.AchievedBatchesS }
			pg50, pg99, pgT := med("postgres", p50), med("postgres", p99), med("postgres", tput)
			rd50, rd99, rdT := med("redis", p50), med("redis", p99), med("redis", tput)
			fmt.Printf("| %s | %d | %.3f / %.3f, %.0f | %.3f / %.3f, %.0f | %.1f | %.1f |\n", mode, b, pg50, pg99, pgT, rd50, rd99, rdT, pg99/rd99, rdT/pgT)
			summary[fmt.Sprintf("%s_b%d_p99_ratio", mode, b)] = round2(pg99 / rd99)
			summary[fmt.Sprintf("%s_b%d_throughput_ratio", mode, b)] = round2(rdT / pgT)
		}
	}
	fmt.Println("(ratios above 1: Redis is faster; medians of 2 rounds; the machine's other work shares the cores)")
	cleanup()
	fmt.Println(orderedJSON(summary))
}

// storeWorkers is the concurrency of the comparison: userstore's
// DefaultMaxInflight, the batch queries a replica runs at once.
const storeWorkers = 4

// storeRate is the open-loop rate of batches: a replica's miss batches at
// 2,000 req/s in the warm row (hit rate ~0.7: ~600 misses/s) are of that
// order.
const storeRate = 300

// runStore runs lookups of batch users each, drawn in order from ids, for d:
// open loop at rate batches/s (at most storeWorkers at once, latency from
// the scheduled start), or closed loop (rate 0: storeWorkers back to back).
func runStore(ctx context.Context, name, mode string, batch, rate int, d time.Duration, ids []int64, fn storeLookup) storeRow {
	var mu sync.Mutex
	var lat []time.Duration
	rows, errs, next := 0, 0, 0
	take := func() []int64 {
		mu.Lock()
		defer mu.Unlock()
		lo := next % (len(ids) - batch)
		next += batch
		return ids[lo : lo+batch]
	}
	one := func(sched time.Time) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := fn(qctx, take())
		cancel()
		el := time.Since(sched)
		mu.Lock()
		lat = append(lat, el)
		rows += n
		if err != nil {
			errs++
		}
		mu.Unlock()
	}
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	if rate > 0 {
		slots := make(chan struct{}, storeWorkers)
		interval := time.Second / time.Duration(rate)
		for i := 0; ; i++ {
			sched := start.Add(time.Duration(i) * interval)
			if !sched.Before(end) || ctx.Err() != nil {
				break
			}
			time.Sleep(time.Until(sched))
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				one(sched)
			}()
		}
	} else {
		for range storeWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) && ctx.Err() == nil {
					one(time.Now())
				}
			}()
		}
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return storeRow{Store: name, Mode: mode, Batch: batch, Batches: len(lat), Rows: rows, Seconds: secs, P50: pct(.5), P99: pct(.99), Max: pct(1),
		Errors: errs, RateBatchesPerS: float64(rate), AchievedBatchesS: float64(len(lat)) / secs}
}

func encodeRow(vec, mlp []float32) []byte {
	b := make([]byte, 2, 2+4*(len(vec)+len(mlp)))
	binary.LittleEndian.PutUint16(b, uint16(len(vec)))
	for _, f := range vec {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	for _, f := range mlp {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
	}
	return b
}

func decodeRow(b []byte) (vec, mlp []float32, err error) {
	if len(b) < 2 || (len(b)-2)%4 != 0 {
		return nil, nil, fmt.Errorf("row of %d bytes", len(b))
	}
	nv := int(binary.LittleEndian.Uint16(b))
	all := make([]float32, (len(b)-2)/4)
	if nv > len(all) {
		return nil, nil, fmt.Errorf("row of %d floats says its vector has %d", len(all), nv)
	}
	for i := range all {
		all[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[2+4*i:]))
	}
	if nv < len(all) {
		mlp = all[nv:]
	}
	return all[:nv], mlp, nil
}

// deleteKeys removes the comparison's keys from Redis.
func deleteKeys(addr string, models, users []int64, key func(model, user int64) []byte) {
	rc, err := dialRESP(addr)
	if err != nil {
		return
	}
	defer rc.Close()
	for lo := 0; lo < len(users); lo += 1000 {
		args := [][]byte{[]byte("UNLINK")}
		for _, u := range users[lo:min(lo+1000, len(users))] {
			for _, m := range models {
				args = append(args, key(m, u))
			}
		}
		rc.do(args...)
	}
}

// orderedJSON writes m as a JSON object with sorted keys.
func orderedJSON(m map[string]float64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := []byte("{")
	for i, k := range keys {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = strconv.AppendFloat(out, m[k], 'f', -1, 64)
	}
	return string(append(out, '}'))
}
