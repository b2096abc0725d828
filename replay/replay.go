// Package replay evaluates the whole serving system on a watch history: it
// replays the history in time order as events into the live state of a
// recommend.Service composed as the service composes it (recall channels,
// integrity and already-shown filters, rerank), with models trained only on
// the history before the held-out period, and at each held-out watch start
// asks for a page for that user at that moment. Where the watched streamer
// lands on the page scores the system; the same decisions score each
// channel alone and three baselines (popularity, most viewers now, the
// user's most-watched live streamers then popularity), and optionally other
// rerankers, with or without MF vectors folded in from the session
// (Config.Rerankers). It also gives the impressions of each decision with
// what followed them (Config.Impressions): the samples the reranker trains
// on, as the service would have logged them.
package replay

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/foldin"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/userstore"
)

// Stream is one live session of a streamer; a zero End means still live.
type Stream struct {
	ID         lr.StreamID
	Streamer   lr.StreamerID
	Category   string
	Language   string // BCP 47 ("pt"); "" when unknown
	Start, End time.Time
}

// Watch is one watch session; a zero End means still watching. A zero
// Stream is the streamer's stream live at Start.
type Watch struct {
	User       lr.UserID
	Streamer   lr.StreamerID
	Stream     lr.StreamID
	Start, End time.Time
	// Context is the request context of the decision the watch began
	// with (the client's local time, device, locale); zero when unknown.
	Context lr.RequestContext
}

// Gift is one gift.
type Gift struct {
	User     lr.UserID
	Streamer lr.StreamerID
	Stream   lr.StreamID
	Amount   float64
	At       time.Time
}

// Follow is one active follow, created at At.
type Follow struct {
	User     lr.UserID
	Streamer lr.StreamerID
	At       time.Time
}

// History is what is replayed: the rows of the history tables.
type History struct {
	Streams []Stream
	Watches []Watch
	Gifts   []Gift
	Follows []Follow
}

// Reranker is a row of the full system with its own reranker model
// and, optionally, MF user vectors folded in from the session.
type Reranker struct {
	Name string
	// Model is the reranker's model (logistic rerank.Weights or a
	// compiled tree ensemble, *rerank.Forest); nil: Config.Weights.
	Model rerank.Model
	// FoldIn: the MF channel and the MF scores use the user's vector
	// folded in from the watches of the last hours (package foldin) at
	// each decision, instead of the nightly one.
	FoldIn bool
}

// Row names of a Report besides the channels (recall.Channels).
const (
	Full        = "full"         // every channel, reranked: what the service serves
	Popularity  = "popularity"   // most users in the training period
	MostViewers = "most_viewers" // most viewers at the decision
	Repeat      = "repeat"       // the user's most-watched live streamers, then popularity
)

