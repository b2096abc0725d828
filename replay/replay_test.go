package replay

import (
	"context"
	"maps"
	"math"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/recall"
)

var day0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time {
	return day0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

// scripted is a tiny history, held out from 12:00:
//
//   - streamers 1, 2, 3 are live all day (streams 101, 102, 103); streamer
//     4 goes live at 15:00 only;
//   - before 12:00: user 10 watches streamer 1 five times; users 11, 12,
//     13 watch 2; users 11, 13 watch 3; from 11:30 to 14:00 user 22 watches
//     2 and users 20, 21, 23 watch 3. Training-period users per streamer
//     (popularity): 1 → 1, 2 → 4, 3 → 5;
//   - held out: user 10 watches 1 at 13:00 (a repeat target), user 12
//     watches 3 at 13:10 (new: user 12 watched only 2), user 11 watches 4
//     at 13:20 (not live then: not scored).
func scripted() *History {
	h := &History{}
	for s := 1; s <= 3; s++ {
		h.Streams = append(h.Streams, Stream{ID: lr.StreamID(100 + s), Streamer: lr.StreamerID(s), Category: "c" + string(rune('0'+s)), Start: at(0, 0), End: at(23, 0)})
	}
	h.Streams = append(h.Streams, Stream{ID: 104, Streamer: 4, Start: at(15, 0), End: at(16, 0)})
	watch := func(u, s int, from, to time.Time) {
		h.Watches = append(h.Watches, Watch{User: lr.UserID(u), Streamer: lr.StreamerID(s), Stream: lr.StreamID(100 + s), Start: from, End: to})
	}
	for i := 1; i <= 5; i++ {
		watch(10, 1, at(i, 0), at(i, 30))
	}
	for _, u := range []int{11, 12, 13} {
		watch(u, 2, at(6, 0), at(6, 30))
	}
	for _, u := range []int{11, 13} {
		watch(u, 3, at(7, 0), at(7, 30))
	}
	watch(22, 2, at(11, 30), at(14, 0))
	for _, u := range []int{20, 21, 23} {
		watch(u, 3, at(11, 30), at(14, 0))
	}
	watch(10, 1, at(13, 0), at(13, 30))
	watch(12, 3, at(13, 10), at(13, 40))
	h.Watches = append(h.Watches, Watch{User: 11, Streamer: 4, Start: at(13, 20), End: at(13, 50)})
	return h
}

func testConfig(decisions *[]Decision) Config {
	tc := embed.DefaultLiveConfig(lr.ModelMF)
	tc.MinInteractions, tc.ALS.Dim, tc.ALS.Epochs = 1, 4, 5
	return Config{HoldoutFrom: at(12, 0), Train: &tc, OnDecision: func(d Decision) { *decisions = append(*decisions, d) }}
}

func TestReplayScriptedHistory(t *testing.T) {
	var ds []Decision
	rep, err := Run(context.Background(), scripted(), testConfig(&ds))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Decisions != 2 || rep.NotLive != 1 || rep.HeldWatches != 3 || rep.TrainWatches != 14 {
		t.Fatalf("decisions %d not live %d held %d train %d, want 2, 1, 3, 14", rep.Decisions, rep.NotLive, rep.HeldWatches, rep.TrainWatches)
	}
	if !ds[0].Repeat || ds[1].Repeat || ds[0].Live != 3 || ds[1].Live != 3 {
		t.Fatalf("decisions %+v: want the first a repeat target, the second new, 3 live at each", ds)
	}
	// Hand-computed: popularity orders 3, 2, 1 (5, 4, 1 users); viewers
	// at 13:00 and 13:10 are 3 on 3, 1 on 2, 0 then 1 on 1; user 10's most
	// watched live streamer is 1, user 12's is 2 (then 3 by popularity).
	want := map[string]Metrics{
		Popularity:  {N: 2, HR1: 0.5, HR5: 1, HR10: 1, NDCG10: 0.75},
		MostViewers: {N: 2, HR1: 0.5, HR5: 1, HR10: 1, NDCG10: 0.75},
		Repeat:      {N: 2, HR1: 0.5, HR5: 1, HR10: 1, NDCG10: 0.8155},
		// Three streamers live and a page of ten: every one is on it.
		Full:                {N: 2, HR10: 1},
		recall.ChanTrending: {N: 2, HR10: 1},
		// Nobody follows anyone: the follow channel alone has nothing.
		recall.ChanFollow: {N: 2},
	}
	for name, w := range want {
		r, ok := rep.Row(name)
		if !ok {
			t.Fatalf("no row %q in %+v", name, rep.Rows)
		}
		got := r.All
		if name == Full || name == recall.ChanTrending {
			got = Metrics{N: got.N, HR10: got.HR10}
		}
		if got != w {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	rp, _ := rep.Row(Repeat)
	if rp.Repeat != (Metrics{N: 1, HR1: 1, HR5: 1, HR10: 1, NDCG10: 1}) || rp.New.N != 1 || rp.New.HR1 != 0 || rp.New.HR5 != 1 {
		t.Errorf("repeat baseline split: repeat %+v new %+v", rp.Repeat, rp.New)
	}
	if ds[0].Ranks[Full] != 0 {
		t.Errorf("full system: user 10 watched only streamer 1, five times; it ranked %d, want 0", ds[0].Ranks[Full])
	}
	// Every channel alone (ncf not trained) and the three baselines.
	for _, name := range []string{Full, recall.ChanMF, recall.ChanSession, recall.ChanFollow, recall.ChanTrending, recall.ChanFresh, Popularity, MostViewers, Repeat} {
		if _, ok := rep.Row(name); !ok {
			t.Errorf("no row %q", name)
		}
	}
	if _, ok := rep.Row(recall.ChanNCF); ok {
		t.Error("an ncf row without an NCF model")
	}
}

// TestReplayUsesNoFutureInformation plants events after the second
// decision that would change its answers if the replay saw them (user 12
// watching streamer 3 five times, ten more viewers and gifts on it): the
// decisions before them must come out the same.
func TestReplayUsesNoFutureInformation(t *testing.T) {
	var plain, planted []Decision
	if _, err := Run(context.Background(), scripted(), testConfig(&plain)); err != nil {
		t.Fatal(err)
	}
	h := scripted()
	for i := 0; i < 5; i++ {
		h.Watches = append(h.Watches, Watch{User: 12, Streamer: 3, Stream: 103, Start: at(13, 11+i), End: at(13, 11+i).Add(30 * time.Second)})
	}
	for u := 30; u < 40; u++ {
		h.Watches = append(h.Watches, Watch{User: lr.UserID(u), Streamer: 3, Stream: 103, Start: at(13, 10).Add(time.Second), End: at(14, 0)})
		h.Gifts = append(h.Gifts, Gift{User: lr.UserID(u), Streamer: 3, Stream: 103, Amount: 100, At: at(13, 10).Add(2 * time.Second)})
	}
	h.Follows = append(h.Follows, Follow{User: 12, Streamer: 3, At: at(13, 10).Add(time.Second)})
	if _, err := Run(context.Background(), h, testConfig(&planted)); err != nil {
		t.Fatal(err)
	}
	if len(planted) < 2 {
		t.Fatalf("%d decisions", len(planted))
	}
	for i := 0; i < 2; i++ {
		p, q := plain[i], planted[i]
		if p.At != q.At || p.User != q.User || p.Repeat != q.Repeat || p.Live != q.Live || !maps.Equal(p.Ranks, q.Ranks) {
			t.Errorf("decision %d changed by later events:\n plain   %+v\n planted %+v", i, p, q)
		}
	}
	// Had the planted watches leaked, user 12's most watched live streamer
	// would be 3; had the decision's own watch, too.
	if d := plain[1]; d.Ranks[Repeat] != 1 || d.Repeat {
		t.Errorf("decision at 13:10: repeat baseline rank %d repeat %v, want 1 and false", d.Ranks[Repeat], d.Repeat)
	}
}

func TestReplayNeedsHeldOutWatches(t *testing.T) {
	var ds []Decision
	cfg := testConfig(&ds)
	cfg.HoldoutFrom = at(20, 0)
	if _, err := Run(context.Background(), scripted(), cfg); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("err %v, want EINVALID", err)
	}
	cfg.HoldoutFrom = time.Time{}
	if _, err := Run(context.Background(), scripted(), cfg); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("err %v, want EINVALID", err)
	}
}

// Builder keeps open streams and watches without an end, pairs a leave with
// its join, and keeps only the follows active at the end, at their first
// creation.
func TestBuilder(t *testing.T) {
	var b Builder
	ev := func(typ lr.EventType, streamer, user int, m int) lr.Event {
		return lr.Event{Type: typ, TS: at(1, m), StreamerID: lr.StreamerID(streamer), StreamID: lr.StreamID(100 + streamer), UserID: lr.UserID(user)}
	}
	for _, e := range []lr.Event{
		ev(lr.EventStreamStarted, 1, 0, 0), ev(lr.EventStreamStarted, 2, 0, 1),
		ev(lr.EventViewerJoined, 1, 7, 2), ev(lr.EventViewerJoined, 1, 7, 3), ev(lr.EventViewerLeft, 1, 7, 4),
		ev(lr.EventViewerJoined, 2, 8, 5),
		ev(lr.EventFollowCreated, 1, 7, 6), ev(lr.EventFollowDeleted, 1, 7, 7), ev(lr.EventFollowCreated, 1, 7, 8),
		ev(lr.EventFollowCreated, 2, 7, 9), ev(lr.EventFollowDeleted, 2, 7, 10),
		ev(lr.EventStreamEnded, 1, 0, 11),
	} {
		b.Add(e)
	}
	h := b.History()
	if len(h.Streams) != 2 || h.Streams[0].End != at(1, 11) || !h.Streams[1].End.IsZero() {
		t.Fatalf("streams %+v", h.Streams)
	}
	if len(h.Watches) != 2 || h.Watches[0].Start != at(1, 2) || h.Watches[0].End != at(1, 4) || !h.Watches[1].End.IsZero() {
		t.Fatalf("watches %+v", h.Watches)
	}
	if len(h.Follows) != 1 || h.Follows[0] != (Follow{User: 7, Streamer: 1, At: at(1, 6)}) {
		t.Fatalf("follows %+v", h.Follows)
	}
}

// A target beyond the first K (-1) is a miss at every cut-off.
func TestMetricsCountsAMissAtEveryCutoff(t *testing.T) {
	got := metrics([]int{0, -1, 4})
	want := Metrics{N: 3, HR1: 0.3333, HR5: 0.6667, HR10: 0.6667, NDCG10: r4((1 + 1/math.Log2(6)) / 3)}
	if got != want {
		t.Fatalf("metrics %+v, want %+v", got, want)
	}
}
