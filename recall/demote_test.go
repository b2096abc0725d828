package recall_test

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
)

// patient is a Config whose budgets no loaded test machine misses: a late
// channel changes the candidates, which is not what these tests are about.
func patient(cfg recall.Config) recall.Config {
	cfg.Budget = 10 * time.Second
	cfg.ChannelBudget = map[string]time.Duration{}
	for _, ch := range recall.Channels {
		cfg.ChannelBudget[ch] = 10 * time.Second
	}
	return cfg
}

// page runs a request of k for user 7 and, as the HTTP handler does,
// marks its first k candidates (the page; the demoted come last) shown.
func page(t *testing.T, e *recall.Engine, k int, exclude ...lr.StreamerID) []recall.Candidate {
	t.Helper()
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: k, Exclude: exclude})
	if err != nil {
		t.Fatal(err)
	}
	p := slices.Clone(res.Candidates[:min(k, len(res.Candidates))])
	var shown []lr.StreamerID
	for _, c := range p {
		shown = append(shown, c.StreamerID)
	}
	e.MarkShown(7, shown)
	return p
}

// advance moves the world's clock and refreshes the engine's rankings at
// the new time, so no request starts a background refresh (which reads the
// clock) that the next advance would race with.
func advance(w *world, e *recall.Engine, d time.Duration) {
	w.now = w.now.Add(d)
	e.RefreshRankings()
}

func streamerIDs(cs []recall.Candidate) []lr.StreamerID {
	var out []lr.StreamerID
	for _, c := range cs {
		out = append(out, c.StreamerID)
	}
	return out
}

// Repeated requests of one user never get an empty or short page while
// enough streamers are live: once the streamers not shown yet run out, the
// least recently shown fill the page, after the others and flagged.
func TestShownDemotedToFillThePage(t *testing.T) {
	w := newWorld(t, 12, 12)
	e := w.engine(patient(recall.Config{ShownWindow: 10 * time.Minute}), nil)
	const k = 5
	p1 := page(t, e, k)
	advance(w, e, time.Minute)
	p2 := page(t, e, k)
	if len(p1) != k || len(p2) != k {
		t.Fatalf("pages %v %v, want %d each", streamerIDs(p1), streamerIDs(p2), k)
	}
	for _, c := range p2 {
		if c.Shown || slices.Contains(streamerIDs(p1), c.StreamerID) {
			t.Fatalf("second page %v repeats the first %v while unshown streamers are live", streamerIDs(p2), streamerIDs(p1))
		}
	}
	// Two streamers not shown yet are left: they lead, then three of the
	// first page (shown longest ago).
	advance(w, e, time.Minute)
	p3 := page(t, e, k)
	if len(p3) != k {
		t.Fatalf("third page %v: %d items, want %d (12 streamers are live)", streamerIDs(p3), len(p3), k)
	}
	for i, c := range p3 {
		old := slices.Contains(streamerIDs(p1), c.StreamerID) || slices.Contains(streamerIDs(p2), c.StreamerID)
		switch {
		case i < 2 && (c.Shown || old):
			t.Fatalf("third page %v: item %d (%d) was shown before, want the two not shown yet first", streamerIDs(p3), i, c.StreamerID)
		case i >= 2 && (!c.Shown || !slices.Contains(streamerIDs(p1), c.StreamerID)):
			t.Fatalf("third page %v: item %d (%d, shown %v) is not from the least recently shown page %v", streamerIDs(p3), i, c.StreamerID, c.Shown, streamerIDs(p1))
		}
	}
	// However often the user comes back, the page stays full.
	for i := 0; i < 10; i++ {
		advance(w, e, 10*time.Second)
		if p := page(t, e, k); len(p) != k {
			t.Fatalf("request %d: page %v, want %d items", i+4, streamerIDs(p), k)
		}
	}
}

// Excluding the top of a page that showed every live streamer leaves the
// rest of it, not nothing.
func TestExcludeAfterAFullPageKeepsTheRest(t *testing.T) {
	w := newWorld(t, 10, 10)
	e := w.engine(patient(recall.Config{ShownWindow: 10 * time.Minute}), nil)
	p1 := page(t, e, 10)
	if len(p1) != 10 {
		t.Fatalf("first page %v, want all 10 live", streamerIDs(p1))
	}
	advance(w, e, time.Second)
	top3 := streamerIDs(p1[:3])
	p2 := page(t, e, 10, top3...)
	got := streamerIDs(p2)
	slices.Sort(got)
	want := streamerIDs(p1[3:])
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after excluding %v: %v, want the other 7 %v", top3, got, want)
	}
}

