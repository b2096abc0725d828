package live

import (
	"context"
	"slices"
	"sync"
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

// BatchLoader is a Loader that also reads many users at once (the service's
// over postgres.DB: two statements for the whole batch, in one round trip).
// With one, the State reads the users whose loads wait for a slot
// (Config.MaxLoads) together, in one LoadUsers per free slot, instead of
// one LoadUser each: a replica meeting many users at once (a cold start)
// costs the store a query per batch, not two per user.
type BatchLoader interface {
	Loader
	// LoadUsers is LoadUser for each of users (distinct): the record of
	// every user with anything stored; a user missing from the map has
	// nothing stored.
	LoadUsers(ctx context.Context, users []lr.UserID, since time.Time, n int) (map[lr.UserID]UserRecord, error)
}

// MaxLoadBatch bounds the users of one LoadUsers.
const MaxLoadBatch = 256

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
// Expire keeps them for Config.UserIdle more: Begin(u).Wait(ctx). Loaded
// once, a user stays held while active (events keep them current), and is
// evicted once idle (see Expire); their next request loads them again.
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
	return s.Begin(u).Wait(ctx)
}

// Load is one request's view of its user's load (Begin): the request goes
// on with what needs no history and waits (Wait) only where it reads it.
type Load struct {
	s        *State
	fl       *loadBatch // nil: preset holds the outcome
	preset   LoadOutcome
	deadline time.Time     // Begin + Config.LoadWait
	done     chan struct{} // closed once out is set
	once     sync.Once
	mu       sync.Mutex
	out      LoadOutcome
}

// The outcomes a Load knows at Begin, shared (Wait returns at once).
var (
	loadNone   = &Load{preset: LoadNone}
	loadCached = &Load{preset: LoadCached}
)

// Begin is Ensure without the wait: it marks u active and, when u is not
// held, starts their load (or joins the one running) and returns at once.
// Wait on the result before reading u's history or follows; the wait ends
// at most Config.LoadWait after Begin, however many calls wait, so a
// request whose steps wait one after the other still waits once.
func (s *State) Begin(u lr.UserID) *Load {
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
		return loadNone
	}
	if loaded {
		return loadCached
	}
	return &Load{s: s, fl: s.startLoad(u), deadline: time.Now().Add(s.cfg.LoadWait), done: make(chan struct{})}
}

// Wait waits until the load Begin started ends or Config.LoadWait has
// passed since Begin, and says which: LoadOK, LoadError, LoadLate (LoadCached
// or LoadNone when there was nothing to load). Every Wait of l returns that
// same outcome, counted once in liverecall_live_user_loads_total. When ctx
// ends first, Wait returns LoadLate without settling it, so that a later
// Wait with time left still waits. A nil Load has nothing to wait for
// (LoadNone). Safe for concurrent use.
func (l *Load) Wait(ctx context.Context) LoadOutcome {
	if l == nil {
		return LoadNone
	}
	if l.fl == nil {
		return l.preset
	}
	if l.Done() {
		return l.outcome()
	}
	t := time.NewTimer(time.Until(l.deadline))
	defer t.Stop()
	select {
	case <-l.fl.done:
		return l.settleEnded()
	case <-l.done:
		return l.outcome()
	case <-t.C:
		return l.settle(LoadLate)
	case <-ctx.Done():
		return LoadLate
	}
}

// Done reports, without waiting, whether Wait would return at once: the
// load has ended (or there was none) or its wait has run out. A nil Load
// is done.
func (l *Load) Done() bool {
	if l == nil || l.fl == nil {
		return true
	}
	select {
	case <-l.done:
		return true
	case <-l.fl.done:
		l.settleEnded()
		return true
	default:
	}
	if !time.Now().Before(l.deadline) {
		l.settle(LoadLate)
		return true
	}
	return false
}

// Ready returns a channel closed once the load has ended (nil when there
// is none to wait for) and the time its wait runs out (Begin +
// Config.LoadWait): a caller that waits for other things in the same
// select waits for both, then calls Done or Wait, which settle the outcome.
func (l *Load) Ready() (ended <-chan struct{}, deadline time.Time) {
	if l == nil || l.fl == nil {
		return nil, time.Time{}
	}
	return l.fl.done, l.deadline
}

// settleEnded settles l by its load's result; the load has ended.
func (l *Load) settleEnded() LoadOutcome {
	if l.fl.err != nil {
		return l.settle(LoadError)
	}
	return l.settle(LoadOK)
}

// settle sets l's outcome unless one is set and returns the one set.
func (l *Load) settle(out LoadOutcome) LoadOutcome {
	l.once.Do(func() {
		l.mu.Lock()
		l.out = out
		l.mu.Unlock()
		close(l.done)
		l.s.m.loads.WithLabelValues(string(out)).Inc()
	})
	return l.outcome()
}

func (l *Load) outcome() LoadOutcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out
}

