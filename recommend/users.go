package recommend

import (
	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
)

// UserLoader is implemented by a Users whose per-user state is loaded on
// demand (live.State with a Loader): Begin marks the user active and starts
// bringing their stored follows and history in (live.State.Begin), without
// waiting. Recommend calls it once per request when Config.Users implements
// it; recall's session and follow channels, its merge and rerank wait for
// the load, at most a small budget of its own after Begin (a late or failed
// load serves the request without them), while the other channels run.
type UserLoader interface {
	Begin(u lr.UserID) *live.Load
}

// Prefetcher is implemented by a Recaller that can start reading a
// request's user vectors ahead of Recall (recall.Engine over the user
// store).
type Prefetcher interface {
	Prefetch(req recall.Request)
}

// beginUser starts loading u's state into Config.Users when it loads on
// demand, and returns the load to wait for (nil: nothing to wait for). The
// reads of u's user vectors for the recall requests reqs (one per arm) are
// started first, so that a user new to the replica waits for the reads at
// once, not one after the other.
func (s *Service) beginUser(u lr.UserID, reqs ...recall.Request) *live.Load {
	l, ok := s.cfg.Users.(UserLoader)
	if !ok {
		return nil
	}
	if p, ok := s.cfg.Recall.(Prefetcher); ok {
		for _, r := range reqs {
			p.Prefetch(r)
		}
	}
	return l.Begin(u)
}