// Pages recorded from other replicas (RecordShown) count like this
// replica's, by their own times: the least recently shown fill first,
// whatever order the records arrived in; a record older than the window
// is ignored.
func TestRecordShownOrdersByShownTime(t *testing.T) {
	w := newWorld(t, 4, 4)
	e := w.engine(patient(recall.Config{ShownWindow: 10 * time.Minute}), nil)
	e.RecordShown(7, []lr.StreamerID{1}, w.now.Add(-5*time.Minute))
	e.MarkShown(7, []lr.StreamerID{2})
	e.RecordShown(7, []lr.StreamerID{3}, w.now.Add(-8*time.Minute))
	e.RecordShown(7, []lr.StreamerID{4}, w.now.Add(-11*time.Minute)) // outside the window
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(res); !slices.Equal(got, []lr.StreamerID{4, 3, 1, 2}) {
		t.Fatalf("candidates %v, want [4 3 1 2]: the one not shown in the window, then the least recently shown first", got)
	}
	for i, c := range res.Candidates {
		if c.Shown != (i > 0) {
			t.Fatalf("candidate %d (%d): shown %v", i, c.StreamerID, c.Shown)
		}
	}
}

// Streamers the models do not know (no vector) take at most UnknownShare
// of k, however many of them are live, and are counted.
func TestUnknownStreamersCapped(t *testing.T) {
	// 30 live; only 1..10 have an MF vector.
	w := newWorld(t, 30, 10)
	count := func(share float64) (unknown int, res *recall.Result, reg *prometheus.Registry) {
		t.Helper()
		reg = prometheus.NewRegistry()
		e := w.engine(patient(recall.Config{ShownDisabled: true, UnknownShare: share, Registerer: reg}), nil)
		res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 20})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Candidates {
			if c.StreamerID > 10 {
				unknown++
			}
		}
		return unknown, res, reg
	}
	unknown, res, reg := count(0) // the default, 0.2
	if unknown != 4 {
		t.Fatalf("%d unknown streamers among %v, want 4 (0.2 of 20)", unknown, ids(res))
	}
	if len(res.Candidates) != 14 {
		t.Fatalf("candidates %v, want the 10 known and 4 unknown", ids(res))
	}
	// The fresh channel brings the newest unknown first: 11..14.
	for _, id := range []lr.StreamerID{11, 12, 13, 14} {
		if !slices.Contains(ids(res), id) {
			t.Fatalf("candidates %v lack fresh unknown streamer %d", ids(res), id)
		}
	}
	capped := res.Filtered["unknown_cap"]
	if capped == 0 {
		t.Fatalf("filtered %v: nothing counted under unknown_cap", res.Filtered)
	}
	want := `
# HELP liverecall_recall_unknown_streamers_total Candidates unknown to the serving models (no vector in any loaded model), by outcome: admitted, or capped by the unknown-share limit.
# TYPE liverecall_recall_unknown_streamers_total counter
liverecall_recall_unknown_streamers_total{outcome="admitted"} 4
liverecall_recall_unknown_streamers_total{outcome="capped"} ` + strconv.Itoa(capped) + "\n"
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "liverecall_recall_unknown_streamers_total"); err != nil {
		t.Fatal(err)
	}
	if unknown, res, _ := count(-1); unknown != 0 || len(res.Candidates) != 10 {
		t.Fatalf("share -1: %v, want only the 10 known", ids(res))
	}
	if unknown, res, _ := count(1); unknown <= 4 || res.Filtered["unknown_cap"] != 0 {
		t.Fatalf("share 1: %v (filtered %v), want every unknown streamer the channels proposed", ids(res), res.Filtered)
	}
	// A small page still has room for one newcomer.
	e := w.engine(patient(recall.Config{ShownDisabled: true}), nil)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 3})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, id := range ids(res) {
		if id > 10 {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("k=3: %d unknown among %v, want 1", n, ids(res))
	}
}

// A streamer the user went on to watch after it was shown is not demoted:
// the filter sets aside what the user passed over, not what they chose
// (their next page, minutes later, may well lead with it again).
func TestShownThenWatchedNotDemoted(t *testing.T) {
	w := newWorld(t, 12, 12)
	e := w.engine(patient(recall.Config{ShownWindow: 10 * time.Minute}), nil)
	const k = 5
	p1 := page(t, e, k)
	chosen, passed := p1[0].StreamerID, p1[1].StreamerID
	advance(w, e, time.Minute)
	w.apply(t, w.ev(lr.EventViewerJoined, int(chosen), 7, w.now))
	advance(w, e, time.Minute)
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: k})
	if err != nil {
		t.Fatal(err)
	}
	var sawChosen bool
	for _, c := range res.Candidates {
		switch c.StreamerID {
		case chosen:
			sawChosen = true
			if c.Shown {
				t.Errorf("streamer %d, watched after it was shown, is flagged shown", chosen)
			}
		case passed:
			if !c.Shown {
				t.Errorf("streamer %d, shown and passed over, is not flagged shown", passed)
			}
		}
	}
	if !sawChosen {
		t.Errorf("streamer %d, watched after it was shown, is not a candidate: %v", chosen, ids(res))
	}
}
