package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recall"
)

// pgLink is a TCP relay between the service and the real PostgreSQL server
// that a test can cut (every connection closed, new ones refused) and
// restore on the same port: a database outage as the service sees it, a
// network partition or a failover, without stopping the machine's server
// under the tests running beside this one.
type pgLink struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newPGLink(t *testing.T, target string) *pgLink {
	l := &pgLink{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.addr = ln.Addr().String()
	l.serve(ln)
	t.Cleanup(l.cut)
	return l
}

func (l *pgLink) serve(ln net.Listener) {
	l.mu.Lock()
	l.ln = ln
	l.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", l.target)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns[c], l.conns[up] = true, true
			l.mu.Unlock()
			go func() { io.Copy(up, c); up.Close(); c.Close() }()
			go func() { io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
}

// cut closes the listener and every relayed connection.
func (l *pgLink) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ln != nil {
		l.ln.Close()
		l.ln = nil
	}
	for c := range l.conns {
		c.Close()
	}
	clear(l.conns)
}

// restore listens on the same port again.
func (l *pgLink) restore() {
	var ln net.Listener
	var err error
	// The port was ours a moment ago; retry briefly in case the kernel
	// has not released it yet.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatalf("relay cannot listen on %s again: %v", l.addr, err)
	}
	l.serve(ln)
}

