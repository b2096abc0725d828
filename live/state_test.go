package live_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/live/livetest"
)

type hookLog struct {
	mu      sync.Mutex
	got     []string
	version uint64
}

// hook logs each published version's changes, "+id" live and "-id"
// offline, and checks that versions arrive in order, one at a time.
func (h *hookLog) hook(ords *lr.Ordinals) func(*live.Snapshot) {
	return func(snap *live.Snapshot) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if snap.Version() != h.version+1 {
			h.got = append(h.got, "version "+itoa(int64(snap.Version()))+" after "+itoa(int64(h.version)))
		}
		h.version = snap.Version()
		for ord, on := range snap.Changes() {
			id, _ := ords.ID(ord)
			if on {
				h.got = append(h.got, "+"+itoa(int64(id)))
			} else {
				h.got = append(h.got, "-"+itoa(int64(id)))
			}
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

func liveIDs(t *testing.T, ords *lr.Ordinals, snap *live.Snapshot) []lr.StreamerID {
	t.Helper()
	var out []lr.StreamerID
	for _, o := range snap.Ordinals() {
		id, ok := ords.ID(o)
		if !ok {
			t.Fatalf("ordinal %d in the live set was never given", o)
		}
		out = append(out, id)
	}
	return out
}

// TestScript applies the scripted sequence and checks the exact outcome.
func TestScript(t *testing.T) {
	ords := lr.NewOrdinals()
	var h hookLog
	reg := prometheus.NewRegistry()
	st := live.New(live.Config{Ordinals: ords, OnPublish: h.hook(ords), Registerer: reg,
		Clock: func() time.Time { return livetest.Now }})
	evs := livetest.Script()
	var stats live.ApplyStats
	for i := 0; i < len(evs); i += 7 { // several batches
		s := st.Apply(evs[i:min(i+7, len(evs))])
		stats.Applied += s.Applied
		stats.Duplicates += s.Duplicates
		stats.Ignored += s.Ignored
	}
	if stats.Duplicates != 2 {
		t.Errorf("duplicates %d, want 2", stats.Duplicates)
	}
	// Ignored: 2 late ends of streamer 2, late follow, late join on 501, repeated join of 11.
	if stats.Ignored != 5 {
		t.Errorf("ignored %d, want 5", stats.Ignored)
	}
	if got := liveIDs(t, ords, st.Snapshot()); !reflect.DeepEqual(got, []lr.StreamerID{1, 2, 4}) {
		t.Fatalf("live before expiry %v, want [1 2 4]", got)
	}
	if n := st.Expire(livetest.Now); n != 1 {
		t.Fatalf("expired %d, want 1", n)
	}
	snap := st.Snapshot()
	if got := liveIDs(t, ords, snap); !reflect.DeepEqual(got, []lr.StreamerID{1, 2}) {
		t.Fatalf("live %v, want [1 2]", got)
	}
	if snap.GetCardinality() != 2 || st.Live() != 2 {
		t.Fatalf("cardinality %d / %d, want 2", snap.GetCardinality(), st.Live())
	}
	wantHooks := []string{"+1", "+2", "+3", "+4", "-3", "+5", "-5", "-4"}
	if !reflect.DeepEqual(h.got, wantHooks) {
		t.Errorf("hook calls %v, want %v", h.got, wantHooks)
	}

	f1, ok := st.FeaturesOf(1)
	if !ok {
		t.Fatal("no features for live streamer 1")
	}
	want1 := live.Features{StreamerID: 1, StreamID: 101, Category: "music",
		StartedAt: livetest.T0, LastEventAt: livetest.T0.Add(39*time.Minute + 45*time.Second), Age: 40 * time.Minute,
		Viewers: 3, Viewers5mAgo: 2, PeakViewers: 4,
		Gifts1m: 2, Gifts5m: 3, Gifts30m: 4, GiftValue1m: 4, GiftValue5m: 6, GiftValue30m: 11, UniqueGifters30m: 3}
	if f1 != want1 {
		t.Errorf("streamer 1 features\n got %+v\nwant %+v", f1, want1)
	}
	f2, _ := st.FeaturesOf(2)
	want2 := live.Features{StreamerID: 2, StreamID: 201, Category: "music", StartedAt: livetest.T0.Add(time.Minute),
		LastEventAt: livetest.T0.Add(35 * time.Minute), Age: 39 * time.Minute}
	if f2 != want2 {
		t.Errorf("streamer 2 features\n got %+v\nwant %+v", f2, want2)
	}
	for _, id := range []lr.StreamerID{3, 4, 5, 99} {
		if _, ok := st.FeaturesOf(id); ok {
			t.Errorf("streamer %d has features but is not live", id)
		}
	}
	if got := st.Follows(11); !reflect.DeepEqual(got, []lr.StreamerID{1}) {
		t.Errorf("follows of 11: %v, want [1]", got)
	}
	wantH := []live.Watch{{StreamerID: 1, StreamID: 101, JoinedAt: livetest.T0.Add(2 * time.Minute), LeftAt: livetest.T0.Add(34 * time.Minute)}}
	if got := st.History(12); !reflect.DeepEqual(got, wantH) {
		t.Errorf("history of 12: %+v, want %+v", got, wantH)
	}
	if got := st.History(17); got != nil {
		t.Errorf("history of 17 (late join after end): %+v, want none", got)
	}
	// Replaying everything changes nothing: every id is a duplicate.
	before := st.Dump(livetest.Now)
	if s := st.Apply(evs); s.Applied != 0 || s.Duplicates != len(evs) {
		t.Errorf("replay: %+v, want all %d duplicates", s, len(evs))
	}
	if after := st.Dump(livetest.Now); after != before {
		t.Errorf("replay changed the state:\n%s\n---\n%s", before, after)
	}
}

// TestApplyLargeBatch: a batch longer than the write lock's chunk is
// applied whole, with its statistics summed over the chunks, and gives the
// state the same events applied one at a time give.
func TestApplyLargeBatch(t *testing.T) {
	var evs []lr.Event
	for len(evs) < 1500 {
		evs = append(evs, livetest.Script()...)
	}
	// The script over and over: every copy after the first is duplicates.
	one := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	var want live.ApplyStats
	for i := range evs {
		s := one.Apply(evs[i : i+1])
		want.Applied += s.Applied
		want.Ignored += s.Ignored
		want.Duplicates += s.Duplicates
	}
	all := live.New(live.Config{Ordinals: lr.NewOrdinals()})
	if got := all.Apply(evs); got != want {
		t.Errorf("one batch of %d: %+v; one at a time: %+v", len(evs), got, want)
	}
	if want.Duplicates == 0 || want.Applied == 0 {
		t.Fatalf("the batch should hold both new events and duplicates: %+v", want)
	}
	if a, b := all.Dump(livetest.Now), one.Dump(livetest.Now); a != b {
		t.Errorf("one batch and one at a time differ:\n%s\n---\n%s", a, b)
	}
}

// TestOrderAcrossStreamers: each streamer's events in order but streamers
// interleaved differently give the same state.
func TestOrderAcrossStreamers(t *testing.T) {
	evs := livetest.Script()
	build := func(evs []lr.Event) string {
		st := live.New(live.Config{Ordinals: lr.NewOrdinals()})
		st.Apply(evs)
		st.Expire(livetest.Now)
		return st.Dump(livetest.Now)
	}
	// Stable partition by streamer parity keeps per-streamer order.
	var odd, even []lr.Event
	for _, e := range evs {
		if e.StreamerID%2 == 1 {
			odd = append(odd, e)
		} else {
			even = append(even, e)
		}
	}
	if a, b := build(evs), build(append(even, odd...)); a != b {
		t.Fatalf("order across streamers changed the state:\n%s\n---\n%s", a, b)
	}
}

func TestRevivalAndRestart(t *testing.T) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords, Expiry: time.Minute})
	t0 := livetest.T0
	ev := func(id string, typ lr.EventType, at time.Duration, stream lr.StreamID) lr.Event {
		return lr.Event{ID: id, Type: typ, TS: t0.Add(at), StreamerID: 7, StreamID: stream, V: 1}
	}
	st.Apply([]lr.Event{ev("a", lr.EventStreamStarted, 0, 70)})
	st.Expire(t0.Add(2 * time.Minute))
	if st.Snapshot().GetCardinality() != 0 {
		t.Fatal("stream did not expire")
	}
	// A delayed heartbeat of the expired stream revives it with its start.
	st.Apply([]lr.Event{ev("b", lr.EventStreamHeartbeat, 3*time.Minute, 70)})
	f, ok := st.FeaturesOf(7)
	if !ok || !f.StartedAt.Equal(t0) {
		t.Fatalf("revived: ok=%v started %v, want %v", ok, f.StartedAt, t0)
	}
	// A new stream replaces the current one.
	st.Apply([]lr.Event{ev("c", lr.EventStreamStarted, 4*time.Minute, 71)})
	if f, _ := st.FeaturesOf(7); f.StreamID != 71 {
		t.Fatalf("stream %d, want 71", f.StreamID)
	}
	// A heartbeat of a stream whose start was never seen starts it.
	st.Apply([]lr.Event{{ID: "d", Type: lr.EventStreamHeartbeat, TS: t0, StreamerID: 8, StreamID: 80, V: 1}})
	if _, ok := st.FeaturesOf(8); !ok {
		t.Fatal("heartbeat of an unseen stream did not start it")
	}
}

