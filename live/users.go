package live

import (
	"context"
	"slices"
	"strconv"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Defaults of the per-user loading of Config.
const (
	DefaultUserIdle    = 30 * time.Minute
	DefaultLoadWait    = 5 * time.Millisecond
	DefaultLoadTimeout = 5 * time.Second
	DefaultMaxLoads    = 2
)

// Loader reads a user's stored state (the service adapts postgres.DB). It
// may be called from any number of goroutines at once, for different users.
type Loader interface {
	// LoadUser returns u's follows (the active ones, and the unfollows
	// recorded at or after since, each with the event time that set it)
	// and the newest n watches started at or after since, oldest first (a
	// zero LeftAt: still watching). A user with nothing stored is an empty
	// record, not an error.
	LoadUser(ctx context.Context, u lr.UserID, since time.Time, n int) (UserRecord, error)
}

// UserRecord is what a Loader returns for one user.
type UserRecord struct {
	Follows []Follow
	Watches []Watch // oldest first
}

// Follow is one stored follow state of a user.
type Follow struct {
	StreamerID lr.StreamerID
	Active     bool
	At         time.Time // event time of the event that set it
}

// LoadOutcome says how Ensure found a user's stored state.
type LoadOutcome string

// The outcomes of Ensure; the last three are also the values of the label
// outcome of liverecall_live_user_loads_total.
const (
	LoadNone   LoadOutcome = "none"   // no Loader configured: nothing to load
	LoadCached LoadOutcome = "cached" // loaded before and still held
	LoadOK     LoadOutcome = "ok"     // loaded within the wait
	LoadLate   LoadOutcome = "late"   // the wait ran out; the load goes on and serves the next request
	LoadError  LoadOutcome = "error"  // the load failed; the next request tries again
)

// Ensure makes u's stored state (Config.Loader) part of the State before a
// request reads u's history and follows, and marks u as active now, so that
// Expire keeps them for Config.UserIdle more. Loaded once, a user stays
// held while active (events keep them current), and is evicted once idle
// (see Expire); their next request loads them again.
//
// A user not held (or held only through events that arrived since their
// eviction) is loaded from the Loader: one load per user at a time,
// whatever the number of concurrent requests waiting for it, with its own
// deadline (Config.LoadTimeout), not the request's, so a request that gives
// up does not cancel it. Ensure waits for it at most Config.LoadWait (or
// until ctx ends) and then returns LoadLate, leaving the load running: the
// request is then answered with what the State holds (the events since the
// eviction, if any), never held back by a slow or unreachable store. The
// loaded watches are merged with those events: a watch held already (the
// same stream joined at the same time, to the microsecond) is not added
// again, and a follow state older than the one held is ignored. A failed
// load returns LoadError and is tried again at the user's next request.
//
// Without a Loader, Ensure only marks u active and returns LoadNone. Safe
// for concurrent use with everything else.
func (s *State) Ensure(ctx context.Context, u lr.UserID) LoadOutcome {
	now := s.cfg.Clock().UnixNano()
	s.mu.RLock()
	us := s.users[u]
	loaded := us != nil && us.loaded
	if us != nil {
		// Under the read lock, so that an eviction (under the write lock)
		// sees it.
		us.touch(now)
	}
	s.mu.RUnlock()
	if s.cfg.Loader == nil {
		return LoadNone
	}
	if loaded {
		return LoadCached
	}
	ch := s.loads.DoChan(strconv.FormatInt(int64(u), 10), func() (any, error) { return nil, s.load(u) })
	t := time.NewTimer(s.cfg.LoadWait)
	defer t.Stop()
	var out LoadOutcome
	select {
	case r := <-ch:
		out = LoadOK
		if r.Err != nil {
			out = LoadError
		}
	case <-t.C:
		out = LoadLate
	case <-ctx.Done():
		out = LoadLate
	}
	s.m.loads.WithLabelValues(string(out)).Inc()
	return out
}

// load reads u from the Loader and merges it into the State.
func (s *State) load(u lr.UserID) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LoadTimeout)
	defer cancel()
	t0 := time.Now()
	select {
	case s.loadSlots <- struct{}{}:
	case <-ctx.Done():
		s.m.loadSeconds.Observe(time.Since(t0).Seconds())
		s.m.loadFailures.Inc()
		return ctx.Err()
	}
	now := s.cfg.Clock()
	rec, err := s.cfg.Loader.LoadUser(ctx, u, now.Add(-s.cfg.UserTTL), s.cfg.HistoryLen)
	<-s.loadSlots
	s.m.loadSeconds.Observe(time.Since(t0).Seconds())
	if err != nil {
		s.m.loadFailures.Inc()
		return err
	}
	s.mu.Lock()
	for _, f := range rec.Follows {
		s.follow(u, f.StreamerID, f.Active, f.At.UnixNano())
	}
	for _, w := range rec.Watches {
		s.watch(u, w.StreamerID, w.StreamID, true, w.JoinedAt.UnixNano())
		if !w.LeftAt.IsZero() {
			s.watch(u, w.StreamerID, w.StreamID, false, w.LeftAt.UnixNano())
		}
	}
	us := s.user(u)
	us.loaded = true
	us.touch(now.UnixNano())
	s.mu.Unlock()
	if len(rec.Watches) > 0 && s.cfg.OnWatch != nil {
		// The loaded watches are history the State did not hold: a
		// replica that started after them learns of them here.
		s.cfg.OnWatch([]lr.UserID{u})
	}
	return nil
}

// touch records activity at ts (unix ns): a request, or an event's time.
func (us *user) touch(ts int64) {
	for {
		old := us.active.Load()
		if ts <= old || us.active.CompareAndSwap(old, ts) {
			return
		}
	}
}

// evictIdle forgets the users whose last activity (request or event) is
// older than before: loaded or not, following anyone or not. Their next
// request loads them again. It takes the write lock for a chunk of users
// at a time and returns how many it evicted.
func (s *State) evictIdle(ids []lr.UserID, before time.Time) int {
	cut := before.UnixNano()
	n := 0
	for chunk := range slices.Chunk(ids, 1024) {
		s.mu.Lock()
		for _, id := range chunk {
			if us := s.users[id]; us != nil && us.active.Load() < cut {
				delete(s.users, id)
				n++
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Loaded reports whether u's stored state has been loaded into the State
// (by Ensure) and not evicted since. For tests and debugging.
func (s *State) Loaded(u lr.UserID) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	us := s.users[u]
	return us != nil && us.loaded
}
