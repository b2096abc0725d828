package sim

import (
	"cmp"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
)

// StreamRecord is one live session. Ended is zero for a stream still live
// when the history was flushed.
type StreamRecord struct {
	ID       lr.StreamID
	Streamer lr.StreamerID
	Category string
	Title    string
	Started  time.Time
	Ended    time.Time
}

// WatchRecord is one user watching one stream: viewer.joined and
// viewer.left paired. EventID is the id of the viewer.left event.
type WatchRecord struct {
	EventID  string
	User     lr.UserID
	Stream   lr.StreamID
	Streamer lr.StreamerID
	Started  time.Time
	Ended    time.Time
	Seconds  int32
}

// GiftRecord is one gift.sent event.
type GiftRecord struct {
	EventID  string
	User     lr.UserID
	Streamer lr.StreamerID
	Stream   lr.StreamID
	Amount   float64
	At       time.Time
}

// FollowRecord is the state of one (user, streamer) follow after the
// events seen: Created is the first follow, Updated the last change.
type FollowRecord struct {
	User     lr.UserID
	Streamer lr.StreamerID
	Active   bool
	Created  time.Time
	Updated  time.Time
}

// History turns an event stream (in event-time order, as Run emits it)
// into the rows of the history tables: streams when they end, watch
// sessions when the viewer leaves, gifts as they come, and follows, which
// are state, at Flush. A viewer.left or stream.ended whose start it did not
// see is dropped. Set the callbacks before the first Add; nil callbacks
// drop their rows. It holds the open streams, the current viewers and the
// follow state in memory. Not safe for concurrent use.
type History struct {
	Stream func(StreamRecord) error
	Watch  func(WatchRecord) error
	Gift   func(GiftRecord) error

	open    map[lr.StreamID]StreamRecord
	joins   map[watchKey]time.Time
	follows map[followKey]*FollowRecord
}

type watchKey struct {
	u lr.UserID
	s lr.StreamID
}

type followKey struct {
	u lr.UserID
	s lr.StreamerID
}

// Add takes the next event. It returns the first error of a callback.
func (h *History) Add(e lr.Event) error {
	if h.open == nil {
		h.open = map[lr.StreamID]StreamRecord{}
		h.joins = map[watchKey]time.Time{}
		h.follows = map[followKey]*FollowRecord{}
	}
	switch e.Type {
	case lr.EventStreamStarted:
		h.open[e.StreamID] = StreamRecord{ID: e.StreamID, Streamer: e.StreamerID, Category: e.Category, Title: e.Title, Started: e.TS}
	case lr.EventStreamEnded:
		r, ok := h.open[e.StreamID]
		if !ok {
			return nil
		}
		delete(h.open, e.StreamID)
		r.Ended = e.TS
		if h.Stream != nil {
			return h.Stream(r)
		}
	case lr.EventViewerJoined:
		h.joins[watchKey{e.UserID, e.StreamID}] = e.TS
	case lr.EventViewerLeft:
		k := watchKey{e.UserID, e.StreamID}
		start, ok := h.joins[k]
		if !ok {
			return nil
		}
		delete(h.joins, k)
		if h.Watch != nil {
			return h.Watch(WatchRecord{EventID: e.ID, User: e.UserID, Stream: e.StreamID, Streamer: e.StreamerID,
				Started: start, Ended: e.TS, Seconds: int32(e.TS.Sub(start) / time.Second)})
		}
	case lr.EventGiftSent:
		if h.Gift != nil {
			return h.Gift(GiftRecord{EventID: e.ID, User: e.UserID, Streamer: e.StreamerID, Stream: e.StreamID, Amount: e.Amount, At: e.TS})
		}
	case lr.EventFollowCreated, lr.EventFollowDeleted:
		k := followKey{e.UserID, e.StreamerID}
		f := h.follows[k]
		if f == nil {
			f = &FollowRecord{User: e.UserID, Streamer: e.StreamerID, Created: e.TS}
			h.follows[k] = f
		}
		f.Active, f.Updated = e.Type == lr.EventFollowCreated, e.TS
	}
	return nil
}

// Flush passes the streams still open (Ended zero, by id) to Stream and
// every follow (by user, then streamer) to follow, then forgets them.
func (h *History) Flush(follow func(FollowRecord) error) error {
	ids := make([]lr.StreamID, 0, len(h.open))
	for id := range h.open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if h.Stream != nil {
			if err := h.Stream(h.open[id]); err != nil {
				return err
			}
		}
	}
	fs := make([]*FollowRecord, 0, len(h.follows))
	for _, f := range h.follows {
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b *FollowRecord) int {
		return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Streamer, b.Streamer))
	})
	for _, f := range fs {
		if follow != nil {
			if err := follow(*f); err != nil {
				return err
			}
		}
	}
	h.open, h.joins, h.follows = nil, nil, nil
	return nil
}