// Config configures Run.
type Config struct {
	// HoldoutFrom: watches started at or after it are the decisions
	// scored; the models train on the history before it. Required.
	HoldoutFrom time.Time
	// MaxDecisions scores at most about this many decisions (every n-th
	// held-out watch start, in time order); 0 scores all.
	MaxDecisions int
	// Models to train: "als" (the mf channel) and optionally "ncf"
	// (NeuMF: the ncf channel and rerank's NCF score). Default als.
	Models []string
	// Train holds the training hyper-parameters (embed.DefaultLiveConfig
	// when zero); its split is replaced by HoldoutFrom.
	Train *embed.LiveConfig
	// Weights of rerank; nil: rerank.DefaultWeights.
	Weights *rerank.Weights
	// Model of rerank (logistic weights or a *rerank.Forest); when set it
	// is used instead of Weights.
	Model rerank.Model
	// Integrity filters (bans and blocks); nil: none.
	Integrity recall.Integrity
	// ShownWindow of the already-shown filter (0: the recall default).
	ShownWindow time.Duration
	// Until, when set, ends the decisions: only watches started before it
	// are scored (zero: every watch from HoldoutFrom on).
	Until time.Time
	// Rerankers are more rows of the system: the full composition with
	// each one's models instead of Weights (row kind "reranker"), scored
	// on the same decisions.
	Rerankers []Reranker
	// FoldIn: the full row (and so Impressions) serves with MF user
	// vectors folded in from the session, as Reranker.FoldIn.
	FoldIn bool
	// AllNew scores every decision of a user without a nightly MF vector
	// (Decision.Known false), not only every n-th: those beyond the
	// sample go to OnDecision with Extra set and count in no row.
	AllNew bool
	// NoChannels leaves out the rows of each channel alone.
	NoChannels bool
	// Impressions, if set, is given at every scored decision every
	// candidate the full system reranked for it (the page is the first K
	// of them), with its feature vector and its outcome (Labels): the
	// samples a reranker is trained on.
	Impressions func(Decision, []Impression)
	// Labels joins the impressions with what followed them.
	Labels Labels
	// OnDecision, if set, is told every scored decision.
	OnDecision func(Decision)
	// Progress, if set, is called after each scored decision.
	Progress func(done, total int)
	Log      *slog.Logger
}

// Decision is one scored held-out watch start.
type Decision struct {
	At     time.Time
	User   lr.UserID
	Target lr.StreamerID
	Repeat bool // the user watched Target before At
	// Known: the user has a vector in the MF model trained on the history
	// before HoldoutFrom (false for a user new since, or without "als").
	Known bool
	// Folded: the fold-in rows (Reranker.FoldIn) served the user a
	// vector folded in from the session.
	Folded bool
	// Extra: scored only because of Config.AllNew (in no row's figures).
	Extra bool
	Live  int // streamers live at At
	// Ranks holds, per row name, the target's 0-based position on the
	// page or in the baseline's order, -1 when not in the first K.
	Ranks map[string]int
}

// K is the page size asked for at each decision (HR@10, NDCG@10).
const K = 10

// Metrics are hit rates and NDCG over N decisions.
type Metrics struct {
	N      int     `json:"n"`
	HR1    float64 `json:"hr@1"`
	HR5    float64 `json:"hr@5"`
	HR10   float64 `json:"hr@10"`
	NDCG10 float64 `json:"ndcg@10"`
}

// Row is one ranker's figures on all, repeat and new targets, and on the
// decisions of users new since the models were trained.
type Row struct {
	Name   string  `json:"name"`
	Kind   string  `json:"kind"` // system, channel, reranker or baseline
	All    Metrics `json:"all"`
	Repeat Metrics `json:"repeat"`
	New    Metrics `json:"new"`
	// NewUsers: the decisions of users without a nightly MF vector
	// (Decision.Known false).
	NewUsers Metrics `json:"new_users"`
}

// Report is the outcome of Run.
type Report struct {
	HoldoutFrom  time.Time `json:"holdout_from"`
	TrainWatches int       `json:"train_watches"`
	HeldWatches  int       `json:"held_watches"`
	Decisions    int       `json:"decisions"`
	// NotLive counts sampled decisions whose streamer was not live at the
	// watch start in the streams history (not scored).
	NotLive  int     `json:"not_live"`
	MeanLive float64 `json:"mean_live"`
	TrainS   float64 `json:"train_s"`
	ReplayS  float64 `json:"replay_s"`
	Rows     []Row   `json:"rows"`
}

// Row returns the row named name.
func (r *Report) Row(name string) (Row, bool) {
	for _, x := range r.Rows {
		if x.Name == name {
			return x, true
		}
	}
	return Row{}, false
}

// event classes, in their order at one instant: a stream's start and end
// are applied at a decision at the same instant (a stream starting at t
// is live at t, one ending at t is not); the rest only when before it.
const (
	clsEnd = iota
	clsStart
	clsFollow
	clsJoin
	clsLeave
	clsGift
)

