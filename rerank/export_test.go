package rerank

// WalkOnly returns f without its QuickScorer form: Rank then scores the
// page by the tree-by-tree walk (Forest.scoreBatch), for the benchmark's
// comparison.
func WalkOnly(f *Forest) *Forest {
	g := *f
	g.qs, g.sets = nil, nil
	return &g
}

// QSOnly returns f scored by QuickScorer.
func QSOnly(f *Forest) *Forest {
	g := *f
	g.sets = nil
	return &g
}
