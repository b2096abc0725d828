package recall

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
)

// annChannel proposes the live streamers nearest the user's vector under
// kind's pinned version. On a miss of the user store's cache it first
// waits, within its own budget, for the user's row: errLate when it does
// not come in time, the store's error when the store fails,
// errNoUserVector when the user has no vector of kind.
func (e *Engine) annChannel(kind lr.ModelKind) channelFunc {
	return func(ctx context.Context, q *query) ([]Hit, error) {
		row, err := q.user.wait(ctx)
		if err != nil {
			return nil, err
		}
		if row.Versions != q.vers {
			return nil, fmt.Errorf("user store answered for versions %+v, the request pinned %+v", row.Versions, q.vers)
		}
		vec := row.Vector(kind)
		if vec == nil {
			return nil, errNoUserVector
		}
		return e.index.Search(ctx, kind, q.model(kind), vec, e.perChannel(q, string(kind)), q.snap)
	}
}

// sessionChannel proposes what the user watched recently and is live again
// (repeat viewing is most of live-streaming consumption), then the live
// streamers most similar (MF item-to-item) to the last few watched.
func (e *Engine) sessionChannel(ctx context.Context, qs *query) ([]Hit, error) {
	qs.req.UserLoad.Wait(ctx)
	hist := e.state.History(qs.req.User)
	if len(hist) == 0 {
		return nil, nil
	}
	limit := e.perChannel(qs, ChanSession)
	var hits []Hit
	seen := map[uint32]bool{}
	for i, w := range hist {
		ord, ok := e.ords.Lookup(w.StreamerID)
		if !ok || seen[ord] {
			continue
		}
		seen[ord] = true
		if qs.snap.Contains(ord) {
			// Newest watch first; a watched streamer outranks any neighbour.
			hits = append(hits, Hit{Ord: ord, Score: float32(2 - float64(i)/float64(len(hist)))})
		}
	}
	// One search for the neighbours of the session: the recency-weighted
	// mean of the last few watched streamers' vectors (one scan of the live
	// set instead of one per seed).
	var q []float32 // the session query
	seeds := 0
	for _, w := range hist {
		if seeds == 3 || len(hits) >= limit {
			break
		}
		ord, ok := e.ords.Lookup(w.StreamerID)
		if !ok {
			continue
		}
		sv, ok := e.index.StreamerVector(lr.ModelMF, qs.vers.MF, ord)
		if !ok {
			continue
		}
		if q == nil {
			q = make([]float32, len(sv))
		}
		if len(sv) != len(q) {
			continue
		}
		wt := float32(1) / float32(seeds+1)
		for i, x := range sv {
			q[i] += wt * x
		}
		seeds++
	}
	if q != nil && len(hits) < limit {
		if err := ctx.Err(); err != nil {
			return hits, err
		}
		near, err := e.index.Search(ctx, lr.ModelMF, qs.vers.MF, q, limit, qs.snap)
		if err != nil {
			return hits, err
		}
		for _, h := range near {
			if !seen[h.Ord] {
				seen[h.Ord] = true
				hits = append(hits, Hit{Ord: h.Ord, Score: 1 / (1 + float32(math.Exp(-float64(h.Score))))})
			}
		}
	}
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits, nil
}

// followChannel proposes the user's followed streamers who are live, the
// most watched first.
func (e *Engine) followChannel(ctx context.Context, q *query) ([]Hit, error) {
	q.req.UserLoad.Wait(ctx)
	var hits []Hit
	for _, id := range e.state.Follows(q.req.User) {
		ord, ok := e.ords.Lookup(id)
		if !ok || !q.snap.Contains(ord) {
			continue
		}
		f, ok := e.state.FeaturesAt(ord, q.now)
		if !ok {
			continue
		}
		hits = append(hits, Hit{Ord: ord, Score: float32(math.Log1p(float64(f.Viewers)))})
	}
	sortHits(hits)
	if n := e.perChannel(q, ChanFollow); len(hits) > n {
		hits = hits[:n]
	}
	return hits, ctx.Err()
}

