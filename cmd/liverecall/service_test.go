package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

const e2eToken = "e2e-token"

// e2e is a running service on a fresh database and an in-process broker.
type e2e struct {
	t     *testing.T
	db    *postgres.DB
	kafka *kafkatest.Cluster
	prod  *events.Producer
	addr  string
	// stopWithin is how long stop waits for the service to end: its
	// configured shutdown timeout (the longest a drain may take) and a
	// margin for the parts that end after the drain on a loaded machine.
	stopWithin time.Duration
	cancel     context.CancelFunc
	done       chan error
	users      map[int64][]float32
	items      map[int64][]float32
	n          int
	svc        *service // the running service, for the tests that call it directly
}

func startE2E(t *testing.T, extra ...string) *e2e {
	t.Helper()
	return startE2EWith(t, nil, extra...)
}

// startE2EWith is startE2E with topic configs for the broker's topics.
func startE2EWith(t *testing.T, topicCfg map[string]string, extra ...string) *e2e {
	t.Helper()
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(topicCfg)...)
	return startE2EOn(t, db, url, k, extra...)
}

// e2eTopics are the service's topics, the events, impressions and shown
// topics with topicCfg.
func e2eTopics(topicCfg map[string]string) []kafkatest.Topic {
	return []kafkatest.Topic{{Name: events.DefaultTopic, Partitions: 4, Configs: topicCfg},
		{Name: events.DefaultDeadLetterTopic, Partitions: 1}, {Name: events.DefaultImpressionTopic, Partitions: 2, Configs: topicCfg},
		{Name: events.DefaultShownTopic, Partitions: 2, Configs: topicCfg}}
}

// startE2EOn is startE2EWith on a given database and broker.
func startE2EOn(t *testing.T, db *postgres.DB, url string, k *kafkatest.Cluster, extra ...string) *e2e {
	t.Helper()
	e := &e2e{t: t, db: db, kafka: k, done: make(chan error, 1)}
	e.prod = events.NewProducer(events.ProducerConfig{Brokers: k.Brokers()})
	t.Cleanup(func() { e.prod.Close() })
	// A second replica on the same database serves the model the first
	// published.
	if _, err := db.ActiveModel(context.Background(), lr.ModelMF); err != nil {
		e.publishModel("v1", 1)
	}

	app, _, _ := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	if os.Getenv("LIVERECALL_TEST_LOG") != "" {
		app.Log = newLogger(os.Stderr, os.Getenv("LIVERECALL_TEST_LOG"), "text")
	}
	args := append([]string{"--database-url", url, "--http-addr", "127.0.0.1:0", "--kafka-brokers", k.Brokers()[0],
		"--admin-token", e2eToken, "--recall-budget", "10s", "--shown-window", "1ns", "--shutdown-timeout", "10s"}, extra...)
	cfg, err := parseServiceFlags(app, "serve", args)
	if err != nil {
		t.Fatal(err)
	}
	e.stopWithin = stopWithin(cfg.shutdownTimeout)
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	svc, err := newService(ctx, app, cfg)
	if err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	e.svc = svc
	go func() { e.done <- svc.run(ctx, addrc) }()
	e.addr = <-addrc
	t.Cleanup(e.stop)
	return e
}

// adminConn connects to the test server's maintenance database.
func (e *e2e) adminConn() *pgx.Conn {
	c, err := pgx.Connect(context.Background(), pgtest.ServerURL())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// stopWithin is how long a test waits for a service told to stop, given
// its --shutdown-timeout: the drain may take that long, and the parts that
// end after it (consumers, a cancelled rebuild) need a margin on a loaded
// machine under -race.
func stopWithin(shutdownTimeout time.Duration) time.Duration {
	return 2*shutdownTimeout + 30*time.Second
}

func (e *e2e) stop() {
	if e.cancel == nil {
		return
	}
	// Connections the client dialled but never used look new to the
	// server, which waits up to 5 s for them at shutdown: close them.
	http.DefaultClient.CloseIdleConnections()
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("service ended with %v", err)
		}
	case <-time.After(e.stopWithin):
		e.t.Errorf("service did not stop within %s", e.stopWithin)
	}
}

// publishModel writes and activates an MF version (see stageModel).
func (e *e2e) publishModel(version string, seed uint64) {
	if _, err := e.db.ActivateModel(context.Background(), e.stageModel(version, seed)); err != nil {
		e.t.Fatal(err)
	}
}

