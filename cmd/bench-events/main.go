// Command bench-events measures the live-event path end to end on this machine:
// sustained events/s consumed from the broker (an in-process kfake broker
// over TCP, kafka-go readers, strict decoding) and applied to the live state;
// freshness from producing stream.started to the streamer being in the live
// snapshot; and memory per live stream and per tracked user.
//
// QUICK=1 runs a reduced scale. The last line printed is one JSON object:
// {"events_per_sec":…,"freshness_p50_ms":…,"freshness_p99_ms":…,"bytes_per_live_stream":…}
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/embedded"
	"github.com/liverecall/liverecall/live"
)

const (
	topic      = "bench.events"
	dlqTopic   = "bench.events.dlq"
	partitions = 8
)

type scale struct {
	events     int // events in the throughput run
	streamers  int // live streamers
	users      int
	starts     int // freshness samples
	background int // events/s produced during the loaded freshness run
	memStreams int
	memUsers   int
}

func main() {
	log.SetFlags(0)
	sc := scale{events: 1_000_000, streamers: 20_000, users: 1_000_000, starts: 1000, background: 20_000, memStreams: 20_000, memUsers: 200_000}
	quick := os.Getenv("QUICK") != ""
	if quick {
		sc = scale{events: 300_000, streamers: 5_000, users: 200_000, starts: 1000, background: 20_000, memStreams: 5_000, memUsers: 50_000}
	}
	fmt.Printf("liverecall events benchmark  (GOMAXPROCS=%d, %s, quick=%v)\n\n", runtime.GOMAXPROCS(0), runtime.Version(), quick)

	cl, err := embedded.Start(0, embedded.Topic{Name: topic, Partitions: partitions}, embedded.Topic{Name: dlqTopic, Partitions: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer cl.Close()
	brokers := cl.Brokers()

	// 1. Throughput.
	now := time.Now().UTC()
	evs := workload(sc, now.Add(-20*time.Minute), now.Add(-time.Second), 1)
	msgs := make([]kafka.Message, len(evs))
	var bytesTotal int
	for i, e := range evs {
		msgs[i] = kafka.Message{Key: events.Key(e), Value: events.Encode(e)}
		bytesTotal += len(msgs[i].Value)
	}
	p := events.NewProducer(events.ProducerConfig{Brokers: brokers, Topic: topic, BatchSize: 5000})
	t0 := time.Now()
	const chunk = 50_000
	for i := 0; i < len(msgs); i += chunk {
		if err := p.WriteRaw(context.Background(), msgs[i:min(i+chunk, len(msgs))]...); err != nil {
			log.Fatalf("producing: %v", err)
		}
	}
	produceSecs := time.Since(t0).Seconds()
	msgs = nil

	// Direct apply of the same events, no Kafka: the ceiling of the state.
	direct := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	t0 = time.Now()
	for i := 0; i < len(evs); i += 2048 {
		direct.Apply(evs[i:min(i+2048, len(evs))])
	}
	applySecs := time.Since(t0).Seconds()
	// Decode only.
	sample := make([][]byte, 0, 100_000)
	for i := 0; i < min(len(evs), 100_000); i++ {
		sample = append(sample, events.Encode(evs[i]))
	}
	t0 = time.Now()
	for _, b := range sample {
		if _, err := events.Decode(b, now, 0); err != nil {
			log.Fatal(err)
		}
	}
	decodeNs := float64(time.Since(t0).Nanoseconds()) / float64(len(sample))
	sample = nil
	runtime.GC()

	ords := lr.NewOrdinals()
	var fresh freshness
	st := live.New(live.Config{Ordinals: ords, OnPublish: fresh.hook(ords)})
	c, err := events.NewLiveConsumer(events.LiveConfig{Brokers: brokers, Topics: []string{topic}, DeadLetterTopic: dlqTopic}, st)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if path := os.Getenv("CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
	}
	t0 = time.Now()
	go func() { done <- c.Run(ctx) }()
	<-c.Ready()
	consumeSecs := time.Since(t0).Seconds()
	if os.Getenv("CPUPROFILE") != "" {
		pprof.StopCPUProfile()
	}
	eps := float64(len(evs)) / consumeSecs
	if st.Live() != direct.Live() {
		log.Fatalf("consumer state has %d live, direct apply %d", st.Live(), direct.Live())
	}
	fmt.Println("== throughput: events in the topic, consumed from every partition and applied ==")
	fmt.Printf("%-44s %12s\n", "what", "value")
	fmt.Printf("%-44s %12d\n", "events (8 partitions)", len(evs))
	fmt.Printf("%-44s %12.0f\n", "mean message bytes", float64(bytesTotal)/float64(len(evs)))
	fmt.Printf("%-44s %12.0f\n", "produce events/s (kafka-go writer, acks=all)", float64(len(evs))/produceSecs)
	fmt.Printf("%-44s %12.0f\n", "consume+decode+apply events/s (end to end)", eps)
	fmt.Printf("%-44s %12.0f\n", "apply only events/s (no Kafka, no decode)", float64(len(evs))/applySecs)
	fmt.Printf("%-44s %12.0f\n", "decode ns/event (one core)", decodeNs)
	fmt.Printf("%-44s %12d\n", "live streamers after replay", st.Live())
	fmt.Printf("%-44s %12.2f\n", "end-to-end / apply-only ratio", eps/(float64(len(evs))/applySecs))
	fmt.Println()

	// 2. Freshness, idle and under background load.
	idle := fresh.run(brokers, sc.starts, 0, sc)
	loaded := fresh.run(brokers, sc.starts, sc.background, sc)
	fmt.Println("== freshness: stream.started produced → streamer in the live snapshot ==")
	fmt.Printf("%-34s %8s %8s %8s %8s\n", "load", "n", "p50 ms", "p99 ms", "max ms")
	fmt.Printf("%-34s %8d %8.2f %8.2f %8.2f\n", "idle", len(idle), pct(idle, 50), pct(idle, 99), pct(idle, 100))
	fmt.Printf("%-34s %8d %8.2f %8.2f %8.2f\n", fmt.Sprintf("background %d events/s", sc.background), len(loaded), pct(loaded, 50), pct(loaded, 99), pct(loaded, 100))
	fmt.Println("(includes the producer's 5 ms batch timeout and the acks=all round trip)")
	fmt.Println()
	cancel()
	<-done
	p.Close()
	st, direct = nil, nil
	evs = nil

	// 3. Memory.
	perStream, perBare, perUser, dedupeBytes := memory(sc)
	fmt.Println("== memory (heap after GC) ==")
	fmt.Printf("%-60s %10s\n", "what", "bytes")
	fmt.Printf("%-60s %10.0f\n", "per live stream, no viewers or gifts", perBare)
	fmt.Printf("%-60s %10.0f\n", "per live stream, 50 viewers present + 30 gifts in 30 min", perStream)
	fmt.Printf("%-60s %10.0f\n", "per tracked user, 10 watches + 5 follows (incl. viewer entries)", perUser)
	fmt.Printf("%-60s %10.0f\n", fmt.Sprintf("dedupe window (%d ids), fixed", live.DefaultDedupeWindow), dedupeBytes)
	fmt.Println()

	out, _ := json.Marshal(struct {
		EventsPerSec       float64 `json:"events_per_sec"`
		FreshnessP50       float64 `json:"freshness_p50_ms"`
		FreshnessP99       float64 `json:"freshness_p99_ms"`
		BytesPerLiveStream float64 `json:"bytes_per_live_stream"`
	}{round(eps, 0), round(pct(loaded, 50), 2), round(pct(loaded, 99), 2), round(perStream, 0)})
	fmt.Println(string(out))
}

// workload returns sc.events events between from and to in time order: the
// streamers' starts first, then a mix of joins, leaves, gifts, heartbeats
// and follows.
func workload(sc scale, from, to time.Time, seed uint64) []lr.Event {
	rng := rand.New(rand.NewPCG(seed, 99))
	evs := make([]lr.Event, 0, sc.events)
	span := to.Sub(from)
	at := func(i int) time.Time { return from.Add(time.Duration(float64(span) * float64(i) / float64(sc.events))) }
	for s := 0; s < sc.streamers && len(evs) < sc.events; s++ {
		evs = append(evs, lr.Event{ID: fmt.Sprintf("s%d", s), Type: lr.EventStreamStarted, TS: at(len(evs)),
			StreamerID: lr.StreamerID(s + 1), StreamID: lr.StreamID(s + 1), Category: "music", V: 1})
	}
	for len(evs) < sc.events {
		i := len(evs)
		s := int64(rng.IntN(sc.streamers) + 1)
		u := lr.UserID(rng.IntN(sc.users) + 1)
		e := lr.Event{ID: fmt.Sprintf("e%d", i), TS: at(i), StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), UserID: u, V: 1}
		switch r := rng.IntN(100); {
		case r < 35:
			e.Type = lr.EventViewerJoined
		case r < 65:
			e.Type = lr.EventViewerLeft
		case r < 75:
			e.Type = lr.EventGiftSent
			e.Amount = float64(1 + rng.IntN(100))
		case r < 95:
			e.Type, e.UserID = lr.EventStreamHeartbeat, 0
		default:
			e.Type, e.StreamID = lr.EventFollowCreated, 0
		}
		evs = append(evs, e)
	}
	return evs
}

// freshness records when each benchmark streamer was produced and when it
// appeared in the live set.
type freshness struct {
	mu       sync.Mutex
	produced map[lr.StreamerID]time.Time
	lat      []float64
	next     int64
}

func (f *freshness) hook(ords *lr.Ordinals) func(*live.Snapshot) {
	return func(snap *live.Snapshot) {
		t := time.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		for ord, on := range snap.Changes() {
			if !on {
				continue
			}
			id, _ := ords.ID(ord)
			if t0, ok := f.produced[id]; ok {
				f.lat = append(f.lat, float64(t.Sub(t0).Microseconds())/1000)
				delete(f.produced, id)
			}
		}
	}
}

// run produces n stream.started events, one every 2 ms, each with its own
// synchronous write, while another producer writes background events/s of
// other traffic, and returns the latencies in ms.
func (f *freshness) run(brokers []string, n, background int, sc scale) []float64 {
	f.mu.Lock()
	f.produced = map[lr.StreamerID]time.Time{}
	f.lat = nil
	f.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if background > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bp := events.NewProducer(events.ProducerConfig{Brokers: brokers, Topic: topic, BatchSize: 2000})
			defer bp.Close()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			per := background / 100
			i := 0
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				evs := make([]lr.Event, per)
				for j := range evs {
					s := int64(i%sc.streamers + 1)
					evs[j] = lr.Event{ID: fmt.Sprintf("bg%d-%d", f.next, i), Type: lr.EventStreamHeartbeat, TS: time.Now(),
						StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), V: 1}
					if j%2 == 0 {
						evs[j].Type, evs[j].UserID = lr.EventViewerJoined, lr.UserID(i)
					}
					i++
				}
				_ = bp.Publish(ctx, evs...)
			}
		}()
		time.Sleep(500 * time.Millisecond)
	}
	p := events.NewProducer(events.ProducerConfig{Brokers: brokers, Topic: topic})
	for i := 0; i < n; i++ {
		f.next++
		id := lr.StreamerID(10_000_000 + f.next)
		e := lr.Event{ID: fmt.Sprintf("fresh-%d", f.next), Type: lr.EventStreamStarted, TS: time.Now(), StreamerID: id, StreamID: lr.StreamID(id), V: 1}
		f.mu.Lock()
		f.produced[id] = time.Now()
		f.mu.Unlock()
		if err := p.Publish(context.Background(), e); err != nil {
			log.Fatalf("producing a start: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		left := len(f.produced)
		f.mu.Unlock()
		if left == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	p.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.produced) > 0 {
		log.Printf("warning: %d of %d starts never became visible", len(f.produced), n)
	}
	return slices.Clone(f.lat)
}

func heap() float64 {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc)
}