func (e *Engine) trendingChannel(ctx context.Context, q *query) ([]Hit, error) {
	r := e.rankings(q.now)
	return firstN(r.trending, e.perChannel(q, ChanTrending)), nil
}

func (e *Engine) freshChannel(ctx context.Context, q *query) ([]Hit, error) {
	r := e.rankings(q.now)
	return firstN(r.fresh, e.perChannel(q, ChanFresh)), nil
}

func firstN(h []Hit, n int) []Hit {
	if len(h) > n {
		h = h[:n]
	}
	return h // shared and read-only: merge does not modify hits
}

func sortHits(h []Hit) {
	slices.SortStableFunc(h, func(a, b Hit) int {
		switch {
		case a.Score > b.Score:
			return -1
		case a.Score < b.Score:
			return 1
		}
		return int(a.Ord) - int(b.Ord)
	})
}

// rankings are the request-independent channel lists, computed over the whole
// live set at most once per refresh interval, off the request path.
type rankings struct {
	at       time.Time
	seq      uint64
	trending []Hit
	fresh    []Hit
}

const rankingsEvery = time.Second

type rankCache struct {
	cur        atomic.Pointer[rankings]
	refreshing atomic.Bool
	mu         sync.Mutex
}

// rankings returns the current lists, starting a background refresh when
// they are older than rankingsEvery. A request never waits for a refresh.
func (e *Engine) rankings(now time.Time) *rankings {
	r := e.ranks.cur.Load()
	if r == nil || now.Sub(r.at) > rankingsEvery || e.state.Snapshot().Seq != r.seq && now.Sub(r.at) > rankingsEvery/10 {
		if e.ranks.refreshing.CompareAndSwap(false, true) {
			go func() {
				defer e.ranks.refreshing.Store(false)
				e.RefreshRankings()
			}()
		}
	}
	if r == nil {
		return &rankings{}
	}
	return r
}

// RefreshRankings recomputes the trending and fresh lists now. The service
// calls it once at start; afterwards requests trigger it in the background.
func (e *Engine) RefreshRankings() {
	e.ranks.mu.Lock()
	defer e.ranks.mu.Unlock()
	now := e.cfg.Now()
	snap := e.state.Snapshot()
	r := &rankings{at: now, seq: snap.Seq}
	for _, ord := range snap.Ordinals() {
		f, ok := e.state.FeaturesAt(ord, now)
		if !ok {
			continue
		}
		growth := math.Max(0, float64(f.Viewers-f.Viewers5mAgo))
		score := math.Log1p(float64(f.Viewers)) + math.Log1p(growth) + 0.5*math.Log1p(float64(f.Gifts5m)) + 0.25*math.Log1p(f.GiftValue5m)
		r.trending = append(r.trending, Hit{Ord: ord, Score: float32(score)})
		if f.Age < e.cfg.FreshAge {
			// Newer first; streamers the models do not know yet (no
			// embedding) first of all: this channel is their way in.
			s := 1 - f.Age.Seconds()/e.cfg.FreshAge.Seconds()
			if e.index != nil {
				if !e.index.HasStreamer(lr.ModelMF, 0, ord) {
					s++
				}
			}
			r.fresh = append(r.fresh, Hit{Ord: ord, Score: float32(s)})
		}
	}
	sortHits(r.trending)
	sortHits(r.fresh)
	// An Override may ask for up to MaxPerChannel of either.
	keep := max(4*max(e.cfg.PerChannel[ChanTrending], e.cfg.PerChannel[ChanFresh]), MaxPerChannel)
	if len(r.trending) > keep {
		r.trending = slices.Clip(r.trending[:keep])
	}
	if len(r.fresh) > keep {
		r.fresh = slices.Clip(r.fresh[:keep])
	}
	e.ranks.cur.Store(r)
}
