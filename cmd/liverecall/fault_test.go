package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
)

// indexStatus returns the MF entry of /v1/admin/status's index section.
func (e *e2e) indexStatus() map[string]any {
	_, b := e.get("/v1/admin/status", true)
	var st struct {
		Index []map[string]any `json:"index"`
	}
	json.Unmarshal(b, &st)
	for _, k := range st.Index {
		if k["kind"] == "mf" {
			return k
		}
	}
	return nil
}

func (e *e2e) metric(name string) string {
	_, b := e.get("/metrics", false)
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// A bad model version (NaN, wrong dimension) activated in the database is
// refused: the old index keeps serving, status and metrics show the refusal.
func TestBadModelVersionIsRefusedAndOldIndexServes(t *testing.T) {
	e := startE2E(t)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3, 4, 5)
	e.waitFor("5 live", eventually, func() bool { return e.liveCount() == 5 })
	e.warmUser(1)
	ctx := context.Background()

	for _, c := range []struct {
		name, version string
		vec           func(i int64) []float32
		want          string
	}{
		{"NaN", "bad-nan", func(i int64) []float32 {
			v := ones(16)
			if i == 7 {
				v[3] = float32(math.NaN())
			}
			return v
		}, "NaN"},
		{"wrong dims", "bad-dims", func(i int64) []float32 {
			if i == 9 {
				return ones(8)
			}
			return ones(16)
		}, "dim"},
	} {
		t.Run(c.name, func(t *testing.T) {
			mv, err := e.db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: c.version, Dim: 16})
			if err != nil {
				t.Fatal(err)
			}
			var us, ss []lr.Embedding
			for id := int64(1); id <= 10; id++ {
				us = append(us, lr.Embedding{ID: id, Vec: ones(16)})
			}
			for id := int64(1); id <= 60; id++ {
				ss = append(ss, lr.Embedding{ID: id, Vec: c.vec(id)})
			}
			e.db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, us)
			e.db.CopyEmbeddings(ctx, mv.ID, lr.SideStreamer, ss)
			if _, err := e.db.ActivateModel(ctx, mv.ID); err != nil {
				t.Fatal(err)
			}
			code, b := e.post("/v1/admin/reload", "", true)
			if code == 200 {
				t.Fatalf("reload of a bad version answered 200: %s", b)
			}
			st := e.indexStatus()
			if st["version"] != "v1" || !strings.Contains(fmt.Sprint(st["last_error"]), c.version) || !strings.Contains(strings.ToLower(fmt.Sprint(st["last_error"])), strings.ToLower(c.want)) {
				t.Fatalf("status after refusing %s: %v", c.version, st)
			}
			if r := e.recall(1); r.ModelVersions["mf"] != "v1" || len(r.Items) == 0 {
				t.Fatalf("recall after the refusal: %+v", r)
			}
			if m := e.metric(`liverecall_index_reload_failures_total{kind="mf"}`); m == "" || strings.HasSuffix(m, " 0") {
				t.Fatalf("failure metric: %q", m)
			}
		})
	}
}

