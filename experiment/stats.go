package experiment

import (
	"math"

	lr "github.com/liverecall/liverecall"
)

// The metrics of a report, by name (ArmReport.Metrics, ArmReport.Diffs,
// Point.Metrics). Each is a ratio over impressions: the sum over the
// arm's users of an outcome divided by the sum of their impressions.
const (
	// WatchThroughRate is the share of impressions followed by a watch
	// of the streamer of at least N seconds starting within M minutes.
	WatchThroughRate = "watch_through_rate"
	// WatchSecondsPerImpression is the watch seconds that followed an
	// impression (its longest such watch, 0 for none) per impression.
	WatchSecondsPerImpression = "watch_seconds_per_impression"
	// GiftsPer1000 is the impressions followed by a gift to the streamer
	// during such a watch, per 1,000 impressions.
	GiftsPer1000 = "gifts_per_1000_impressions"
	// FollowsPer1000 is the impressions followed by a follow of the
	// streamer within M minutes, per 1,000 impressions.
	FollowsPer1000 = "follows_per_1000_impressions"
)

// Metrics lists the metric names in the order reports print them.
var Metrics = []string{WatchThroughRate, WatchSecondsPerImpression, GiftsPer1000, FollowsPer1000}

// Method is Report.Method of the A/B reports Analyze computes;
// MethodInterleaving of the interleaving ones.
const (
	Method = "delta method: ratio metrics over impressions with users as the unit " +
		"(linearised per-user variance), 95% normal interval and two-sided z-test of arm - control; " +
		"SRM: chi-square goodness of fit of users per arm to the configured shares"
	MethodInterleaving = "exact two-sided sign test of the pages each team won (more watched positions), ties excluded; " +
		"per-team metrics over the positions each team contributed, without differences (the teams share their users)"
)

// z975 is the 97.5% quantile of the standard normal distribution.
const z975 = 1.959963984540054

// UserAgg is one user's totals in one arm of an experiment (in an
// interleaving experiment, in one team: the positions that team
// contributed to the user's pages). Watched, Gifts and Follows count
// impressions (an impression followed by two gifts counts once).
type UserAgg struct {
	Impressions  int64   `json:"impressions"`
	Watched      int64   `json:"watched"`
	WatchSeconds float64 `json:"watch_seconds"`
	Gifts        int64   `json:"gifts"`
	Follows      int64   `json:"follows"`
}

// Add returns a + b.
func (a UserAgg) Add(b UserAgg) UserAgg {
	return UserAgg{a.Impressions + b.Impressions, a.Watched + b.Watched, a.WatchSeconds + b.WatchSeconds, a.Gifts + b.Gifts, a.Follows + b.Follows}
}

// numerator is a's outcome of metric m, scaled as the metric is.
func (a UserAgg) numerator(m string) float64 {
	switch m {
	case WatchThroughRate:
		return float64(a.Watched)
	case WatchSecondsPerImpression:
		return a.WatchSeconds
	case GiftsPer1000:
		return 1000 * float64(a.Gifts)
	case FollowsPer1000:
		return 1000 * float64(a.Follows)
	}
	panic("experiment: unknown metric " + m)
}

// Metrics returns the four metrics of totals a (all 0 when a has no
// impressions).
func (a UserAgg) Metrics() map[string]float64 {
	out := make(map[string]float64, len(Metrics))
	for _, m := range Metrics {
		out[m] = 0
		if a.Impressions > 0 {
			out[m] = a.numerator(m) / float64(a.Impressions)
		}
	}
	return out
}

// Ratio is a ratio metric's estimate over a sample of users and the
// variance of that estimate by the delta method.
type Ratio struct {
	Value    float64
	Variance float64
	Users    int
}

// RatioOf estimates metric m over users: Σ outcome ÷ Σ impressions, and
// its variance by the delta method with users as independent units,
// Σ (yᵢ − R·nᵢ)² ÷ ((u−1)·u·n̄²) for u users with outcome yᵢ and nᵢ
// impressions. Users with no impressions count as users with nothing.
// The variance is NaN with fewer than 2 users or no impressions.
func RatioOf(users []UserAgg, m string) Ratio {
	var sy, sn float64
	for _, u := range users {
		sy += u.numerator(m)
		sn += float64(u.Impressions)
	}
	r := Ratio{Users: len(users), Variance: math.NaN()}
	if sn == 0 {
		return r
	}
	r.Value = sy / sn
	if len(users) < 2 {
		return r
	}
	var ss float64
	for _, u := range users {
		d := u.numerator(m) - r.Value*float64(u.Impressions)
		ss += d * d
	}
	k := float64(len(users))
	nbar := sn / k
	r.Variance = ss / ((k - 1) * k * nbar * nbar)
	return r
}

