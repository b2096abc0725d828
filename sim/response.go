package sim

import (
	"math"
	"math/rand/v2"
)

// The simulator's users choose among the streamers live at a visit on
// their own (Run): nothing in Run shows them a page. To measure a
// recommender online (A/B tests, interleaving) the simulator also says how
// a user would respond to a page shown at a decision, from the world's
// truth: Choice.Affinity is the probability that the user's own choice
// picks a streamer, and PageModel turns the affinities of a page's
// streamers into the position the user watches, if any.
//
// The response does not feed back into the world: what the user then does
// in Run is what the user would have done anyway (a counterfactual
// overlay on one simulated day), so pages from different recommenders can
// be scored on the same decisions and the same users.

// affinityOf is the probability that the choice model of visit picks live
// streamer s at the decision being reported: with the user's live habits
// H (weights w), habit probability h and explore's distribution E,
//
//	h·w_s/Σw·[s ∈ H] + (1 − h·[H not empty])·E(s)
//
// E is explore's draw made exact: a category (the user's taste ×0.95 plus
// 0.05 spread over the categories) and a language (the user's with 0.85,
// 0.95 with Config.Context, the rest spread over the languages), then a
// live streamer of that group by popularity, with explore's fallbacks when
// nobody of the group is live (another language of the category by
// popularity; with Context, the user's next taste category in the
// language, then any category in it), and at last anyone live by
// popularity. The affinities of the live streamers sum to 1 (up to
// rounding) when anybody is live.
func (rn *runner) affinityOf(s int32) float64 {
	var p float64
	explore := 1.0
	if len(rn.affHabitS) > 0 {
		explore = 1 - rn.affHabitP
		var sum float64
		for _, x := range rn.affHabitW {
			sum += x
		}
		for i, h := range rn.affHabitS {
			if h == s && sum > 0 {
				p += rn.affHabitP * rn.affHabitW[i] / sum
			}
		}
	}
	if explore > 0 {
		p += explore * rn.exploreProb(s)
	}
	return p
}

// affTotals fills the live popularity per group, category and language
// at the decision being reported (once per decision).
func (rn *runner) affTotals() {
	if rn.affReady {
		return
	}
	w := rn.w
	nl, nc := len(Languages), len(Categories)
	if rn.affGroupT == nil {
		rn.affGroupT, rn.affCatT, rn.affLangT = make([]float64, nc*nl), make([]float64, nc), make([]float64, nl)
	}
	clear(rn.affCatT)
	clear(rn.affLangT)
	rn.affAllT = 0
	for g := range rn.affGroupT {
		t := float64(rn.live.total(g))
		rn.affGroupT[g] = t
		rn.affCatT[g/nl] += t
		rn.affLangT[g%nl] += t
		rn.affAllT += t
	}
	u := rn.affU
	if rn.affPCat == nil {
		rn.affPCat, rn.affPLang = make([]float64, nc), make([]float64, nl)
	}
	for c := range rn.affPCat {
		rn.affPCat[c] = 0.05 / float64(nc)
	}
	prev := float32(0)
	for k := 0; k < tasteTop; k++ {
		rn.affPCat[w.uTasteCat[u][k]] += 0.95 * float64(w.uTasteCum[u][k]-prev)
		prev = w.uTasteCum[u][k]
	}
	other := 0.15
	if w.cfg.Context {
		other = 0.05
	}
	for l := range rn.affPLang {
		rn.affPLang[l] = other / float64(nl)
	}
	rn.affPLang[w.uLang[u]] += 1 - other
	rn.affReady = true
}

