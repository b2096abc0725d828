package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// TestRestartedReplicaRanksLikeContinuous: users watched streamers hours
// ago, beyond the live lookback, and those streamers are live again. A
// replica that read all of it from the topics (one that ran through the
// day) and a replica started afterwards on the database the sink wrote,
// whose lookback covers only the last hour, give every user the same
// recall response: the restarted one loads each user's day of watch
// history and follows from the database at their first request (both
// replicas wait for that load: --user-load-wait is a minute here, so the
// first answer is checked, not one after a late load finished).
func TestRestartedReplicaRanksLikeContinuous(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	// The replica that runs through the day: everything from the topics.
	//
	// Both replicas end a silent stream after 30 minutes, not the default
	// 10: the backlog below reaches the broker in several produce requests,
	// and a replica that catches up between two of them must not end the
	// streams whose joins (16 minutes ago) it has read but whose heartbeats
	// (a minute ago) are still to come. (A loaded run saw the continuous
	// replica end one that way and lose its viewers, so the two replicas'
	// trending lists differed for good.)
	cont := startE2EOn(t, db, url, k, "--live-lookback", "24h", "--user-load-wait", "1m", "--live-expiry", "30m")
	e := cont

	now := time.Now().UTC().Truncate(time.Second)
	old := now.Add(-5 * time.Hour)
	var evs []lr.Event
	add := func(typ lr.EventType, at time.Time, streamer, stream, user int64) {
		e.n++
		evs = append(evs, lr.Event{ID: fmt.Sprint("rs-", e.n), Type: typ, TS: at, StreamerID: lr.StreamerID(streamer),
			StreamID: lr.StreamID(stream), UserID: lr.UserID(user), V: 1})
	}
	watch := func(user, streamer, stream int64, from, to time.Time) {
		add(lr.EventViewerJoined, from, streamer, stream, user)
		add(lr.EventViewerLeft, to, streamer, stream, user)
	}
	// Hours ago: streams of a few streamers, watched by users 3 and 4.
	for _, s := range []int64{5, 9, 14, 22, 33} {
		add(lr.EventStreamStarted, old, s, 5000+s, 0)
	}
	m := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	watch(3, 5, 5005, old.Add(m(10)), old.Add(m(40)))
	watch(3, 9, 5009, old.Add(m(20)), old.Add(m(50)))
	watch(3, 14, 5014, old.Add(m(60)), old.Add(m(80)))
	watch(3, 9, 5009, old.Add(m(90)), old.Add(m(110)))
	watch(3, 22, 5022, old.Add(m(120)), old.Add(m(150)))
	watch(4, 33, 5033, old.Add(m(30)), old.Add(m(90)))
	watch(4, 14, 5014, old.Add(m(100)), old.Add(m(130)))
	add(lr.EventFollowCreated, old.Add(m(70)), 50, 0, 3)
	for _, s := range []int64{5, 9, 14, 22, 33} {
		add(lr.EventStreamEnded, now.Add(-2*time.Hour), s, 5000+s, 0)
	}
	// Now: 40 streamers live again, started within the lookback, each at
	// its own time and with its own number of viewers, so that no two tie
	// in the trending and fresh lists (ties go by ordinal, which each
	// replica assigns in its own order).
	for s := int64(1); s <= 40; s++ {
		add(lr.EventStreamStarted, now.Add(m(-20)-time.Duration(s)*time.Second), s, 6000+s, 0)
		for v := int64(0); v < s; v++ {
			add(lr.EventViewerJoined, now.Add(m(-16)), s, 6000+s, 1000*s+v)
		}
	}
	watch(3, 30, 6030, now.Add(m(-15)), now.Add(m(-10)))
	for s := int64(1); s <= 40; s++ {
		add(lr.EventStreamHeartbeat, now.Add(m(-1)), s, 6000+s, 0)
	}
	// Each record carries its event's time, so the lookback (by record
	// time) leaves out the hours-old ones.
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		msgs[i] = kafka.Message{Key: events.Key(ev), Value: events.Encode(ev), Time: ev.TS}
	}
	if err := e.prod.WriteRaw(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}

	cont.waitFor("ready", eventually, func() bool { c, _ := cont.get("/readyz", false); return c == 200 })

	// The sink writes the history.
	sinkCtx, stopSink := context.WithCancel(context.Background())
	sinkDone := make(chan int, 1)
	go func() {
		app, _, _ := testApp(nil)
		app.Log = newLogger(io.Discard, "error", "text")
		sinkDone <- Run(sinkCtx, app, []string{"sink", "--database-url", url, "--kafka-brokers", e.kafka.Brokers()[0], "--sink-batch-wait", "50ms"})
	}()
	e.waitFor("the sink to write the history", eventually, func() bool {
		c, err := db.CountSinkRows(context.Background())
		return err == nil && c.Events == int64(len(evs))
	})
	stopSink()
	if code := <-sinkDone; code != 0 {
		t.Fatalf("sink exited with %d", code)
	}
	if c, _ := db.CountSinkRows(context.Background()); c.Sessions != 8 || c.Follows != 1 {
		t.Fatalf("sink wrote %+v, want 8 sessions and 1 follow", c)
	}

	// A replica started now, with the default lookback of an hour.
	restarted := startE2EOn(t, db, url, k, "--user-load-wait", "1m", "--live-expiry", "30m")
	restarted.waitFor("ready", eventually, func() bool { c, _ := restarted.get("/readyz", false); return c == 200 })
	e.waitFor("both replicas to hold the 40 live streams", eventually, func() bool {
		return cont.liveCount() == 40 && restarted.liveCount() == 40
	})
	// Every user's vectors in both replicas' caches, so neither answers a
	// user without the mf channel because its first read was late.
	for u := int64(1); u <= 10; u++ {
		cont.warmUser(u)
		restarted.warmUser(u)
	}
	// The trending and fresh lists are refreshed in the background, from
	// the live set (the first after the replica caught up is triggered by a
	// request), so wait for both replicas to agree on every user with no
	// history; then every user must get the same answer from both.
	var differ string
	e.waitFor("both replicas to answer the users without history alike", eventually, func() bool {
		for _, u := range []int64{1, 2, 5, 6, 7, 8, 9, 10} {
			a, b := cont.debugRecall(u).Items, restarted.debugRecall(u).Items
			if d := sameItems(a, b); d != "" {
				differ = fmt.Sprintf("user %d: %s; the restarted replica answers\n%s\nthe one that ran continuously\n%s", u, d, itemsString(b), itemsString(a))
				t.Logf("still differ: %s", differ)
				return false
			}
		}
		return true
	})
	// Then every user, those with history too, gets the same answer from
	// both in one pass (a pass again after a background refresh of one
	// replica's lists changed a page between two requests).
	e.waitFor("both replicas to answer every user alike in one pass", eventually, func() bool {
		for u := int64(1); u <= 10; u++ {
			a, b := cont.debugRecall(u).Items, restarted.debugRecall(u).Items
			if d := sameItems(a, b); d != "" {
				t.Logf("user %d: %s; the restarted replica answers\n%s\nthe one that ran continuously\n%s", u, d, itemsString(b), itemsString(a))
				return false
			}
		}
		return true
	})
}

