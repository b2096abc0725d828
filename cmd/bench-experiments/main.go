// Command bench-experiments checks the machinery of online experiments on
// the simulated world, where the truth is known (issue 18, "Verification
// on the simulator"; `make bench-experiments`, QUICK=1 reduced).
//
// It simulates days of history, trains MF and NCF on them as
// bench-quality does, and builds two arms, each the service's whole
// composition (every channel, reranked) as a recommend.Service over its
// own index: control serves the trained models; treatment the same models
// with their streamer vectors shuffled across streamers (deliberately
// degraded: each streamer gets another's vectors, in MF and in NCF's
// index and full scorer). Shuffling MF alone (-shuffle mf) barely moves
// the pages' watch-through rate in this world — NCF and the session and
// follow channels put the same streamers first — so the default degrades
// both embedding models. Then it plays the held-out day: at every
// viewing decision the user's page comes from the arm experiment.ArmOf
// puts the user in — the benchmark routes requests itself, with the same
// ArmOf the service uses — and the other arm's page is computed too (the
// counterfactual, used by the sensitivity part; the services' shown-marking
// is off, so asking both changes nothing). How the user responds to a
// page is simulated by sim.PageModel (a position-biased choice model over
// the page on the world's true affinities, Choice.Affinity), drawn from
// seeded streams; responses do not feed back into the world.
//
// From the recorded pages:
//
//  1. A/A: aa runs experiments of two arms serving control's pages, each
//     with its own salt (its own split by ArmOf) and its own response
//     draws; the report statistics give the p-value of watch-through
//     rate; the share of runs with p < 0.05 must lie in [0.02, 0.08].
//     One simulated day serves every run: the pages a user gets do not
//     depend on the split (both arms serve the same recommender), so
//     only the split and the response draws change between runs.
//  2. A/B: control vs treatment split 50/50 by ArmOf on the whole day;
//     the report must find treatment's watch-through rate lower at
//     p < 0.01.
//  3. Sensitivity: over a doubling grid of user counts, each repeated
//     reps times on seeded samples of the day's users, the share of
//     repetitions reaching p < 0.05 with the right sign for A/B (users
//     split by ArmOf under a fresh salt) and for team-draft interleaving
//     (every page interleaved from both arms' pages by experiment.TeamDraft,
//     a page's winner the team of the watched position, the sign test of
//     wins); the users needed are the smallest count reaching 80%.
//
// The last line is the JSON headline: aa_runs, aa_false_positive_rate,
// ab_detected, ab_p, users_needed_ab, users_needed_interleaving and
// sensitivity_ratio (users_needed_ab ÷ users_needed_interleaving).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/experiment"
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
	ncf                    bool // train NCF too (the NCF channel and rerank's NCF score)
	aaRuns                 int  // A/A experiments
	reps                   int  // repetitions per user count of the sensitivity grid
	gridFrom               int  // the grid's first user count
	// shuffle names the models whose streamer vectors the treatment
	// shuffles (default MF and NCF).
	shuffle []lr.ModelKind
}

func main() {
	c := config{streamers: 2000, users: 40000, days: 7, seed: 1, ncf: true, aaRuns: 1000, reps: 40, gridFrom: 25}
	if os.Getenv("QUICK") != "" {
		c = config{streamers: 1000, users: 10000, days: 5, seed: 1, ncf: true, aaRuns: 500, reps: 20, gridFrom: 25}
	}
	// Flags change the scale (for trying other sizes; make uses none).
	flag.IntVar(&c.streamers, "streamers", c.streamers, "streamers of the simulated world")
	flag.IntVar(&c.users, "users", c.users, "users of the simulated world")
	flag.IntVar(&c.days, "days", c.days, "days of history before the held-out day")
	flag.Uint64Var(&c.seed, "seed", c.seed, "the world's and the draws' seed")
	flag.BoolVar(&c.ncf, "ncf", c.ncf, "train NCF too (its channel and rerank's NCF score)")
	flag.IntVar(&c.aaRuns, "aa", c.aaRuns, "A/A experiments")
	flag.IntVar(&c.reps, "reps", c.reps, "repetitions per user count of the sensitivity grid")
	shuffle := flag.String("shuffle", "mf,ncf", "the models whose streamer vectors the treatment shuffles (mf, ncf or mf,ncf)")
	flag.Parse()
	for _, k := range strings.Split(*shuffle, ",") {
		kind, err := lr.ParseModelKind(strings.TrimSpace(k))
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench-experiments: -shuffle:", err)
			os.Exit(2)
		}
		c.shuffle = append(c.shuffle, kind)
	}
	head, err := run(context.Background(), c, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-experiments:", err)
		os.Exit(1)
	}
	b, _ := json.Marshal(head)
	fmt.Println(string(b))
}

