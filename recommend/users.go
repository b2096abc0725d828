package recommend

import (
	"context"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
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

// ensureUser loads u's state into Config.Users when it loads on demand.
func (s *Service) ensureUser(ctx context.Context, u lr.UserID) {
	if l, ok := s.cfg.Users.(UserLoader); ok {
		l.Ensure(ctx, u)
	}
}