// The database goes away while the service serves: /readyz stays 200 with
// a warning naming the database (Kubernetes keeps the replica in the
// Service), recall keeps answering from memory — a user whose vectors are
// cached gets the mf channel as before, the others full pages from the
// channels that need no user vector (mf late or error), never a 5xx — an
// operator's neighbour query of an uncached user is 503 naming the
// database, an admin reload is refused with 503 naming the database, and
// once the database is back a reload succeeds. A user not loaded yet is
// answered during the outage without their stored follows (the load counted
// as failed or late) and with them once the database is back.
func TestDatabaseOutageServesFromMemory(t *testing.T) {
	direct := pgtest.New(t)
	db, err := postgres.Open(context.Background(), direct)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	u, err := url.Parse(direct)
	if err != nil {
		t.Fatal(err)
	}
	link := newPGLink(t, u.Host)
	u.Host = link.addr
	k := kafkatest.New(t, e2eTopics(nil)...)
	e := startE2EOn(t, db, u.String(), k)
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	e.publish(lr.EventStreamStarted, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
	e.waitFor("12 live", eventually, func() bool { return e.liveCount() == 12 })
	e.warmUser(1)
	// The trending and fresh lists are refreshed in the background, after
	// a request sees the live set changed: wait until they hold the 12
	// streams (a user no model knows gets a full page from them alone), as
	// on any replica that has served a while. Users 2-10 rely on them
	// during the outage.
	e.waitFor("the trending and fresh lists to hold the live streams", eventually, func() bool { return len(e.recall(1000).Items) == 10 })
	before := e.recall(1)
	if len(before.Items) != 10 {
		t.Fatalf("%d items before the outage, want a full page of 10", len(before.Items))
	}
	if mf := channelOutcome(e.debugRecall(1), "mf"); mf.Status != "ok" {
		t.Fatalf("user 1 before the outage: mf %+v", mf)
	}
	// User 42 follows streamer 5 (the sink wrote it); they have not asked yet.
	follow := lr.Event{ID: "dbdown-follow", Type: lr.EventFollowCreated, TS: time.Now().Add(-time.Hour), StreamerID: 5, UserID: 42, V: 1}
	if _, err := db.WriteEventsExpiring(context.Background(), []lr.Event{follow}, 0); err != nil {
		t.Fatal(err)
	}

	link.cut()
	// The first check after the cut may still ride a pooled connection
	// being torn down; wait for the warning rather than assume its timing.
	var ready map[string]any
	e.waitFor("/readyz to warn about the database", eventually, func() bool {
		code, body := e.get("/readyz", false)
		if code != 200 {
			t.Fatalf("/readyz during the outage: %d %s", code, body)
		}
		ready = map[string]any{}
		_ = json.Unmarshal(body, &ready)
		w, _ := ready["warnings"].(map[string]any)
		msg, _ := w["database"].(string)
		return strings.Contains(msg, "not reachable")
	})
	for i := 0; i < 20; i++ {
		// Full pages: 12 live for pages of 10, as before the outage.
		u := int64(i%10 + 1)
		r := e.debugRecall(u)
		if len(r.Items) != len(before.Items) || r.ModelVersions["mf"] != "v1" {
			t.Fatalf("recall of user %d during the outage: %d items (%d before), versions %v, debug %+v", u, len(r.Items), len(before.Items), r.ModelVersions, r.Debug)
		}
		mf := channelOutcome(r, "mf")
		switch {
		case u == 1 && (mf.Status != "ok" || !r.Debug.UserKnown):
			t.Fatalf("cached user 1 during the outage: mf %+v, user known %v", mf, r.Debug.UserKnown)
		case u != 1 && mf.Status != "late" && mf.Status != "error":
			t.Fatalf("uncached user %d during the outage: mf %+v, want late or error", u, mf)
		}
	}
	if r := e.recall(42); len(r.Items) != len(before.Items) || followsOf(r, 5) {
		t.Fatalf("user 42 during the outage: %d items, follow of 5 served %v; want a full page without it", len(r.Items), followsOf(r, 5))
	}
	failed, _ := e.metricValue(`liverecall_live_user_loads_total{outcome="error"}`)
	late, _ := e.metricValue(`liverecall_live_user_loads_total{outcome="late"}`)
	if failed+late < 1 {
		t.Errorf("user loads during the outage: %v failed, %v late; want them counted", failed, late)
	}
	code, body := e.get("/v1/debug/neighbors?user_id=5&k=3", true)
	if code != 503 || !strings.Contains(string(body), "database") {
		t.Fatalf("neighbours of an uncached user during the outage: %d %s, want 503 naming the database", code, body)
	}
	code, body = e.post("/v1/admin/reload", "", true)
	if code != 503 || !strings.Contains(string(body), "database") || !strings.Contains(string(body), "not reachable") {
		t.Fatalf("reload during the outage: %d %s, want 503 naming the database", code, body)
	}

	link.restore()
	e.waitFor("/readyz without the database warning", eventually, func() bool {
		_, body := e.get("/readyz", false)
		return !strings.Contains(string(body), "database")
	})
	code, body = e.post("/v1/admin/reload", "", true)
	if code != 200 {
		t.Fatalf("reload after the outage: %d %s", code, body)
	}
	// The failed load is tried again at user 42's next request.
	e.waitFor("user 42's follow to be loaded", eventually, func() bool { return followsOf(e.recall(42), 5) })
}

// followsOf says whether r proposes streamer through the follow channel.
func followsOf(r api.RecallResponse, streamer int64) bool {
	for _, it := range r.Items {
		if it.StreamerID == streamer && slices.Contains(it.Channels, recall.ChanFollow) {
			return true
		}
	}
	return false
}

// channelOutcome returns the outcome of channel name in a debug response.
func channelOutcome(r api.RecallResponse, name string) api.ChannelOutcome {
	if r.Debug != nil {
		for _, o := range r.Debug.Channels {
			if o.Channel == name {
				return o
			}
		}
	}
	return api.ChannelOutcome{}
}

// warmUser brings user u's vectors into the replica's user cache, as an
// earlier request would, without marking a page shown: an operator's
// neighbour query reads them through the same cache (a request's first
// read may miss the mf channel's few milliseconds on a loaded machine).
func (e *e2e) warmUser(u int64) {
	e.t.Helper()
	if code, b := e.get(fmt.Sprintf("/v1/debug/neighbors?user_id=%d&k=1", u), true); code != 200 {
		e.t.Fatalf("neighbours of user %d: %d %s", u, code, b)
	}
}
