package live

import (
	"time"

	lr "github.com/liverecall/liverecall"
)

// seededAlready reports whether history (by JoinedAt ascending) holds a
// watch of stream joined at at: the same watch, loaded from the store and
// also applied from the topics (in either order). The store keeps microseconds and events
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