// loadBatch is the users of one load from the Loader (one LoadUsers, or
// one LoadUser without a BatchLoader). err is set before done is closed;
// a user stays in State.inflight, pointing at it, until then.
type loadBatch struct {
	users  []lr.UserID
	joined []time.Time // when each user joined it
	start  time.Time   // when its first user joined it (LoadTimeout runs from here)
	done   chan struct{}
	err    error
}

// startLoad returns the load u's stored state is read in: the one in
// flight for u, or else a new one, without waiting for it. With a
// BatchLoader, u joins the batch waiting for a slot (starting one if none
// waits), and a free slot starts reading it at once; without, u's load
// runs in a goroutine of its own, after a slot frees.
func (s *State) startLoad(u lr.UserID) *loadBatch {
	t0 := time.Now()
	s.batchMu.Lock()
	if b := s.inflight[u]; b != nil {
		s.batchMu.Unlock()
		return b
	}
	if _, ok := s.cfg.Loader.(BatchLoader); !ok {
		b := &loadBatch{users: []lr.UserID{u}, joined: []time.Time{t0}, start: t0, done: make(chan struct{})}
		s.inflight[u] = b
		s.batchMu.Unlock()
		go func() {
			b.err = s.load(u)
			s.ended(b)
		}()
		return b
	}
	var b *loadBatch
	if n := len(s.waiting); n > 0 && len(s.waiting[n-1].users) < MaxLoadBatch {
		b = s.waiting[n-1]
	} else {
		b = &loadBatch{start: t0, done: make(chan struct{})}
		s.waiting = append(s.waiting, b)
	}
	b.users = append(b.users, u)
	b.joined = append(b.joined, t0)
	s.inflight[u] = b
	var run *loadBatch
	select {
	case s.loadSlots <- struct{}{}:
		// A free slot: this batch (the oldest waiting, here the only one)
		// goes now; later users queue behind it until a slot frees.
		run = s.waiting[0]
		s.waiting = s.waiting[1:]
	default:
	}
	s.batchMu.Unlock()
	if run != nil {
		go s.runBatches(run)
	}
	return b
}

// ended counts b's users' loads, takes them out of flight and releases
// b's waiters.
func (s *State) ended(b *loadBatch) {
	now := time.Now()
	for _, t := range b.joined {
		s.m.loadSeconds.Observe(now.Sub(t).Seconds())
	}
	if b.err != nil {
		s.m.loadFailures.Add(float64(len(b.users)))
	}
	s.batchMu.Lock()
	for _, u := range b.users {
		if s.inflight[u] == b {
			delete(s.inflight, u)
		}
	}
	s.batchMu.Unlock()
	close(b.done)
}

// load reads u from the Loader (not a BatchLoader), after a slot frees,
// and merges it into the State.
func (s *State) load(u lr.UserID) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.LoadTimeout)
	defer cancel()
	select {
	case s.loadSlots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	now := s.cfg.Clock()
	rec, err := s.cfg.Loader.LoadUser(ctx, u, now.Add(-s.cfg.UserTTL), s.cfg.HistoryLen)
	<-s.loadSlots
	if err != nil {
		return err
	}
	s.merge(now, map[lr.UserID]UserRecord{u: rec}, []lr.UserID{u})
	return nil
}

// runBatches holds a load slot: it reads b, then the oldest batch waiting,
// until none waits, and releases the slot.
func (s *State) runBatches(b *loadBatch) {
	for b != nil {
		s.runBatch(b)
		s.batchMu.Lock()
		b = nil
		if len(s.waiting) > 0 {
			b = s.waiting[0]
			s.waiting = s.waiting[1:]
		} else {
			<-s.loadSlots
		}
		s.batchMu.Unlock()
	}
}

// runBatch reads b's users with one LoadUsers and merges them.
func (s *State) runBatch(b *loadBatch) {
	defer s.ended(b)
	ctx, cancel := context.WithDeadline(context.Background(), b.start.Add(s.cfg.LoadTimeout))
	defer cancel()
	if err := ctx.Err(); err != nil {
		b.err = err
		return
	}
	s.m.loadBatch.Observe(float64(len(b.users)))
	now := s.cfg.Clock()
	recs, err := s.cfg.Loader.(BatchLoader).LoadUsers(ctx, b.users, now.Add(-s.cfg.UserTTL), s.cfg.HistoryLen)
	if err != nil {
		b.err = err
		return
	}
	s.merge(now, recs, b.users)
}

// merge writes the loaded records of users (a user without one has
// nothing stored) into the State and marks them loaded, active at now.
func (s *State) merge(now time.Time, recs map[lr.UserID]UserRecord, users []lr.UserID) {
	var watched []lr.UserID
	s.mu.Lock()
	for _, u := range users {
		rec := recs[u]
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
		if len(rec.Watches) > 0 {
			watched = append(watched, u)
		}
	}
	s.mu.Unlock()
	if len(watched) > 0 && s.cfg.OnWatch != nil {
		// The loaded watches are history the State did not hold: a
		// replica that started after them learns of them here.
		s.cfg.OnWatch(watched)
	}
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
