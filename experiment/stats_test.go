package experiment

import (
	"math"
	"math/rand/v2"
	"testing"

	lr "github.com/liverecall/liverecall"
)

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

func TestChiSquareSF(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		df   int
		want float64
		tol  float64
	}{
		// Table values: the 95% and 99% points.
		{3.841458820694124, 1, 0.05, 1e-12},
		{6.634896601021214, 1, 0.01, 1e-12},
		{5.991464547107979, 2, 0.05, 1e-12},
		{7.814727903251178, 3, 0.05, 1e-12},
		{18.307038053275146, 10, 0.05, 1e-12},
		{0, 3, 1, 0},
		// df 2: Q(1, x/2) = e^(−x/2).
		{2, 2, math.Exp(-1), 1e-15},
		{80, 2, math.Exp(-40), 1e-28},
		// df 4: e^(−x/2) (1 + x/2), far in the tail.
		{100, 4, math.Exp(-50) * 51, 1e-32},
		// df 1: erfc(√(x/2)), both sides of the series/fraction switch.
		{0.3, 1, math.Erfc(math.Sqrt(0.15)), 1e-14},
		{2.5, 1, math.Erfc(math.Sqrt(1.25)), 1e-14},
		{30, 1, math.Erfc(math.Sqrt(15)), 1e-20},
	} {
		if got := ChiSquareSF(tc.x, tc.df); !near(got, tc.want, tc.tol) {
			t.Errorf("ChiSquareSF(%v, %d) = %.17g, want %.17g", tc.x, tc.df, got, tc.want)
		}
	}
	// Even df: Q(k, y) = e^(−y) Σ_{j<k} yʲ/j! (a Poisson tail), df 2…40.
	for k := 1; k <= 20; k++ {
		for _, y := range []float64{0.5, float64(k), 3 * float64(k)} {
			want, term := 0.0, math.Exp(-y)
			for j := 0; j < k; j++ {
				want += term
				term *= y / float64(j+1)
			}
			if got := ChiSquareSF(2*y, 2*k); !near(got, want, 1e-13*math.Max(want, 1e-3)) {
				t.Errorf("ChiSquareSF(%v, %d) = %.17g, want %.17g", 2*y, 2*k, got, want)
			}
		}
	}
	if !math.IsNaN(ChiSquareSF(1, 0)) {
		t.Error("df 0 is not NaN")
	}
}

func TestSRMTest(t *testing.T) {
	// 50/50 experiment, 600 vs 400 users: chi² = (100² + 100²)/500 = 40.
	s := SRMTest([]int64{600, 400}, []float64{0.05, 0.05})
	if s == nil || !near(s.ChiSquare, 40, 1e-12) || s.DF != 1 || !near(s.P, math.Erfc(math.Sqrt(20)), 1e-22) || s.P > 1e-9 || !s.Mismatch {
		t.Fatalf("60/40 of 50/50: %+v", s)
	}
	// 1,000 users at 10%/30% of traffic (1:3), 262 vs 738: expected 250,
	// 750, chi² = 144/250 + 144/750 = 0.768.
	s = SRMTest([]int64{262, 738}, []float64{0.1, 0.3})
	if s.Mismatch || !near(s.ChiSquare, 0.768, 1e-12) || !near(s.P, math.Erfc(math.Sqrt(0.384)), 1e-14) {
		t.Fatalf("262/738 of 1:3: %+v", s)
	}
	if SRMTest([]int64{0, 0}, []float64{0.5, 0.5}) != nil || SRMTest([]int64{5}, []float64{1}) != nil {
		t.Error("no users or one arm: want nil")
	}
}

func TestSignTest(t *testing.T) {
	for _, tc := range []struct {
		a, b int64
		want float64
	}{
		{9, 1, 2 * 11.0 / 1024}, // 2·(1+10)/2¹⁰
		{5, 15, 2 * (1 + 20 + 190 + 1140 + 4845 + 15504) / 1048576.0}, // 2·P(X≤5), n=20
		{0, 10, 2 / 1024.0},
		{7, 7, 1},
		{5, 6, 1},
		{0, 0, 1},
		{1, 0, 1},
	} {
		if got := SignTest(tc.a, tc.b); !near(got, tc.want, 1e-13) {
			t.Errorf("SignTest(%d, %d) = %.17g, want %.17g", tc.a, tc.b, got, tc.want)
		}
	}
	// Large n: close to the normal approximation with continuity
	// correction, 2Φ(−(|a−b|−1)/√n).
	a, b := int64(51000), int64(49000)
	want := NormalP((2000 - 1) / math.Sqrt(100000))
	if got := SignTest(a, b); !near(got, want, 0.02*want) {
		t.Errorf("SignTest(%d, %d) = %g, normal approximation %g", a, b, got, want)
	}
}

