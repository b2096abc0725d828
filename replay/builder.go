package replay

import (
	"cmp"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Builder turns an event stream (in event-time order) into the rows the
// history tables would hold: streams and watch sessions (those still open
// at the end without an end time), gifts, and the follows active at the
// end, each at its first creation. For histories that come as events (the
// simulator). Not safe for concurrent use.
type Builder struct {
	h       History
	streams map[lr.StreamID]int
	watches map[[2]int64]int
	follows map[[2]int64]*followState
	pending map[lr.UserID]pendingContext
}

type pendingContext struct {
	at time.Time
	c  lr.RequestContext
}

// Context gives the watch session user u begins at at (the next
// viewer.joined event of u at that instant) the request context c: the
// simulator reports a decision, with its context, just before its event.
func (b *Builder) Context(u lr.UserID, at time.Time, c lr.RequestContext) {
	if b.pending == nil {
		b.pending = map[lr.UserID]pendingContext{}
	}
	b.pending[u] = pendingContext{at, c}
}

type followState struct {
	created time.Time
	active  bool
}

// Add takes the next event.
func (b *Builder) Add(e lr.Event) {
	if b.streams == nil {
		b.streams, b.watches, b.follows = map[lr.StreamID]int{}, map[[2]int64]int{}, map[[2]int64]*followState{}
	}
	switch e.Type {
	case lr.EventStreamStarted:
		if _, ok := b.streams[e.StreamID]; !ok {
			b.streams[e.StreamID] = len(b.h.Streams)
			b.h.Streams = append(b.h.Streams, Stream{ID: e.StreamID, Streamer: e.StreamerID, Category: e.Category, Language: e.Language, Start: e.TS})
		}
	case lr.EventStreamEnded:
		if i, ok := b.streams[e.StreamID]; ok && b.h.Streams[i].End.IsZero() {
			b.h.Streams[i].End = e.TS
		}
	case lr.EventViewerJoined:
		k := [2]int64{int64(e.UserID), int64(e.StreamID)}
		if i, ok := b.watches[k]; ok && b.h.Watches[i].End.IsZero() {
			return // already watching
		}
		b.watches[k] = len(b.h.Watches)
		w := Watch{User: e.UserID, Streamer: e.StreamerID, Stream: e.StreamID, Start: e.TS}
		if p, ok := b.pending[e.UserID]; ok {
			if p.at.Equal(e.TS) {
				w.Context = p.c
			}
			delete(b.pending, e.UserID)
		}
		b.h.Watches = append(b.h.Watches, w)
	case lr.EventViewerLeft:
		if i, ok := b.watches[[2]int64{int64(e.UserID), int64(e.StreamID)}]; ok && b.h.Watches[i].End.IsZero() {
			b.h.Watches[i].End = e.TS
		}
	case lr.EventGiftSent:
		b.h.Gifts = append(b.h.Gifts, Gift{User: e.UserID, Streamer: e.StreamerID, Stream: e.StreamID, Amount: e.Amount, At: e.TS})
	case lr.EventFollowCreated, lr.EventFollowDeleted:
		k := [2]int64{int64(e.UserID), int64(e.StreamerID)}
		f := b.follows[k]
		if f == nil {
			f = &followState{created: e.TS}
			b.follows[k] = f
		}
		f.active = e.Type == lr.EventFollowCreated
	}
}

// History returns the rows of the events added so far.
func (b *Builder) History() *History {
	h := b.h
	h.Follows = nil
	for k, f := range b.follows {
		if f.active {
			h.Follows = append(h.Follows, Follow{User: lr.UserID(k[0]), Streamer: lr.StreamerID(k[1]), At: f.created})
		}
	}
	slices.SortFunc(h.Follows, func(a, b Follow) int {
		return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.User, b.User), cmp.Compare(a.Streamer, b.Streamer))
	})
	return &h
}
