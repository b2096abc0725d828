package main

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events/kafkatest"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// metricValue returns the value of the sample named exactly series (name
// and labels, as /metrics writes them), and false when there is none.
func (e *e2e) metricValue(series string) (float64, bool) {
	for _, l := range strings.Split(e.metric(series), "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

// Two replicas on one database and one broker, as behind a load balancer:
// a user's requests alternate between them, and no streamer is repeated
// within the shown window while streamers not shown yet are live, because
// each replica reads the pages the other served from the shown topic. Once every live streamer was shown the pages stay full.
func TestShownWindowHoldsAcrossReplicas(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	k := kafkatest.New(t, e2eTopics(nil)...)
	replicas := []*e2e{startE2EOn(t, db, url, k, "--shown-window", "10m"), startE2EOn(t, db, url, k, "--shown-window", "10m")}
	const live, k10 = 40, 10 // 4 pages of 10 show every live streamer once
	var ids []int64
	for id := int64(1); id <= live; id++ {
		ids = append(ids, id)
	}
	replicas[0].publish(lr.EventStreamStarted, ids...)
	for i, e := range replicas {
		e.waitFor(fmt.Sprintf("replica %d ready", i), eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
		e.waitFor(fmt.Sprintf("replica %d to see %d live", i, live), eventually, func() bool { return e.liveCount() == live })
		e.warmUser(1) // the user's vectors cached, so the first page has mf's candidates
	}
	const recorded = `liverecall_shown_pages_read_total{outcome="recorded"}`
	served := make([]int, len(replicas))
	shownBy := map[int64]int{} // streamer -> the request that showed it
	for req := 0; req < live/k10+2; req++ {
		i := req % 2
		e, other := replicas[i], 1-i
		// The load balancer sends the next request here once this replica
		// has read every page the other served (the producer writes the
		// shown records as it encodes the pages; a reader's fetch waits
		// at most 500 ms).
		e.waitFor(fmt.Sprintf("replica %d to read the other's %d pages", i, served[other]), eventually, func() bool {
			v, _ := e.metricValue(recorded)
			return v >= float64(served[other])
		})
		r := e.recall(1)
		served[i]++
		if len(r.Items) != k10 {
			t.Fatalf("request %d (replica %d): %d items, want %d (%d streamers are live)", req, i, len(r.Items), k10, live)
		}
		for _, it := range r.Items {
			if prev, ok := shownBy[it.StreamerID]; ok && req < live/k10 {
				t.Fatalf("request %d (replica %d) repeats streamer %d, shown by request %d (replica %d), while %d were not shown yet",
					req, i, it.StreamerID, prev, prev%2, live-len(shownBy))
			}
			if _, ok := shownBy[it.StreamerID]; !ok {
				shownBy[it.StreamerID] = req
			}
		}
	}
	if len(shownBy) != live {
		t.Fatalf("%d distinct streamers shown, want all %d", len(shownBy), live)
	}
	// Each replica recorded the other's pages and skipped its own.
	for i, e := range replicas {
		e.waitFor(fmt.Sprintf("replica %d to read every page", i), eventually, func() bool {
			own, _ := e.metricValue(`liverecall_shown_pages_read_total{outcome="own"}`)
			rec, _ := e.metricValue(recorded)
			return own >= float64(served[i]) && rec >= float64(served[1-i])
		})
		if v, _ := e.metricValue(recorded); v != float64(served[1-i]) {
			t.Fatalf("replica %d recorded %v pages, want the other's %d", i, v, served[1-i])
		}
	}
}

// Streamers the serving model does not know (here: ids no model has,
// started by events) take at most --unknown-share of a page, however many
// of them are live, and are counted.
func TestUnknownStreamersCappedOnAPage(t *testing.T) {
	e := startE2E(t, "--unknown-share", "0.2")
	e.waitFor("ready", eventually, func() bool { c, _ := e.get("/readyz", false); return c == 200 })
	const known = 5 // the model has streamers 1..60
	var ids []int64
	for id := int64(1); id <= known; id++ {
		ids = append(ids, id)
	}
	for id := int64(100001); id <= 100200; id++ {
		ids = append(ids, id)
	}
	e.publish(lr.EventStreamStarted, ids...)
	e.waitFor(fmt.Sprint(len(ids), " live"), eventually, func() bool { return e.liveCount() == len(ids) })
	// The trending and fresh lists, which bring the unknown streamers, are
	// refreshed in the background from the live set: on a loaded machine
	// the first pages may come before they hold the new streams.
	e.waitFor("unknown streamers to reach a page", eventually, func() bool {
		for _, it := range e.recall(1).Items {
			if it.StreamerID > 60 {
				return true
			}
		}
		return false
	})
	for u := int64(1); u <= 5; u++ {
		r := e.recall(u) // k = 10
		unknown := 0
		for _, it := range r.Items {
			if it.StreamerID > 60 {
				unknown++
			}
		}
		if unknown > 2 || len(r.Items)-unknown != known {
			t.Fatalf("user %d: %d items, %d of them unknown, want the %d known and at most 2 (0.2 of 10) unknown: %+v", u, len(r.Items), unknown, known, r.Items)
		}
	}
	if v, ok := e.metricValue(`liverecall_recall_unknown_streamers_total{outcome="capped"}`); !ok || v == 0 {
		t.Fatalf("capped unknown streamers not counted: %q", e.metric("liverecall_recall_unknown_streamers_total"))
	}
}

// --unknown-share is a share: outside 0..1 it is a usage error.
func TestUnknownShareFlagRange(t *testing.T) {
	for _, v := range []string{"-0.1", "1.5", "NaN"} {
		app, _, errb := testApp(nil)
		if _, err := parseServiceFlags(app, "serve", []string{"--unknown-share", v}); err != errUsage || !strings.Contains(errb.String(), "unknown-share") {
			t.Errorf("--unknown-share %s: err %v, stderr %q", v, err, errb)
		}
	}
	app, _, _ := testApp(map[string]string{"LIVERECALL_UNKNOWN_SHARE": "0.5"})
	if cfg, err := parseServiceFlags(app, "serve", nil); err != nil || cfg.unknownShare != 0.5 {
		t.Fatalf("from the environment: %v %v", cfg.unknownShare, err)
	}
}
