package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/foldin"
	"github.com/liverecall/liverecall/replay"
	"github.com/liverecall/liverecall/rerank"
	"github.com/liverecall/liverecall/sim"
)

// sampleDays are the days of impressions the rerankers train on: the
// last ones before the evaluated day, with the embedding models trained
// on the days before them (the features as the service would have logged
// them then).
const sampleDays = 2

// negKeep is the share of the unwatched candidates of a decision kept as
// samples (uniformly, so that the order of the scores is unbiased); every
// candidate with an outcome is kept.
const negKeep = 0.15

// labeled is one impression as a training sample: its decision's index
// (time order) and its outcomes.
type labeled struct {
	dec int
	imp replay.Impression
}

// rerankRun is the part of the benchmark that trains the rerankers on
// simulated impressions and evaluates them on the held-out day.
type rerankRun struct {
	c                  config
	hist               *replay.History
	sampleFrom, evalOn time.Time
	rng                *rand.Rand
	last               *replay.Report
}

// runRerankers trains the reranker (logistic and gradient-boosted trees)
// on impressions of the sampleDays before the held-out day, logged as the
// full system ranked the candidates (models trained on the days before
// them), and evaluates every one through the service on the held-out day:
// HR@10 and NDCG@10 of the page, and the AUC of each objective on the
// held-out day's impressions. BENCH_QUALITY_REPLAY_VALIDATION=1 evaluates
// on the history's last day instead, the held-out day not simulated.
func runRerankers(ctx context.Context, c config) (map[string]float64, error) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	evalOn := start.AddDate(0, 0, c.days)
	what := "held-out day"
	if os.Getenv("BENCH_QUALITY_REPLAY_VALIDATION") != "" {
		evalOn = evalOn.AddDate(0, 0, -1)
		what = "VALIDATION day (the held-out day not simulated)"
	}
	// A tenth of the users sign up during the simulated days (evenly, up
	// to the end of the evaluated day): the users new on a day.
	// The request context on (the users' local time, device and locale
	// reach the service with each decision, and shape what they watch).
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start,
		NewUserShare: 0.1, NewUserWindow: time.Duration(c.days+1) * 24 * time.Hour, Context: true})
	if err != nil {
		return nil, err
	}
	var b replay.Builder
	if _, err := w.Run(ctx, start, evalOn.AddDate(0, 0, 1), func(e lr.Event) error { b.Add(e); return nil }, func(ch sim.Choice) error {
		b.Context(ch.User, ch.TS, ch.Context)
		return nil
	}); err != nil {
		return nil, err
	}
	r := &rerankRun{c: c, hist: b.History(), sampleFrom: evalOn.AddDate(0, 0, -sampleDays), evalOn: evalOn, rng: rand.New(rand.NewPCG(c.seed, 0x7e7a))}
	fmt.Printf("\n# rerankers: trained on the impressions of %s to %s (embedding models trained on the days before), evaluated on the %s %s\n",
		r.sampleFrom.Format(time.DateOnly), evalOn.AddDate(0, 0, -1).Format(time.DateOnly), what, evalOn.Format(time.DateOnly))

	// Training impressions as the service logs them with the nightly
	// vectors, and as it logs them with fold-in on (a platform running
	// fold-in retrains its reranker on those).
	nightly, err := r.trainSet(ctx, false)
	if err != nil {
		return nil, err
	}
	folded, err := r.trainSet(ctx, true)
	if err != nil {
		return nil, err
	}
	def := rerank.DefaultWeights()
	models := []scored{
		{name: "default weights", row: replay.Full, score: logisticScore(def)},
		{name: "logistic", row: "logistic", score: logisticScore(nightly.logit), model: nightly.logit},
		{name: "GBDT", row: "gbdt", score: forestScore(nightly.gbdt), model: nightly.gbdt},
		{name: "logistic, no context features", row: "logistic-noctx", score: logisticScore(nightly.logitNoCtx), model: nightly.logitNoCtx},
		{name: "GBDT, no context features", row: "gbdt-noctx", score: forestScore(nightly.gbdtNoCtx), model: nightly.gbdtNoCtx},
	}
	// The fold-in rows: the rerankers above served with MF user vectors
	// folded in from the session, and the rerankers trained on the
	// impressions logged with fold-in on.
	folds := []scored{
		{name: "default weights", row: "default+foldin", model: def, nightly: replay.Full},
		{name: "logistic", row: "logistic+foldin", model: nightly.logit, nightly: "logistic"},
		{name: "GBDT", row: "gbdt+foldin", model: nightly.gbdt, nightly: "gbdt"},
		{name: "logistic, trained with fold-in", row: "logistic-f+foldin", model: folded.logit, nightly: "logistic"},
		{name: "GBDT, trained with fold-in", row: "gbdt-f+foldin", model: folded.gbdt, nightly: "gbdt"},
	}

	// The held-out day, through the service.
	t2 := time.Now()
	var rows []replay.Reranker
	for _, m := range models {
		if m.row != replay.Full {
			rows = append(rows, replay.Reranker{Name: m.row, Model: m.model})
		}
	}
	for _, m := range folds {
		rows = append(rows, replay.Reranker{Name: m.row, Model: m.model, FoldIn: true})
	}
	newUser, newFolded := map[string][]int{}, map[string][]int{}
	var newDecs []newDecision
	// The ranks at every decision of the rows' figures, for the paired
	// comparisons of the goals' rows.
	paired := map[string][]int{}
	held, heldDecs, err := r.impressions(ctx, evalOn, evalOn.AddDate(0, 0, 1), c.replayMax, rows, func(d replay.Decision) {
		if !d.Extra {
			for _, name := range []string{"logistic", headlineNightly, headlineFoldIn} {
				paired[name] = append(paired[name], d.Ranks[name])
			}
		}
		if !d.Known {
			newDecs = append(newDecs, newDecision{user: d.User, at: d.At, folded: d.Folded, ranks: d.Ranks})
			for name, rank := range d.Ranks {
				newUser[name] = append(newUser[name], rank)
				if d.Folded {
					newFolded[name] = append(newFolded[name], rank)
				}
			}
		}
	}, false)
	if err != nil {
		return nil, err
	}
	rep := r.last
	fmt.Printf("held-out impressions: %d of %d decisions, %s; replayed in %.1f s\n\n", len(held), heldDecs, outcomeShares(held), time.Since(t2).Seconds())
	fmt.Println("| reranker | HR@10 | NDCG@10 | AUC watched | AUC watch s | AUC gift | AUC follow | decisions |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	head := map[string]float64{}
	for _, m := range models {
		rw, _ := rep.Row(m.row)
		aucs := aucsOf(held, m.score)
		fmt.Printf("| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %d |\n", m.name, rw.All.HR10, rw.All.NDCG10,
			aucs[0], aucs[1], aucs[2], aucs[3], rw.All.N)
		switch m.row {
		case "logistic", "gbdt":
			head["ndcg10_"+m.row] = rw.All.NDCG10
			head["hr10_"+m.row] = rw.All.HR10
			for k, obj := range []string{"watched", "watch_seconds", "gift", "follow"} {
				head["auc_"+obj+"_"+m.row] = round4(aucs[k])
			}
		}
	}
	fmt.Println("\nAUCs on the evaluated day's impressions, each head against its objective's label (the watch-seconds head against watched); a logistic model's one score for every objective. \"no context features\": trained with feature set 3 zeroed.")
	nNew := len(newUser[replay.Full])
	bd := newUserBreakdown(r.hist, newDecs, foldin.DefaultNewUserWindow, foldin.DefaultWindow)
	fmt.Printf("\nfold-in: MF user vectors folded in from the session's watches at each decision; users new that day = no nightly MF vector (%d decisions of them, every one scored)\n", nNew)
	fmt.Printf("new users: %s\n\n", bd)
	fmt.Println("| reranker | HR@10 nightly | HR@10 fold-in | NDCG@10 nightly | NDCG@10 fold-in | new users HR@10 nightly | new users HR@10 fold-in | new users NDCG@10 nightly | new users NDCG@10 fold-in | new users folded HR@10 nightly | new users folded HR@10 fold-in |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, m := range folds {
		a, _ := rep.Row(m.nightly)
		b, _ := rep.Row(m.row)
		na, nb := newMetrics(newUser[m.nightly]), newMetrics(newUser[m.row])
		fa, fb := newMetrics(newFolded[m.nightly]), newMetrics(newFolded[m.row])
		fmt.Printf("| %s | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f | %.4f |\n", m.name, a.All.HR10, b.All.HR10, a.All.NDCG10, b.All.NDCG10,
			na.HR10, nb.HR10, na.NDCG10, nb.NDCG10, fa.HR10, fb.HR10)
		if m.row == headlineFoldIn {
			head["hr10_new_users_nightly"], head["hr10_new_users_foldin"] = na.HR10, nb.HR10
			head["hr10_nightly"], head["hr10_foldin"] = a.All.HR10, b.All.HR10
		}
	}

	// The goals of the issue, met or not, on the figures above.
	lg, gb := head["ndcg10_logistic"], head["ndcg10_gbdt"]
	fmt.Printf("\ngoal: GBDT NDCG@10 above logistic: %.4f vs %.4f: %s\n", gb, lg, metIf(gb > lg))
	dm, dlo, dhi := ndcgDiff(paired["logistic"], paired["gbdt"])
	fmt.Printf("  paired, GBDT minus logistic per decision: NDCG@10 %+.4f (95%% interval %+.4f to %+.4f); HR@10 %s\n", dm, dlo, dhi, pairHits(paired["logistic"], paired["gbdt"]))
	nn, nf := head["hr10_new_users_nightly"], head["hr10_new_users_foldin"]
	fmt.Printf("goal: fold-in raises new users' HR@10 by at least 20%% relative (GBDT trained with fold-in vs GBDT, nightly vectors): %.4f -> %.4f (%+.1f%%): %s\n",
		nn, nf, 100*(nf/nn-1), metIf(nf >= 1.2*nn))
	// What fold-in could give at most: a decision it serves no folded
	// vector gets the nightly row's page; at best every other one is a hit.
	served := hitBound(newDecs, headlineNightly, func(i int) bool { return newDecs[i].folded })
	anyHit := hitBound(newDecs, headlineNightly, func(i int) bool { return bd.earlier[i] })
	var firsts []int
	for i, d := range newDecs {
		if !bd.earlier[i] {
			firsts = append(firsts, d.ranks[headlineNightly])
		}
	}
	fmt.Printf("  bound: with the nightly GBDT's pages where no folded vector served and a hit at each of the %d decisions with one, new users' HR@10 %.4f (%+.1f%%); a hit at every decision after the user's first watch (%d), %.4f (%+.1f%%); the %d first watches: HR@10 %.4f\n",
		bd.folded, served, 100*(served/nn-1), bd.n-bd.first, anyHit, 100*(anyHit/nn-1), len(firsts), newMetrics(firsts).HR10)
	var pairNew [2][]int
	for _, d := range newDecs {
		pairNew[0] = append(pairNew[0], d.ranks[headlineNightly])
		pairNew[1] = append(pairNew[1], d.ranks[headlineFoldIn])
	}
	fmt.Printf("  paired, GBDT nightly vs GBDT trained with fold-in: new users: %s\n", pairHits(pairNew[0], pairNew[1]))
	on, of := head["hr10_nightly"], head["hr10_foldin"]
	fmt.Printf("goal: fold-in does not lower the overall HR@10 (same rows): %.4f -> %.4f: %s\n", on, of, metIf(of >= on))
	fmt.Printf("  paired, GBDT nightly vs GBDT trained with fold-in: %s\n", pairHits(paired[headlineNightly], paired[headlineFoldIn]))
	return head, nil
}