// headline is the last line.
type headline struct {
	AARuns          int     `json:"aa_runs"`
	AAFalsePositive float64 `json:"aa_false_positive_rate"`
	ABDetected      bool    `json:"ab_detected"`
	ABP             float64 `json:"ab_p"`
	// UsersNeededAB and UsersNeededInter are 0 when not reached with
	// every user of the day.
	UsersNeededAB    int     `json:"users_needed_ab"`
	UsersNeededInter int     `json:"users_needed_interleaving"`
	SensitivityRatio float64 `json:"sensitivity_ratio"` // 0 when either is 0
}

func run(ctx context.Context, c config, out io.Writer) (*headline, error) {
	t0 := time.Now()
	d, err := simulate(ctx, c, out)
	if err != nil {
		return nil, err
	}
	h := analyze(d, c, out)
	fmt.Fprintf(out, "total %.1f s\n", time.Since(t0).Seconds())
	return h, nil
}

// analyze runs the three parts on the recorded day, prints their tables
// and returns the headline.
func analyze(d *day, c config, out io.Writer) *headline {
	h := &headline{}
	fmt.Fprintf(out, "\n")
	aa := d.aa(c.aaRuns, c.seed)
	h.AARuns, h.AAFalsePositive = aa.runs, r4(aa.rate)
	lo, hi := sim.Wilson(aa.positives, aa.runs, 1.959963984540054)
	fmt.Fprintf(out, "A/A: %d experiments (control's pages in both arms, salts aa-0..aa-%d, fresh response draws each): %d with p < 0.05 on watch-through rate: false-positive rate %.4f (95%% Wilson %.3f-%.3f; must lie in [0.02, 0.08]: %s)\n",
		aa.runs, aa.runs-1, aa.positives, aa.rate, lo, hi, verdict(aa.rate >= 0.02 && aa.rate <= 0.08))
	fmt.Fprintf(out, "A/A p-values: mean %.3f, share below 0.01 %.4f, below 0.10 %.4f (uniform: 0.500, 0.01, 0.10)\n\n", aa.meanP, aa.below01, aa.below10)

	ab := d.abDay(c.seed)
	h.ABP = ab.p
	h.ABDetected = ab.p < 0.01 && ab.delta < 0
	fmt.Fprintf(out, "A/B on the whole held-out day (salt %q, 50/50 by experiment.ArmOf):\n\n", abSalt)
	fmt.Fprintln(out, "| arm | users | pages | impressions | watches | watch-through rate |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for a, name := range armNames {
		s := ab.arms[a]
		fmt.Fprintf(out, "| %s | %d | %d | %d | %d | %.5f |\n", name, s.users, s.pages, s.impressions, s.watches, s.rate)
	}
	fmt.Fprintf(out, "\ntreatment − control: %+.5f (%+.1f%%), 95%% CI [%+.5f, %+.5f], p %.3g; SRM chi-square p %.3f\n",
		ab.delta, 100*ab.relative, ab.lo, ab.hi, ab.p, ab.srmP)
	fmt.Fprintf(out, "statistics: experiment.Analyze (%s)\n", ab.method)
	fmt.Fprintf(out, "expected watch-through rate from the page model (no draws): control %.5f, treatment %.5f\n", ab.arms[0].expected, ab.arms[1].expected)
	fmt.Fprintf(out, "degradation found at p < 0.01 with the right sign: %s\n\n", verdict(h.ABDetected))

	common, sameTop := d.overlap()
	fmt.Fprintf(out, "the arms' pages share %.1f of %d streamers on average, the same first streamer on %.0f%% of decisions\n", common, pageK, 100*sameTop)
	sens := d.sensitivity(c.gridFrom, c.reps, c.seed)
	fmt.Fprintf(out, "sensitivity: share of %d repetitions reaching p < 0.05 with the right sign (A/B: users split 50/50 by ArmOf; interleaving: every page team-drafted from both arms, sign test of page wins)\n\n", c.reps)
	fmt.Fprintln(out, "| users | A/B significant | A/B mean p | interleaving significant | interleaving mean p | interleaved pages won control:treatment | won by a streamer on both pages |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|")
	cell := func(x float64, f string) string {
		if x < 0 {
			return "—" // not run: 80% reached at a smaller count
		}
		return fmt.Sprintf(f, x)
	}
	for _, g := range sens.grid {
		shared := -1.0
		if n := g.wins[0] + g.wins[1]; n > 0 {
			shared = float64(g.shared) / float64(n)
		}
		fmt.Fprintf(out, "| %d | %s | %s | %s | %s | %d:%d | %s |\n", g.users, cell(g.abShare, "%.2f"), cell(g.abMeanP, "%.3g"),
			cell(g.ilShare, "%.2f"), cell(g.ilMeanP, "%.3g"), g.wins[0], g.wins[1], cell(shared, "%.2f"))
	}
	h.UsersNeededAB, h.UsersNeededInter = sens.abNeeded, sens.ilNeeded
	if sens.abNeeded > 0 && sens.ilNeeded > 0 {
		h.SensitivityRatio = r4(float64(sens.abNeeded) / float64(sens.ilNeeded))
	}
	fmt.Fprintf(out, "\nusers needed for 80%% of repetitions at p < 0.05: A/B %s, interleaving %s; A/B ÷ interleaving %.1f\n",
		needed(sens.abNeeded, d.activeUsers()), needed(sens.ilNeeded, d.activeUsers()), h.SensitivityRatio)
	return h
}