// stageModel writes a staged MF version: 60 streamers and 10 users with
// seeded random 16-d vectors. It returns the version's id.
func (e *e2e) stageModel(version string, seed uint64) int64 {
	return e.stageModelN(version, seed, 10, 60, 16)
}

// stageAndActivate writes and activates an MF version of the given size.
func (e *e2e) stageAndActivate(version string, seed uint64, users, streamers, dim int) {
	if _, err := e.db.ActivateModel(context.Background(), e.stageModelN(version, seed, users, streamers, dim)); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) stageModelN(version string, seed uint64, nUsers, nStreamers, dim int) int64 {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, 9))
	vec := func() []float32 {
		v := make([]float32, dim)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	e.users, e.items = map[int64][]float32{}, map[int64][]float32{}
	var us, ss []lr.Embedding
	for id := int64(1); id <= int64(nUsers); id++ {
		e.users[id] = vec()
		us = append(us, lr.Embedding{ID: id, Vec: e.users[id]})
	}
	for id := int64(1); id <= int64(nStreamers); id++ {
		e.items[id] = vec()
		ss = append(ss, lr.Embedding{ID: id, Vec: e.items[id]})
	}
	mv, err := e.db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: version, Dim: dim})
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, us); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, ss); err != nil {
		e.t.Fatal(err)
	}
	return mv.ID
}

func (e *e2e) publish(typ lr.EventType, streamers ...int64) {
	var evs []lr.Event
	for _, id := range streamers {
		e.n++
		evs = append(evs, lr.Event{ID: fmt.Sprint("e2e-", e.n), Type: typ, TS: time.Now(), StreamerID: lr.StreamerID(id), StreamID: lr.StreamID(1000 + id), V: 1})
	}
	if err := e.prod.Publish(context.Background(), evs...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) get(path string, auth bool) (int, []byte) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.addr+path, nil)
	if auth {
		req.Header.Set("Authorization", "Bearer "+e2eToken)
	}
	return do(e.t, req)
}

func (e *e2e) post(path, body string, auth bool) (int, []byte) {
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+path, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if auth {
		req.Header.Set("Authorization", "Bearer "+e2eToken)
	}
	return do(e.t, req)
}

func do(t *testing.T, req *http.Request) (int, []byte) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// eventually is the deadline of a wait for something that happens in
// milliseconds on a quiet machine (an event consumed, a small reload): the
// condition ends the wait, so the deadline costs nothing when things work
// and only has to outlast a loaded machine running -race.
const eventually = 2 * time.Minute

func (e *e2e) waitFor(what string, within time.Duration, ok func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *e2e) recall(user int64) api.RecallResponse {
	e.t.Helper()
	code, b := e.post("/v1/recall", fmt.Sprintf(`{"user_id":%d,"k":10}`, user), false)
	if code != 200 {
		e.t.Fatalf("recall: %d %s", code, b)
	}
	var r api.RecallResponse
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *e2e) liveCount() int {
	_, b := e.get("/v1/admin/status", true)
	var st struct {
		Live int `json:"live"`
	}
	json.Unmarshal(b, &st)
	return st.Live
}

