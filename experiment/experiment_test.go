package experiment

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

var channels = []string{"mf", "ncf", "session", "follow", "trending", "fresh"}

func TestBucketSplitsEvenlyAndIndependently(t *testing.T) {
	const n = 40000
	var in1, both int
	for u := range n {
		a := Bucket("salt-1", lr.UserID(u)) < Buckets/2
		b := Bucket("salt-2", lr.UserID(u)) < Buckets/2
		if a {
			in1++
		}
		if a && b {
			both++
		}
		if Bucket("salt-1", lr.UserID(u)) != Bucket("salt-1", lr.UserID(u)) {
			t.Fatal("not deterministic")
		}
	}
	// 5 standard deviations of a binomial share.
	tol := 5 * math.Sqrt(n*0.25)
	if math.Abs(float64(in1)-n/2) > tol {
		t.Errorf("half the buckets hold %d of %d users", in1, n)
	}
	if math.Abs(float64(both)-n/4) > 5*math.Sqrt(n*0.25*0.75) {
		t.Errorf("two salts agree on %d of %d users, want about %d (independent)", both, n, n/4)
	}
}

func TestArmOf(t *testing.T) {
	e := &lr.Experiment{Name: "x", Salt: "s", Mode: lr.ModeAB, Arms: []lr.Arm{{Name: "a", Share: 0.1}, {Name: "b", Share: 0.1}}}
	counts := map[int]int{}
	for u := range 20000 {
		counts[ArmOf(e, lr.UserID(u))]++
	}
	for arm, want := range map[int]int{0: 2000, 1: 2000, -1: 16000} {
		if math.Abs(float64(counts[arm]-want)) > 5*math.Sqrt(float64(want)) {
			t.Errorf("arm %d holds %d users, want about %d", arm, counts[arm], want)
		}
	}
	e.Mode = lr.ModeInterleave
	for u := range 2000 {
		if got := ArmOf(e, lr.UserID(u)); got != 0 && got != -1 {
			t.Fatalf("interleaving: ArmOf = %d", got)
		}
	}
}

func TestTeamDraft(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := []int{1, 2, 3, 4, 5}
	b := []int{3, 1, 6, 7}
	for range 100 {
		page, team := TeamDraft(a, b, 6, rng)
		if len(page) != 6 || len(team) != 6 {
			t.Fatalf("page %v team %v", page, team)
		}
		seen := map[int]bool{}
		na, nb := 0, 0
		for i, x := range page {
			if seen[x] {
				t.Fatalf("%d twice in %v", x, page)
			}
			seen[x] = true
			if team[i] == 0 {
				na++
			} else {
				nb++
			}
			if d := na - nb; d > 1 || d < -1 {
				t.Fatalf("teams unbalanced after %d picks: %v", i+1, team)
			}
		}
		// Each team's picks keep its own ranking's order.
		for tm, list := range [][]int{a, b} {
			last := -1
			for i, x := range page {
				if team[i] != tm {
					continue
				}
				pos := -1
				for j, y := range list {
					if y == x {
						pos = j
					}
				}
				if pos < 0 || pos < last {
					t.Fatalf("team %d's pick %d out of its order: page %v team %v", tm, x, page, team)
				}
				last = pos
			}
		}
	}
	// Identical rankings give the ranking itself.
	page, _ := TeamDraft(a, a, 5, rng)
	for i := range a {
		if page[i] != a[i] {
			t.Fatalf("TeamDraft(a, a) = %v", page)
		}
	}
	// One ranking runs out: the other fills the page.
	page, team := TeamDraft([]int{1}, []int{2, 3, 4}, 4, rng)
	if len(page) != 4 || team[3] != 1 {
		t.Fatalf("page %v team %v", page, team)
	}
}

func TestCheckRefuses(t *testing.T) {
	good := func() *lr.Experiment {
		return &lr.Experiment{Name: "exp-1", Salt: "s", Mode: lr.ModeAB, Start: time.Unix(0, 0),
			Arms: []lr.Arm{{Name: "control", Share: 0.05}, {Name: "treat", Share: 0.05, Config: lr.ArmConfig{Disabled: []string{"fresh"}}}}}
	}
	if err := Check(good(), channels); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(e *lr.Experiment)
		want string
	}{
		{"shares", func(e *lr.Experiment) { e.Arms[0].Share, e.Arms[1].Share = 0.6, 0.5 }, "above 100%"},
		{"share zero", func(e *lr.Experiment) { e.Arms[0].Share = 0 }, "not in (0, 1]"},
		{"channel", func(e *lr.Experiment) { e.Arms[1].Config.Disabled = []string{"nope"} }, `unknown channel "nope"`},
		{"quota channel", func(e *lr.Experiment) { e.Arms[1].Config.Quota = map[string]int{"x": 3} }, `unknown channel "x"`},
		{"one arm", func(e *lr.Experiment) { e.Arms = e.Arms[:1] }, "at least 2 arms"},
		{"interleave three", func(e *lr.Experiment) {
			e.Mode = lr.ModeInterleave
			e.Arms = append(e.Arms, lr.Arm{Name: "c", Share: 0.01})
		}, "exactly 2 arms"},
		{"mode", func(e *lr.Experiment) { e.Mode = "bandit" }, `mode "bandit"`},
		{"dup arm", func(e *lr.Experiment) { e.Arms[1].Name = "control" }, "named twice"},
		{"name", func(e *lr.Experiment) { e.Name = "Bad Name" }, "experiment name"},
		{"window", func(e *lr.Experiment) { e.End = e.Start }, "not after start"},
	} {
		e := good()
		tc.edit(e)
		err := Check(e, channels)
		if err == nil || lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want EINVALID containing %q", tc.name, err, tc.want)
		}
	}
}

func TestConflict(t *testing.T) {
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	a := &lr.Experiment{Name: "a", Start: day, End: day.Add(48 * time.Hour), Arms: []lr.Arm{{Config: lr.ArmConfig{MFVersion: "mf-2"}}}}
	b := &lr.Experiment{Name: "b", Start: day.Add(24 * time.Hour), Arms: []lr.Arm{{Config: lr.ArmConfig{RerankVersion: "r-2"}}}}
	if err := Conflict(a, b); err == nil || lr.ErrorCode(err) != lr.ECONFLICT {
		t.Errorf("same layer, overlapping: %v", err)
	}
	b.Layer = "ranking"
	if err := Conflict(a, b); err != nil {
		t.Errorf("disjoint layers and parameters: %v", err)
	}
	b.Arms[0].Config.MFVersion = "mf-3"
	if err := Conflict(a, b); err == nil || !strings.Contains(err.Error(), "mf_version") {
		t.Errorf("disjoint layers, same parameter: %v", err)
	}
	b.Layer, b.Start = "", day.Add(48*time.Hour)
	if err := Conflict(a, b); err != nil {
		t.Errorf("one after the other: %v", err)
	}
}
