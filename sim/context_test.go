package sim_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/events"
	"github.com/liverecall/liverecall/sim"
)

// choicesDigest hashes the events and the choices of a world of cfg over
// its first day and a half.
func choicesDigest(t *testing.T, cfg sim.Config) (string, []sim.Choice) {
	t.Helper()
	w, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	st := w.Config().Start
	var choices []sim.Choice
	_, err = w.Run(context.Background(), st, st.Add(36*time.Hour), func(e lr.Event) error {
		h.Write(events.Encode(e))
		h.Write([]byte{'\n'})
		return nil
	}, func(c sim.Choice) error {
		fmt.Fprintf(h, "%d %d %d %d %v %v\n", c.TS.UnixMilli(), c.User, c.Streamer, c.Stream, c.Repeat, c.Habit)
		c.Live, c.IsLive = nil, nil
		choices = append(choices, c)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), choices
}

// offDigest is choicesDigest of the world {Seed 11, 200 streamers, 2000
// users} as the build before Config.Context gave it: a world without
// context is the same world, event for event and choice for choice.
const offDigest = "daabd9aecd91f9bd4c6b7a1c6381b110e2d76eb536c78d2940e3ac2457687a95"

func TestContextOffChangesNothing(t *testing.T) {
	d, choices := choicesDigest(t, sim.Config{Seed: 11, Streamers: 200, Users: 2000})
	if d != offDigest {
		t.Errorf("world without context: digest %s, want %s (the world of earlier builds)", d, offDigest)
	}
	for _, c := range choices {
		if c.Context != (lr.RequestContext{}) {
			t.Fatalf("choice %+v has a context", c)
		}
	}
}

// contextRun runs a world over two days and measures what context should
// shape: the share of choices of a streamer of the user's language, the
// mean watch time by device, the habit share by local night and day.
type contextRun struct {
	choices                  int
	sameLang                 float64
	watch                    map[lr.Device]float64 // mean seconds
	habitNight, habitDay     float64
	streamLangs, startEvents int
}

func runContext(t *testing.T, on bool) contextRun {
	t.Helper()
	w, err := sim.New(sim.Config{Seed: 5, Streamers: 300, Users: 4000, Context: on})
	if err != nil {
		t.Fatal(err)
	}
	userLang := map[lr.UserID]string{}
	_ = w.Users(func(u sim.User) error { userLang[u.ID] = u.Language; return nil })
	// The users' offsets as the world with context gives them, to tell
	// local night from day in both worlds.
	wc, err := sim.New(sim.Config{Seed: 5, Streamers: 300, Users: 4000, Context: true})
	if err != nil {
		t.Fatal(err)
	}
	offset := map[lr.UserID]time.Duration{}
	_ = wc.Users(func(u sim.User) error { offset[u.ID] = u.UTCOffset; return nil })
	streamerLang := map[lr.StreamerID]string{}
	_ = w.Streamers(func(s sim.Streamer) error { streamerLang[s.ID] = s.Language; return nil })
	type watch struct {
		u lr.UserID
		s lr.StreamID
	}
	device := map[watch]lr.Device{}
	joined := map[watch]time.Time{}
	secs, n := map[lr.Device]float64{}, map[lr.Device]float64{}
	var out contextRun
	var same, night, nightHabit, day, dayHabit float64
	st := w.Config().Start
	_, err = w.Run(context.Background(), st, st.Add(48*time.Hour), func(e lr.Event) error {
		k := watch{e.UserID, e.StreamID}
		switch e.Type {
		case lr.EventStreamStarted:
			out.startEvents++
			if e.Language != "" {
				out.streamLangs++
				if e.Language != streamerLang[e.StreamerID] {
					t.Fatalf("stream.started of %d says %q, the streamer speaks %q", e.StreamerID, e.Language, streamerLang[e.StreamerID])
				}
			}
		case lr.EventViewerJoined:
			joined[k] = e.TS
		case lr.EventViewerLeft:
			if j, ok := joined[k]; ok {
				d := device[k]
				secs[d] += e.TS.Sub(j).Seconds()
				n[d]++
			}
		}
		return nil
	}, func(c sim.Choice) error {
		out.choices++
		if streamerLang[c.Streamer] == userLang[c.User] {
			same++
		}
		rc := c.Context
		device[watch{c.User, c.Stream}] = rc.Device
		if on && (!rc.LocalTime || rc.Language != userLang[c.User] || rc.Country == "" || rc.Clean() != rc) {
			t.Fatalf("choice %+v: context %+v", c, rc)
		}
		if h := c.TS.Add(offset[c.User]).Hour(); h < 6 {
			night++
			if c.Habit {
				nightHabit++
			}
		} else if h >= 10 {
			day++
			if c.Habit {
				dayHabit++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out.sameLang = same / float64(out.choices)
	out.watch = map[lr.Device]float64{}
	for d := range n {
		out.watch[d] = secs[d] / n[d]
	}
	if night > 0 && day > 0 {
		out.habitNight, out.habitDay = nightHabit/night, dayHabit/day
	}
	return out
}

// With Config.Context the choices carry the user's context, stream.started
// events the streamer's language, and context shapes behaviour: more
// choices in the user's language, longer sessions on a TV than on a phone,
// more habit at local night. Without it none of that is there.
func TestContextEffectPresentWhenOnAbsentWhenOff(t *testing.T) {
	off, on := runContext(t, false), runContext(t, true)
	t.Logf("off: %d choices, same language %.3f, watch %v", off.choices, off.sameLang, off.watch)
	t.Logf("on: %d choices, same language %.3f, watch %v, habit night %.3f day %.3f", on.choices, on.sameLang, on.watch, on.habitNight, on.habitDay)
	t.Logf("habit share at local night and by day: off %.3f %.3f, on %.3f %.3f", off.habitNight, off.habitDay, on.habitNight, on.habitDay)
	if off.streamLangs != 0 || len(off.watch) != 1 {
		t.Errorf("off: %d stream languages, watch by device %v: want no context at all", off.streamLangs, off.watch)
	}
	if on.streamLangs != on.startEvents || on.startEvents == 0 {
		t.Errorf("on: %d of %d stream.started carry a language", on.streamLangs, on.startEvents)
	}
	if on.sameLang < off.sameLang+0.03 {
		t.Errorf("same-language share %.3f on, %.3f off: want a clear rise", on.sameLang, off.sameLang)
	}
	if tv, mobile := on.watch[lr.DeviceTV], on.watch[lr.DeviceMobile]; tv < 1.5*mobile {
		t.Errorf("mean watch %.0f s on a TV, %.0f s on a phone: want TV well above", tv, mobile)
	}
	if gapOn, gapOff := on.habitNight-on.habitDay, off.habitNight-off.habitDay; gapOn < gapOff+0.03 {
		t.Errorf("habit share at local night minus by day: %.3f on, %.3f off: want a clear rise", gapOn, gapOff)
	}
}