// headlineFoldIn is the fold-in row of the last line's new-user figures:
// the system as the issue builds it (the GBDT reranker), fold-in on and
// the reranker trained on the impressions logged with it, against the
// GBDT reranker with the nightly vectors (fixed before this row was
// first run).
const headlineFoldIn = "gbdt-f+foldin"

// headlineNightly is the row headlineFoldIn is compared with.
const headlineNightly = "gbdt"

func metIf(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// trained are the rerankers of one set of training impressions.
type trained struct {
	logit, logitNoCtx rerank.Weights
	gbdt, gbdtNoCtx   *rerank.Forest
}

// trainSet logs the training impressions (fold-in on or off), splits
// them in time (the later fifth of the decisions validates: early
// stopping of the trees) and trains logistic and GBDT rerankers on them,
// with the context features and without: the same training with feature
// set 3 zeroed, which gives a model that does not read them (a logistic
// weight stays at its default 0, a tree never splits on a constant), so
// it is served as it is.
func (r *rerankRun) trainSet(ctx context.Context, foldIn bool) (*trained, error) {
	what := "nightly MF vectors"
	if foldIn {
		what = "fold-in on"
	}
	t0 := time.Now()
	train, decs, err := r.impressions(ctx, r.sampleFrom, r.evalOn, r.c.sampleMax, nil, nil, foldIn)
	if err != nil {
		return nil, err
	}
	fit, valid := split(train, decs*4/5)
	fmt.Printf("training impressions (%s): %d of %d decisions (%d fit, %d validate; unwatched candidates kept at %.0f%%), %s (%.1f s)\n",
		what, len(train), decs, len(fit), len(valid), 100*negKeep, outcomeShares(train), time.Since(t0).Seconds())
	out := &trained{}
	t1 := time.Now()
	for i, set := range [2][]labeled{fit, zeroContext(fit)} {
		w, err := rerank.Train(samples(set), rerank.TrainConfig{Seed: r.c.seed})
		if err != nil {
			return nil, fmt.Errorf("training the logistic reranker (%s): %w", what, err)
		}
		*[2]*rerank.Weights{&out.logit, &out.logitNoCtx}[i] = w
	}
	fmt.Printf("  logistic trained in %.1f s: validation log loss %.4f (default weights %.4f)\n",
		time.Since(t1).Seconds(), rerank.LogLoss(samples(valid), out.logit), rerank.LogLoss(samples(valid), rerank.DefaultWeights()))
	t2 := time.Now()
	var tm rerank.TreeModel
	for i, set := range [2][2][]labeled{{fit, valid}, {zeroContext(fit), zeroContext(valid)}} {
		m, err := rerank.TrainTrees(samples(set[0]), samples(set[1]), rerank.GBDTConfig{Seed: r.c.seed})
		if err != nil {
			return nil, fmt.Errorf("training the GBDT reranker (%s): %w", what, err)
		}
		f, err := rerank.CompileChecked(m)
		if err != nil {
			return nil, err
		}
		*[2]**rerank.Forest{&out.gbdt, &out.gbdtNoCtx}[i] = f
		if i == 0 {
			tm = m
		}
	}
	hm := rerank.HeadMetrics(out.gbdt, samples(valid))
	fmt.Printf("  GBDT trained in %.1f s: trees per head %s; objective weights %s; validation AUC watched %.4f gift %.4f follow %.4f\n",
		time.Since(t2).Seconds(), treeCounts(tm), objWeights(tm), hm["auc_watched"], hm["auc_gift"], hm["auc_follow"])
	return out, nil
}

func objWeights(m rerank.TreeModel) string {
	var parts []string
	for _, o := range []rerank.Objective{rerank.ObjWatched, rerank.ObjWatchSeconds, rerank.ObjGift, rerank.ObjFollow} {
		parts = append(parts, fmt.Sprintf("%s %g", o, m.Weights[o]))
	}
	return strings.Join(parts, ", ")
}

// scored is a reranker of the tables: how it scores a sample offline and
// what it serves.
type scored struct {
	name    string
	row     string                       // its row of the replay
	score   func(x []float64) [4]float64 // per objective: watched, watch seconds, gift, follow
	model   rerank.Model
	nightly string // for a fold-in row: the row of the same reranker without
}

func logisticScore(w rerank.Weights) func([]float64) [4]float64 {
	return func(x []float64) [4]float64 {
		z := w.Bias
		for j, v := range x {
			z += w.W[j] * v
		}
		return [4]float64{z, z, z, z}
	}
}

// impressions replays the decisions in [from, to) (at most max of them,
// every n-th) with the models trained on the history before from, and
// returns the impressions kept, in decision order, and the number of
// decisions. r.last holds the replay's report.
func (r *rerankRun) impressions(ctx context.Context, from, to time.Time, max int, rows []replay.Reranker, onDec func(replay.Decision), foldIn bool) ([]labeled, int, error) {
	var out []labeled
	decs := 0
	rep, err := replay.Run(ctx, r.hist, replay.Config{
		HoldoutFrom: from, Until: to, MaxDecisions: max, Models: []string{"als", "ncf"}, NoChannels: true, Rerankers: rows, AllNew: onDec != nil, FoldIn: foldIn,
		Labels: replay.Labels{Until: to},
		Impressions: func(d replay.Decision, imps []replay.Impression) {
			if d.Extra {
				return
			}
			for _, im := range imps {
				if im.Watched || im.WatchSeconds > 0 || im.Gift || im.Follow || r.rng.Float64() < negKeep {
					out = append(out, labeled{dec: decs, imp: im})
				}
			}
			decs++
		},
		OnDecision: onDec,
	})
	if err != nil {
		return nil, 0, err
	}
	r.last = rep
	return out, decs, nil
}

func split(ls []labeled, cut int) (fit, valid []labeled) {
	i := sort.Search(len(ls), func(i int) bool { return ls[i].dec >= cut })
	return ls[:i], ls[i:]
}

func samples(ls []labeled) []rerank.Sample {
	out := make([]rerank.Sample, len(ls))
	for i, l := range ls {
		out[i] = rerank.Sample{X: l.imp.X, Label: l.imp.Watched, WatchSeconds: l.imp.WatchSeconds, Gift: l.imp.Gift, Follow: l.imp.Follow}
	}
	return out
}

// forestScore scores x with each head of f (the ranking score for a
// head f has not).
func forestScore(f *rerank.Forest) func([]float64) [4]float64 {
	objs := [4]rerank.Objective{rerank.ObjWatched, rerank.ObjWatchSeconds, rerank.ObjGift, rerank.ObjFollow}
	return func(x []float64) [4]float64 {
		var out [4]float64
		for k, o := range objs {
			p, ok := f.Predict(o, x)
			if !ok {
				p = f.Score(x)
			}
			out[k] = p
		}
		return out
	}
}

func treeCounts(m rerank.TreeModel) string {
	var parts []string
	for _, h := range m.Heads {
		parts = append(parts, fmt.Sprintf("%s %d", h.Objective, len(h.Trees)))
	}
	return strings.Join(parts, ", ")
}

func outcomeShares(ls []labeled) string {
	var w, g, f int
	for _, l := range ls {
		if l.imp.Watched {
			w++
		}
		if l.imp.Gift {
			g++
		}
		if l.imp.Follow {
			f++
		}
	}
	return fmt.Sprintf("%d watched, %d gifts, %d follows", w, g, f)
}

// aucsOf is the AUC of each objective's score on ls: watched, watch
// seconds (against watched), gift and follow.
func aucsOf(ls []labeled, score func([]float64) [4]float64) [4]float64 {
	s := make([][4]float64, len(ls))
	for i, l := range ls {
		s[i] = score(l.imp.X)
	}
	var out [4]float64
	labels := [4]func(replay.Outcome) bool{
		func(o replay.Outcome) bool { return o.Watched },
		func(o replay.Outcome) bool { return o.Watched },
		func(o replay.Outcome) bool { return o.Gift },
		func(o replay.Outcome) bool { return o.Follow },
	}
	for k := range out {
		xs := make([]float64, len(ls))
		ys := make([]bool, len(ls))
		for i, l := range ls {
			xs[i], ys[i] = s[i][k], labels[k](l.imp.Outcome)
		}
		out[k] = rerank.AUC(xs, ys)
	}
	return out
}

// newMetrics are the figures of the ranks (0-based, -1 beyond the page)
// of the decisions of new users.
func newMetrics(ranks []int) replay.Metrics {
	m := replay.Metrics{N: len(ranks)}
	if len(ranks) == 0 {
		return m
	}
	for _, r := range ranks {
		if r >= 0 && r < 10 {
			m.HR10++
			m.NDCG10 += 1 / math.Log2(float64(r)+2)
		}
	}
	m.HR10 = round4(m.HR10 / float64(len(ranks)))
	m.NDCG10 = round4(m.NDCG10 / float64(len(ranks)))
	return m
}

// zeroContext returns ls with the context features (feature set 3) zeroed
// in copies of the vectors.
func zeroContext(ls []labeled) []labeled {
	from := slices.Index(rerank.FeatureNames, "hour_sin")
	out := make([]labeled, len(ls))
	for i, l := range ls {
		l.imp.X = slices.Clone(l.imp.X)
		clear(l.imp.X[from:])
		out[i] = l
	}
	return out
}