func TestPageWinnerAndInterleave(t *testing.T) {
	for _, tc := range []struct {
		w0, w1 int64
		want   int
	}{{2, 1, 0}, {0, 3, 1}, {2, 2, -1}, {0, 0, -2}} {
		if got := PageWinner(tc.w0, tc.w1); got != tc.want {
			t.Errorf("PageWinner(%d, %d) = %d, want %d", tc.w0, tc.w1, got, tc.want)
		}
	}
	e := &lr.Experiment{Name: "x", Mode: lr.ModeInterleave, Arms: []lr.Arm{{Name: "ctl"}, {Name: "new"}}}
	in := Interleave(e, [2]int64{1, 9}, 4)
	if in.Wins["ctl"] != 1 || in.Wins["new"] != 9 || in.Ties != 4 || in.Share["new"] != 0.9 || !near(in.P, 2*11.0/1024, 1e-15) {
		t.Fatalf("%+v", in)
	}
}

// TestDeltaMethodByHand checks the delta method against figures worked
// by hand. Every user has 2 impressions, so the ratio's variance is the
// per-user outcome's variance ÷ (users · 2²): control watches 1,1,0,2 →
// rate 0.5, variance (2/3)/16 = 1/24; treatment 2,2,1,1 → 0.75,
// (1/3)/16 = 1/48; difference 0.25 with standard error √(1/24+1/48) =
// 0.25: z = 1, p = erfc(1/√2) = 0.3173105…
func TestDeltaMethodByHand(t *testing.T) {
	mk := func(watched ...int64) []UserAgg {
		var us []UserAgg
		for _, w := range watched {
			us = append(us, UserAgg{Impressions: 2, Watched: w, WatchSeconds: 30 * float64(w), Gifts: w / 2})
		}
		return us
	}
	e := &lr.Experiment{Name: "x", Mode: lr.ModeAB, Status: lr.ExperimentRunning, Arms: []lr.Arm{{Name: "treat", Share: 0.1}, {Name: "ctl", Share: 0.1, Control: true}}}
	r := Analyze(e, map[string][]UserAgg{"ctl": mk(1, 1, 0, 2), "treat": mk(2, 2, 1, 1)})
	if len(r.Arms) != 2 || r.Arms[1].Arm != "ctl" || !r.Arms[1].Control || r.Arms[1].Diffs != nil || r.Method != Method {
		t.Fatalf("%+v", r)
	}
	tr := r.Arms[0]
	if tr.Users != 4 || tr.Impressions != 8 || tr.Metrics[WatchThroughRate] != 0.75 || tr.Metrics[WatchSecondsPerImpression] != 22.5 ||
		tr.Metrics[GiftsPer1000] != 250 || tr.Metrics[FollowsPer1000] != 0 {
		t.Fatalf("treatment %+v", tr)
	}
	d := tr.Diffs[WatchThroughRate]
	if !near(d.Delta, 0.25, 1e-15) || !near(d.Relative, 0.5, 1e-15) || !near(d.P, 0.31731050786291415, 1e-14) ||
		!near(d.Low, 0.25-z975*0.25, 1e-14) || !near(d.High, 0.25+z975*0.25, 1e-14) {
		t.Fatalf("diff %+v", d)
	}
	// Watch seconds are 30 × watches: the same z, 30 × the interval.
	if d2 := tr.Diffs[WatchSecondsPerImpression]; !near(d2.Delta, 7.5, 1e-12) || !near(d2.P, d.P, 1e-12) || !near(d2.High, 30*d.High, 1e-12) {
		t.Fatalf("watch seconds diff %+v", d2)
	}
	// No follows in either arm: difference 0, p 1, interval [0, 0].
	if d3 := tr.Diffs[FollowsPer1000]; d3 != (Diff{P: 1}) {
		t.Fatalf("follows diff %+v", d3)
	}
	// 4 users per arm at equal shares: no mismatch.
	if r.SRM == nil || r.SRM.ChiSquare != 0 || r.SRM.P != 1 {
		t.Fatalf("SRM %+v", r.SRM)
	}
	// Unequal impressions: users (1 imp, 1 watch) and (3, 0): R = 1/4,
	// residuals ±0.75, n̄ = 2, variance 1.125 ÷ (1·2·4) = 0.140625.
	rt := RatioOf([]UserAgg{{Impressions: 1, Watched: 1}, {Impressions: 3}}, WatchThroughRate)
	if rt.Value != 0.25 || !near(rt.Variance, 0.140625, 1e-15) {
		t.Fatalf("RatioOf = %+v", rt)
	}
	// One user in an arm: no variance, no diff.
	r = Analyze(e, map[string][]UserAgg{"ctl": mk(1, 1), "treat": mk(2)})
	if r.Arms[0].Diffs != nil {
		t.Fatalf("diffs from one user: %+v", r.Arms[0].Diffs)
	}
}