// DiffOf is the difference arm − control of two independent samples'
// ratio estimates with its 95% normal interval and two-sided p-value.
// ok is false when either variance is unknown (fewer than 2 users or
// no impressions in an arm).
func DiffOf(arm, control Ratio) (d Diff, ok bool) {
	if math.IsNaN(arm.Variance) || math.IsNaN(control.Variance) {
		return Diff{}, false
	}
	d.Delta = arm.Value - control.Value
	if control.Value != 0 {
		d.Relative = d.Delta / control.Value
	}
	se := math.Sqrt(arm.Variance + control.Variance)
	d.Low, d.High = d.Delta-z975*se, d.Delta+z975*se
	switch {
	case se > 0:
		d.P = NormalP(d.Delta / se)
	case d.Delta == 0:
		d.P = 1
	default:
		d.P = 0 // no variance at all and a difference
	}
	return d, true
}

// NormalP is the two-sided p-value of a standard normal statistic z.
func NormalP(z float64) float64 { return math.Erfc(math.Abs(z) / math.Sqrt2) }

// Analyze computes e's report from per-user aggregates by arm name: for
// ModeAB, users[arm] holds one UserAgg per user assigned to arm (its
// order does not matter); for ModeInterleave, users[arm] holds one per
// user with a page and the positions arm's team contributed. Arms absent
// from users report zero users.
//
// Each arm gets the four Metrics; each ModeAB arm but control gets its
// Diffs against control (the arm that says Control, else the first) by
// the delta method, for the metrics both arms have at least 2 users
// for. ModeAB reports also get the SRM check of the users per arm
// against the arms' shares. An interleaving report has no Diffs (its
// teams share users, so they are not independent samples: the sign test
// of Interleave is its test) and no SRM (every user sees both arms).
//
// Analyze sets Experiment, Mode, Status, Method (Method or
// MethodInterleaving) and Arms; the caller
// sets the time fields, Series and Interleaving. users is not modified.
func Analyze(e *lr.Experiment, users map[string][]UserAgg) Report {
	r := Report{Experiment: e.Name, Mode: e.Mode, Status: e.Status, Method: Method}
	if e.Mode == lr.ModeInterleave {
		r.Method = MethodInterleaving
	}
	ctl := ControlIndex(e)
	counts := make([]int64, len(e.Arms))
	shares := make([]float64, len(e.Arms))
	for i, a := range e.Arms {
		us := users[a.Name]
		var tot UserAgg
		for _, u := range us {
			tot = tot.Add(u)
		}
		ar := ArmReport{Arm: a.Name, Control: i == ctl, Share: a.Share, Users: int64(len(us)), Impressions: tot.Impressions, Metrics: tot.Metrics()}
		if e.Mode != lr.ModeInterleave && i != ctl {
			for _, m := range Metrics {
				if d, ok := DiffOf(RatioOf(us, m), RatioOf(users[e.Arms[ctl].Name], m)); ok {
					if ar.Diffs == nil {
						ar.Diffs = map[string]Diff{}
					}
					ar.Diffs[m] = d
				}
			}
		}
		r.Arms = append(r.Arms, ar)
		counts[i], shares[i] = int64(len(us)), a.Share
	}
	if e.Mode != lr.ModeInterleave {
		r.SRM = SRMTest(counts, shares)
	}
	return r
}

// ControlIndex is the index in e.Arms of e's control arm: the one that
// says Control, else the first (-1 when e has no arms).
func ControlIndex(e *lr.Experiment) int {
	for i, a := range e.Arms {
		if a.Control {
			return i
		}
	}
	if len(e.Arms) == 0 {
		return -1
	}
	return 0
}

// SRMTest is the chi-square goodness-of-fit test of counts (users per
// arm) against shares (the arms' configured shares, normalised to sum
// to 1), with len(counts)−1 degrees of freedom. It returns nil when
// there are fewer than 2 arms, no users, or a share is not positive.
func SRMTest(counts []int64, shares []float64) *SRM {
	if len(counts) < 2 || len(counts) != len(shares) {
		return nil
	}
	var n, s float64
	for i, c := range counts {
		if !(shares[i] > 0) {
			return nil
		}
		n += float64(c)
		s += shares[i]
	}
	if n == 0 {
		return nil
	}
	var chi float64
	for i, c := range counts {
		exp := n * shares[i] / s
		d := float64(c) - exp
		chi += d * d / exp
	}
	df := len(counts) - 1
	p := ChiSquareSF(chi, df)
	return &SRM{ChiSquare: chi, DF: df, P: p, Mismatch: p < SRMThreshold}
}

