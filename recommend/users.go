package recommend

import (
	"context"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
)

// UserLoader is implemented by a Users whose per-user state is loaded on
// demand (live.State with a Loader): Ensure brings the user's stored
// follows and history in before recall and rerank read them, waiting for
// that at most a small budget of its own (a late or failed load serves the
// request without them). Recommend calls it once per request when
// Config.Users implements it.
type UserLoader interface {
	Ensure(ctx context.Context, u lr.UserID) live.LoadOutcome
}

// Prefetcher is implemented by a Recaller that can start reading a
// request's user vectors ahead of Recall (recall.Engine over the user
// store).
type Prefetcher interface {
	Prefetch(req recall.Request)
}

// ensureUser loads u's state into Config.Users when it loads on demand.
// The reads of u's user vectors for the recall requests reqs (one per arm)
// are started first, so that a user new to the replica waits for the two
// reads at once, not one after the other.
func (s *Service) ensureUser(ctx context.Context, u lr.UserID, reqs ...recall.Request) {
	l, ok := s.cfg.Users.(UserLoader)
	if !ok {
		return
	}
	if p, ok := s.cfg.Recall.(Prefetcher); ok {
		for _, r := range reqs {
			p.Prefetch(r)
		}
	}
	l.Ensure(ctx, u)
}
