// Command bench-quality measures recommendation quality end to end on the simulated
// world: it simulates a week of history, trains MF (implicit ALS) and NCF
// (NeuMF) on it, builds the real indexes, then replays a held-out day
// through the live state and, at every user decision, asks four variants of
// the system for 10 streamers among those live at that moment:
// trending only, MF only, MF + NCF (recall channels merged), and the full
// system (every channel, reranked). Availability-aware HR@10 and NDCG@10 are
// computed against what the simulated user actually chose. Then it replays
// the same history as `liverecall eval --format replay` does (package
// replay): the full system, each channel alone and the three baselines on
// the held-out day's watch starts, HR@1/5/10 and NDCG@10, repeat and new
// targets (BENCH_QUALITY_REPLAY_ONLY=1 runs this part alone). The last line
// is the JSON headline, with "replay_hr1_full", "replay_hr1_repeat_baseline",
// "replay_hr10_full" and "replay_hr10_repeat_baseline".
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/simbench"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/sim"
	"github.com/liverecall/liverecall/userstore"
)

type config struct {
	streamers, users, days int
	seed                   uint64
	every                  int // score every n-th decision of the held-out day
	replayMax              int // decisions the replay scores at most
	sampleMax              int // decisions the rerankers' training impressions come from at most
}

func main() {
	c := config{streamers: 2000, users: 20000, days: 7, seed: 1, every: 1, replayMax: 8000, sampleMax: 12000}
	if os.Getenv("QUICK") != "" {
		c = config{streamers: 1000, users: 8000, days: 5, seed: 1, every: 2, replayMax: 3000, sampleMax: 5000}
	}
	ctx := context.Background()
	// BENCH_QUALITY_REPLAY_ONLY=1 runs the replay alone,
	// BENCH_QUALITY_RERANK_ONLY=1 the rerankers alone.
	replayOnly, rerankOnly := os.Getenv("BENCH_QUALITY_REPLAY_ONLY") != "", os.Getenv("BENCH_QUALITY_RERANK_ONLY") != ""
	head := map[string]float64{}
	var err error
	part := func(f func(context.Context, config) (map[string]float64, error)) {
		if err != nil {
			return
		}
		var h map[string]float64
		h, err = f(ctx, c)
		for k, v := range h {
			head[k] = v
		}
	}
	if !replayOnly && !rerankOnly {
		part(run)
	}
	if !rerankOnly {
		part(runReplay)
	}
	if !replayOnly {
		part(runRerankers)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-quality:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(head)
	fmt.Println(string(b))
}

func run(ctx context.Context, c config) (map[string]float64, error) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	testDay := start.AddDate(0, 0, c.days)
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start})
	if err != nil {
		return nil, err
	}
	fmt.Printf("# end-to-end quality: %d streamers, %d users, %d days of history, held-out day %s, seed %d\n",
		c.streamers, c.users, c.days, testDay.Format(time.DateOnly), c.seed)

	// History → training data, and the live state as it stands when the
	// held-out day begins (follows, session history, who is live).
	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	ords := lr.NewOrdinals()
	t0 := time.Now()
	trainEvents, h, err := simbench.History(ctx, w, start, testDay)
	if err != nil {
		return nil, err
	}
	fmt.Printf("history: %d events, %d watch sessions, %d gifts, %d follows, %d streams (%.1f s)\n",
		len(trainEvents), len(h.Watches), len(h.Gifts), len(h.Follows), len(h.Streams), time.Since(t0).Seconds())

	store := simbench.NewStore(false)
	var ncfModel *embed.IDScorer
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		t := time.Now()
		m, err := embed.TrainLive(ctx, &h, embed.DefaultLiveConfig(kind))
		if err != nil {
			return nil, fmt.Errorf("training %s: %w", kind, err)
		}
		store.Put(kind, m)
		if m.Scorer != nil {
			ncfModel = m.Scorer
		}
		fmt.Printf("trained %s in %.1f s: held-out HR@10 %.3f (availability-aware, within the history)\n", kind, time.Since(t).Seconds(), m.Metrics.All.HR10)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mgr, err := index.NewManager(index.Config{Store: store, Ordinals: ords, Logger: log})
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
	if ncfModel != nil {
		// The trained scorer holds its users' weights (legacy mode: it
		// scores every user whatever row the request carries).
		scorer = recommend.NewNeuMF("ncf-bench", store.IDs[lr.ModelNCF], ncfModel, ords)
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgr.SetLive(v) }, Clock: now, HistoryLen: 50})
	apply := func(evs []lr.Event) {
		if len(evs) == 0 {
			return
		}
		clock.Store(evs[len(evs)-1].TS.UnixNano())
		state.Apply(evs)
	}
	for i := 0; i < len(trainEvents); i += 4096 {
		apply(trainEvents[i:min(i+4096, len(trainEvents))])
	}
	trainEvents = nil

	all := []string{recall.ChanMF, recall.ChanNCF, recall.ChanSession, recall.ChanFollow, recall.ChanTrending, recall.ChanFresh}
	only := func(keep ...string) map[string]bool {
		d := map[string]bool{}
		for _, ch := range all {
			d[ch] = true
		}
		for _, ch := range keep {
			delete(d, ch)
		}
		return d
	}
	// Each variant is the service's composition (recommend.Service) over
	// its own recall engine; the recall-only ones serve the recall order.
	type variant struct {
		name    string
		engine  *recall.Engine
		service *recommend.Service
		eval    *sim.Evaluator
	}
	mk := func(name string, disabled map[string]bool, rr bool) *variant {
		e := recall.New(recall.Config{Budget: time.Second, ShownDisabled: true, Disabled: disabled, Now: now}, state, ords, mgr, users, nil, nil)
		svc := recommend.New(recommend.Config{Recall: e, Users: state, Streams: state, Index: mgr, UserStore: users, Ordinals: ords,
			Scorers: recommend.Fixed(rerank.DefaultWeights(), scorer), RecallOrder: !rr, Now: now})
		return &variant{name: name, engine: e, service: svc, eval: sim.NewEvaluator(10)}
	}
	variants := []*variant{
		mk("trending only", only(recall.ChanTrending), false),
		mk("MF only", only(recall.ChanMF), false),
		mk("MF + NCF", only(recall.ChanMF, recall.ChanNCF), false),
		mk("full (all channels, reranked)", nil, true),
	}

	// The held-out day: events reach the live state before each decision is
	// scored, as they would reach the service; rankings refresh every
	// simulated minute.
	var pending []lr.Event
	lastRefresh := time.Time{}
	decisions, seen := 0, 0
	t1 := time.Now()
	flush := func(at time.Time) {
		apply(pending)
		pending = pending[:0]
		clock.Store(at.UnixNano())
		if at.Sub(lastRefresh) >= time.Minute {
			state.Expire(at)
			for _, v := range variants {
				v.engine.RefreshRankings()
			}
			lastRefresh = at
		}
	}
	stats, err := w.Run(ctx, testDay, testDay.AddDate(0, 0, 1), func(e lr.Event) error {
		pending = append(pending, e)
		return nil
	}, func(ch sim.Choice) error {
		seen++
		if seen%c.every != 0 {
			return nil
		}
		decisions++
		flush(ch.TS)
		for _, v := range variants {
			page, err := v.service.Recommend(ctx, lr.RecommendRequest{User: ch.User, K: 10})
			if err != nil {
				return err
			}
			var ranked []lr.StreamerID
			for _, it := range page.Items {
				ranked = append(ranked, it.StreamerID)
			}
			v.eval.Add(ch, ranked)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Printf("held-out day: %d decisions (%d scored), repeat share %.2f, %.1f s\n\n", stats.Choices, decisions, stats.RepeatShare(), time.Since(t1).Seconds())
	fmt.Println("| variant | HR@10 | NDCG@10 | decisions | mean live candidates | not-live recommended |")
	fmt.Println("|---|---|---|---|---|---|")
	res := map[string]sim.Quality{}
	for _, v := range variants {
		q := v.eval.Result()
		res[v.name] = q
		fmt.Printf("| %s | %.4f | %.4f | %d | %.0f | %d |\n", v.name, q.HR, q.NDCG, q.Choices, q.MeanLive, q.NotLive)
	}
	tr, full := res["trending only"], res["full (all channels, reranked)"]
	fmt.Printf("\nfull system vs trending only: HR@10 %+.4f (x%.2f), NDCG@10 %+.4f (x%.2f)\n\n",
		full.HR-tr.HR, full.HR/tr.HR, full.NDCG-tr.NDCG, full.NDCG/tr.NDCG)
	return map[string]float64{
		"hr10_trending": round4(tr.HR), "hr10_mf": round4(res["MF only"].HR), "hr10_mf_ncf": round4(res["MF + NCF"].HR),
		"hr10_full": round4(full.HR), "ndcg10_full": round4(full.NDCG),
	}, nil
}

func round4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }
