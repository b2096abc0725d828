package rerank

import (
	"math"
	"slices"
)

// AUC is the area under the ROC curve of scores for labels (ties count
// half); NaN when labels hold one class only.
func AUC(scores []float64, labels []bool) float64 {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case scores[a] < scores[b]:
			return -1
		case scores[a] > scores[b]:
			return 1
		}
		return 0
	})
	var pos, neg, rankSum float64
	for i := 0; i < len(idx); {
		j := i
		for j < len(idx) && scores[idx[j]] == scores[idx[i]] {
			j++
		}
		mid := float64(i+j+1) / 2 // mean 1-based rank of the tie group
		for _, k := range idx[i:j] {
			if labels[k] {
				pos++
				rankSum += mid
			} else {
				neg++
			}
		}
		i = j
	}
	if pos == 0 || neg == 0 {
		return math.NaN()
	}
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// HeadMetrics measures f's heads on held-out samples: "auc_<objective>"
// for each binary head and "rmse_watch_seconds" (seconds, the labels
// capped at the head's Scale) for the watch-time head. A metric that is
// undefined on these samples (one class only) is left out.
func HeadMetrics(f *Forest, hold []Sample) map[string]float64 {
	out := map[string]float64{}
	if len(hold) == 0 {
		return out
	}
	pred := make([]float64, len(hold))
	labels := make([]bool, len(hold))
	for hi := range f.heads {
		h := &f.heads[hi]
		for i, s := range hold {
			pred[i] = link(h.loss, f.raw(h, s.X))
		}
		switch h.obj {
		case ObjWatchSeconds:
			var se float64
			for i, s := range hold {
				y := math.Min(math.Max(s.WatchSeconds, 0), h.scale)
				se += (pred[i] - y) * (pred[i] - y)
			}
			out["rmse_"+string(h.obj)] = math.Sqrt(se / float64(len(hold)))
		case ObjWatched, ObjGift, ObjFollow:
			for i, s := range hold {
				labels[i] = (h.obj == ObjWatched && s.Label) || (h.obj == ObjGift && s.Gift) || (h.obj == ObjFollow && s.Follow)
			}
			if a := AUC(pred, labels); !math.IsNaN(a) {
				out["auc_"+string(h.obj)] = a
			}
		}
	}
	return out
}