// exploreProb is the probability that explore picks live streamer s for
// the user of the decision being reported (see affinityOf).
func (rn *runner) exploreProb(s int32) float64 {
	rn.affTotals()
	w, u := rn.w, rn.affU
	nl, nc := len(Languages), len(Categories)
	T := rn.affGroupT
	cs, ls := int(w.sCat[s]), int(w.sLang[s])
	gs := cs*nl + ls
	q := float64(w.sQuality[s])
	var p float64
	for c := 0; c < nc; c++ {
		for l := 0; l < nl; l++ {
			pr := rn.affPCat[c] * rn.affPLang[l]
			g := c*nl + l
			if T[g] == 0 && w.cfg.Context {
				for k := 0; k < tasteTop && T[g] == 0; k++ {
					g = int(w.uTasteCat[u][k])*nl + l
				}
				if T[g] == 0 {
					// Any category in the language, else below.
					if rn.affLangT[l] > 0 {
						if l == ls {
							p += pr * q / rn.affLangT[l]
						}
						continue
					}
				}
			}
			switch {
			case T[g] > 0:
				if g == gs {
					p += pr * q / T[g]
				}
			case rn.affCatT[c] > 0:
				// The category in any language, by popularity.
				if c == cs {
					p += pr * q / rn.affCatT[c]
				}
			case rn.affAllT > 0:
				p += pr * q / rn.affAllT
			}
		}
	}
	return p
}

// PageModel is a position-biased choice model of a user shown a page of
// streamers at a decision: the user watches at most one of them, position
// i (0-based) with probability
//
//	v_i / (Outside + Σ_j v_j),   v_i = Examine(i) · affinity_i,
//
// and none of them (goes elsewhere) with probability Outside / (Outside +
// Σ_j v_j). Examine is the position bias: lower positions are looked at
// less. A page of the user's likely choices at the top is watched often; a
// page of streamers the user would not pick is almost never watched.
type PageModel struct {
	// Outside is the weight of watching nothing from the page (default
	// DefaultOutside).
	Outside float64
	// Decay is the exponent of the position bias Examine(i) = (i+1)^-Decay
	// (default DefaultDecay).
	Decay float64
}

// Defaults of PageModel: with them a page holding, at the top, a streamer
// the user picks half the time on their own is watched two times in three
// (with nothing else the user likes on it); a page of ten streamers of
// affinity 0.001 about 1.4% of the time.
const (
	DefaultOutside = 0.25
	DefaultDecay   = 0.8
)

func (m PageModel) params() (outside, decay float64) {
	outside, decay = m.Outside, m.Decay
	if outside <= 0 {
		outside = DefaultOutside
	}
	if decay <= 0 {
		decay = DefaultDecay
	}
	return outside, decay
}

// Examine is the position bias of position i (0-based): (i+1)^-Decay.
func (m PageModel) Examine(i int) float64 {
	_, decay := m.params()
	if decay == DefaultDecay && i < len(defaultExamine) {
		return defaultExamine[i]
	}
	return math.Pow(float64(i+1), -decay)
}

// defaultExamine is Examine of the first positions under DefaultDecay.
var defaultExamine = func() (t [64]float64) {
	for i := range t {
		t[i] = math.Pow(float64(i+1), -DefaultDecay)
	}
	return t
}()

// Probs fills dst (grown as needed) with the probability of watching each
// position of a page whose streamers have the affinities aff (in page
// order) and returns it; 1 − their sum is the probability of watching
// nothing from the page.
func (m PageModel) Probs(dst []float64, aff []float64) []float64 {
	outside, _ := m.params()
	dst = dst[:0]
	sum := outside
	for i, a := range aff {
		v := m.Examine(i) * max(a, 0)
		dst = append(dst, v)
		sum += v
	}
	for i := range dst {
		dst[i] /= sum
	}
	return dst
}

// Watch draws from r the position the user watches on a page of
// affinities aff, or -1 for none. It draws exactly one number from r.
func (m PageModel) Watch(aff []float64, r *rand.Rand) int {
	outside, _ := m.params()
	sum := outside
	for i, a := range aff {
		sum += m.Examine(i) * max(a, 0)
	}
	x := r.Float64() * sum
	for i, a := range aff {
		v := m.Examine(i) * max(a, 0)
		if x < v {
			return i
		}
		x -= v
	}
	return -1
}
