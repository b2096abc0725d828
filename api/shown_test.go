package api_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/liverecall/liverecall/recall"
)

// Over HTTP, with the already-shown filter on: a user who keeps coming
// back never gets an empty page while streamers are live (the shown ones
// fill it, after those not shown yet), and excluding the top of a page
// leaves the rest of it.
func TestRepeatedRequestsNeverEmptyWhileStreamersLive(t *testing.T) {
	f := newFixture(t) // 6 live streamers
	now := func() time.Time { return f.now }
	budgets := map[string]time.Duration{}
	for _, ch := range recall.Channels {
		budgets[ch] = 10 * time.Second
	}
	engine := recall.New(recall.Config{Now: now, Budget: 10 * time.Second, ChannelBudget: budgets, ShownWindow: 10 * time.Minute},
		f.state, f.ords, f.idx, f.idx, nil, nil)
	engine.RefreshRankings()
	f.compose(engine)
	page := func(body string) []int64 {
		var out []int64
		for _, it := range recallResp(t, f, body).Items {
			out = append(out, it.StreamerID)
		}
		return out
	}
	first := page(`{"user_id":7,"k":4}`)
	second := page(`{"user_id":7,"k":4}`)
	if len(first) != 4 || len(second) != 4 {
		t.Fatalf("pages %v %v, want 4 items each (6 live)", first, second)
	}
	// The two not shown yet lead the second page.
	for i, id := range second[:2] {
		if slices.Contains(first, id) {
			t.Fatalf("second page %v: item %d was on the first page %v although 2 live streamers were not shown yet", second, i, first)
		}
	}
	for i := 0; i < 5; i++ {
		if p := page(`{"user_id":7,"k":4}`); len(p) != 4 {
			t.Fatalf("request %d: %v, want 4 items", i+3, p)
		}
	}
	all := page(`{"user_id":7,"k":6}`)
	if len(all) != 6 {
		t.Fatalf("page of 6: %v, want every live streamer", all)
	}
	rest := page(fmt.Sprintf(`{"user_id":7,"k":6,"exclude":[%d,%d,%d]}`, all[0], all[1], all[2]))
	slices.Sort(rest)
	want := slices.Clone(all[3:])
	slices.Sort(want)
	if !slices.Equal(rest, want) {
		t.Fatalf("after excluding %v: %v, want the rest of the page %v", all[:3], rest, want)
	}
}
