package main

import (
	"slices"
	"testing"

	"github.com/liverecall/liverecall/replay"
	"github.com/liverecall/liverecall/rerank"
)

// The validation set is the decisions from the cut on, whole: no
// decision's impressions straddle the split, and none of the fit set is
// later than one of the validation set.
func TestSplitIsByDecisionInTime(t *testing.T) {
	var ls []labeled
	for d := 0; d < 5; d++ {
		for k := 0; k < 3; k++ {
			ls = append(ls, labeled{dec: d})
		}
	}
	fit, valid := split(ls, 4)
	if len(fit) != 12 || len(valid) != 3 || fit[len(fit)-1].dec != 3 || valid[0].dec != 4 {
		t.Fatalf("fit %v valid %v", fit, valid)
	}
}

// zeroContext zeroes feature set 3 in copies and leaves the others and
// the original vectors alone.
func TestZeroContextZeroesOnlyTheContextFeatures(t *testing.T) {
	x := make([]float64, rerank.NumFeatures)
	for i := range x {
		x[i] = float64(i + 1)
	}
	orig := slices.Clone(x)
	out := zeroContext([]labeled{{imp: replay.Impression{X: x}}})
	from := slices.Index(rerank.FeatureNames, "hour_sin")
	if from < 0 || !slices.Equal(x, orig) {
		t.Fatalf("feature set 3 at %d; original changed: %v", from, x)
	}
	for i, v := range out[0].imp.X {
		if want := map[bool]float64{true: 0, false: orig[i]}[i >= from]; v != want {
			t.Errorf("feature %s: %v, want %v", rerank.FeatureNames[i], v, want)
		}
	}
}

func TestNewMetrics(t *testing.T) {
	m := newMetrics([]int{0, -1, 1, 10})
	if m.N != 4 || m.HR10 != 0.5 || m.NDCG10 != round4((1+1/1.584962500721156)/4) {
		t.Fatalf("%+v", m)
	}
}
