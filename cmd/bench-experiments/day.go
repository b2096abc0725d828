package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/sim"
)

// day is the held-out day as recorded: at every decision, both arms'
// pages and the user's affinity for each streamer on them. Everything the
// experiments need is drawn from it afterwards, so the services are asked
// once per decision whatever the number of experiments.
type day struct {
	k        int
	model    sim.PageModel
	users    []lr.UserID         // users with a decision, in order of their first
	userIdx  map[lr.UserID]int32 // user → index in users
	userDecs [][]int32           // user index → their decisions
	decs     []decision
}

// decision is one recorded decision: the union of both arms' pages with
// the user's affinities, and each arm's page as indices into it.
type decision struct {
	user int32
	aff  []float64
	page [2][]uint8
}

func newDay(k int) *day {
	return &day{k: k, userIdx: map[lr.UserID]int32{}}
}

// add records a decision of user u with both arms' pages; affinity is
// the decision's sim.Choice.Affinity.
func (d *day) add(u lr.UserID, pages [2][]lr.StreamerID, affinity func(lr.StreamerID) float64) {
	ui, ok := d.userIdx[u]
	if !ok {
		ui = int32(len(d.users))
		d.userIdx[u] = ui
		d.users = append(d.users, u)
		d.userDecs = append(d.userDecs, nil)
	}
	dec := decision{user: ui}
	var union []lr.StreamerID
	for a, p := range pages {
		for _, s := range p {
			i := slices.Index(union, s)
			if i < 0 {
				i = len(union)
				union = append(union, s)
				dec.aff = append(dec.aff, affinity(s))
			}
			dec.page[a] = append(dec.page[a], uint8(i))
		}
	}
	d.userDecs[ui] = append(d.userDecs[ui], int32(len(d.decs)))
	d.decs = append(d.decs, dec)
}

func (d *day) activeUsers() int { return len(d.users) }

// pageAff fills buf with the affinities of a page of dec.
func pageAff(buf []float64, dec *decision, page []uint8) []float64 {
	buf = buf[:0]
	for _, i := range page {
		buf = append(buf, dec.aff[i])
	}
	return buf
}

// split runs one A/B experiment on the users (indices into d.users; all
// when nil): each user's arm is experiment.ArmOf(e, user), arm a's users
// are served the recorded pages of arm serve[a], and each page's outcome is
// drawn from r by the page model (a page's impressions are its
// positions; Watched counts the watched one). It returns the arms'
// per-user aggregates (users in no arm are left out) and, when expected
// is not nil, adds to it the arms' expected watches under the page model
// (without draws).
func (d *day) split(e *lr.Experiment, serve [2]int, users []int32, r *rand.Rand, expected *[2]float64) (aggs [2][]experiment.UserAgg) {
	var buf, probs []float64
	each := func(ui int32) {
		arm := experiment.ArmOf(e, d.users[ui])
		if arm < 0 || arm > 1 {
			return
		}
		var g experiment.UserAgg
		for _, di := range d.userDecs[ui] {
			dec := &d.decs[di]
			page := dec.page[serve[arm]]
			buf = pageAff(buf, dec, page)
			g.Impressions += int64(len(page))
			if d.model.Watch(buf, r) >= 0 {
				g.Watched++
			}
			if expected != nil {
				probs = d.model.Probs(probs, buf)
				for _, p := range probs {
					expected[arm] += p
				}
			}
		}
		aggs[arm] = append(aggs[arm], g)
	}
	if users == nil {
		for ui := range d.users {
			each(int32(ui))
		}
	} else {
		for _, ui := range users {
			each(ui)
		}
	}
	return aggs
}