type timed struct {
	ev  lr.Event
	cls int
}

// variant is one composition of the service.
type variant struct {
	name, kind string
	engine     *recall.Engine
	svc        *recommend.Service
	acc        accum
}

type accum struct{ all, rep, nw, nu []int }

func (a *accum) add(rank int, repeat, known bool) {
	a.all = append(a.all, rank)
	if repeat {
		a.rep = append(a.rep, rank)
	} else {
		a.nw = append(a.nw, rank)
	}
	if !known {
		a.nu = append(a.nu, rank)
	}
}

// metrics are the figures of ranks (0-based, -1 beyond K), computed as
// every offline evaluation computes them (embed.MetricsFromRanks), rounded
// to 4 decimals.
func metrics(ranks []int) Metrics {
	rs := make([]int, len(ranks))
	for i, r := range ranks {
		if r < 0 {
			r = math.MaxInt32 // a miss at every cut-off
		}
		rs[i] = r
	}
	m := embed.MetricsFromRanks(rs)
	return Metrics{N: m.N, HR1: r4(m.HR1), HR5: r4(m.HR5), HR10: r4(m.HR10), NDCG10: r4(m.NDCG10)}
}

func r4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// Run replays h and scores the decisions from cfg.HoldoutFrom on. It
// fails with an EINVALID error when there is too little history before
// HoldoutFrom to train on or no watch from it on.
func Run(ctx context.Context, h *History, cfg Config) (*Report, error) {
	if cfg.HoldoutFrom.IsZero() {
		return nil, lr.Errorf(lr.EINVALID, "replay: the start of the held-out period is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(cfg.Models) == 0 {
		cfg.Models = []string{"als"}
	}
	var weights rerank.Model = rerank.DefaultWeights()
	if cfg.Model != nil {
		weights = cfg.Model
	} else if cfg.Weights != nil {
		weights = *cfg.Weights
	}
	if err := weights.Validate(); err != nil {
		return nil, err
	}
	rep := &Report{HoldoutFrom: cfg.HoldoutFrom}
	streams := slices.Clone(h.Streams)
	slices.SortStableFunc(streams, func(a, b Stream) int { return a.Start.Compare(b.Start) })
	watches := resolveStreams(h.Watches, streams)
	slices.SortStableFunc(watches, func(a, b Watch) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Streamer, b.Streamer))
	})
	nTrain := sort.Search(len(watches), func(i int) bool { return !watches[i].Start.Before(cfg.HoldoutFrom) })
	nHeld := len(watches)
	if !cfg.Until.IsZero() {
		nHeld = sort.Search(len(watches), func(i int) bool { return !watches[i].Start.Before(cfg.Until) })
	}
	rep.TrainWatches, rep.HeldWatches = nTrain, max(0, nHeld-nTrain)
	if rep.HeldWatches == 0 {
		return nil, lr.Errorf(lr.EINVALID, "replay: no watch starts at or after %s", cfg.HoldoutFrom.Format(time.RFC3339))
	}

	// Models, trained on the history before HoldoutFrom only.
	t0 := time.Now()
	ords := lr.NewOrdinals()
	store, ncf, err := train(ctx, h, watches[:nTrain], cfg)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	mgr, err := index.NewManager(index.Config{Store: store, Ordinals: ords, Kinds: store.kinds(), Logger: log})
	if err != nil {
		return nil, err
	}
	if _, err := mgr.Load(ctx); err != nil {
		return nil, err
	}
	users, err := userstore.New(userstore.Config{Source: store})
	if err != nil {
		return nil, err
	}
	var scorer *recommend.NeuMF
	if ncf != nil {
		scorer = recommend.NewNeuMF("ncf-replay", store.id(lr.ModelNCF), ncf, ords)
	}
	rep.TrainS = time.Since(t0).Seconds()

	// The live state and the compositions, all on the replay clock.
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: now})
	var variants []*variant
	var cp *capture // the full system's candidates, for Impressions
	var folder *foldin.Folder
	if cfg.FoldIn || slices.ContainsFunc(cfg.Rerankers, func(r Reranker) bool { return r.FoldIn }) {
		folder = foldin.New(foldin.Config{Index: mgr, History: state, Nightly: users, Ordinals: ords, Clock: now, Log: log})
	}
	mk := func(name, kind string, disabled map[string]bool, sc recommend.Scorers, fold bool) {
		var uv recall.UserVectors = users
		if fold {
			uv = folder.Overlay(users)
		}
		e := recall.New(recall.Config{Budget: time.Minute, ShownWindow: cfg.ShownWindow, Disabled: disabled, Now: now},
			state, ords, mgr, uv, cfg.Integrity, nil)
		var rc recommend.Recaller = e
		if name == Full && kind == "system" && cfg.Impressions != nil {
			cp = &capture{Recaller: e}
			rc = cp
		}
		svc := recommend.New(recommend.Config{Recall: rc, Users: state, Streams: state, Index: mgr, UserStore: users, Ordinals: ords,
			Scorers: sc, Now: now, Log: log})
		variants = append(variants, &variant{name: name, kind: kind, engine: e, svc: svc})
	}
	mk(Full, "system", nil, recommend.Fixed(weights, scorer), cfg.FoldIn)
	for _, r := range cfg.Rerankers {
		var w rerank.Model = weights
		if r.Model != nil {
			w = r.Model
			if err := w.Validate(); err != nil {
				return nil, err
			}
		}
		mk(r.Name, "reranker", nil, recommend.Fixed(w, scorer), r.FoldIn)
	}
	for _, ch := range recall.Channels {
		if cfg.NoChannels {
			break
		}
		if ch == recall.ChanNCF && ncf == nil {
			continue
		}
		off := map[string]bool{}
		for _, o := range recall.Channels {
			off[o] = o != ch
		}
		mk(ch, "channel", off, recommend.Fixed(weights, scorer), false)
	}
	var base [3]accum

	// Popularity: distinct users per streamer in the training period.
	pop := map[lr.StreamerID]int{}
	seenPair := map[[2]int64]bool{}
	for _, w := range watches[:nTrain] {
		k := [2]int64{int64(w.User), int64(w.Streamer)}
		if !seenPair[k] {
			seenPair[k] = true
			pop[w.Streamer]++
		}
	}

	evs := events(streams, watches, h.Gifts, h.Follows)
	held := watches[nTrain:max(nTrain, nHeld)]
	var outs *outcomes
	if cfg.Impressions != nil {
		outs = newOutcomes(h, watches, cfg.Labels)
	}
	mfUsers := store.users(lr.ModelMF)
	stride := 1
	if cfg.MaxDecisions > 0 && len(held) > cfg.MaxDecisions {
		stride = (len(held) + cfg.MaxDecisions - 1) / cfg.MaxDecisions
	}
	total := (len(held) + stride - 1) / stride
	// watched[u][s]: u's watch sessions of s started before the replay
	// clock (from the events applied).
	watched := map[lr.UserID]map[lr.StreamerID]int{}
	next := 0
	apply := func(t time.Time) {
		j := next
		for j < len(evs) && (evs[j].ev.TS.Before(t) || evs[j].ev.TS.Equal(t) && evs[j].cls <= clsStart) {
			j++
		}
		if j == next {
			return
		}
		batch := make([]lr.Event, 0, j-next)
		for _, x := range evs[next:j] {
			batch = append(batch, x.ev)
			if x.cls == clsJoin {
				m := watched[x.ev.UserID]
				if m == nil {
					m = map[lr.StreamerID]int{}
					watched[x.ev.UserID] = m
				}
				m[x.ev.StreamerID]++
			}
		}
		next = j
		for i := 0; i < len(batch); i += 4096 {
			state.Apply(batch[i:min(i+4096, len(batch))])
		}
	}
	vers := userstore.Versions{MF: store.id(lr.ModelMF), NCF: store.id(lr.ModelNCF)}
	t1 := time.Now()
	var liveSum float64
	var ranked []lr.StreamerID
	for i := 0; i < len(held); i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d := held[i]
		extra := i%stride != 0
		if extra && (!cfg.AllNew || mfUsers(d.User)) {
			continue
		}
		apply(d.Start)
		clock.Store(d.Start.UnixNano())
		snap := state.Snapshot()
		ord, ok := ords.Lookup(d.Streamer)
		if !ok || !snap.Contains(ord) {
			if extra {
				continue
			}
			rep.NotLive++
			if cfg.Progress != nil {
				cfg.Progress(rep.Decisions+rep.NotLive, total)
			}
			continue
		}
		// The user's vectors in the cache before any composition asks, so
		// that every one reranks with them whichever channels it runs.
		if _, err := users.Fetch(ctx, d.User, vers); err != nil {
			return nil, err
		}
		folded := false
		if folder != nil {
			// The user's watches applied so far, folded in (the service
			// folds them in within its debounce of the events).
			out, _ := folder.FoldNow(ctx, d.User)
			folded = out == foldin.OutcomeDone
		}
		dec := Decision{At: d.Start, User: d.User, Target: d.Streamer, Repeat: watched[d.User][d.Streamer] > 0,
			Known: mfUsers(d.User), Folded: folded, Extra: extra, Live: int(snap.GetCardinality()), Ranks: map[string]int{}}
		if !extra {
			liveSum += float64(dec.Live)
		}
		for _, v := range variants {
			v.engine.RefreshRankings()
			page, err := v.svc.Recommend(ctx, lr.RecommendRequest{User: d.User, K: K, Context: d.Context})
			if err != nil {
				return nil, fmt.Errorf("replay: %s at %s: %w", v.name, d.Start.Format(time.RFC3339), err)
			}
			ranked = ranked[:0]
			for _, it := range page.Items {
				ranked = append(ranked, it.StreamerID)
			}
			r := slices.Index(ranked, d.Streamer)
			dec.Ranks[v.name] = r
			if extra {
				continue
			}
			v.acc.add(r, dec.Repeat, dec.Known)
			if cp != nil && v.name == Full && v.kind == "system" {
				cfg.Impressions(dec, impressions(cp, d, weights, state, scorer, outs, now()))
			}
		}
		liveIDs := make([]lr.StreamerID, 0, dec.Live)
		viewers := map[lr.StreamerID]int{}
		for _, o := range snap.Ordinals() {
			id, ok := ords.ID(o)
			if !ok {
				continue
			}
			liveIDs = append(liveIDs, id)
			if f, ok := state.FeaturesAt(o, d.Start); ok {
				viewers[id] = f.Viewers
			}
		}
		mine := watched[d.User]
		keys := [3]func(lr.StreamerID) [2]int{
			func(s lr.StreamerID) [2]int { return [2]int{pop[s], 0} },
			func(s lr.StreamerID) [2]int { return [2]int{viewers[s], pop[s]} },
			func(s lr.StreamerID) [2]int { return [2]int{mine[s], pop[s]} },
		}
		for b, key := range keys {
			r := baselineRank(liveIDs, d.Streamer, key)
			dec.Ranks[[3]string{Popularity, MostViewers, Repeat}[b]] = r
			if !extra {
				base[b].add(r, dec.Repeat, dec.Known)
			}
		}
		if cfg.OnDecision != nil {
			cfg.OnDecision(dec)
		}
		if extra {
			continue
		}
		rep.Decisions++
		if cfg.Progress != nil {
			cfg.Progress(rep.Decisions+rep.NotLive, total)
		}
	}
	rep.ReplayS = time.Since(t1).Seconds()
	if rep.Decisions > 0 {
		rep.MeanLive = math.Round(liveSum/float64(rep.Decisions)*10) / 10
	}
	row := func(name, kind string, a *accum) {
		rep.Rows = append(rep.Rows, Row{Name: name, Kind: kind, All: metrics(a.all), Repeat: metrics(a.rep), New: metrics(a.nw), NewUsers: metrics(a.nu)})
	}
	for _, v := range variants {
		row(v.name, v.kind, &v.acc)
	}
	for b, name := range []string{Popularity, MostViewers, Repeat} {
		row(name, "baseline", &base[b])
	}
	return rep, nil
}

