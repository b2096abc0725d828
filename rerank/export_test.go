package rerank

// WalkOnly returns f without its set-walk form: Rank then scores the page
// by the tree-by-tree walk (Forest.scoreBatch), for the benchmark's
// comparison.
func WalkOnly(f *Forest) *Forest {
	g := *f
	g.sets = nil
	return &g
}