// memory measures the heap cost of live streams and tracked users.
func memory(sc scale) (perStream, perBare, perUser, dedupeBytes float64) {
	t0 := time.Now().Add(-10 * time.Minute)
	base := heap()
	dd := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	dedupeBytes = heap() - base
	runtime.KeepAlive(dd)
	dd = nil

	ords := lr.NewOrdinals()
	for s := 1; s <= sc.memStreams; s++ {
		ords.Ordinal(lr.StreamerID(s)) // the shared ordinals exist anyway
	}
	st := live.New(live.Config{Ordinals: ords, DedupeWindow: 1})
	h0 := heap()
	var batch []lr.Event
	for s := 1; s <= sc.memStreams; s++ {
		batch = append(batch, lr.Event{ID: fmt.Sprintf("b%d", s), Type: lr.EventStreamStarted, TS: t0, StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), V: 1})
	}
	st.Apply(batch)
	h1 := heap()
	perBare = (h1 - h0) / float64(sc.memStreams)
	// 50 viewers present and 30 gifts on every stream, drawn from a pool of
	// 1,000 users so that the users' own records (history capped at 20)
	// add little to the per-stream figure.
	batch = batch[:0]
	n := 0
	for s := 1; s <= sc.memStreams; s++ {
		for v := 1; v <= 50; v++ {
			n++
			batch = append(batch, lr.Event{ID: fmt.Sprintf("v%d", n), Type: lr.EventViewerJoined, TS: t0.Add(time.Duration(v) * time.Second),
				StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), UserID: lr.UserID((s*50+v)%1000 + 1), V: 1})
		}
		for g := 1; g <= 30; g++ {
			n++
			batch = append(batch, lr.Event{ID: fmt.Sprintf("g%d", n), Type: lr.EventGiftSent, TS: t0.Add(time.Duration(g) * 10 * time.Second),
				StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), UserID: lr.UserID((s*50+g)%1000 + 1), Amount: 1, V: 1})
		}
		if len(batch) > 10000 {
			st.Apply(batch)
			batch = batch[:0]
		}
	}
	st.Apply(batch)
	h2 := heap()
	perStream = perBare + (h2-h1)/float64(sc.memStreams)
	runtime.KeepAlive(st)
	st = nil

	// Tracked users with 10 watches and 5 follows each; the figure includes
	// the user's entries in the 10 streams' viewer sets.
	ust := live.New(live.Config{Ordinals: lr.NewOrdinals(), DedupeWindow: 1})
	batch = batch[:0]
	for s := 1; s <= 10; s++ {
		batch = append(batch, lr.Event{ID: fmt.Sprintf("s%d", s), Type: lr.EventStreamStarted, TS: t0, StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), V: 1})
	}
	ust.Apply(batch)
	hv0 := heap()
	n = 0
	for u := 1; u <= sc.memUsers; u++ {
		batch = batch[:0]
		for s := 1; s <= 10; s++ {
			n++
			batch = append(batch, lr.Event{ID: fmt.Sprintf("w%d", n), Type: lr.EventViewerJoined, TS: t0.Add(time.Duration(s) * time.Second),
				StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), UserID: lr.UserID(u), V: 1})
			if s <= 5 {
				n++
				batch = append(batch, lr.Event{ID: fmt.Sprintf("f%d", n), Type: lr.EventFollowCreated, TS: t0, StreamerID: lr.StreamerID(s), UserID: lr.UserID(u), V: 1})
			}
		}
		ust.Apply(batch)
	}
	perUser = (heap() - hv0) / float64(sc.memUsers)
	runtime.KeepAlive(ust)
	return
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func round(x float64, d int) float64 {
	m := 1.0
	for range d {
		m *= 10
	}
	return float64(int64(x*m+0.5)) / m
}
