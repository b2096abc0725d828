package sim_test

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/sim"
)

// Choice.Affinity is the choice model's own distribution: the
// affinities of the live streamers sum to 1, a streamer not live has
// none, the streamer of highest affinity is chosen as often as its
// affinity says, and the mean affinity of the chosen streamer is the
// mean of Σ affinity² (what it is when choices are drawn from the
// affinities).
func TestAffinityIsTheChoiceProbability(t *testing.T) {
	for _, ctxOn := range []bool{false, true} {
		w, err := sim.New(sim.Config{Seed: 3, Streamers: 300, Users: 3000, Context: ctxOn})
		if err != nil {
			t.Fatal(err)
		}
		from := w.Config().Start.Add(2 * day)
		var n int
		var topAff, topChosen, chosenAff, sumSq float64
		var live []lr.StreamerID
		_, err = w.Run(context.Background(), from, from.Add(day), func(lr.Event) error { return nil }, func(c sim.Choice) error {
			live = c.Live(live[:0])
			var sum, sq, best float64
			var top lr.StreamerID
			for _, s := range live {
				a := c.Affinity(s)
				if a < 0 || a > 1 {
					t.Fatalf("affinity %v of streamer %d out of [0, 1]", a, s)
				}
				sum += a
				sq += a * a
				if a > best {
					best, top = a, s
				}
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Fatalf("affinities of the live streamers sum to %v, not 1", sum)
			}
			for s := lr.StreamerID(1); s <= 300; s++ {
				if !c.IsLive(s) && c.Affinity(s) != 0 {
					t.Fatalf("streamer %d not live has affinity %v", s, c.Affinity(s))
				}
			}
			n++
			topAff += best
			if c.Streamer == top {
				topChosen++
			}
			chosenAff += c.Affinity(c.Streamer)
			sumSq += sq
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < 1000 {
			t.Fatalf("context %v: only %d decisions", ctxOn, n)
		}
		fn := float64(n)
		if got, want := topChosen/fn, topAff/fn; math.Abs(got-want) > 0.03 {
			t.Errorf("context %v: the top-affinity streamer was chosen in %.3f of %d decisions, its mean affinity is %.3f", ctxOn, got, n, want)
		}
		if got, want := chosenAff/fn, sumSq/fn; math.Abs(got-want) > 0.02 {
			t.Errorf("context %v: mean affinity of the chosen streamer %.4f, mean Σ affinity² %.4f", ctxOn, got, want)
		}
	}
}

func TestPageModel(t *testing.T) {
	m := sim.PageModel{}
	if m.Examine(0) != 1 || !(m.Examine(1) < m.Examine(0)) || !(m.Examine(9) < m.Examine(1)) {
		t.Fatalf("position bias not decreasing: %v %v %v", m.Examine(0), m.Examine(1), m.Examine(9))
	}
	// The defaults' documented cases.
	top := []float64{0.5, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if p := m.Probs(nil, top)[0]; math.Abs(p-2.0/3) > 0.01 {
		t.Errorf("a page with a streamer of affinity 0.5 on top is watched with probability %.3f, want about 0.67", p)
	}
	low := []float64{0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001, 0.001}
	var sum float64
	for _, p := range m.Probs(nil, low) {
		sum += p
	}
	if sum < 0.01 || sum > 0.02 {
		t.Errorf("a page of affinity 0.001 is watched with probability %.4f, want about 0.015", sum)
	}
	// Equal affinities: the higher position more often.
	eq := m.Probs(nil, []float64{0.1, 0.1, 0.1})
	if !(eq[0] > eq[1] && eq[1] > eq[2]) {
		t.Errorf("equal affinities, probabilities %v not decreasing with position", eq)
	}
	// Draws follow Probs; nothing on a page of zeros.
	aff := []float64{0.05, 0.4, 0, 0.2}
	want := m.Probs(nil, aff)
	r := rand.New(rand.NewPCG(1, 2))
	const draws = 200000
	got := make([]float64, len(aff))
	none := 0
	for i := 0; i < draws; i++ {
		if pos := m.Watch(aff, r); pos >= 0 {
			got[pos]++
		} else {
			none++
		}
	}
	var wsum float64
	for i := range want {
		wsum += want[i]
		if math.Abs(got[i]/draws-want[i]) > 0.005 {
			t.Errorf("position %d watched in %.4f of draws, Probs says %.4f", i, got[i]/draws, want[i])
		}
	}
	if got[2] != 0 {
		t.Errorf("a streamer of affinity 0 was watched %v times", got[2])
	}
	if math.Abs(float64(none)/draws-(1-wsum)) > 0.005 {
		t.Errorf("nothing watched in %.4f of draws, want %.4f", float64(none)/draws, 1-wsum)
	}
	for i := 0; i < 1000; i++ {
		if pos := m.Watch([]float64{0, 0}, r); pos != -1 {
			t.Fatalf("a page of affinity 0 watched at %d", pos)
		}
	}
}