// interleave runs one team-draft interleaving experiment on the users:
// every page is experiment.TeamDraft of the two arms' recorded pages
// (coin flips from r), the watched position (drawn from r) credits its
// team. It returns the page wins of control and treatment
// (experiment.PageWinner), the ties, and how many of the won pages were
// won by a streamer on both arms' pages (credited to the team that
// drafted it first).
func (d *day) interleave(users []int32, r *rand.Rand) (wins [2]int64, ties, shared int64) {
	var buf []float64
	for _, ui := range users {
		for _, di := range d.userDecs[ui] {
			dec := &d.decs[di]
			page, team := experiment.TeamDraft(dec.page[0], dec.page[1], d.k, r)
			buf = pageAff(buf, dec, page)
			var watched [2]int64
			pos := d.model.Watch(buf, r)
			if pos >= 0 {
				watched[team[pos]]++
			}
			switch w := experiment.PageWinner(watched[0], watched[1]); w {
			case 0, 1:
				wins[w]++
				if slices.Contains(dec.page[0], page[pos]) && slices.Contains(dec.page[1], page[pos]) {
					shared++
				}
			case -1:
				ties++
			}
		}
	}
	return wins, ties, shared
}

// compare is the report of an A/B experiment e from its arms' per-user
// aggregates (arm 0 control) by experiment.Analyze, and treatment's
// difference against control in watch-through rate (ok false when an arm
// has fewer than 2 users).
func compare(e *lr.Experiment, aggs [2][]experiment.UserAgg) (rep experiment.Report, d experiment.Diff, ok bool) {
	rep = experiment.Analyze(e, map[string][]experiment.UserAgg{armNames[0]: aggs[0], armNames[1]: aggs[1]})
	d, ok = rep.Arms[1].Diffs[experiment.WatchThroughRate]
	return rep, d, ok
}

// aaResult is the A/A part's outcome.
type aaResult struct {
	runs, positives  int
	rate, meanP      float64
	below01, below10 float64
}

// aa runs n A/A experiments: both arms serve control's pages; experiment
// i has salt "aa-i" and response draws of its own.
func (d *day) aa(n int, seed uint64) aaResult {
	res := aaResult{runs: n}
	var b01, b10 int
	for i := 0; i < n; i++ {
		e := experimentOf(fmt.Sprintf("aa-%d", i), lr.ModeAB)
		aggs := d.split(e, [2]int{0, 0}, nil, rand.New(rand.NewPCG(seed, 0xaa<<32|uint64(i))), nil)
		_, diff, ok := compare(e, aggs)
		if !ok {
			diff.P = 1 // too few users to test: not a positive
		}
		p := diff.P
		res.meanP += p / float64(n)
		if p < 0.05 {
			res.positives++
		}
		if p < 0.01 {
			b01++
		}
		if p < 0.10 {
			b10++
		}
	}
	res.rate = float64(res.positives) / float64(n)
	res.below01, res.below10 = float64(b01)/float64(n), float64(b10)/float64(n)
	return res
}

// armSummary is one arm's figures in the A/B table.
type armSummary struct {
	users, pages, impressions, watches int64
	rate, expected                     float64 // watch-through rate, drawn and expected
}

// abResult is the A/B part's outcome.
type abResult struct {
	arms                    [2]armSummary
	delta, relative, lo, hi float64
	p, srmP                 float64
	method                  string
	expected                [2]float64 // expected watch-through rate per arm
}

// abDay is the A/B experiment on the whole day, split under abSalt (the
// split the pages were routed by).
func (d *day) abDay(seed uint64) abResult {
	e := experimentOf(abSalt, lr.ModeAB)
	var expected [2]float64
	aggs := d.split(e, [2]int{0, 1}, nil, rand.New(rand.NewPCG(seed, 0xab)), &expected)
	var res abResult
	rep, diff, _ := compare(e, aggs)
	for a, ar := range rep.Arms {
		s := &res.arms[a]
		s.users, s.impressions = ar.Users, ar.Impressions
		s.rate = ar.Metrics[experiment.WatchThroughRate]
		for _, g := range aggs[a] {
			s.watches += g.Watched
		}
		for _, ui := range d.usersIn(e, a) {
			s.pages += int64(len(d.userDecs[ui]))
		}
		if s.impressions > 0 {
			s.expected = expected[a] / float64(s.impressions)
		}
	}
	res.delta, res.relative, res.lo, res.hi, res.p, res.method = diff.Delta, diff.Relative, diff.Low, diff.High, diff.P, rep.Method
	res.srmP = math.NaN()
	if rep.SRM != nil {
		res.srmP = rep.SRM.P
	}
	return res
}

