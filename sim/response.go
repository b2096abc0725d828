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
// streamer s at the decision being reported:
//
//	habitP·w_s/Σw  (s among the user's live habits, weight w_s)
//	+ (1 − habitP·[any habit live]) · P(category of s) · P(language of s) · quality(s)/quality(live in that group)
//
// where P(category) is the user's taste share ×0.95 plus 0.05 spread over
// the categories, and P(language) is 0.85 (0.95 with Config.Context) for
// the user's language plus 0.15 (0.05) spread over the languages, as
// explore draws them. The fallbacks explore takes when nobody of the drawn
// category and language is live are left out, so the affinities of the
// live streamers sum to at most 1.
func (rn *runner) affinityOf(s int32) float64 {
	w, u := rn.w, rn.affU
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
	nc, nl := float64(len(Categories)), float64(len(Languages))
	pc := 0.05 / nc
	prev := float32(0)
	for k := 0; k < tasteTop; k++ {
		if w.uTasteCat[u][k] == w.sCat[s] {
			pc += 0.95 * float64(w.uTasteCum[u][k]-prev)
		}
		prev = w.uTasteCum[u][k]
	}
	other := 0.15
	if w.cfg.Context {
		other = 0.05
	}
	pl := other / nl
	if w.sLang[s] == w.uLang[u] {
		pl += 1 - other
	}
	if t := rn.live.total(int(w.groupOf[s])); t > 0 {
		p += explore * pc * pl * float64(w.sQuality[s]) / float64(t)
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
// the user picks half the time on their own is watched about 60% of the
// time; a page of streamers of affinity 0.001 about 1.5%.
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
	return math.Pow(float64(i+1), -decay)
}

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
