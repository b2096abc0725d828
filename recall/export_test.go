package recall

import (
	"context"

	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/userstore"
)

// MergeHits runs the merge alone, as Recall does once its channels have
// answered: hits[i] are the hits of Channels[i] (nil: none). fresh, if not
// nil, is the live set the merge takes as now's (else the newest
// snapshot): streams that end after it pass the liveness check of admit
// and are dropped when their features are read. The user's row must be
// cached (nothing waits for a Fetch).
func (e *Engine) MergeHits(req Request, hits [][]Hit, fresh *live.Snapshot) *Result {
	return e.mergeHitsWith(req, hits, fresh, e.merge)
}

// mergeHitsWith is MergeHits with the merge given.
func (e *Engine) mergeHitsWith(req Request, hits [][]Hit, fresh *live.Snapshot, merge func(*query, []namedChannel, [][]Hit, *Result) []Candidate) *Result {
	q := &query{req: req, snap: e.state.Snapshot(), now: e.cfg.Now(), fresh: fresh}
	res := &Result{Versions: map[string]string{}, Filtered: map[string]int{}}
	e.lookupUser(context.Background(), q, res)
	if row, ok := q.user.arrived(); ok && row.Versions == q.vers {
		res.User = row
	} else {
		res.User = userstore.Row{Versions: q.vers}
	}
	res.UserKnown = res.User.Known()
	res.Candidates = merge(q, e.chans, hits, res)
	return res
}