// baselineRank is target's 0-based position among live ordered by key
// (larger first; equal keys by streamer id), -1 beyond K.
func baselineRank(live []lr.StreamerID, target lr.StreamerID, key func(lr.StreamerID) [2]int) int {
	tk := key(target)
	r := 0
	for _, s := range live {
		if s == target {
			continue
		}
		k := key(s)
		if k[0] > tk[0] || k[0] == tk[0] && (k[1] > tk[1] || k[1] == tk[1] && s < target) {
			r++
		}
	}
	if r >= K {
		return -1
	}
	return r
}

// resolveStreams fills the stream of watches given without one: the
// streamer's stream live at the watch start (streams sorted by start).
func resolveStreams(ws []Watch, streams []Stream) []Watch {
	out := slices.Clone(ws)
	var by map[lr.StreamerID][]Stream
	for i := range out {
		w := &out[i]
		if w.Stream != 0 {
			continue
		}
		if by == nil {
			by = map[lr.StreamerID][]Stream{}
			for _, s := range streams {
				by[s.Streamer] = append(by[s.Streamer], s)
			}
		}
		for _, s := range by[w.Streamer] {
			if !s.Start.After(w.Start) && (s.End.IsZero() || s.End.After(w.Start)) {
				w.Stream = s.ID
			}
		}
	}
	return out
}

