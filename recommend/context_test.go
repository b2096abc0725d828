package recommend_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

// restartWithLanguages restarts the world's live streams 1..6 with
// languages: 1, 2 pt; 3, 4 en; 5 unknown; 6 es.
func restartWithLanguages(w *world) {
	langs := map[int]string{1: "pt-BR", 2: "pt", 3: "en", 4: "en-US", 5: "", 6: "es"}
	var evs []lr.Event
	for id := 1; id <= 6; id++ {
		evs = append(evs,
			lr.Event{ID: fmt.Sprint("e", id), Type: lr.EventStreamEnded, TS: t0.Add(-30 * time.Minute), StreamerID: lr.StreamerID(id), StreamID: lr.StreamID(100 + id), V: 1},
			lr.Event{ID: fmt.Sprint("r", id), Type: lr.EventStreamStarted, TS: t0.Add(-20 * time.Minute), StreamerID: lr.StreamerID(id),
				StreamID: lr.StreamID(200 + id), Category: fmt.Sprint("c", id%3), Language: langs[id], V: 1})
	}
	w.state.Apply(evs)
	w.engine.RefreshRankings()
}

// The request's context reaches the reranker's features (set 3) and the
// impressions; a request without one logs none.
func TestContextBecomesFeaturesAndIsLogged(t *testing.T) {
	w, svc := newWorld(t, 0)
	restartWithLanguages(w)
	rc := lr.RequestContext{LocalTime: true, Hour: 6, Weekday: time.Saturday, Device: lr.DeviceMobile, Language: "pt", Country: "BR"}
	page, err := svc.Recommend(context.Background(), lr.RecommendRequest{RequestID: "c1", User: 7, K: 6, Debug: true, Context: rc})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 6 {
		t.Fatalf("page %v", ids(page))
	}
	for _, it := range page.Items {
		f := it.Debug.Features
		match := 0.0
		if it.StreamerID <= 2 {
			match = 1
		}
		if f["hour_sin"] != 1 || f["weekend"] != 1 || f["device_mobile"] != 1 || f["device_tv"] != 0 || f["language_match"] != match {
			t.Errorf("streamer %d (%s): context features %v", it.StreamerID, it.Debug.Live.Language, f)
		}
	}
	imps := w.imps.got[0]
	for _, im := range imps {
		if im.Context == nil || *im.Context != rc {
			t.Fatalf("impression context %+v, want %+v", im.Context, rc)
		}
	}
	// An unknown device is logged as other; nothing said, nothing logged.
	if _, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: 7, K: 2, Context: lr.RequestContext{Device: "Watch"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: 7, K: 2}); err != nil {
		t.Fatal(err)
	}
	if c := w.imps.got[1][0].Context; c == nil || c.Device != lr.DeviceOther {
		t.Errorf("unknown device logged as %+v, want other", c)
	}
	if c := w.imps.got[2][0].Context; c != nil {
		t.Errorf("no context logged as %+v", c)
	}
}

// The same-language filter keeps the streams of the request's language
// and of unknown language; with too few of them the others fill the page
// after them; without a language in the context it does nothing.
func TestSameLanguageFilter(t *testing.T) {
	w, svc := newWorld(t, 0)
	restartWithLanguages(w)
	pt := lr.RequestContext{Language: "pt"}
	req := func(k int, rc lr.RequestContext) *lr.Page {
		t.Helper()
		page, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: 7, K: k, Debug: true, Context: rc, SameLanguage: true})
		if err != nil {
			t.Fatal(err)
		}
		return page
	}
	page := req(3, pt)
	got := ids(page)
	slices.Sort(got)
	if !slices.Equal(got, []lr.StreamerID{1, 2, 5}) || page.Debug.Filtered["language"] != 3 {
		t.Fatalf("k 3: page %v, filtered %v; want 1, 2, 5 (pt and unknown), 3 filtered", got, page.Debug.Filtered)
	}
	page = req(5, pt)
	first := ids(page)[:3]
	slices.Sort(first)
	if len(page.Items) != 5 || !slices.Equal(first, []lr.StreamerID{1, 2, 5}) || page.Debug.Filtered["language"] != 1 {
		t.Fatalf("k 5: page %v, filtered %v; want 1, 2, 5 first, then two others, 1 filtered", ids(page), page.Debug.Filtered)
	}
	if got := len(req(6, lr.RequestContext{}).Items); got != 6 {
		t.Fatalf("no language: %d items, want all 6", got)
	}
	for outcome, want := range map[string]float64{"applied": 1, "fallback": 1, "no_language": 1} {
		if got := counter(t, w.reg, "liverecall_language_filter_total", outcome); got != want {
			t.Errorf("filter outcome %s counted %v, want %v", outcome, got, want)
		}
	}
	// Without the filter the same request mixes languages by score.
	page, err := svc.Recommend(context.Background(), lr.RecommendRequest{User: 7, K: 3, Debug: true, Context: pt})
	if err != nil {
		t.Fatal(err)
	}
	if page.Debug.Filtered["language"] != 0 || slices.Equal(ids(page), []lr.StreamerID{1, 2, 5}) {
		t.Fatalf("unfiltered page %v, filtered %v", ids(page), page.Debug.Filtered)
	}
}