// ChiSquareSF is the survival function P(X ≥ x) of the chi-square
// distribution with df degrees of freedom: the regularised upper
// incomplete gamma function Q(df/2, x/2). It is 1 for x ≤ 0 and NaN
// for df < 1.
func ChiSquareSF(x float64, df int) float64 {
	if df < 1 || math.IsNaN(x) {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	return GammaQ(float64(df)/2, x/2)
}

// GammaQ is the regularised upper incomplete gamma function
// Q(a, x) = Γ(a, x) ÷ Γ(a) for a > 0, x ≥ 0: by its power series of
// P = 1 − Q when x < a+1 (where the series converges fast) and by its
// continued fraction otherwise (evaluated by the modified Lentz method),
// to about 1e-15 relative accuracy.
func GammaQ(a, x float64) float64 {
	switch {
	case !(a > 0) || x < 0 || math.IsNaN(x):
		return math.NaN()
	case x == 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	lg, _ := math.Lgamma(a)
	// front is x^a e^-x / Γ(a), in logs to avoid overflow.
	front := math.Exp(a*math.Log(x) - x - lg)
	const eps = 1e-16
	if x < a+1 {
		// P(a, x) = front · Σₖ xᵏ / (a (a+1) … (a+k)).
		term := 1 / a
		sum := term
		for k := 1; k < 10000; k++ {
			term *= x / (a + float64(k))
			sum += term
			if math.Abs(term) < math.Abs(sum)*eps {
				break
			}
		}
		return math.Max(0, 1-front*sum)
	}
	// Q(a, x) = front · 1/(x+1−a− 1·(1−a)/(x+3−a− 2·(2−a)/(x+5−a− …))).
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < eps {
			break
		}
	}
	return front * h
}

// PageWinner says which team won one interleaved page: 0 when team 0's
// positions drew more watches than team 1's, 1 for the reverse, -1 for
// a tie (equal and both non-zero) and -2 when nothing on the page was
// watched (the page is left out of the count).
func PageWinner(watched0, watched1 int64) int {
	switch {
	case watched0 == 0 && watched1 == 0:
		return -2
	case watched0 > watched1:
		return 0
	case watched1 > watched0:
		return 1
	}
	return -1
}

// Interleave is the outcome of an interleaving experiment from its page
// wins (wins[i]: pages e.Arms[i]'s team won) and ties: each arm's share
// of the decided pages and the sign test of the wins. It returns nil
// unless e has exactly 2 arms.
func Interleave(e *lr.Experiment, wins [2]int64, ties int64) *Interleaving {
	if len(e.Arms) != 2 {
		return nil
	}
	in := &Interleaving{Wins: map[string]int64{}, Ties: ties, Share: map[string]float64{}, P: SignTest(wins[0], wins[1])}
	n := wins[0] + wins[1]
	for i, a := range e.Arms {
		in.Wins[a.Name] = wins[i]
		in.Share[a.Name] = 0
		if n > 0 {
			in.Share[a.Name] = float64(wins[i]) / float64(n)
		}
	}
	return in
}

// SignTest is the exact two-sided sign test of a wins against b wins
// (ties left out): 2·P(X ≤ min(a, b)) for X ~ Binomial(a+b, ½), at most
// 1; 1 when a+b is 0. The binomial tail is summed from min(a, b) down,
// each term from the one before, until the terms no longer count: about
// √(a+b) terms.
func SignTest(a, b int64) float64 {
	n := a + b
	if n == 0 {
		return 1
	}
	m := min(a, b)
	if 2*m == n {
		return 1
	}
	// log C(n, m) 2^-n
	lgn, _ := math.Lgamma(float64(n) + 1)
	lgm, _ := math.Lgamma(float64(m) + 1)
	lgr, _ := math.Lgamma(float64(n-m) + 1)
	term := math.Exp(lgn - lgm - lgr - float64(n)*math.Ln2)
	sum := term
	for k := m; k > 0 && term > sum*1e-17; k-- {
		// C(n, k−1) = C(n, k) · k ÷ (n − k + 1)
		term *= float64(k) / float64(n-k+1)
		sum += term
	}
	return math.Min(1, 2*sum)
}
