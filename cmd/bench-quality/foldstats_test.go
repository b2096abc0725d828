package main

import (
	"math"
	"testing"
	"time"

	"github.com/liverecall/liverecall/replay"
)

// A new user's decisions are told apart by what fold-in had at each: the
// first watch ever, earlier watches all older than the window, or a
// folded vector; the bound makes every decision allowed a hit and keeps
// the others' ranks.
func TestNewUserBreakdownAndBound(t *testing.T) {
	t0 := time.Date(2026, 1, 12, 0, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	h := &replay.History{Watches: []replay.Watch{
		{User: 1, Start: at(1)}, {User: 1, Start: at(2)}, {User: 1, Start: at(20)},
		{User: 2, Start: at(3)},
		{User: 9, Start: at(0)}, // not a new user's
	}}
	decs := []newDecision{
		{user: 1, at: at(1), ranks: map[string]int{"a": 0}},                // first watch: a hit
		{user: 1, at: at(2), folded: true, ranks: map[string]int{"a": 12}}, // folded, a miss
		{user: 1, at: at(20), ranks: map[string]int{"a": -1}},              // 18 h after: stale with a 6 h window
		{user: 2, at: at(3), ranks: map[string]int{"a": -1}},               // first watch: a miss
	}
	b := newUserBreakdown(h, decs, 6*time.Hour, 6*time.Hour)
	if b.n != 4 || b.users != 2 || b.perUser != [5]int{1, 0, 1, 0, 0} || b.folded != 1 || b.first != 2 || b.stale != 1 || b.other != 0 || b.beyond != 1 {
		t.Fatalf("%+v", b)
	}
	if want := []bool{false, true, true, false}; b.earlier[0] != want[0] || b.earlier[1] != want[1] || b.earlier[2] != want[2] || b.earlier[3] != want[3] {
		t.Fatalf("earlier %v, want %v", b.earlier, want)
	}
	if b := newUserBreakdown(h, decs, 24*time.Hour, 6*time.Hour); b.stale != 0 || b.other != 1 || b.beyond != 1 {
		t.Fatalf("24 h window: %+v, want the 18-hours-later decision as other", b)
	}
	if got := hitBound(decs, "a", func(i int) bool { return decs[i].folded }); got != 0.5 {
		t.Fatalf("bound over the folded: %v, want 2/4", got)
	}
	if got := hitBound(decs, "a", func(i int) bool { return b.earlier[i] }); got != 0.75 {
		t.Fatalf("bound after the first watch: %v, want 3/4", got)
	}
}

func TestPairedComparisons(t *testing.T) {
	a := []int{0, 3, -1, 12, 2, -1}
	b := []int{0, -1, 4, 1, -1, -1}
	if p := pairHits(a, b); p != (pair{both: 1, onlyA: 2, onlyB: 2, neither: 1}) {
		t.Fatalf("%+v", p)
	}
	// 0 of 0: no evidence; 5 of 5: 2/32; 1 of 3: 1.
	for _, c := range []struct {
		k, n int
		want float64
	}{{0, 0, 1}, {5, 5, 2.0 / 32}, {0, 5, 2.0 / 32}, {1, 3, 1}, {2, 10, 2 * 56.0 / 1024}} {
		if got := signP(c.k, c.n); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("signP(%d, %d) = %v, want %v", c.k, c.n, got, c.want)
		}
	}
	m, lo, hi := ndcgDiff([]int{0, 0}, []int{1, 1})
	want := 1/math.Log2(3) - 1
	if math.Abs(m-want) > 1e-12 || math.Abs(lo-want) > 1e-12 || math.Abs(hi-want) > 1e-12 {
		t.Fatalf("constant difference: %v [%v, %v], want %v exactly", m, lo, hi, want)
	}
	if m, lo, hi := ndcgDiff([]int{0, -1}, []int{-1, 0}); m != 0 || lo >= 0 || hi <= 0 {
		t.Fatalf("opposite differences: %v [%v, %v]", m, lo, hi)
	}
}