// usersIn returns the day's users experiment.ArmOf puts in arm a of e.
func (d *day) usersIn(e *lr.Experiment, a int) []int32 {
	var out []int32
	for ui, u := range d.users {
		if experiment.ArmOf(e, u) == a {
			out = append(out, int32(ui))
		}
	}
	return out
}

// gridPoint is one user count of the sensitivity grid.
type gridPoint struct {
	users            int
	abShare, ilShare float64 // share of repetitions significant with the right sign
	abMeanP, ilMeanP float64
	wins             [2]int64 // interleaved pages won, over the repetitions
	shared           int64    // of which won by a streamer on both arms' pages
}

type sensResult struct {
	grid               []gridPoint
	abNeeded, ilNeeded int // 0: not reached
}

// sensitivity walks user counts from, 2·from, 4·from, ... and finally all
// the day's users; at each, reps seeded samples of that many users, each
// run as an A/B experiment (a fresh salt) and as an interleaving one. It
// stops once both designs reached 80% of repetitions significant (p <
// 0.05, treatment worse).
func (d *day) sensitivity(from, reps int, seed uint64) sensResult {
	var res sensResult
	all := len(d.users)
	idx := make([]int32, all)
	for i := range idx {
		idx[i] = int32(i)
	}
	for n := from; ; n *= 2 {
		n = min(n, all)
		g := gridPoint{users: n}
		var abHits, ilHits int
		for rep := 0; rep < reps; rep++ {
			r := rand.New(rand.NewPCG(seed, 0x5e<<40|uint64(n)<<16|uint64(rep)))
			// A partial Fisher-Yates shuffle: the first n of idx are the sample.
			for i := 0; i < n; i++ {
				j := i + r.IntN(all-i)
				idx[i], idx[j] = idx[j], idx[i]
			}
			sample := idx[:n]
			if res.abNeeded == 0 {
				e := experimentOf(fmt.Sprintf("sens-%d-%d", n, rep), lr.ModeAB)
				aggs := d.split(e, [2]int{0, 1}, sample, r, nil)
				_, diff, ok := compare(e, aggs)
				if !ok {
					diff.P = 1
				}
				g.abMeanP += diff.P / float64(reps)
				if diff.P < 0.05 && diff.Delta < 0 {
					abHits++
				}
			}
			if res.ilNeeded == 0 {
				wins, _, shared := d.interleave(sample, r)
				p := experiment.SignTest(wins[0], wins[1])
				g.shared += shared
				g.ilMeanP += p / float64(reps)
				g.wins[0] += wins[0]
				g.wins[1] += wins[1]
				if p < 0.05 && wins[0] > wins[1] {
					ilHits++
				}
			}
		}
		g.abShare, g.ilShare = float64(abHits)/float64(reps), float64(ilHits)/float64(reps)
		if res.abNeeded == 0 && g.abShare >= 0.8 {
			res.abNeeded = n
		} else if res.abNeeded != 0 && res.abNeeded != n {
			g.abShare, g.abMeanP = -1, -1 // not run: reached at a smaller count
		}
		if res.ilNeeded == 0 && g.ilShare >= 0.8 {
			res.ilNeeded = n
		} else if res.ilNeeded != 0 && res.ilNeeded != n {
			g.ilShare, g.ilMeanP = -1, -1
		}
		res.grid = append(res.grid, g)
		if n == all || res.abNeeded != 0 && res.ilNeeded != 0 {
			return res
		}
	}
}

// overlap is the mean number of streamers on both arms' pages and the
// share of decisions whose pages start with the same streamer.
func (d *day) overlap() (common, sameTop float64) {
	if len(d.decs) == 0 {
		return 0, 0
	}
	for i := range d.decs {
		p := d.decs[i].page
		for _, x := range p[0] {
			if slices.Contains(p[1], x) {
				common++
			}
		}
		if len(p[0]) > 0 && len(p[1]) > 0 && p[0][0] == p[1][0] {
			sameTop++
		}
	}
	n := float64(len(d.decs))
	return common / n, sameTop / n
}
