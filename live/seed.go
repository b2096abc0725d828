package live

import (
	"time"

	lr "github.com/liverecall/liverecall"
)

// HistoryLen is how many watches the State keeps per user
// (Config.HistoryLen): seeding more from the store than this per user is
// wasted.
func (s *State) HistoryLen() int { return s.cfg.HistoryLen }

// UserTTL is how long the State keeps a user without an active follow after
// their last watch (Config.UserTTL): the span of watch history a replica
// that ran continuously holds, and so the span to seed at start.
func (s *State) UserTTL() time.Duration { return s.cfg.UserTTL }

// seededAlready reports whether history (by JoinedAt ascending) holds a
// watch of stream joined at at: the same watch, seeded from the store and
// now replayed from the topics. The store keeps microseconds and events
// carry nanoseconds, so the seeded copy may differ from at by less than a
// microsecond, either way.
func seededAlready(history []Watch, stream lr.StreamID, at time.Time) bool {
	lo, hi := at.Add(-time.Microsecond), at.Add(time.Microsecond)
	for i := len(history) - 1; i >= 0 && history[i].JoinedAt.After(lo); i-- {
		if history[i].StreamID == stream && history[i].JoinedAt.Before(hi) {
			return true
		}
	}
	return false
}