func TestServiceEndToEnd(t *testing.T) {
	e := startE2E(t)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })

	live := []int64{}
	for id := int64(1); id <= 30; id++ {
		live = append(live, id)
	}
	e.publish(lr.EventStreamStarted, live...)
	e.waitFor("30 live streamers", eventually, func() bool { return e.liveCount() == 30 })
	e.warmUser(1) // the user's vectors cached: the first page has the mf channel

	// Only live streamers, and the MF channel's best equals exact search.
	r := e.recall(1)
	if len(r.Items) != 10 || r.ModelVersions["mf"] != "v1" {
		t.Fatalf("response %+v", r)
	}
	for _, it := range r.Items {
		if it.StreamerID > 30 {
			t.Fatalf("offline streamer %d recommended", it.StreamerID)
		}
	}

	// The neighbours endpoint equals exact search over the live streamers.
	code, b := e.get("/v1/debug/neighbors?user_id=1&k=5&live=only", true)
	if code != 200 {
		t.Fatalf("neighbors: %d %s", code, b)
	}
	var nr api.NeighborsResponse
	json.Unmarshal(b, &nr)
	want := exactTop(e.users[1], e.items, live, 5)
	for i, n := range nr.Neighbors {
		if n.StreamerID != want[i] || !n.Live {
			t.Fatalf("neighbours %+v, want ids %v", nr.Neighbors, want)
		}
	}

	// The same use case called directly (recommend.Service, as the
	// benchmarks call it) answers as over HTTP.
	page, err := e.svc.recommend.Recommend(context.Background(), lr.RecommendRequest{User: 1, K: 10})
	if err != nil || len(page.Items) != 10 || page.ModelVersions["mf"] != "v1" {
		t.Fatalf("Recommend: %+v %v", page, err)
	}
	for _, it := range page.Items {
		if it.StreamerID > 30 {
			t.Fatalf("Recommend: offline streamer %d recommended", it.StreamerID)
		}
	}
	ns, err := e.svc.recommend.Neighbors(context.Background(), lr.NeighborsRequest{Model: lr.ModelMF, User: 1, K: 5, LiveOnly: true})
	if err != nil || len(ns.Neighbors) != len(want) {
		t.Fatalf("Neighbors: %+v %v", ns, err)
	}
	for i, n := range ns.Neighbors {
		if int64(n.StreamerID) != want[i] || !n.Live || n.Features == nil {
			t.Fatalf("Neighbors %+v, want ids %v", ns.Neighbors, want)
		}
	}

	// A streamer whose stream ends is gone from results (how fast is for
	// benchmarks: the wait ends with the condition, the deadline only
	// catches a stream that never goes).
	top := r.Items[0].StreamerID
	e.publish(lr.EventStreamEnded, top)
	start := time.Now()
	e.waitFor("the ended stream to disappear", eventually, func() bool {
		for _, it := range e.recall(1).Items {
			if it.StreamerID == top {
				return false
			}
		}
		return true
	})
	t.Logf("ended stream gone after %v", time.Since(start))

	// A reload (new version activated + admin reload) under concurrent
	// requests: zero failed requests, and the new version serves after.
	var failures, requests atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, _ := e.post("/v1/recall", fmt.Sprintf(`{"user_id":%d}`, g+1), false)
				requests.Add(1)
				if code != 200 {
					failures.Add(1)
				}
			}
		}(g)
	}
	e.publishModel("v2", 2)
	if code, b := e.post("/v1/admin/reload", "", true); code != 200 {
		t.Fatalf("reload: %d %s", code, b)
	}
	e.waitFor("v2 to serve", eventually, func() bool { return e.recall(1).ModelVersions["mf"] == "v2" })
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || requests.Load() == 0 {
		t.Fatalf("%d of %d requests failed during the reload", failures.Load(), requests.Load())
	}
	t.Logf("%d requests during the reload, none failed", requests.Load())

	// One request says its context: its impressions carry it to Postgres.
	if code, b := e.post("/v1/recall", `{"user_id":3,"context":{"device":"tv","locale":"pt-BR","utc_offset_minutes":0,"app":"x"}}`, false); code != 200 {
		t.Fatalf("recall with a context: %d %s", code, b)
	}

	// Every response was logged as impressions; the sink writes them to
	// Postgres (with the reranker's feature vectors, for training).
	sinkCtx, stopSink := context.WithCancel(context.Background())
	sinkDone := make(chan int, 1)
	go func() {
		app, _, _ := testApp(nil)
		app.Log = newLogger(io.Discard, "error", "text")
		sinkDone <- Run(sinkCtx, app, []string{"sink", "--database-url", e.db.URL(), "--kafka-brokers", e.kafka.Brokers()[0], "--sink-batch-wait", "50ms"})
	}()
	var n, withCtx int
	e.waitFor("impressions in Postgres, with the context", eventually, func() bool {
		e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM impressions WHERE array_length(features, 1) > 0`).Scan(&n)
		e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM impressions WHERE user_id = 3 AND ctx_device = 'tv' AND ctx_language = 'pt'
			AND ctx_country = 'BR' AND ctx_hour IS NOT NULL AND ctx_weekday IS NOT NULL`).Scan(&withCtx)
		return n >= 10 && withCtx > 0
	})
	stopSink()
	if code := <-sinkDone; code != 0 {
		t.Fatalf("sink exited with %d", code)
	}
	t.Logf("%d impressions written by the sink", n)
}

func exactTop(q []float32, items map[int64][]float32, allowed []int64, k int) []int64 {
	type hit struct {
		id int64
		s  float32
	}
	var hs []hit
	for _, id := range allowed {
		var s float32
		for i, x := range items[id] {
			s += x * q[i]
		}
		hs = append(hs, hit{id, s})
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].s > hs[j].s })
	out := make([]int64, 0, k)
	for _, h := range hs[:k] {
		out = append(out, h.id)
	}
	return out
}