// synthUsers draws n heterogeneous users: impressions 1 + Poisson-ish,
// a per-user watch propensity, watch seconds and rarer gifts and follows.
func synthUsers(rng *rand.Rand, n int, lift float64) []UserAgg {
	us := make([]UserAgg, n)
	for i := range us {
		imps := 1 + rng.IntN(40)
		p := min(1, rng.Float64()*0.3*(1+lift))
		var u UserAgg
		u.Impressions = int64(imps)
		for range imps {
			if rng.Float64() < p {
				u.Watched++
				u.WatchSeconds += 30 + rng.ExpFloat64()*300
				if rng.Float64() < 0.05 {
					u.Gifts++
				}
				if rng.Float64() < 0.1 {
					u.Follows++
				}
			}
		}
		us[i] = u
	}
	return us
}

// TestAAFalsePositiveRate splits one synthetic population at random into
// two arms 1,000 times (seeded): the delta method's p < 0.05 must come
// up in about 5% of splits for each metric — [3%, 7%] is ±3 standard
// deviations of a binomial share of 1,000.
func TestAAFalsePositiveRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 1))
	pop := synthUsers(rng, 2000, 0)
	e := &lr.Experiment{Name: "aa", Mode: lr.ModeAB, Arms: []lr.Arm{{Name: "a", Share: 0.5}, {Name: "b", Share: 0.5}}}
	const runs = 1000
	hits := map[string]int{}
	srmHits := 0
	for range runs {
		split := map[string][]UserAgg{}
		for _, u := range pop {
			arm := "a"
			if rng.IntN(2) == 1 {
				arm = "b"
			}
			split[arm] = append(split[arm], u)
		}
		r := Analyze(e, split)
		for m, d := range r.Arms[1].Diffs {
			if d.P < 0.05 {
				hits[m]++
			}
		}
		if r.SRM.P < 0.05 {
			srmHits++
		}
	}
	for _, m := range append(Metrics, "srm") {
		h := hits[m]
		if m == "srm" {
			h = srmHits
		}
		rate := float64(h) / runs
		t.Logf("%s: p < 0.05 in %.1f%% of %d A/A splits", m, 100*rate, runs)
		if rate < 0.03 || rate > 0.07 {
			t.Errorf("%s: p < 0.05 in %.1f%% of A/A splits, want about 5%%", m, 100*rate)
		}
	}
}

// TestABDetects: a 20% lift of the watch propensity on 2,000 users per
// arm is found with the right sign, and its interval covers the truth's
// sign only.
func TestABDetects(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 2))
	e := &lr.Experiment{Name: "ab", Mode: lr.ModeAB, Arms: []lr.Arm{{Name: "a", Share: 0.5}, {Name: "b", Share: 0.5}}}
	r := Analyze(e, map[string][]UserAgg{"a": synthUsers(rng, 2000, 0), "b": synthUsers(rng, 2000, 0.2)})
	d := r.Arms[1].Diffs[WatchThroughRate]
	if d.Delta <= 0 || d.P > 1e-4 || d.Low <= 0 {
		t.Fatalf("a 20%% lift: %+v", d)
	}
}

func TestAnalyzeInterleaving(t *testing.T) {
	e := &lr.Experiment{Name: "il", Mode: lr.ModeInterleave, Arms: []lr.Arm{{Name: "a", Share: 0.05}, {Name: "b", Share: 0.05}}}
	r := Analyze(e, map[string][]UserAgg{"a": {{Impressions: 5, Watched: 1}}, "b": {{Impressions: 5, Watched: 2}}})
	if r.SRM != nil || r.Arms[1].Diffs != nil || r.Arms[1].Metrics[WatchThroughRate] != 0.4 || !r.Arms[0].Control || r.Method != MethodInterleaving {
		t.Fatalf("%+v", r)
	}
}

// TestSignTestNullRate: under the null (each decided page a fair coin),
// the exact sign test's p < 0.05 comes up in at most about 5% of 1,000
// seeded runs of 200 pages (it is conservative: the binomial is discrete).
func TestSignTestNullRate(t *testing.T) {
	rng := rand.New(rand.NewPCG(18, 3))
	hits := 0
	for range 1000 {
		var w [2]int64
		for range 200 {
			w[rng.IntN(2)]++
		}
		if SignTest(w[0], w[1]) < 0.05 {
			hits++
		}
	}
	t.Logf("sign test: p < 0.05 in %.1f%% of 1000 null runs", float64(hits)/10)
	if hits < 20 || hits > 70 {
		t.Errorf("sign test: p < 0.05 in %d of 1000 null runs, want about 50 or fewer", hits)
	}
}