// TestSnapshotConcurrent reads snapshots and features while a writer applies.
func TestSnapshotConcurrent(t *testing.T) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s := st.Snapshot()
				for _, o := range s.Ordinals() {
					s.Contains(o)
					st.Features(o)
				}
			}
		}()
	}
	for i := 0; i < 2000; i++ {
		typ := lr.EventStreamStarted
		if i%3 == 2 {
			typ = lr.EventStreamEnded
		}
		st.Apply([]lr.Event{{ID: "e" + itoa(int64(i)), Type: typ, TS: livetest.T0.Add(time.Duration(i) * time.Second),
			StreamerID: lr.StreamerID(i%50 + 1), StreamID: lr.StreamID(i/3 + 1), V: 1}})
	}
	close(done)
	wg.Wait()
}

// Contains (a dense bit set built on first use) must agree with the
// published bitmap for every ordinal, live or not, below and beyond the
// largest live one, in the empty snapshot too.
func TestSnapshotContainsMatchesBitmap(t *testing.T) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	if s := st.Snapshot(); s.Contains(0) || s.Contains(1<<31) {
		t.Fatal("the empty snapshot contains something")
	}
	rng := rand.New(rand.NewPCG(4, 4))
	for round := 0; round < 30; round++ {
		var evs []lr.Event
		for i := 0; i < 200; i++ {
			typ := lr.EventStreamStarted
			if rng.IntN(3) == 0 {
				typ = lr.EventStreamEnded
			}
			id := lr.StreamerID(rng.IntN(3000) + 1)
			evs = append(evs, lr.Event{ID: fmt.Sprint("r", round, "-", i), Type: typ, TS: livetest.T0.Add(time.Duration(round*200+i) * time.Second),
				StreamerID: id, StreamID: lr.StreamID(id), V: 1})
		}
		st.Apply(evs)
		s := st.Snapshot()
		bm := s.Bitmap()
		n := 0
		for ord := uint32(0); ord < uint32(ords.Len())+130; ord++ {
			if got, want := s.Contains(ord), bm.Contains(ord); got != want {
				t.Fatalf("round %d: Contains(%d) = %v, the bitmap says %v", round, ord, got, want)
			}
			if s.Contains(ord) {
				n++
			}
		}
		if uint64(n) != s.GetCardinality() || n == 0 {
			t.Fatalf("round %d: %d ordinals contained, cardinality %d", round, n, s.GetCardinality())
		}
		if s.Contains(1<<32 - 1) {
			t.Fatal("the largest ordinal is contained")
		}
	}
}

