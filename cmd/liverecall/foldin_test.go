package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recall"
)

// TestFoldInEndToEnd: watch events reach a running service through the
// Kafka protocol; within a condition-based wait the MF channel's
// candidates for a user the version knows follow what they watched (they
// are the exact top 40 of the folded vector the debug endpoint shows,
// beside the nightly one), and a user the version does not know, whose MF
// channel had nothing to search with, gets MF candidates after three
// watches. The version was trained (created) two hours ago, so the
// watches of the last hour are new to it.
func TestFoldInEndToEnd(t *testing.T) {
	url := pgtest.New(t)
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	k := kafkatest.New(t, e2eTopics(nil)...)
	e := &e2e{t: t, db: db}
	id := e.stageModelN("v1", 1, 10, 60, 16)
	if _, err := db.Pool.Exec(context.Background(), `UPDATE embedding_models SET created_at = now() - interval '2 hours' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	users, items := e.users, e.items
	e = startE2EOn(t, db, url, k, "--foldin-debounce", "20ms")
	e.users, e.items = users, items
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })

	now := time.Now().UTC().Truncate(time.Second)
	m := func(n int) time.Time { return now.Add(time.Duration(n) * time.Minute) }
	var evs []lr.Event
	add := func(typ lr.EventType, at time.Time, streamer, user int64) {
		e.n++
		evs = append(evs, lr.Event{ID: fmt.Sprint("fold-", e.n), Type: typ, TS: at, StreamerID: lr.StreamerID(streamer),
			StreamID: lr.StreamID(7000 + streamer), UserID: lr.UserID(user), V: 1})
	}
	send := func() {
		t.Helper()
		msgs := make([]kafka.Message, len(evs))
		for i, ev := range evs {
			msgs[i] = kafka.Message{Key: events.Key(ev), Value: events.Encode(ev), Time: ev.TS}
		}
		if err := e.prod.WriteRaw(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
		evs = evs[:0]
	}
	all := make([]int64, 0, 60)
	for s := int64(1); s <= 60; s++ {
		all = append(all, s)
		add(lr.EventStreamStarted, m(-50), s, 0)
	}
	send()
	e.waitFor("60 live streamers", eventually, func() bool { return e.liveCount() == 60 })

	// mfChannel is what the MF channel proposed for u, as a set, and its
	// status.
	mfChannel := func(u int64) ([]int64, string) {
		t.Helper()
		res, err := e.svc.engine.Recall(context.Background(), recall.Request{User: lr.UserID(u), K: 60})
		if err != nil {
			t.Fatal(err)
		}
		defer e.svc.engine.Release(res)
		var out []int64
		for _, c := range res.Candidates {
			if slices.Contains(c.Channels, recall.ChanMF) {
				out = append(out, int64(c.StreamerID))
			}
		}
		slices.Sort(out)
		status := ""
		for _, o := range res.Outcomes {
			if o.Channel == recall.ChanMF {
				status = o.Status
			}
		}
		return out, status
	}
	top40 := func(q []float32) []int64 {
		s := exactTop(q, e.items, all, 40)
		slices.Sort(s)
		return s
	}
	before, st := mfChannel(1)
	if st != recall.StatusOK || !slices.Equal(before, top40(e.users[1])) {
		t.Fatalf("before any watch: MF channel %s %v, want the nightly vector's top 40 %v", st, before, top40(e.users[1]))
	}
	if _, st := mfChannel(500); st != recall.StatusSkipped {
		t.Fatalf("user 500, unknown to the version: MF channel %s, want skipped", st)
	}

	// User 1 watches, for 30 minutes, the live streamer their nightly
	// vector ranks last; user 500 watches three streamers.
	ranked := exactTop(e.users[1], e.items, all, 60)
	last := ranked[len(ranked)-1]
	add(lr.EventViewerJoined, m(-45), last, 1)
	add(lr.EventViewerLeft, m(-15), last, 1)
	for i, s := range []int64{4, 17, 33} {
		add(lr.EventViewerJoined, m(-40+10*i), s, 500)
		add(lr.EventViewerLeft, m(-32+10*i), s, 500)
	}
	sent := time.Now()
	send()

	neighbors := func(u int64) (api.NeighborsResponse, int) {
		code, b := e.get(fmt.Sprintf("/v1/debug/neighbors?user_id=%d&k=5&live=all", u), true)
		var nr api.NeighborsResponse
		if code == 200 {
			if err := json.Unmarshal(b, &nr); err != nil {
				t.Fatal(err)
			}
		}
		return nr, code
	}
	var nr api.NeighborsResponse
	e.waitFor("user 1's folded vector", eventually, func() bool {
		nr, _ = neighbors(1)
		return nr.User != nil && nr.User.Folded != nil
	})
	t.Logf("folded vector shown %v after the events were sent", time.Since(sent).Round(time.Millisecond))
	f := nr.User.Folded
	if nr.User.Searched != "folded" || !slices.Equal(nr.User.Nightly, e.users[1]) || f.Watches != 1 || f.Streamers != 1 ||
		f.FoldedAt.IsZero() || !f.ExpiresAt.Equal(m(-45).Add(6*time.Hour)) {
		t.Fatalf("user 1's vectors: %+v, folded %+v", nr.User, f)
	}
	if want := exactTop(f.Vector, e.items, all, 5); nr.Neighbors[0].StreamerID != want[0] {
		t.Fatalf("neighbours %+v are not of the folded vector (want %v first)", nr.Neighbors, want)
	}
	after, st := mfChannel(1)
	if st != recall.StatusOK || slices.Equal(after, before) || !slices.Contains(after, last) || !slices.Equal(after, top40(f.Vector)) {
		t.Fatalf("after the watch: MF channel %s %v (before %v), want the folded vector's top 40 %v, with streamer %d", st, after, before, top40(f.Vector), last)
	}

	// The unknown user: a vector of their own, searched by the MF channel.
	e.waitFor("user 500's MF candidates", eventually, func() bool {
		c, st := mfChannel(500)
		return st == recall.StatusOK && len(c) == 40
	})
	nr, code := neighbors(500)
	if code != 200 || nr.User == nil || nr.User.Nightly != nil || nr.User.Folded == nil || nr.User.Folded.Watches != 3 || nr.User.Searched != "folded" {
		t.Fatalf("user 500's vectors: %d %+v", code, nr.User)
	}
	got, _ := mfChannel(500)
	if !slices.Equal(got, top40(nr.User.Folded.Vector)) {
		t.Fatalf("user 500's MF candidates %v, want the folded vector's top 40 %v", got, top40(nr.User.Folded.Vector))
	}
	// The fold-ins are counted (the metrics endpoint, as Prometheus reads it).
	_, b := e.get("/metrics", false)
	var done float64
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, `liverecall_foldin_total{outcome="done"} `); ok {
			done, _ = strconv.ParseFloat(v, 64)
		}
	}
	if done < 2 {
		t.Fatalf("liverecall_foldin_total{outcome=\"done\"} = %v, want at least 2", done)
	}
}

// TestFoldInOff: with --foldin=false watches do not move the MF vector.
func TestFoldInOff(t *testing.T) {
	e := startE2E(t, "--foldin=false")
	if e.svc.folder != nil {
		t.Fatal("--foldin=false made a folder")
	}
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	code, b := e.get("/v1/debug/neighbors?user_id=1&k=1&live=all", true)
	var nr api.NeighborsResponse
	json.Unmarshal(b, &nr)
	if code != 200 || nr.User == nil || nr.User.Searched != "nightly" || nr.User.Folded != nil {
		t.Fatalf("%d %s", code, b)
	}
}
