package recall_test

import (
	"context"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
)

// outcome returns res's outcome of channel ch.
func outcome(t *testing.T, res *recall.Result, ch string) recall.Outcome {
	t.Helper()
	for _, o := range res.Outcomes {
		if o.Channel == ch {
			return o
		}
	}
	t.Fatalf("no outcome of %s in %+v", ch, res.Outcomes)
	return recall.Outcome{}
}

// An Override's channel switches apply to its request only: the engine
// disables fresh; a request whose override disables mf and enables fresh
// runs fresh and not mf, and the next request without one is back to the
// engine's configuration.
func TestOverrideSwitchesChannelsForItsRequestOnly(t *testing.T) {
	w := newWorld(t, 5, 8)
	e := w.engine(recall.Config{Disabled: map[string]bool{recall.ChanFresh: true}}, nil)
	ctx := context.Background()
	over := &recall.Override{Disabled: map[string]bool{recall.ChanMF: true}, Enabled: map[string]bool{recall.ChanFresh: true}}
	for _, c := range []struct {
		over      *recall.Override
		mf, fresh string
	}{
		{over, recall.StatusSkipped, recall.StatusOK},
		{nil, recall.StatusOK, recall.StatusSkipped},
		{over, recall.StatusSkipped, recall.StatusOK},
	} {
		res, err := e.Recall(ctx, recall.Request{User: 7, K: 10, Override: c.over})
		if err != nil {
			t.Fatal(err)
		}
		if got := outcome(t, res, recall.ChanMF).Status; got != c.mf {
			t.Errorf("override %v: mf %s, want %s", c.over != nil, got, c.mf)
		}
		if got := outcome(t, res, recall.ChanFresh).Status; got != c.fresh {
			t.Errorf("override %v: fresh %s, want %s", c.over != nil, got, c.fresh)
		}
		e.Release(res)
	}
}

// An Override's candidate counts and quotas: mf asked for 2 proposes 2
// (the engine's 40 would give all 5 live); a quota of 1 admits one mf
// candidate to the merge before the others (a PerChannel without a
// quota is the quota, as in Config).
func TestOverridePerChannelAndQuota(t *testing.T) {
	w := newWorld(t, 5, 8)
	e := w.engine(recall.Config{Disabled: map[string]bool{recall.ChanTrending: true, recall.ChanFresh: true}}, nil)
	ctx := context.Background()
	fromMF := func(res *recall.Result) int {
		n := 0
		for _, c := range res.Candidates {
			if len(c.Channels) > 0 && c.Channels[0] == recall.ChanMF {
				n++
			}
		}
		return n
	}
	for _, c := range []struct {
		name       string
		over       *recall.Override
		asked, got int
	}{
		{"default", nil, 5, 5},
		{"per_channel", &recall.Override{PerChannel: map[string]int{recall.ChanMF: 2}}, 2, 2},
		{"quota", &recall.Override{Quota: map[string]int{recall.ChanMF: 1}}, 5, 1},
	} {
		res, err := e.Recall(ctx, recall.Request{User: 7, K: 10, Override: c.over})
		if err != nil {
			t.Fatal(err)
		}
		if o := outcome(t, res, recall.ChanMF); o.Status != recall.StatusOK || o.Candidates != c.asked {
			t.Errorf("%s: mf outcome %+v, want ok with %d", c.name, o, c.asked)
		}
		if n := fromMF(res); n != c.got {
			t.Errorf("%s: %d candidates from mf, want %d", c.name, n, c.got)
		}
		e.Release(res)
	}
}