// BenchmarkApply applies a mixed workload (20k live streams, 1M users) in
// batches of 2048; ns/op is per event.
func BenchmarkApply(b *testing.B) {
	const streams, users = 20_000, 1_000_000
	t0 := livetest.T0
	evs := make([]lr.Event, 0, 1<<20)
	for s := 1; s <= streams; s++ {
		evs = append(evs, lr.Event{ID: "s" + itoa(int64(s)), Type: lr.EventStreamStarted, TS: t0, StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), V: 1})
	}
	x := uint64(1)
	for len(evs) < cap(evs) {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		i := len(evs)
		s := int64(x%streams + 1)
		e := lr.Event{ID: "e" + itoa(int64(i)), TS: t0.Add(time.Duration(i) * time.Microsecond), StreamerID: lr.StreamerID(s), StreamID: lr.StreamID(s), UserID: lr.UserID(x>>20%users + 1), V: 1}
		switch x >> 40 % 10 {
		case 0, 1, 2, 3:
			e.Type = lr.EventViewerJoined
		case 4, 5, 6:
			e.Type = lr.EventViewerLeft
		case 7:
			e.Type, e.Amount = lr.EventGiftSent, 3
		default:
			e.Type, e.UserID = lr.EventStreamHeartbeat, 0
		}
		evs = append(evs, e)
	}
	b.ResetTimer()
	n := 0
	var st *live.State
	for b.Loop() {
		if n%len(evs) == 0 {
			b.StopTimer()
			st = live.New(live.Config{Ordinals: lr.NewOrdinals()})
			b.StartTimer()
		}
		i := n % len(evs)
		st.Apply(evs[i : i+2048])
		n += 2048
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}