// events turns the history into the events the platform would have sent,
// in time order (classes ordered at one instant, see clsEnd).
func events(streams []Stream, watches []Watch, gifts []Gift, follows []Follow) []timed {
	out := make([]timed, 0, 2*len(streams)+2*len(watches)+len(gifts)+len(follows))
	n := 0
	add := func(cls int, e lr.Event) {
		n++
		e.ID = "replay-" + strconv.Itoa(n)
		out = append(out, timed{e, cls})
	}
	for _, s := range streams {
		add(clsStart, lr.Event{Type: lr.EventStreamStarted, TS: s.Start, StreamerID: s.Streamer, StreamID: s.ID, Category: s.Category, Language: s.Language})
		if !s.End.IsZero() {
			add(clsEnd, lr.Event{Type: lr.EventStreamEnded, TS: s.End, StreamerID: s.Streamer, StreamID: s.ID})
		}
	}
	for _, w := range watches {
		add(clsJoin, lr.Event{Type: lr.EventViewerJoined, TS: w.Start, StreamerID: w.Streamer, StreamID: w.Stream, UserID: w.User})
		if !w.End.IsZero() {
			add(clsLeave, lr.Event{Type: lr.EventViewerLeft, TS: w.End, StreamerID: w.Streamer, StreamID: w.Stream, UserID: w.User})
		}
	}
	for _, g := range gifts {
		add(clsGift, lr.Event{Type: lr.EventGiftSent, TS: g.At, StreamerID: g.Streamer, StreamID: g.Stream, UserID: g.User, Amount: g.Amount})
	}
	for _, f := range follows {
		add(clsFollow, lr.Event{Type: lr.EventFollowCreated, TS: f.At, StreamerID: f.Streamer, UserID: f.User})
	}
	slices.SortStableFunc(out, func(a, b timed) int {
		return cmp.Or(a.ev.TS.Compare(b.ev.TS), cmp.Compare(a.cls, b.cls))
	})
	return out
}