// An Override's channel budget bounds its channel for its request: an mf
// search that would take the whole (patient) request budget times out
// within the override's millisecond, and the request ends long before
// the engine's own budget.
func TestOverrideChannelBudget(t *testing.T) {
	w := newWorld(t, 5, 8)
	e := w.engine(recall.Config{}, nil) // 10 s budgets
	w.idx.Delay = time.Hour             // every search: until its ctx ends
	start := time.Now()
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10,
		Override: &recall.Override{ChannelBudget: map[string]time.Duration{recall.ChanMF: time.Millisecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcome(t, res, recall.ChanMF); o.Status != recall.StatusTimeout {
		t.Fatalf("mf outcome %+v, want timeout", o)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the request took %v: the override's budget of mf was not applied (the engine's is 10 s)", took)
	}
}

// A channel that needs nothing it could wait for computes at once, in the
// request's goroutine: its answer is kept even when its budget has run out
// meanwhile (the request's goroutine was not running, say), since dropping
// it would save no time. Here trending's budget is a nanosecond, gone
// before it starts; run in a goroutine of its own, it would be dropped as
// a timeout.
func TestChannelAtHandKeptPastItsBudget(t *testing.T) {
	w := newWorld(t, 5, 8)
	e := w.engine(recall.Config{}, nil)
	e.RefreshRankings()
	res, err := e.Recall(context.Background(), recall.Request{User: 7, K: 10,
		Override: &recall.Override{ChannelBudget: map[string]time.Duration{recall.ChanTrending: time.Nanosecond}}})
	if err != nil {
		t.Fatal(err)
	}
	if o := outcome(t, res, recall.ChanTrending); o.Status != recall.StatusOK || o.Candidates == 0 {
		t.Fatalf("trending outcome %+v, want ok with its candidates", o)
	}
}

// A pinned version replaces the serving one for its request: the result
// names the pinned label, the user's row is the one of the pinned id (the
// index has no vector of user 7 under an id it does not serve, so mf has
// nothing to search with), and the next request without a pin serves
// the index's version again.
func TestPinnedVersion(t *testing.T) {
	w := newWorld(t, 5, 8)
	e := w.engine(recall.Config{}, nil)
	ctx := context.Background()
	serving := w.idx.Model(lr.ModelMF)
	res, err := e.Recall(ctx, recall.Request{User: 7, K: 10, Override: &recall.Override{MF: recall.Pin{ID: serving.ID + 100, Version: "mf-other"}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions["mf"] != "mf-other" || res.User.Versions.MF != serving.ID+100 || res.UserKnown {
		t.Fatalf("pinned: versions %v, user row %+v (known %v)", res.Versions, res.User.Versions, res.UserKnown)
	}
	if o := outcome(t, res, recall.ChanMF); o.Status != recall.StatusSkipped {
		t.Fatalf("pinned to a version without the user: mf %+v, want skipped", o)
	}
	e.Release(res)
	res, err = e.Recall(ctx, recall.Request{User: 7, K: 10, Override: &recall.Override{MF: recall.Pin{ID: serving.ID, Version: serving.Version}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions["mf"] != serving.Version || !res.UserKnown || outcome(t, res, recall.ChanMF).Status != recall.StatusOK {
		t.Fatalf("pinned to the serving version: versions %v known %v outcomes %v", res.Versions, res.UserKnown, res.Outcomes)
	}
	e.Release(res)
	res, err = e.Recall(ctx, recall.Request{User: 7, K: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Versions["mf"] != serving.Version || res.User.Versions.MF != serving.ID {
		t.Fatalf("unpinned: versions %v row %+v", res.Versions, res.User.Versions)
	}
	e.Release(res)
}

// BenchmarkRecallOverride is a recall with an experiment arm's override
// and pinned version (the serving one), beside BenchmarkRecallTracing/off,
// the default path.
func BenchmarkRecallOverride(b *testing.B) {
	t := &testing.T{}
	w := newWorld(t, 200, 200)
	e := w.engine(recall.Config{}, nil)
	mv := w.idx.Model(lr.ModelMF)
	req := recall.Request{User: 7, K: 20,
		Override: &recall.Override{MF: recall.Pin{ID: mv.ID, Version: mv.Version}, PerChannel: map[string]int{recall.ChanMF: 60}, Disabled: map[string]bool{recall.ChanFresh: true}}}
	b.ReportAllocs()
	for b.Loop() {
		res, err := e.Recall(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		e.Release(res)
	}
}
