package replay_test

import (
	"context"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/replay"
	"github.com/liverecall/liverecall/sim"
)

// simulated returns days of simulated history plus a held-out day, as the
// history tables hold it (streams and watches still open at the end have
// no end).
func simulated(t *testing.T, users, streamers, days int) (*replay.History, time.Time) {
	t.Helper()
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	testDay := start.AddDate(0, 0, days)
	w, err := sim.New(sim.Config{Seed: 1, Users: users, Streamers: streamers, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	var b replay.Builder
	if _, err := w.Run(context.Background(), start, testDay.AddDate(0, 0, 1), func(e lr.Event) error { b.Add(e); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	h := b.History()
	return h, testDay
}

// On the simulator's held-out day the full system ranks the watched
// streamer first at least as often as the user's most-watched live
// streamer does, and holds more of them in its first ten. (With the
// weights before the replay tuned them, repeat 1.5 and NCF 1.0, or with
// the already-shown filter demoting streamers the user went on to watch,
// it did not.)
func TestReplayFullSystemAtLeastTheRepeatHeuristic(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model on a simulated history")
	}
	h, testDay := simulated(t, 2000, 300, 3)
	rep, err := replay.Run(context.Background(), h, replay.Config{HoldoutFrom: testDay, MaxDecisions: 3000})
	if err != nil {
		t.Fatal(err)
	}
	full, _ := rep.Row(replay.Full)
	rp, _ := rep.Row(replay.Repeat)
	t.Logf("full HR@1 %.4f HR@10 %.4f; repeat heuristic HR@1 %.4f HR@10 %.4f (%d decisions)", full.All.HR1, full.All.HR10, rp.All.HR1, rp.All.HR10, rep.Decisions)
	if rep.Decisions < 1000 {
		t.Fatalf("%d decisions", rep.Decisions)
	}
	if full.All.HR1 < rp.All.HR1 || full.All.HR10 < rp.All.HR10 {
		t.Errorf("full system HR@1 %.4f HR@10 %.4f, the repeat heuristic %.4f and %.4f", full.All.HR1, full.All.HR10, rp.All.HR1, rp.All.HR10)
	}
}