// sameItems says how two pages differ ("" if they do not): the same
// streamers and streams, each with the same channels and every feature
// equal; only the stream age and the hours since the user last watched
// the streamer (and so the score, a little) depend on when
// each request was served, so scores may differ by 1e-3 and items whose
// scores are that close may swap places. Channels are compared as sets:
// their order is the order the channels answered in.
func sameItems(a, b []api.RecallItem) string {
	const tol = 1e-3
	if len(a) != len(b) {
		return fmt.Sprintf("%d items against %d", len(b), len(a))
	}
	byID := map[int64]api.RecallItem{}
	for _, it := range a {
		byID[it.StreamerID] = it
	}
	for i, bi := range b {
		ai, ok := byID[bi.StreamerID]
		if !ok {
			return fmt.Sprintf("item %d: streamer %d is not on the other page", i, bi.StreamerID)
		}
		if ai.StreamID != bi.StreamID || !sameSet(ai.Channels, bi.Channels) {
			return fmt.Sprintf("streamer %d: stream %d channels %v against stream %d channels %v", bi.StreamerID, bi.StreamID, bi.Channels, ai.StreamID, ai.Channels)
		}
		if math.Abs(ai.Score-bi.Score) > tol {
			return fmt.Sprintf("streamer %d: score %v against %v", bi.StreamerID, bi.Score, ai.Score)
		}
		if i > 0 && byID[b[i-1].StreamerID].Score < ai.Score-tol {
			return fmt.Sprintf("items %d and %d in another order", i-1, i)
		}
		if ai.Debug == nil || bi.Debug == nil {
			return "no debug features"
		}
		for f, v := range ai.Debug.Features {
			if f != "log_stream_age_min" && f != "log_hours_since_watch" && bi.Debug.Features[f] != v {
				return fmt.Sprintf("streamer %d: %s = %v against %v", ai.StreamerID, f, bi.Debug.Features[f], v)
			}
		}
	}
	return ""
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// debugRecall asks for 10 items with their features.
func (e *e2e) debugRecall(user int64) api.RecallResponse {
	e.t.Helper()
	code, b := e.post("/v1/recall", fmt.Sprintf(`{"user_id":%d,"k":10,"debug":true}`, user), false)
	if code != 200 {
		e.t.Fatalf("recall: %d %s", code, b)
	}
	var r api.RecallResponse
	if err := json.Unmarshal(b, &r); err != nil {
		e.t.Fatal(err)
	}
	return r
}

func itemsString(items []api.RecallItem) string {
	var sb strings.Builder
	for _, it := range items {
		fmt.Fprintf(&sb, "  %d (stream %d) %.6f %v", it.StreamerID, it.StreamID, it.Score, it.Channels)
		if it.Debug != nil {
			fmt.Fprintf(&sb, " repeat_watches=%v", it.Debug.Features["repeat_watches"])
		}
		sb.WriteString("\n")
	}
	return sb.String()
}
