package replay

import (
	"context"
	"slices"
	"sort"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
)

// Labels configures the outcomes joined to impressions (Config.Impressions),
// as `liverecall train --model rerank` joins logged impressions with the
// events that followed them.
type Labels struct {
	// Window: a watch of the streamer must start within this after the
	// impression (default 10 minutes, the train command's
	// -rerank-watch-within).
	Window time.Duration
	// MinSeconds: and last at least this long to count as watched
	// (default 60, the train command's -rerank-min-seconds).
	MinSeconds float64
	// CapSeconds caps the watch seconds (default 3600).
	CapSeconds float64
	// FollowWithin: a follow of the streamer within this after the
	// impression counts (default 30 minutes).
	FollowWithin time.Duration
	// Until: nothing at or after it is seen (watches starting, gifts,
	// follows; a session running at Until ends there), as a training job
	// run at Until sees the history. Zero: no cut.
	Until time.Time
}

func (l *Labels) defaults() {
	if l.Window <= 0 {
		l.Window = 10 * time.Minute
	}
	if l.MinSeconds <= 0 {
		l.MinSeconds = 60
	}
	if l.CapSeconds <= 0 {
		l.CapSeconds = 3600
	}
	if l.FollowWithin <= 0 {
		l.FollowWithin = 30 * time.Minute
	}
}

// Outcome is what the user did after an impression.
type Outcome struct {
	// Watched: a watch session of the streamer started within
	// Labels.Window and lasted at least Labels.MinSeconds.
	Watched bool
	// WatchSeconds of the first session started within the window (0
	// when none), capped at Labels.CapSeconds.
	WatchSeconds float64
	// Gift: the user sent the streamer a gift during that session.
	Gift bool
	// Follow: the user followed the streamer within Labels.FollowWithin.
	Follow bool
}

// Impression is one candidate the full system ranked at a scored
// decision: its rerank feature vector as rerank computed it then, and
// what the user did afterwards.
type Impression struct {
	At       time.Time
	User     lr.UserID
	Streamer lr.StreamerID
	// Rank is its 0-based position when the full system orders all the
	// decision's candidates (the page is the first K of the request).
	Rank int
	X    []float64
	Outcome
}

// outcomes answers Outcome queries from a history, cut at Labels.Until.
type outcomes struct {
	l       Labels
	watches map[[2]int64][]Watch     // (user, streamer) → sessions by start
	gifts   map[[2]int64][]time.Time // (user, streamer) → gift times, sorted
	follows map[[2]int64]time.Time   // (user, streamer) → follow creation
}

func newOutcomes(h *History, watches []Watch, l Labels) *outcomes {
	l.defaults()
	o := &outcomes{l: l, watches: map[[2]int64][]Watch{}, gifts: map[[2]int64][]time.Time{}, follows: map[[2]int64]time.Time{}}
	seen := func(t time.Time) bool { return l.Until.IsZero() || t.Before(l.Until) }
	for _, w := range watches { // sorted by start
		if seen(w.Start) {
			k := [2]int64{int64(w.User), int64(w.Streamer)}
			o.watches[k] = append(o.watches[k], w)
		}
	}
	for _, g := range h.Gifts {
		if seen(g.At) {
			k := [2]int64{int64(g.User), int64(g.Streamer)}
			o.gifts[k] = append(o.gifts[k], g.At)
		}
	}
	for k := range o.gifts {
		slices.SortFunc(o.gifts[k], func(a, b time.Time) int { return a.Compare(b) })
	}
	for _, f := range h.Follows {
		if seen(f.At) {
			o.follows[[2]int64{int64(f.User), int64(f.Streamer)}] = f.At
		}
	}
	return o
}

// of is the outcome of showing s to u at at.
func (o *outcomes) of(u lr.UserID, s lr.StreamerID, at time.Time) Outcome {
	var out Outcome
	k := [2]int64{int64(u), int64(s)}
	ws := o.watches[k]
	i := sort.Search(len(ws), func(i int) bool { return !ws[i].Start.Before(at) })
	if i < len(ws) && ws[i].Start.Before(at.Add(o.l.Window)) {
		w := ws[i]
		end := w.End
		if !o.l.Until.IsZero() && (end.IsZero() || end.After(o.l.Until)) {
			end = o.l.Until
		}
		secs := o.l.CapSeconds // a session still open, with no cut: as long as can count
		if !end.IsZero() {
			secs = min(end.Sub(w.Start).Seconds(), o.l.CapSeconds)
		}
		out.WatchSeconds = secs
		out.Watched = secs >= o.l.MinSeconds
		gs := o.gifts[k]
		j := sort.Search(len(gs), func(j int) bool { return !gs[j].Before(w.Start) })
		out.Gift = j < len(gs) && (end.IsZero() || gs[j].Before(end))
	}
	if f, ok := o.follows[k]; ok && !f.Before(at) && f.Before(at.Add(o.l.FollowWithin)) {
		out.Follow = true
	}
	return out
}

// capture is a Recaller that keeps a copy of the candidates of the last
// request it served, for the impressions of a decision.
type capture struct {
	recommend.Recaller
	cands []recall.Candidate
	row   *recall.Result
}

func (c *capture) Recall(ctx context.Context, req recall.Request) (*recall.Result, error) {
	res, err := c.Recaller.Recall(ctx, req)
	if err != nil {
		return nil, err
	}
	c.cands = c.cands[:0]
	for _, x := range res.Candidates {
		x.Channels = slices.Clone(x.Channels)
		c.cands = append(c.cands, x)
	}
	c.row = &recall.Result{User: res.User, UserKnown: res.UserKnown}
	return res, nil
}

// impressions are the candidates cp captured at decision d, every one with
// its feature vector and rank as rerank orders them all with w, and its
// outcome.
func impressions(cp *capture, d Watch, w rerank.Model, users recommend.Users, ncf *recommend.NeuMF, o *outcomes, now time.Time) []Impression {
	rc := &rerank.Context{User: d.User, Now: now, History: users.History(d.User), Follows: users.Follows(d.User), Request: d.Context.Clean()}
	if ncf != nil {
		if s := ncf.ForUser(d.User, cp.row.User); s != nil {
			rc.NCF, rc.NCFBatch = s, s
		}
	}
	items := rerank.Rank(cp.cands, w, rc, len(cp.cands))
	out := make([]Impression, len(items))
	for i, it := range items {
		out[i] = Impression{At: d.Start, User: d.User, Streamer: it.StreamerID, Rank: i, X: slices.Clone(it.Vector),
			Outcome: o.of(d.User, it.StreamerID, d.Start)}
	}
	rerank.Release(items)
	return out
}