func TestSeedHistoryAndFollows(t *testing.T) {
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), HistoryLen: 2})
	t0 := livetest.T0
	st.SeedWatch(5, 1, 10, t0, t0.Add(time.Minute))
	st.SeedWatch(5, 2, 20, t0.Add(2*time.Minute), t0.Add(3*time.Minute))
	st.SeedWatch(5, 3, 30, t0.Add(time.Hour), time.Time{})
	want := []live.Watch{
		{StreamerID: 3, StreamID: 30, JoinedAt: t0.Add(time.Hour)},
		{StreamerID: 2, StreamID: 20, JoinedAt: t0.Add(2 * time.Minute), LeftAt: t0.Add(3 * time.Minute)},
	}
	if got := st.History(5); !reflect.DeepEqual(got, want) {
		t.Errorf("history %+v, want %+v (newest first, capped at 2)", got, want)
	}
	st.SetFollow(5, 7, true, t0)
	st.Apply([]lr.Event{{ID: "old", Type: lr.EventFollowDeleted, TS: t0.Add(-time.Second), StreamerID: 7, UserID: 5, V: 1}})
	if got := st.Follows(5); !reflect.DeepEqual(got, []lr.StreamerID{7}) {
		t.Errorf("follows %v: an unfollow older than the loaded follow won", got)
	}
	st.Apply([]lr.Event{{ID: "new", Type: lr.EventFollowDeleted, TS: t0.Add(time.Second), StreamerID: 7, UserID: 5, V: 1}})
	if got := st.Follows(5); got != nil {
		t.Errorf("follows %v after a newer unfollow", got)
	}
}

func TestPruneIdleUsers(t *testing.T) {
	st := live.New(live.Config{Ordinals: lr.NewOrdinals(), UserTTL: time.Hour})
	t0 := livetest.T0
	st.SeedWatch(1, 5, 50, t0, t0.Add(time.Minute))                        // idle after t0+1m
	st.SeedWatch(2, 5, 50, t0.Add(90*time.Minute), t0.Add(91*time.Minute)) // recent
	st.SetFollow(3, 5, true, t0)                                           // follows: kept
	st.Apply([]lr.Event{{ID: "u", Type: lr.EventFollowDeleted, TS: t0, StreamerID: 5, UserID: 4, V: 1}})
	if st.Users() != 4 {
		t.Fatalf("%d users, want 4", st.Users())
	}
	st.Expire(t0.Add(2 * time.Hour))
	if st.Users() != 2 || st.History(1) != nil || st.History(2) == nil || st.Follows(3) == nil {
		t.Errorf("after pruning: %d users, history(1)=%v history(2)=%v follows(3)=%v; want users 2 and 3 kept",
			st.Users(), st.History(1), st.History(2), st.Follows(3))
	}
}

// BenchmarkFeatures reads the features of a stream with 50 viewers and 30
// gifts in the last 30 minutes (what rerank does per candidate).
func BenchmarkFeatures(b *testing.B) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	t0 := livetest.T0
	evs := []lr.Event{{ID: "s", Type: lr.EventStreamStarted, TS: t0, StreamerID: 1, StreamID: 1, V: 1}}
	for i := 1; i <= 50; i++ {
		evs = append(evs, lr.Event{ID: "j" + itoa(int64(i)), Type: lr.EventViewerJoined, TS: t0.Add(time.Duration(i) * time.Second), StreamerID: 1, StreamID: 1, UserID: lr.UserID(i), V: 1})
	}
	for i := 1; i <= 30; i++ {
		evs = append(evs, lr.Event{ID: "g" + itoa(int64(i)), Type: lr.EventGiftSent, TS: t0.Add(time.Duration(i) * time.Minute), StreamerID: 1, StreamID: 1, UserID: lr.UserID(i % 7), Amount: 2, V: 1})
	}
	st.Apply(evs)
	ord, _ := ords.Lookup(1)
	now := t0.Add(31 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := st.FeaturesAt(ord, now); !ok {
			b.Fatal("not live")
		}
	}
}