func needed(n, max int) string {
	if n <= 0 {
		return fmt.Sprintf("not reached with all %d users of the day (0 in the headline)", max)
	}
	return fmt.Sprint(n)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func r4(x float64) float64 { return float64(int64(x*10000+0.5)) / 10000 }

// The A/B experiment of the whole day and the arms' names.
const abSalt = "bench-ab"

var armNames = [2]string{"control", "treatment"}

// experimentOf is a two-arm experiment of mode m splitting all traffic
// 50/50 under salt (arm 0 control).
func experimentOf(salt string, m lr.ExperimentMode) *lr.Experiment {
	return &lr.Experiment{Name: salt, Salt: salt, Mode: m, Status: lr.ExperimentRunning,
		Arms: []lr.Arm{{Name: armNames[0], Share: 0.5, Control: true}, {Name: armNames[1], Share: 0.5}}}
}

// simulate plays the world: history, training, the held-out day with both
// arms' pages at every decision.
func simulate(ctx context.Context, c config, out io.Writer) (*day, error) {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	testDay := start.AddDate(0, 0, c.days)
	w, err := sim.New(sim.Config{Seed: c.seed, Users: c.users, Streamers: c.streamers, Start: start})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "# online experiments on the simulator: %d streamers, %d users, %d days of history, held-out day %s, seed %d\n",
		c.streamers, c.users, c.days, testDay.Format(time.DateOnly), c.seed)

	var clock atomic.Int64
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	ords := lr.NewOrdinals()
	t0 := time.Now()
	trainEvents, h, err := simbench.History(ctx, w, start, testDay)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "history: %d events, %d watch sessions, %d streams (%.1f s)\n", len(trainEvents), len(h.Watches), len(h.Streams), time.Since(t0).Seconds())

	kinds := []lr.ModelKind{lr.ModelMF}
	if c.ncf {
		kinds = append(kinds, lr.ModelNCF)
	}
	control := simbench.NewStore(true)
	var ncfModel *embed.IDScorer
	for _, kind := range kinds {
		t := time.Now()
		m, err := embed.TrainLive(ctx, &h, embed.DefaultLiveConfig(kind))
		if err != nil {
			return nil, fmt.Errorf("training %s: %w", kind, err)
		}
		control.Put(kind, m)
		if m.Scorer != nil {
			ncfModel = m.Scorer
		}
		fmt.Fprintf(out, "trained %s in %.1f s: held-out HR@10 %.3f (within the history)\n", kind, time.Since(t).Seconds(), m.Metrics.All.HR10)
	}
	var shuffle []lr.ModelKind
	for _, k := range kinds {
		if slices.Contains(c.shuffle, k) {
			shuffle = append(shuffle, k)
		}
	}
	if len(shuffle) == 0 {
		return nil, fmt.Errorf("-shuffle %v names no trained model (trained: %v)", c.shuffle, kinds)
	}
	treatment, ncfTreat := shuffled(control, shuffle, rand.New(rand.NewPCG(c.seed, 0xde9)))
	fmt.Fprintf(out, "treatment: the streamer vectors of %v shuffled across streamers (users' vectors unchanged)\n", shuffle)

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	users, err := userstore.New(userstore.Config{Source: control})
	if err != nil {
		return nil, err
	}
	var scorers [2]*recommend.NeuMF
	for a, sc := range []*embed.IDScorer{ncfModel, ncfTreat} {
		if sc != nil {
			scorers[a] = recommend.NewNeuMF("ncf-bench-"+armNames[a], control.IDs[lr.ModelNCF], sc, ords)
		}
	}
	var mgrs [2]*index.Manager
	for a, st := range []*simbench.Store{control, treatment} {
		m, err := index.NewManager(index.Config{Store: st, Ordinals: ords, Kinds: kinds, Logger: log})
		if err != nil {
			return nil, err
		}
		if _, err := m.Load(ctx); err != nil {
			return nil, fmt.Errorf("loading %s's index: %w", armNames[a], err)
		}
		mgrs[a] = m
	}
	state := live.New(live.Config{Ordinals: ords, OnPublish: func(v *live.Snapshot) { mgrs[0].SetLive(v); mgrs[1].SetLive(v) }, Clock: now, HistoryLen: 50})
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

	// Two arms, each the service's whole composition over its own index:
	// every channel, reranked with the default weights and the NCF score.
	// The already-shown filter is off, so that asking an arm for a page
	// (the counterfactual one included) changes nothing for the next.
	var engines [2]*recall.Engine
	var services [2]*recommend.Service
	for a := range services {
		engines[a] = recall.New(recall.Config{Budget: time.Second, ShownDisabled: true, Now: now}, state, ords, mgrs[a], users, nil, nil)
		services[a] = recommend.New(recommend.Config{Recall: engines[a], Users: state, Streams: state, Index: mgrs[a], UserStore: users,
			Ordinals: ords, Scorers: recommend.Fixed(rerank.DefaultWeights(), scorers[a]), Now: now, Log: log})
	}
	abExp := experimentOf(abSalt, lr.ModeAB)

	d := newDay(pageK)
	var pending []lr.Event
	var lastRefresh time.Time
	t1 := time.Now()
	var pages [2][]lr.StreamerID
	stats, err := w.Run(ctx, testDay, testDay.AddDate(0, 0, 1), func(e lr.Event) error {
		pending = append(pending, e)
		return nil
	}, func(ch sim.Choice) error {
		apply(pending)
		pending = pending[:0]
		clock.Store(ch.TS.UnixNano())
		if ch.TS.Sub(lastRefresh) >= time.Minute {
			state.Expire(ch.TS)
			engines[0].RefreshRankings()
			engines[1].RefreshRankings()
			lastRefresh = ch.TS
		}
		// The user's arm serves the page, as the service routes it; the
		// other arm's page is the counterfactual.
		arm := experiment.ArmOf(abExp, ch.User)
		for _, a := range []int{arm, 1 - arm} {
			page, err := services[a].Recommend(ctx, lr.RecommendRequest{User: ch.User, K: pageK})
			if err != nil {
				return fmt.Errorf("%s page for user %d: %w", armNames[a], ch.User, err)
			}
			pages[a] = pages[a][:0]
			for _, it := range page.Items {
				pages[a] = append(pages[a], it.StreamerID)
			}
		}
		d.add(ch.User, pages, ch.Affinity)
		return nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "held-out day: %d decisions of %d users, both arms' pages at each (%.1f s)\n", stats.Choices, d.activeUsers(), time.Since(t1).Seconds())
	return d, nil
}