// startReloadCaughtMidRead starts the service with v1 serving and three
// live streamers, then activates v2 while a transaction locks the embeddings
// table, so the reload v2's NOTIFY starts is caught mid-way, reading. It
// returns the lock (roll it back to release its connection), the test
// database's name and a connection to the server's maintenance database.
func startReloadCaughtMidRead(t *testing.T) (*e2e, pgx.Tx, string, *pgx.Conn) {
	t.Helper()
	e := startE2E(t, "--index-check-every", "500ms")
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3)
	e.waitFor("3 live", eventually, func() bool { return e.liveCount() == 3 })
	e.warmUser(1) // served from the cache through the outage
	// Before the outage, user 1 gets pages (the background trending and
	// fresh lists hold the new streams, the user is loaded), as any
	// request after a replica warmed up.
	e.waitFor("user 1's first pages", eventually, func() bool { return len(e.recall(1).Items) > 0 })
	ctx := context.Background()
	var dbname string
	e.db.Pool.QueryRow(ctx, `SELECT current_database()`).Scan(&dbname)
	admin := e.adminConn()
	id := e.stageModel("v2", 2)
	lock, err := e.db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Rollback(ctx) })
	if _, err := lock.Exec(ctx, `LOCK TABLE streamer_embeddings IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.ActivateModel(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the reload to block on the locked table", eventually, func() bool {
		var n int
		admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, dbname).Scan(&n)
		return n > 0
	})
	return e, lock, dbname, admin
}

// The database becomes unreachable during an index reload (its connections
// are cut and new ones refused, as in a restart): the old index keeps
// serving, the reload fails cleanly, and once the database is back the
// periodic check retries and the new version serves.
func TestDatabaseOutageDuringReload(t *testing.T) {
	e, lock, dbname, admin := startReloadCaughtMidRead(t)
	ctx := context.Background()
	// The database goes away: every connection is cut, new ones refused.
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS false`, dbname)); err != nil {
		t.Fatal(err)
	}
	admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, dbname)
	lock.Rollback(ctx)
	for i := 0; i < 20; i++ {
		code, b := e.post("/v1/recall", `{"user_id":1,"k":10,"debug":true}`, false)
		var r api.RecallResponse
		if err := json.Unmarshal(b, &r); err != nil || code != 200 || r.ModelVersions["mf"] != "v1" || len(r.Items) == 0 {
			t.Fatalf("recall %d during the outage: %d %s", i, code, b)
		}
	}
	if code, _ := e.post("/v1/admin/reload", "", true); code == 200 {
		t.Fatal("reload succeeded while the database was unreachable")
	}
	// The reload the activation started fails once its connection's loss
	// reaches it (or the next periodic check fails on the unreachable
	// database); until then the status has nothing to report.
	e.waitFor("the failed reload in the status", eventually, func() bool {
		st := e.indexStatus()
		if st["version"] != "v1" {
			t.Fatalf("status during the outage: %v", st)
		}
		return st["last_error"] != nil
	})
	if _, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q WITH ALLOW_CONNECTIONS true`, dbname)); err != nil {
		t.Fatal(err)
	}
	e.waitFor("v2 to serve after the database is back", eventually, func() bool { return e.recall(1).ModelVersions["mf"] == "v2" })
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1 + float32(i)/float32(n)
	}
	return v
}

// The broker goes away mid-stream and a new one comes up on the same port:
// recall keeps answering from the last state, /readyz reports the stale live
// view, the consumer reconnects, and the live set then equals the truth.
func TestBrokerOutageAndReturn(t *testing.T) {
	e := startE2E(t)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3, 4, 5, 6)
	e.waitFor("6 live", eventually, func() bool { return e.liveCount() == 6 })
	e.warmUser(1)
	_, port, _ := net.SplitHostPort(e.kafka.Brokers()[0])
	e.kafka.Close()

	e.waitFor("the stale live view to show in /readyz", eventually, func() bool {
		code, b := e.get("/readyz", false)
		return code == 200 && strings.Contains(string(b), "stale")
	})
	for i := 0; i < 20; i++ {
		r := e.recall(1)
		if len(r.Items) != 6 {
			_, sb := e.post("/v1/recall", `{"user_id":1,"debug":true}`, false)
			t.Fatalf("recall during the outage returned %d items, want the 6 live before it; status %s", len(r.Items), sb)
		}
	}

	var p int
	fmt.Sscan(port, &p)
	k, err := kafkatest.Start(p, kafkatest.Topic{Name: events.DefaultTopic, Partitions: 4},
		kafkatest.Topic{Name: events.DefaultDeadLetterTopic, Partitions: 1}, kafkatest.Topic{Name: events.DefaultImpressionTopic, Partitions: 2},
		kafkatest.Topic{Name: events.DefaultShownTopic, Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	e.kafka = k
	e.prod.Close()
	e.prod = events.NewProducer(events.ProducerConfig{Brokers: k.Brokers()})
	// The truth after the outage: 2 and 4 ended, 7 and 8 started.
	e.publish(lr.EventStreamEnded, 2, 4)
	e.publish(lr.EventStreamStarted, 7, 8)
	e.waitFor("the live set to equal the truth", eventually, func() bool {
		r := e.recall(1)
		got := map[int64]bool{}
		for _, it := range r.Items {
			got[it.StreamerID] = true
		}
		return len(got) == 6 && got[1] && got[3] && got[5] && got[6] && got[7] && got[8]
	})
	e.waitFor("the warning to clear", eventually, func() bool {
		_, b := e.get("/readyz", false)
		return !strings.Contains(string(b), "stale")
	})
}

// The server refuses oversized headers and bodies before they reach a
// handler, and malformed requests, with JSON errors.
func TestHTTPSizeLimits(t *testing.T) {
	e := startE2E(t, "--max-body-bytes", "2048")
	req, _ := http.NewRequest(http.MethodPost, "http://"+e.addr+"/v1/recall", strings.NewReader(`{"user_id":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Big", strings.Repeat("x", 100<<10))
	if code, b := do(t, req); code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(string(b), `"message":"request header fields larger than 65536 bytes"`) {
		t.Fatalf("100 KiB header: %d %s, want 431 with a JSON error", code, b)
	}
	// A malformed request line, on a raw connection.
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute)) // against a hang, not a wait
	if _, err := c.Write([]byte("GARBAGE\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(string(b), `"code":"invalid"`) {
		t.Fatalf("malformed request line: %d %q %s, want 400 with a JSON error", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	body := `{"user_id":1,"exclude":[` + strings.Repeat("1,", 2000) + `1]}`
	if code, b := e.post("/v1/recall", body, false); code != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "larger than 2048 bytes") {
		t.Fatalf("4 KiB body: %d %s, want 413", code, b)
	}
}

// Shutdown drains: a request in flight when the signal comes is answered,
// and the impressions of every answered request reach Kafka.
func TestGracefulShutdownDrainsAndFlushes(t *testing.T) {
	e := startE2E(t, "--shutdown-timeout", "60s")
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3, 4, 5)
	e.waitFor("5 live", eventually, func() bool { return e.liveCount() == 5 })
	items := 0
	for i := 0; i < 50; i++ {
		items += len(e.recall(int64(i%10 + 1)).Items)
	}
	// A slow request (a full rebuild of a bigger model) is in flight when
	// the service is told to stop.
	e.stageAndActivate("big", 3, 2000, 10000, 16)
	type answer struct {
		code int
		body string
	}
	reload := make(chan answer, 1)
	go func() {
		code, body := e.post("/v1/admin/reload", "", true)
		reload <- answer{code, string(body)}
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case <-reload:
		t.Fatal("the reload finished before the stop: nothing was in flight")
	default:
	}
	// The shutdown cancels the rebuild instead of waiting for it (a pod
	// past its termination grace period is killed and loses its
	// impressions buffer): the reload is answered 503 naming the shutdown,
	// and the service ends well inside its 60 s shutdown timeout.
	t0 := time.Now()
	e.stop()
	if took := time.Since(t0); took >= 60*time.Second {
		t.Fatalf("the service took %s to stop: the shutdown timeout, not a cancelled rebuild, ended it", took)
	}
	if r := <-reload; r.code != 503 || !strings.Contains(r.body, "shutting down") {
		t.Fatalf("the in-flight reload got %d %s, want 503 naming the shutdown", r.code, r.body)
	}
	// Every impression of the 50 answered requests is in the topic (one
	// message per response, holding its page of impressions).
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), eventually)
	defer cancel()
	for p := 0; p < 2; p++ {
		conn, err := kafka.DialLeader(ctx, "tcp", e.kafka.Brokers()[0], events.DefaultImpressionTopic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, _ := conn.ReadLastOffset()
		conn.Close()
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: e.kafka.Brokers(), Topic: events.DefaultImpressionTopic, Partition: p, MaxWait: 50 * time.Millisecond})
		for next := int64(0); next < last; {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("impressions partition %d at offset %d of %d: %v", p, next, last, err)
			}
			imps, err := events.DecodeImpressions(m.Value)
			if err != nil {
				r.Close()
				t.Fatalf("impressions partition %d offset %d: %v", p, m.Offset, err)
			}
			got += len(imps)
			next = m.Offset + 1
		}
		r.Close()
	}
	if got < items {
		t.Fatalf("%d impressions in Kafka after shutdown, want at least the %d served", got, items)
	}
}
