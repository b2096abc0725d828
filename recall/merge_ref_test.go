package recall

import (
	"slices"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
)

// MergeHitsReference is MergeHits with mergeReference, the merge as it was
// before it sorted keys instead of candidates and read the features of
// only the demoted candidates that fill the page: what the merge must
// still return.
func (e *Engine) MergeHitsReference(req Request, hits [][]Hit, fresh *live.Snapshot) *Result {
	return e.mergeHitsWith(req, hits, fresh, e.mergeReference)
}

// mergeReference is the merge as it was (its scratch memory allocated
// anew): every demoted candidate copied, sorted stably by when it was
// shown, and its features read, before the page takes what it needs.
func (e *Engine) mergeReference(q *query, funcs []namedChannel, got [][]Hit, res *Result) []Candidate {
	exclude := map[lr.StreamerID]bool{}
	for _, id := range q.req.Exclude {
		exclude[id] = true
	}
	if e.integrity != nil {
		for _, id := range e.integrity.Blocked(q.req.User) {
			exclude[id] = true
		}
	}
	shown := map[lr.StreamerID]int64{}
	if !e.cfg.ShownDisabled {
		sh := e.shown.shard(q.req.User)
		sh.mu.Lock()
		cut := q.now.Add(-e.cfg.ShownWindow).UnixNano()
		for _, s := range sh.users[q.req.User] {
			if s.at > cut && s.at >= shown[s.id] {
				shown[s.id] = s.at
			}
		}
		sh.mu.Unlock()
		for _, w := range e.state.History(q.req.User) {
			if at, ok := shown[w.StreamerID]; ok && w.JoinedAt.UnixNano() >= at {
				delete(shown, w.StreamerID)
			}
		}
	}
	fresh := q.fresh
	if fresh == nil {
		fresh = e.state.Snapshot()
	}
	var hitOrds []uint32
	off := make([]int, len(funcs))
	for ci := range funcs {
		off[ci] = len(hitOrds)
		for _, h := range got[ci] {
			hitOrds = append(hitOrds, h.Ord)
		}
	}
	n := len(hitOrds)
	ids, known := make([]lr.StreamerID, n), make([]bool, n)
	e.ords.IDs(hitOrds, ids, known)
	pos := map[uint32]int{}
	var cands, demoted []Candidate
	names := make([]string, n)
	slots := 0
	rejected := map[uint32]bool{}
	taken, next := make([]int, len(funcs)), make([]int, len(funcs))
	for progress := true; progress; {
		progress = false
		for ci := range funcs {
			hits := got[ci]
			name := funcs[ci].name
			for next[ci] < len(hits) && taken[ci] < e.quota(q, name) {
				h, hi := hits[next[ci]], off[ci]+next[ci]
				next[ci]++
				if rejected[h.Ord] {
					continue
				}
				if i, ok := pos[h.Ord]; ok {
					var c *Candidate
					if i >= 0 {
						c = &cands[i]
					} else {
						c = &demoted[^i]
					}
					if !slices.Contains(c.Channels, name) {
						c.Channels = append(c.Channels, name)
					}
					continue
				}
				c, why := e.admitReference(h, ids[hi], known[hi], fresh.Contains(h.Ord), exclude, shown)
				if why != "" && why != "shown" {
					rejected[h.Ord] = true
					res.Filtered[why]++
					continue
				}
				names[slots] = name
				c.Channels = names[slots : slots+1 : slots+1]
				slots++
				switch name {
				case ChanMF:
					c.MFScore, c.HasMF = h.Score, true
				case ChanNCF:
					c.NCFScore, c.HasNCF = h.Score, true
				}
				if why == "shown" {
					c.Shown = true
					pos[h.Ord] = ^len(demoted)
					demoted = append(demoted, c)
					continue
				}
				pos[h.Ord] = len(cands)
				cands = append(cands, c)
				taken[ci]++
				progress = true
				break
			}
		}
	}
	cands = e.keepLiveReference(q, cands, res)
	limit, unknown, capped := e.cfg.unknownLimit(q.req.K), 0, 0
	capOn := limit >= 0 && len(res.Versions) > 0
	admitUnknown := func(c *Candidate) bool {
		if !capOn || e.knownToModels(q, c) {
			return true
		}
		if unknown >= limit {
			capped++
			return false
		}
		unknown++
		return true
	}
	keep := cands[:0]
	for i := range cands {
		if admitUnknown(&cands[i]) {
			keep = append(keep, cands[i])
		}
	}
	cands = keep
	if len(cands) < q.req.K && len(demoted) > 0 {
		slices.SortStableFunc(demoted, func(a, b Candidate) int { return cmpInt64(shown[a.StreamerID], shown[b.StreamerID]) })
		demoted = e.keepLiveReference(q, demoted, res)
		for i := range demoted {
			if len(cands) < q.req.K && admitUnknown(&demoted[i]) {
				cands = append(cands, demoted[i])
			} else if len(cands) == q.req.K {
				res.Filtered["shown"]++
			}
		}
	} else if len(demoted) > 0 {
		res.Filtered["shown"] += len(demoted)
	}
	if capped > 0 {
		res.Filtered["unknown_cap"] += capped
		e.unknownCapped.Add(float64(capped))
	}
	if unknown > 0 {
		e.unknownAdmitted.Add(float64(unknown))
	}
	e.scoreCandidates(q, res.User, cands, &scratch{})
	return cands
}

func (e *Engine) keepLiveReference(q *query, cands []Candidate, res *Result) []Candidate {
	ords, ptrs, isLive := make([]uint32, len(cands)), make([]*live.Features, len(cands)), make([]bool, len(cands))
	for i := range cands {
		ords[i], ptrs[i] = cands[i].Ord, &cands[i].Features
	}
	e.state.FeaturesAtMany(ords, q.now, ptrs, isLive)
	keep := cands[:0]
	for i := range cands {
		if isLive[i] {
			keep = append(keep, cands[i])
		} else {
			res.Filtered["ended"]++
		}
	}
	return keep
}

func (e *Engine) admitReference(h Hit, id lr.StreamerID, known, live bool, exclude map[lr.StreamerID]bool, shown map[lr.StreamerID]int64) (Candidate, string) {
	if !known {
		return Candidate{}, "unknown"
	}
	if !live {
		return Candidate{}, "ended"
	}
	switch {
	case exclude[id]:
		return Candidate{}, "excluded"
	case e.integrity != nil && e.integrity.Banned(id):
		return Candidate{}, "banned"
	}
	c := Candidate{Ord: h.Ord, StreamerID: id, ChanScore: h.Score}
	if _, ok := shown[id]; ok {
		return c, "shown"
	}
	return c, ""
}