// pageK is the page size.
const pageK = 10

// shuffled is a copy of s in which each model of kinds has its streamer
// vectors permuted across streamers by r (the ids stay in order; each
// gets another's vector), and NCF's full scorer its streamers' weights
// the same way; everything else is shared. It returns the NCF scorer of
// the copy (nil without NCF).
func shuffled(s *simbench.Store, kinds []lr.ModelKind, r *rand.Rand) (*simbench.Store, *embed.IDScorer) {
	out := simbench.NewStore(s.UserMLP)
	maps.Copy(out.Models, s.Models)
	maps.Copy(out.IDs, s.IDs)
	var scorer *embed.IDScorer
	if m := s.Models[lr.ModelNCF]; m != nil {
		scorer = m.Scorer
	}
	for _, k := range kinds {
		src := s.Models[k]
		if src == nil {
			continue
		}
		m := *src
		perm := r.Perm(len(m.Streamers))
		m.Streamers = make([]lr.Embedding, len(src.Streamers))
		for i, e := range src.Streamers {
			m.Streamers[i] = lr.Embedding{ID: e.ID, Vec: src.Streamers[perm[i]].Vec, MLP: src.Streamers[perm[i]].MLP}
		}
		if src.Scorer != nil {
			ids := slices.Clone(src.Scorer.StreamIDs)
			r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
			m.Scorer = embed.NewIDScorer(src.Scorer.Model, src.Scorer.UserIDs, ids)
			scorer = m.Scorer
		}
		out.Models[k] = &m
	}
	return out, scorer
}
