package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
)

// The harness on a tiny world (MF only): the shuffled MF lowers the
// watch-through rate the page model expects, A/A experiments report
// p < 0.05 at about the nominal rate, every active user lands in one arm
// of the A/B split, a page interleaved with itself shows no winner, and
// the report carries the headline's figures. (The A/B's detection needs
// a bigger world: make bench-experiments.)
func TestHarnessOnATinyWorld(t *testing.T) {
	c := config{streamers: 300, users: 2500, days: 3, seed: 7, aaRuns: 200, reps: 20, gridFrom: 50, shuffle: []lr.ModelKind{lr.ModelMF}}
	var log bytes.Buffer
	d, err := simulate(context.Background(), c, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if len(d.decs) < 1000 || d.activeUsers() < 500 {
		t.Fatalf("only %d decisions of %d users", len(d.decs), d.activeUsers())
	}

	// Expected watches per impression of each arm's pages on every
	// decision (no draws).
	var exp [2]float64
	var imps [2]int
	var buf, probs []float64
	for i := range d.decs {
		dec := &d.decs[i]
		for a := range exp {
			probs = d.model.Probs(probs, pageAff(buf, dec, dec.page[a]))
			for _, p := range probs {
				exp[a] += p
			}
			imps[a] += len(dec.page[a])
		}
	}
	ctl, trt := exp[0]/float64(imps[0]), exp[1]/float64(imps[1])
	if !(trt < 0.97*ctl) {
		t.Errorf("expected watch-through rate: control %.5f, shuffled MF %.5f: the degraded model is not clearly worse", ctl, trt)
	}

	aa := d.aa(c.aaRuns, c.seed)
	if aa.rate < 0.01 || aa.rate > 0.10 || aa.meanP < 0.4 || aa.meanP > 0.6 {
		t.Errorf("A/A: %d of %d runs at p < 0.05 (rate %.3f), mean p %.3f: not near the nominal 0.05 and 0.5", aa.positives, aa.runs, aa.rate, aa.meanP)
	}

	ab := d.abDay(c.seed)
	if got := ab.arms[0].users + ab.arms[1].users; got != int64(d.activeUsers()) {
		t.Errorf("A/B arms hold %d users, the day has %d", got, d.activeUsers())
	}

	// Interleaving a page with itself: neither team wins significantly.
	var same day = *d
	same.decs = make([]decision, len(d.decs))
	for i, dec := range d.decs {
		dec.page[1] = dec.page[0]
		same.decs[i] = dec
	}
	all := make([]int32, same.activeUsers())
	for i := range all {
		all[i] = int32(i)
	}
	wins, _, _ := same.interleave(all, rand.New(rand.NewPCG(1, 1)))
	if p := experiment.SignTest(wins[0], wins[1]); p < 0.01 {
		t.Errorf("a page interleaved with itself: wins %v, sign test p %.3g", wins, p)
	}

	// The whole report, with fewer runs.
	c.aaRuns, c.reps = 20, 4
	var out bytes.Buffer
	h := analyze(d, c, &out)
	if h.AARuns != c.aaRuns || h.ABP != ab.p || h.ABDetected != (ab.p < 0.01 && ab.delta < 0) {
		t.Errorf("headline %+v does not match the parts (A/B p %v, delta %v)", *h, ab.p, ab.delta)
	}
	if h.UsersNeededInter > 0 && h.UsersNeededAB > 0 && h.SensitivityRatio != r4(float64(h.UsersNeededAB)/float64(h.UsersNeededInter)) {
		t.Errorf("sensitivity ratio %v, users needed %d and %d", h.SensitivityRatio, h.UsersNeededAB, h.UsersNeededInter)
	}
	for _, want := range []string{"A/A: 20 experiments", "| control |", "| treatment |", "users needed for 80%"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report has no %q:\n%s", want, out.String())
		}
	}
}

// The benchmark routes pages with the split the service uses: the A/B
// experiment's arms are experiment.ArmOf's.
func TestRoutingIsArmOf(t *testing.T) {
	e := experimentOf(abSalt, lr.ModeAB)
	d := newDay(pageK)
	for u := lr.UserID(1); u <= 200; u++ {
		d.add(u, [2][]lr.StreamerID{{1, 2}, {3, 4}}, func(lr.StreamerID) float64 { return 0.1 })
	}
	for a := 0; a < 2; a++ {
		for _, ui := range d.usersIn(e, a) {
			if got := experiment.ArmOf(e, d.users[ui]); got != a {
				t.Fatalf("user %d listed in arm %d, ArmOf says %d", d.users[ui], a, got)
			}
		}
	}
	aggs := d.split(e, [2]int{0, 1}, nil, rand.New(rand.NewPCG(1, 2)), nil)
	if len(aggs[0]) != len(d.usersIn(e, 0)) || len(aggs[1]) != len(d.usersIn(e, 1)) || len(aggs[0])+len(aggs[1]) != 200 {
		t.Fatalf("split put %d and %d users in the arms; ArmOf %d and %d", len(aggs[0]), len(aggs[1]), len(d.usersIn(e, 0)), len(d.usersIn(e, 1)))
	}
}