// FeaturesAtMany answers each ordinal as FeaturesAt does, ended, unknown
// and out-of-range ordinals included.
func TestFeaturesAtMany(t *testing.T) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	t0 := livetest.T0
	st.Apply([]lr.Event{
		{ID: "s1", Type: lr.EventStreamStarted, TS: t0, StreamerID: 1, StreamID: 1, Category: "a", V: 1},
		{ID: "s2", Type: lr.EventStreamStarted, TS: t0, StreamerID: 2, StreamID: 2, V: 1},
		{ID: "j1", Type: lr.EventViewerJoined, TS: t0.Add(time.Second), StreamerID: 1, StreamID: 1, UserID: 9, V: 1},
		{ID: "e2", Type: lr.EventStreamEnded, TS: t0.Add(2 * time.Second), StreamerID: 2, StreamID: 2, V: 1},
	})
	o1, _ := ords.Lookup(1)
	o2, _ := ords.Lookup(2)
	q := []uint32{o1, o2, 9999, o1}
	now := t0.Add(time.Minute)
	out := make([]live.Features, len(q))
	ptrs := make([]*live.Features, len(q))
	for i := range out {
		out[i] = live.Features{Title: "stale"} // must be overwritten
		ptrs[i] = &out[i]
	}
	isLive := make([]bool, len(q))
	st.FeaturesAtMany(q, now, ptrs, isLive)
	for i, o := range q {
		f, ok := st.FeaturesAt(o, now)
		if ok != isLive[i] || !reflect.DeepEqual(f, out[i]) {
			t.Errorf("ord %d: FeaturesAtMany %v %+v, FeaturesAt %v %+v", o, isLive[i], out[i], ok, f)
		}
	}
	if !isLive[0] || isLive[1] || isLive[2] || out[0].Viewers != 1 {
		t.Errorf("live %v, viewers %d; want streamer 1 live with 1 viewer, 2 ended, 9999 unknown", isLive, out[0].Viewers)
	}
}

// Each version of the live set goes to OnPublish before Snapshot returns
// it (so the index has every version a reader can hold), in order, and its
// Changes turn the version before into it.
func TestOnPublishGetsEachVersionFirst(t *testing.T) {
	var st *live.State
	var prev *live.Snapshot
	var problems []string
	st = live.New(live.Config{Ordinals: lr.NewOrdinals(), OnPublish: func(s *live.Snapshot) {
		if st.Snapshot() != prev {
			problems = append(problems, "Snapshot returns a version before OnPublish has it")
		}
		if s.Version() != prev.Version()+1 {
			problems = append(problems, "version "+itoa(int64(s.Version()))+" after "+itoa(int64(prev.Version())))
		}
		set := map[uint32]bool{}
		for _, o := range prev.Ordinals() {
			set[o] = true
		}
		for ord, on := range s.Changes() {
			if on {
				set[ord] = true
			} else {
				delete(set, ord)
			}
		}
		var got []uint32
		for o := range set {
			got = append(got, o)
		}
		slices.Sort(got)
		if want := s.Ordinals(); !slices.Equal(got, want) {
			problems = append(problems, "version "+itoa(int64(s.Version()))+": changes do not make it from the version before")
		}
		prev = s
	}})
	prev = st.Snapshot()
	if prev.Version() != 0 || prev.GetCardinality() != 0 {
		t.Fatalf("first snapshot: version %d, %d live; want the empty version 0", prev.Version(), prev.GetCardinality())
	}
	evs := livetest.Script()
	for i := 0; i < len(evs); i += 5 {
		st.Apply(evs[i:min(i+5, len(evs))])
	}
	st.Expire(livetest.Now)
	if len(problems) > 0 {
		t.Fatal(strings.Join(problems, "\n"))
	}
	if st.Snapshot() != prev || prev.Version() < 3 {
		t.Fatalf("last snapshot version %d, last published %d (want the same, at least 3)", st.Snapshot().Version(), prev.Version())
	}
}

// A stream's language is the primary subtag of its stream.started
// event's language, lower-case; "" when the event gave none.
func TestStreamLanguage(t *testing.T) {
	ords := lr.NewOrdinals()
	st := live.New(live.Config{Ordinals: ords})
	t0 := livetest.T0
	st.Apply([]lr.Event{
		{ID: "s1", Type: lr.EventStreamStarted, TS: t0, StreamerID: 1, StreamID: 1, Language: "PT_br", V: 1},
		{ID: "s2", Type: lr.EventStreamStarted, TS: t0, StreamerID: 2, StreamID: 2, V: 1},
	})
	for id, want := range map[lr.StreamerID]string{1: "pt", 2: ""} {
		o, _ := ords.Lookup(id)
		f, ok := st.FeaturesAt(o, t0.Add(time.Minute))
		if !ok || f.Language != want {
			t.Errorf("streamer %d: live %v, language %q, want %q", id, ok, f.Language, want)
		}
	}
}
