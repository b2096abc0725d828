package sim_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/sim"
)

const day = 24 * time.Hour

func world(t testing.TB, seed uint64, streamers, users int) *sim.World {
	t.Helper()
	w, err := sim.New(sim.Config{Seed: seed, Streamers: streamers, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// digest runs w over [from, to) and hashes the encoded event stream.
func digest(t *testing.T, w *sim.World, from, to time.Time) ([32]byte, int) {
	t.Helper()
	h := sha256.New()
	n := 0
	_, err := w.Run(context.Background(), from, to, func(e lr.Event) error {
		h.Write(events.Encode(e))
		h.Write([]byte{'\n'})
		n++
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out, n
}

func TestSameSeedGivesTheSameEventStream(t *testing.T) {
	for _, tc := range []struct {
		seed             uint64
		streamers, users int
		days             int
	}{
		{1, 50, 300, 2},
		{7, 400, 3000, 1},
	} {
		t.Run(fmt.Sprintf("seed%d/%dx%d", tc.seed, tc.streamers, tc.users), func(t *testing.T) {
			w1, w2 := world(t, tc.seed, tc.streamers, tc.users), world(t, tc.seed, tc.streamers, tc.users)
			st := w1.Config().Start
			d1, n1 := digest(t, w1, st, st.Add(time.Duration(tc.days)*day))
			d2, n2 := digest(t, w2, st, st.Add(time.Duration(tc.days)*day))
			if d1 != d2 || n1 != n2 {
				t.Fatalf("same seed, different streams: %d events %x vs %d events %x", n1, d1[:8], n2, d2[:8])
			}
			if n1 < 1000 {
				t.Fatalf("only %d events in %d days", n1, tc.days)
			}
			d3, _ := digest(t, world(t, tc.seed+1, tc.streamers, tc.users), st, st.Add(time.Duration(tc.days)*day))
			if d3 == d1 {
				t.Fatal("another seed gave the same stream")
			}
		})
	}
}

// A window's events do not depend on where the window starts: the events of
// [day 2, day 3) are the tail of the run from the world's start.
func TestWindowIsASliceOfTheWholeRun(t *testing.T) {
	w := world(t, 3, 80, 800)
	st := w.Config().Start
	from, to := st.Add(2*day+5*time.Hour), st.Add(3*day)
	var all []lr.Event
	if _, err := w.Run(context.Background(), st, to, func(e lr.Event) error {
		if !e.TS.Before(from) {
			all = append(all, e)
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	i := 0
	_, err := w.Run(context.Background(), from, to, func(e lr.Event) error {
		if i >= len(all) || all[i] != e {
			return fmt.Errorf("event %d differs: %+v", i, e)
		}
		i++
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if i != len(all) || i == 0 {
		t.Fatalf("window gave %d events, the whole run %d in that window", i, len(all))
	}
}

// The event stream is valid domain events that the service's own decoder
// reads back unchanged; ids are unique and times never go backwards; every
// viewer event and gift is for the streamer's current live stream, and
// every choice is among the streamers live at that moment.
func TestEventsDecodeAndOnlyLiveStreamersAreWatched(t *testing.T) {
	for _, tc := range []struct{ streamers, users int }{{20, 400}, {300, 3000}} {
		t.Run(fmt.Sprintf("%dx%d", tc.streamers, tc.users), func(t *testing.T) {
			w := world(t, 11, tc.streamers, tc.users)
			st := w.Config().Start
			live := map[lr.StreamerID]lr.StreamID{}
			ids := map[string]bool{}
			var last time.Time
			var buf []byte
			var liveBuf []lr.StreamerID
			choices := 0
			stats, err := w.Run(context.Background(), st, st.Add(2*day), func(e lr.Event) error {
				buf = events.AppendEncode(buf[:0], e)
				got, err := events.Decode(buf, e.TS, 0)
				if err != nil {
					return fmt.Errorf("%s does not decode: %v", buf, err)
				}
				if got != e {
					return fmt.Errorf("round trip changed %+v into %+v", e, got)
				}
				if ids[e.ID] {
					return fmt.Errorf("duplicate id %s", e.ID)
				}
				ids[e.ID] = true
				if e.TS.Before(last) {
					return fmt.Errorf("%s at %s after %s", e.ID, e.TS, last)
				}
				last = e.TS
				switch e.Type {
				case lr.EventStreamStarted:
					if live[e.StreamerID] != 0 {
						return fmt.Errorf("streamer %d starts %d while live in %d", e.StreamerID, e.StreamID, live[e.StreamerID])
					}
					live[e.StreamerID] = e.StreamID
				case lr.EventStreamEnded:
					if live[e.StreamerID] != e.StreamID {
						return fmt.Errorf("streamer %d ends %d, live in %d", e.StreamerID, e.StreamID, live[e.StreamerID])
					}
					delete(live, e.StreamerID)
				case lr.EventViewerJoined, lr.EventViewerLeft, lr.EventGiftSent, lr.EventStreamHeartbeat:
					if live[e.StreamerID] != e.StreamID {
						return fmt.Errorf("%s for streamer %d stream %d, but it is live in %d", e.Type, e.StreamerID, e.StreamID, live[e.StreamerID])
					}
				}
				return nil
			}, func(c sim.Choice) error {
				choices++
				liveBuf = c.Live(liveBuf[:0])
				if len(liveBuf) != c.LiveCount || len(liveBuf) != len(live) {
					return fmt.Errorf("choice sees %d live (count %d), events say %d", len(liveBuf), c.LiveCount, len(live))
				}
				found := false
				for _, s := range liveBuf {
					found = found || s == c.Streamer
					if live[s] == 0 {
						return fmt.Errorf("choice lists %d as live; it is not", s)
					}
				}
				if !found || live[c.Streamer] != c.Stream {
					return fmt.Errorf("user %d chose %d (stream %d), not live", c.User, c.Streamer, c.Stream)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if int64(choices) != stats.Choices || stats.Events[lr.EventViewerJoined] != stats.Choices || choices == 0 {
				t.Fatalf("%d choices, stats %+v", choices, stats)
			}
			for _, typ := range []lr.EventType{lr.EventStreamStarted, lr.EventStreamEnded, lr.EventStreamHeartbeat,
				lr.EventViewerLeft, lr.EventGiftSent, lr.EventFollowCreated} {
				if stats.Events[typ] == 0 {
					t.Errorf("no %s events in two days", typ)
				}
			}
		})
	}
}

// Repeat viewing is most of the consumption once habits form, as in real
// live streaming.
func TestRepeatShareIsInTheIntendedRange(t *testing.T) {
	for _, tc := range []struct {
		seed             uint64
		streamers, users int
	}{
		{1, 100, 1500},
		{2, 1000, 10000},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.streamers, tc.users), func(t *testing.T) {
			w := world(t, tc.seed, tc.streamers, tc.users)
			st := w.Config().Start
			s, err := w.Run(context.Background(), st.Add(2*day), st.Add(4*day), func(lr.Event) error { return nil }, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r := s.RepeatShare(); r < 0.6 || r > 0.8 {
				t.Fatalf("repeat share %.3f of %d choices, want 0.6-0.8", r, s.Choices)
			}
			if s.NoLive > s.Choices/20 {
				t.Errorf("%d visits found nobody live (%d choices)", s.NoLive, s.Choices)
			}
			t.Logf("repeat share %.3f, habit %.3f, %d choices, %d events", s.RepeatShare(), float64(s.HabitChoices)/float64(s.Choices), s.Choices, s.TotalEvents())
		})
	}
}

func TestStreamsFollowSchedules(t *testing.T) {
	w := world(t, 5, 500, 2000)
	st := w.Config().Start
	started := map[lr.StreamID]time.Time{}
	var lengths []time.Duration
	perStreamer := map[lr.StreamerID]int{}
	_, err := w.Run(context.Background(), st, st.Add(7*day), func(e lr.Event) error {
		switch e.Type {
		case lr.EventStreamStarted:
			started[e.StreamID] = e.TS
			perStreamer[e.StreamerID]++
			if e.Category == "" || e.Title == "" {
				return fmt.Errorf("stream.started without category or title: %+v", e)
			}
		case lr.EventStreamEnded:
			lengths = append(lengths, e.TS.Sub(started[e.StreamID]))
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lengths {
		if l < time.Hour || l > 5*time.Hour {
			t.Fatalf("stream of %s, want 1-5 h", l)
		}
	}
	// Streamers take days off: nobody streams all 7 days on average, and
	// the average streamer streams on some days.
	var total int
	for _, n := range perStreamer {
		total += n
	}
	if avg := float64(total) / 500; avg < 2 || avg > 6 {
		t.Fatalf("%.1f streams per streamer in a week", avg)
	}
}

func TestHistoryPairsEvents(t *testing.T) {
	w := world(t, 9, 60, 600)
	st := w.Config().Start
	var streams, watches, gifts, follows int
	var watchSecs int64
	ended := 0
	h := &sim.History{
		Stream: func(r sim.StreamRecord) error {
			streams++
			if !r.Ended.IsZero() {
				ended++
				if r.Ended.Before(r.Started) {
					return fmt.Errorf("stream %d ends before it starts", r.ID)
				}
			}
			return nil
		},
		Watch: func(r sim.WatchRecord) error {
			watches++
			watchSecs += int64(r.Seconds)
			if r.Seconds < 0 || r.EventID == "" || r.Streamer == 0 {
				return fmt.Errorf("bad watch %+v", r)
			}
			return nil
		},
		Gift: func(r sim.GiftRecord) error { gifts++; return nil },
	}
	stats, err := w.Run(context.Background(), st, st.Add(2*day), h.Add, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Flush(func(sim.FollowRecord) error { follows++; return nil }); err != nil {
		t.Fatal(err)
	}
	if int64(ended) != stats.Events[lr.EventStreamEnded] || int64(streams) != stats.Events[lr.EventStreamStarted] ||
		int64(watches) != stats.Events[lr.EventViewerLeft] || int64(gifts) != stats.Events[lr.EventGiftSent] {
		t.Fatalf("history %d streams (%d ended), %d watches, %d gifts; events %v", streams, ended, watches, gifts, stats.Events)
	}
	if follows == 0 || int64(follows) > stats.Events[lr.EventFollowCreated] {
		t.Fatalf("%d follows from %d follow.created", follows, stats.Events[lr.EventFollowCreated])
	}
	if d := watchSecs - stats.WatchSeconds; d < -int64(watches) || d > int64(watches) {
		t.Fatalf("history watched %d s, stats %d s", watchSecs, stats.WatchSeconds)
	}
}

func TestBadConfigAndWindow(t *testing.T) {
	if _, err := sim.New(sim.Config{Users: -1, Streamers: 10}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("negative users: %v", err)
	}
	w := world(t, 1, 10, 10)
	st := w.Config().Start
	if _, err := w.Run(context.Background(), st.Add(-time.Hour), st, func(lr.Event) error { return nil }, nil); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("window before start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Run(ctx, st, st.Add(day), func(lr.Event) error { return nil }, nil); err != context.Canceled {
		t.Fatalf("cancelled: %v", err)
	}
}

// RunLive tells a consumer that starts at the window what is already live:
// the original start events (same id and time), each followed by a
// heartbeat at the window's start, then the original joins of the viewers
// watching then, which are exactly the viewers the simulator holds.
func TestRunLiveReopensLiveStreams(t *testing.T) {
	w := world(t, 13, 200, 1000)
	st := w.Config().Start
	from, to := st.Add(day+20*time.Hour), st.Add(day+21*time.Hour)
	starts := map[lr.StreamerID]lr.Event{} // open at from, from the whole run
	joins := map[lr.UserID]lr.Event{}      // viewers watching at from
	if _, err := w.Run(context.Background(), st, from, func(e lr.Event) error {
		switch e.Type {
		case lr.EventStreamStarted:
			starts[e.StreamerID] = e
		case lr.EventStreamEnded:
			delete(starts, e.StreamerID)
		case lr.EventViewerJoined:
			joins[e.UserID] = e
		case lr.EventViewerLeft:
			delete(joins, e.UserID)
		}
		return nil
	}, nil); err != nil {
		t.Fatal(err)
	}
	var plain []lr.Event
	if _, err := w.Run(context.Background(), from, to, func(e lr.Event) error { plain = append(plain, e); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	var got []lr.Event
	stats, err := w.RunLive(context.Background(), from, to, func(e lr.Event) error { got = append(got, e); return nil }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ann := 2*len(starts) + len(joins)
	if len(starts) < 5 || len(joins) < 5 || stats.Reopened != int64(len(starts)) || stats.ReopenedViewers != int64(len(joins)) || len(got) != len(plain)+ann {
		t.Fatalf("%d live and %d watching at from, reopened %d and %d, %d events vs %d plain", len(starts), len(joins), stats.Reopened, stats.ReopenedViewers, len(got), len(plain))
	}
	for i := 0; i < 2*len(starts); i += 2 {
		e, hb := got[i], got[i+1]
		if starts[e.StreamerID] != e || (i > 0 && e.StreamID < got[i-2].StreamID) {
			t.Fatalf("re-emitted %+v, the original was %+v", e, starts[e.StreamerID])
		}
		if hb.Type != lr.EventStreamHeartbeat || !hb.TS.Equal(from) || hb.StreamID != e.StreamID || hb.StreamerID != e.StreamerID || hb.ID == e.ID {
			t.Fatalf("after %+v came %+v, want its heartbeat at %s", e, hb, from)
		}
	}
	viewers := map[lr.StreamID]int{}
	for i, e := range got[2*len(starts) : ann] {
		if joins[e.UserID] != e || (i > 0 && e.TS.Before(got[2*len(starts)+i-1].TS)) {
			t.Fatalf("re-emitted join %+v, the original was %+v", e, joins[e.UserID])
		}
		if _, live := starts[e.StreamerID]; !live {
			t.Fatalf("join %+v of a stream not live", e)
		}
		viewers[e.StreamID]++
	}
	// Every viewer.left in the window of a join before it pairs with an
	// announced join.
	left := map[lr.UserID]bool{}
	for _, e := range plain {
		switch e.Type {
		case lr.EventViewerJoined:
			left[e.UserID] = true // later leaves are of this window's joins
		case lr.EventViewerLeft:
			if !left[e.UserID] {
				if j, ok := joins[e.UserID]; !ok || j.StreamID != e.StreamID {
					t.Fatalf("leave %+v without an announced join", e)
				}
				left[e.UserID] = true
			}
		}
	}
	if len(viewers) < 3 {
		t.Fatalf("announced viewers in only %d streams", len(viewers))
	}
	if !slices.Equal(got[ann:], plain) {
		t.Fatal("RunLive's window events differ from Run's")
	}
	// A window too short to hold any event of its own still announces them.
	got = got[:0]
	stats, err = w.RunLive(context.Background(), from, from.Add(time.Millisecond), func(e lr.Event) error { got = append(got, e); return nil }, nil)
	if err != nil || stats.Reopened != int64(len(starts)) || len(got) != ann {
		t.Fatalf("1 ms window: %d events, %d reopened, want %d (%v)", len(got), stats.Reopened, ann, err)
	}
}

func TestPaceFollowsEventTime(t *testing.T) {
	w := world(t, 1, 50, 300)
	st := w.Config().Start
	from := st.Add(20 * time.Hour)
	n, flushes := 0, 0
	emit := sim.Pace(context.Background(), from, 3600, func(lr.Event) error { n++; return nil }, func() error { flushes++; return nil })
	began := time.Now()
	// 20 simulated minutes at 3600x: a third of a second.
	if _, err := w.Run(context.Background(), from, from.Add(20*time.Minute), emit, nil); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 300*time.Millisecond || took > 5*time.Second || n == 0 || flushes == 0 {
		t.Fatalf("%d events, %d flushes in %v, want about 333ms", n, flushes, took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := sim.Pace(ctx, from, 1, func(lr.Event) error { return nil }, nil)
	if _, err := w.Run(ctx, from, from.Add(time.Hour), slow, nil); err != context.DeadlineExceeded {
		t.Fatalf("cancelled pacing: %v", err)
	}
}

// With NewUserShare, about that share of users sign up inside the window
// and never act before their created_at; the other users are those of the
// world without the option.
func TestNewUsersActOnlyAfterSigningUp(t *testing.T) {
	cfg := sim.Config{Seed: 3, Streamers: 200, Users: 2000, NewUserShare: 0.2, NewUserWindow: 2 * day}
	w, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	plain := world(t, 3, 200, 2000)
	st := w.Config().Start
	created := map[lr.UserID]time.Time{}
	for i := 0; i < 2000; i++ {
		u, p := w.User(i), plain.User(i)
		if u.CreatedAt.Before(st) {
			if u.CreatedAt != p.CreatedAt || u.Language != p.Language {
				t.Fatalf("user %d changed by the option: %+v, without %+v", i, u, p)
			}
			continue
		}
		if u.CreatedAt.After(st.Add(2 * day)) {
			t.Fatalf("user %d created %s, after the window", i, u.CreatedAt)
		}
		created[u.ID] = u.CreatedAt
	}
	if n := len(created); n < 300 || n > 500 {
		t.Fatalf("%d new users of 2000, want about 400", n)
	}
	acted := map[lr.UserID]bool{}
	_, err = w.Run(context.Background(), st, st.Add(3*day), func(e lr.Event) error {
		if c, ok := created[e.UserID]; ok {
			if e.TS.Before(c) {
				t.Fatalf("user %d signs up at %s but acts at %s: %+v", e.UserID, c, e.TS, e)
			}
			acted[e.UserID] = true
		}
		return nil
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(acted) < len(created)/2 {
		t.Fatalf("only %d of %d new users did anything in 3 days", len(acted), len(created))
	}
	if _, err := sim.New(sim.Config{NewUserShare: 1.5}); lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("share 1.5: err %v, want EINVALID", err)
	}
}

func TestUserIndexInvertsUserID(t *testing.T) {
	for _, i := range []int{0, 1, 41, 19999} {
		if got := sim.UserIndex(sim.UserID(i)); got != i {
			t.Fatalf("UserIndex(UserID(%d)) = %d", i, got)
		}
	}
}
