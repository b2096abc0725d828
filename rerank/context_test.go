package rerank_test

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// Feature set 3 reads the request's context: the local hour on a circle,
// the weekend, the device class one-hot (desktop and other all zeros) and
// whether the stream's language is the request's; a request that says
// nothing has them all 0.
func TestContextFeatures(t *testing.T) {
	pt := cand(1, "a", 0.3, 5, "mf")
	pt.Features.Language = "pt"
	unknown := cand(2, "a", 0.3, 5, "mf")
	sat := time.Saturday
	for _, tc := range []struct {
		name string
		rc   lr.RequestContext
		c    recall.Candidate
		want map[string]float64
	}{
		{"nothing said", lr.RequestContext{}, pt, map[string]float64{}},
		{"6 h on a Saturday, mobile, same language", lr.RequestContext{LocalTime: true, Hour: 6, Weekday: sat, Device: lr.DeviceMobile, Language: "pt", Country: "BR"}, pt,
			map[string]float64{"hour_sin": 1, "weekend": 1, "device_mobile": 1, "language_match": 1}},
		{"midnight on a Monday, tablet, other language", lr.RequestContext{LocalTime: true, Hour: 0, Weekday: time.Monday, Device: lr.DeviceTablet, Language: "en"}, pt,
			map[string]float64{"hour_cos": 1, "device_tablet": 1}},
		{"18 h, tv, stream of unknown language", lr.RequestContext{LocalTime: true, Hour: 18, Weekday: time.Sunday, Device: lr.DeviceTV, Language: "pt"}, unknown,
			map[string]float64{"hour_sin": -1, "weekend": 1, "device_tv": 1}},
		{"desktop and other are the zeros", lr.RequestContext{Device: lr.DeviceDesktop}, pt, map[string]float64{}},
		{"an unknown device is other", lr.RequestContext{Device: "watch"}, pt, map[string]float64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := rerank.Features(tc.c, &rerank.Context{User: 1, Request: tc.rc})
			for _, n := range []string{"hour_sin", "hour_cos", "weekend", "device_mobile", "device_tablet", "device_tv", "language_match"} {
				if got := feature(t, x, n); math.Abs(got-tc.want[n]) > 1e-12 {
					t.Errorf("%s = %v, want %v", n, got, tc.want[n])
				}
			}
			// Rank computes the same vector.
			items := rerank.Rank([]recall.Candidate{tc.c}, rerank.DefaultWeights(), &rerank.Context{User: 1, Request: tc.rc}, 1)
			if !slices.Equal(items[0].Vector, x) {
				t.Errorf("Rank's vector %v, Features' %v", items[0].Vector, x)
			}
		})
	}
}

// Weights of feature set 2 (before the context features) load with zero
// weights for set 3 and score exactly as before, whatever the context; a
// trained weight on a context feature moves the score.
func TestSet2WeightsIgnoreContext(t *testing.T) {
	n2 := rerank.FeatureSets[len(rerank.FeatureSets)-2]
	if n2 >= rerank.NumFeatures || rerank.FeatureSets[len(rerank.FeatureSets)-1] != rerank.NumFeatures {
		t.Fatalf("feature sets %v, %d features", rerank.FeatureSets, rerank.NumFeatures)
	}
	old := rerank.Weights{Version: "set2", Bias: -1, W: slices.Clone(rerank.DefaultWeights().W[:n2])}
	b, _ := json.Marshal(old)
	w, err := rerank.ParseWeights(b)
	if err != nil {
		t.Fatal(err)
	}
	c := cand(1, "a", 0.3, 5, "mf")
	c.Features.Language = "pt"
	rc := lr.RequestContext{LocalTime: true, Hour: 21, Weekday: time.Saturday, Device: lr.DeviceMobile, Language: "pt"}
	with := rerank.Rank([]recall.Candidate{c}, w, &rerank.Context{User: 1, Request: rc}, 1)[0].Score
	without := rerank.Rank([]recall.Candidate{c}, w, &rerank.Context{User: 1}, 1)[0].Score
	if with != without {
		t.Errorf("set-2 weights score %v with a context, %v without", with, without)
	}
	w.W[slices.Index(rerank.FeatureNames, "language_match")] = 1
	if got := rerank.Rank([]recall.Candidate{c}, w, &rerank.Context{User: 1, Request: rc}, 1)[0].Score; got <= without {
		t.Errorf("language_match weight 1: score %v, not above %v", got, without)
	}
}

// BenchmarkRankContext ranks 100 candidates for a page of 20, without and
// with a request context (feature set 3 filled).
func BenchmarkRankContext(b *testing.B) {
	cands := make([]recall.Candidate, 100)
	for i := range cands {
		cands[i] = cand(i+1, string(rune('a'+i%8)), float32(i%17)/17, i*3, "mf", "trending")
		cands[i].Features.Language = []string{"pt", "en", ""}[i%3]
	}
	w := rerank.DefaultWeights()
	for _, bc := range []struct {
		name string
		rc   lr.RequestContext
	}{
		{"none", lr.RequestContext{}},
		{"context", lr.RequestContext{LocalTime: true, Hour: 21, Weekday: time.Friday, Device: lr.DeviceMobile, Language: "pt", Country: "BR"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := &rerank.Context{User: 1, Now: time.Now(), Request: bc.rc}
			b.ReportAllocs()
			for b.Loop() {
				rerank.Release(rerank.Rank(cands, w, ctx, 20))
			}
		})
	}
}
