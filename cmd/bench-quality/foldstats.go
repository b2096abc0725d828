package main

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/replay"
)

// newDecision is a scored decision of a user new that day (no nightly MF
// vector) with the target's rank on each row's page.
type newDecision struct {
	user   lr.UserID
	at     time.Time
	folded bool // the fold-in rows served a folded vector
	ranks  map[string]int
}

// breakdown says what the fold-in had to go on at the decisions of the
// users new that day: the user's watches started before each.
type breakdown struct {
	n, users int
	perUser  [5]int // users with 1, 2, 3, 4, 5 or more decisions
	folded   int
	// Not folded: the user's first watch (no earlier one at all), every
	// earlier watch started before the fold-in's window, or an earlier
	// watch in the window but none of a streamer with an MF vector.
	first, stale, other int
	// beyond: decisions whose user's earlier watches all started more
	// than the known users' window before (folded or not).
	beyond int
	// earlier[i]: decision i has an earlier watch of its user.
	earlier []bool
}

// newUserBreakdown classifies decs against the watches of h; window is
// how far back the fold-in reads the watches of a user without a nightly
// vector, known how far back it reads those of a user with one.
func newUserBreakdown(h *replay.History, decs []newDecision, window, known time.Duration) breakdown {
	starts := map[lr.UserID][]time.Time{}
	for _, d := range decs {
		starts[d.user] = nil
	}
	for _, w := range h.Watches {
		if s, ok := starts[w.User]; ok {
			starts[w.User] = append(s, w.Start)
		}
	}
	for u := range starts {
		slices.SortFunc(starts[u], time.Time.Compare)
	}
	b := breakdown{n: len(decs), users: len(starts), earlier: make([]bool, len(decs))}
	per := map[lr.UserID]int{}
	for i, d := range decs {
		per[d.user]++
		s := starts[d.user]
		k := sort.Search(len(s), func(k int) bool { return !s[k].Before(d.at) })
		b.earlier[i] = k > 0
		if k > 0 && s[k-1].Before(d.at.Add(-known)) {
			b.beyond++
		}
		switch {
		case d.folded:
			b.folded++
		case k == 0:
			b.first++
		case s[k-1].Before(d.at.Add(-window)):
			b.stale++
		default:
			b.other++
		}
	}
	for _, n := range per {
		b.perUser[min(n, 5)-1]++
	}
	return b
}

func (b breakdown) String() string {
	return fmt.Sprintf("%d decisions of %d new users (users with 1, 2, 3, 4, 5+ decisions: %d, %d, %d, %d, %d); %d with a folded vector; without: %d the user's first watch ever (no interaction to fold in), %d with every earlier watch older than the fold-in window, %d other (an earlier watch in the window, but none of its streamers with an MF vector or the solve failed); %d with every earlier watch older than the known users' window (within reach only through the new-user window)",
		b.n, b.users, b.perUser[0], b.perUser[1], b.perUser[2], b.perUser[3], b.perUser[4], b.folded, b.first, b.stale, b.other, b.beyond)
}

// hitBound is the HR@10 of decs if every decision where change holds were
// a hit and the others kept their rank on row's page: the most fold-in
// can give when it changes only those decisions.
func hitBound(decs []newDecision, row string, change func(int) bool) float64 {
	if len(decs) == 0 {
		return 0
	}
	hits := 0
	for i, d := range decs {
		if r := d.ranks[row]; change(i) || r >= 0 && r < replay.K {
			hits++
		}
	}
	return float64(hits) / float64(len(decs))
}

// pair counts, over decisions, the hits (target on the page of K) of a row
// a against a row b.
type pair struct{ both, onlyA, onlyB, neither int }

func pairHits(a, b []int) pair {
	var p pair
	hit := func(r int) bool { return r >= 0 && r < replay.K }
	for i := range a {
		switch ha, hb := hit(a[i]), hit(b[i]); {
		case ha && hb:
			p.both++
		case ha:
			p.onlyA++
		case hb:
			p.onlyB++
		default:
			p.neither++
		}
	}
	return p
}

// signP is the two-sided exact sign test (McNemar's exact test) of k
// successes of n at probability 1/2: the chance of a split at least this
// uneven if a and b hit equally often.
func signP(k, n int) float64 {
	if n == 0 {
		return 1
	}
	k = min(k, n-k)
	var tail float64
	for i := 0; i <= k; i++ {
		lc, _ := math.Lgamma(float64(n + 1))
		l1, _ := math.Lgamma(float64(i + 1))
		l2, _ := math.Lgamma(float64(n - i + 1))
		tail += math.Exp(lc - l1 - l2 - float64(n)*math.Ln2)
	}
	return min(1, 2*tail)
}

func (p pair) String() string {
	return fmt.Sprintf("of %d decisions %d hit by both, %d by the first only, %d by the second only, %d by neither; exact sign test p %.2f",
		p.both+p.onlyA+p.onlyB+p.neither, p.both, p.onlyA, p.onlyB, p.neither, signP(p.onlyA, p.onlyA+p.onlyB))
}

// ndcgDiff is the mean over decisions of b's NDCG@10 minus a's, with its
// 95% normal interval from the per-decision differences (paired: the same
// decisions, so what the two rows share cancels).
func ndcgDiff(a, b []int) (mean, lo, hi float64) {
	gain := func(r int) float64 {
		if r < 0 || r >= replay.K {
			return 0
		}
		return 1 / math.Log2(float64(r)+2)
	}
	n := float64(len(a))
	if n < 2 {
		return 0, 0, 0
	}
	var s, ss float64
	for i := range a {
		d := gain(b[i]) - gain(a[i])
		s += d
		ss += d * d
	}
	mean = s / n
	se := math.Sqrt((ss - n*mean*mean) / (n - 1) / n)
	return mean, mean - 1.96*se, mean + 1.96*se
}
