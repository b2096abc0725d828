package live

import (
	"hash/maphash"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
)

// Defaults of Config.
const (
	DefaultExpiry       = 10 * time.Minute
	DefaultDedupeWindow = 1 << 18
	DefaultEndedWindow  = 1 << 16
	DefaultHistoryLen   = 20
	DefaultUserTTL      = 24 * time.Hour
)

// leftMarkTTL is how long (in event time) a stream remembers that a user
// left it, to ignore that user's join should it arrive out of order after
// the leave. Older marks are dropped, so a stream's memory is its present
// viewers plus those who left in the last leftMarkTTL, not every user who
// ever passed by; a join more than this late after its leave counts.
const leftMarkTTL = 5 * time.Minute

// Feature window lengths.
const (
	viewersAgo   = 5 * time.Minute
	giftWindow1  = time.Minute
	giftWindow5  = 5 * time.Minute
	giftWindow30 = 30 * time.Minute
)

// Config configures a State.
type Config struct {
	// Ordinals maps streamer ids to the dense ordinals of the live bitmap.
	// Required; share it with the index.
	Ordinals *lr.Ordinals
	// Expiry ends a stream that has had no event for this long (event time
	// of its last event against the time Expire is given). Default 10 min.
	Expiry time.Duration
	// DedupeWindow is how many recent event ids are remembered to drop
	// duplicates. Default 262,144.
	DedupeWindow int
	// EndedWindow is how many recent stream.ended events are remembered
	// (stream id and end time), so that an event of an ended stream that
	// arrives after its end, stamped before it (a late start, heartbeat),
	// never makes the streamer live. Older ends fall out first; each costs
	// about 40 bytes. Default 65,536.
	EndedWindow int
	// HistoryLen is how many watched streams are kept per user. Default 20.
	HistoryLen int
	// UserTTL is the span of watch history a user's state covers: without
	// a Loader, a user with no active follow and no watch newer than this
	// is forgotten (Expire prunes at most once a minute); with one, it is
	// how far back a user's watches are loaded. Default 24 h.
	UserTTL time.Duration
	// Loader, if set, is where the per-user state (follows, watch history)
	// lives: a user is loaded from it at their first request (Ensure) and
	// evicted once idle for UserIdle, whatever they follow, so the State
	// holds the users active lately, not every user there is. Without it,
	// users are kept by UserTTL and their follows, as loaded by SetFollow
	// and SeedWatch.
	Loader Loader
	// UserIdle: with a Loader, a user with no request (Ensure) and no
	// event for this long is evicted (Expire checks at most once a
	// minute), and loaded again at their next request. Default 30 min.
	UserIdle time.Duration
	// LoadWait is the longest Ensure waits for a user's load before the
	// request goes on without it (counted late). Default 5 ms.
	LoadWait time.Duration
	// LoadTimeout bounds one load from the Loader, its wait for a slot
	// (MaxLoads) included. Default 5 s.
	LoadTimeout time.Duration
	// MaxLoads bounds the loads from the Loader running at once, and so the
	// database connections they hold: a replica meeting many users for the
	// first time (a cold start, a popular hour) loads one per first request,
	// and without a bound they took every connection of the pool, so that
	// the user store's batched reads of user vectors waited for one and
	// came too late for their channels. Further loads wait for a slot;
	// with a BatchLoader, those that wait are read together by the next
	// slot to free (up to MaxLoadBatch users in one LoadUsers). Default 2.
	MaxLoads int
	// OnPublish, if set, receives each new version of the live set before
	// anyone else can see it: Snapshot returns a version only after
	// OnPublish has returned for it, so a reader's snapshot is never newer
	// than what the subscriber (the index's live matrices) has applied. It
	// is called from the goroutine that called Apply or Expire, once per
	// version and in version order (Snapshot.Version goes up by one each
	// time; Snapshot.Changes says what changed), with no lock of State held
	// (it may read the State; Snapshot still returns the version before).
	// It must be quick: it delays the next batch and the version's
	// visibility.
	OnPublish func(*Snapshot)
	// OnWatch, if set, is told the users whose watch history changed: those
	// of an applied chunk of events (a viewer.joined or viewer.left that
	// counted), each once per chunk, after the chunk's snapshot is
	// published, from the goroutine that called Apply; and a user whose
	// load (Ensure) brought stored watches in, from the load's goroutine.
	// No lock of State is held. It must be quick and safe for concurrent
	// use (the fold-in of user vectors only schedules work there). users
	// is not to be kept after the call returns.
	OnWatch func(users []lr.UserID)
	// Clock gives "now" for feature windows (Features). Default time.Now.
	Clock func() time.Time
	// Registerer, if set, receives the metrics of the State.
	Registerer prometheus.Registerer
}

// State is the in-memory view of who is live and how each live stream is
// doing, built from events by event time, and the follows and watch
// history of the users active lately (loaded on demand, see Ensure).
// Writers (Apply, Expire, SetFollow) serialise on a lock; one goroutine
// (the consumer's) is expected to write, so that OnPublish calls arrive in
// order. Ensure's loads write users under the same lock from their own
// goroutines; they publish nothing. Any number of
// goroutines read concurrently. Snapshot never blocks:
// it returns the last published immutable live set. The State owns the live
// set: its Snapshots are the one published copy, and every other view of
// who is live (the index's live matrices) is derived from them through
// OnPublish. Features, History and
// Follows take a read lock held for the length of one lookup.
type State struct {
	cfg Config

	mu        sync.RWMutex
	streamers []*streamer // by ordinal; nil for never seen
	users     map[lr.UserID]*user
	live      *roaring.Bitmap // the writer's copy
	nLive     int
	dedupe    dedupe
	endedSet  endedWindow
	pruned    time.Time // last user prune
	seq       uint64

	loadSlots chan struct{}            // one token per load running (Config.MaxLoads)
	batchMu   sync.Mutex               // guards waiting and inflight
	waiting   []*loadBatch             // with a BatchLoader: batches waiting for a slot, oldest first
	inflight  map[lr.UserID]*loadBatch // the load each user is in (waiting or running), until it ends

	snap atomic.Pointer[Snapshot]
	m    *metrics
}

type streamer struct {
	id  lr.StreamerID
	cur *stream // the live stream, nil when offline
	// The last stream that ended, to recognise late events that belong to it.
	endedID      lr.StreamID
	endedAt      int64 // unix ns; event time of its end (or of its last event when it expired)
	endedExpired bool
	ended        *stream // kept only when it expired, so a late heartbeat can revive it
}

type stream struct {
	id         lr.StreamID
	category   string
	title      string
	language   string // primary language subtag, "" when unknown
	start      int64  // unix ns, event time
	lastEvent  int64  // unix ns, newest event time seen for this stream
	viewers    map[lr.UserID]viewerMark
	sweepAt    int // pruneLeft's next sweep, in marks
	nViewers   int
	peak       int
	counts     []countPoint // viewer count after each change, by event time
	gifts      []gift       // sorted by ts, pruned to the 30-minute window
	giftNewest int64
	// giftVersion counts the changes of gifts; giftCache holds the gift
	// features last computed from them (see giftStatsAt).
	giftVersion uint64
	giftCache   atomic.Pointer[giftStats]
}

type viewerMark struct {
	ts      int64
	present bool
}

type countPoint struct {
	ts int64
	n  int32
}

type gift struct {
	ts     int64
	amount float64
	user   lr.UserID
}

type user struct {
	history []Watch // by JoinedAt ascending, at most HistoryLen
	follows map[lr.StreamerID]followMark
	// loaded: the Loader's state of the user was merged in (Ensure); a
	// user known only from events that arrived since is not.
	loaded bool
	// active is the unix ns of the last request (wall clock) or event
	// (event time) of the user; written under either lock, so atomic.
	active atomic.Int64
}

type followMark struct {
	ts     int64
	active bool
}

// Watch is one stream a user watched. LeftAt is zero while still watching.
type Watch struct {
	StreamerID lr.StreamerID
	StreamID   lr.StreamID
	JoinedAt   time.Time
	LeftAt     time.Time
}

// New returns an empty State. It panics if cfg.Ordinals is nil.
func New(cfg Config) *State {
	if cfg.Ordinals == nil {
		panic("live.New: Config.Ordinals is required")
	}
	if cfg.Expiry <= 0 {
		cfg.Expiry = DefaultExpiry
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = DefaultDedupeWindow
	}
	if cfg.EndedWindow <= 0 {
		cfg.EndedWindow = DefaultEndedWindow
	}
	if cfg.HistoryLen <= 0 {
		cfg.HistoryLen = DefaultHistoryLen
	}
	if cfg.UserTTL <= 0 {
		cfg.UserTTL = DefaultUserTTL
	}
	if cfg.UserIdle <= 0 {
		cfg.UserIdle = DefaultUserIdle
	}
	if cfg.LoadWait <= 0 {
		cfg.LoadWait = DefaultLoadWait
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = DefaultLoadTimeout
	}
	if cfg.MaxLoads <= 0 {
		cfg.MaxLoads = DefaultMaxLoads
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	s := &State{
		cfg:       cfg,
		users:     make(map[lr.UserID]*user),
		live:      roaring.New(),
		dedupe:    newDedupe(cfg.DedupeWindow),
		endedSet:  newEndedWindow(cfg.EndedWindow),
		loadSlots: make(chan struct{}, cfg.MaxLoads),
		inflight:  map[lr.UserID]*loadBatch{},
	}
	s.m = newMetrics(cfg.Registerer, s)
	s.snap.Store(&Snapshot{live: roaring.New(), At: time.Now()})
	return s
}

// ApplyStats says what one Apply did with its events.
type ApplyStats struct {
	Applied    int // changed state
	Duplicates int // an event id seen before within the dedupe window
	Ignored    int // stale or for a stream that is not live (late end, event for an ended stream, ...)
}

type change struct {
	ord  uint32
	live bool
}

// Apply applies events in the order given (callers give each streamer's
// events in partition order; across streamers order does not matter). It
// publishes a new Snapshot (through OnPublish first) for each chunk of events
// that changed the live set. Not safe for concurrent use with other writers.
func (s *State) Apply(evs []lr.Event) ApplyStats {
	var st ApplyStats
	// The write lock is taken per chunk, not for the whole batch, so a
	// request reading the state waits for at most one chunk.
	for len(evs) > 0 {
		n := min(len(evs), applyChunk)
		s.applyChunk(evs[:n], &st)
		evs = evs[n:]
	}
	return st
}

// applyChunk is the most events applied under one hold of the write lock
// (a batch is up to 2048): tens of microseconds.
const applyChunk = 64

func (s *State) applyChunk(evs []lr.Event, st *ApplyStats) {
	t0 := time.Now()
	var changes []change
	var watched []lr.UserID
	dupes := 0
	s.mu.Lock()
	for i := range evs {
		e := &evs[i]
		if s.dedupe.seen(e.ID) {
			dupes++
			continue
		}
		applied, ch := s.apply(e)
		if applied {
			st.Applied++
			s.m.byType(e.Type)
			if s.cfg.OnWatch != nil && (e.Type == lr.EventViewerJoined || e.Type == lr.EventViewerLeft) && !slices.Contains(watched, e.UserID) {
				watched = append(watched, e.UserID)
			}
		} else {
			st.Ignored++
			s.m.ignored.Inc()
		}
		changes = append(changes, ch...)
	}
	snap := s.next(changes)
	s.mu.Unlock()
	st.Duplicates += dupes
	s.m.dupes.Add(float64(dupes))
	s.m.apply.Observe(time.Since(t0).Seconds())
	s.publish(snap)
	if len(watched) > 0 {
		s.cfg.OnWatch(watched)
	}
}

// Expire ends every live stream whose newest event is older than
// now - Expiry and returns how many it ended. At most once a minute it also
// forgets users: with a Loader, those idle for UserIdle (see
// Config.UserIdle); without, those idle for UserTTL (see Config.UserTTL).
// The consumer calls it with the
// wall clock once it has caught up (not while replaying, when event time
// lags the clock). Not safe for concurrent use with other writers.
func (s *State) Expire(now time.Time) int {
	cut := now.Add(-s.cfg.Expiry).UnixNano()
	// Find what to change under the read lock, so requests go on reading
	// meanwhile (the scans cover every streamer and, once a minute, every
	// user), then change it under the write lock, checking each again.
	s.mu.RLock()
	var stale []uint32
	for ord, sr := range s.streamers {
		if sr != nil && sr.cur != nil && sr.cur.lastEvent < cut {
			stale = append(stale, uint32(ord))
		}
	}
	prune := now.Sub(s.pruned) >= time.Minute
	before := now.Add(-s.cfg.UserTTL)
	byActivity := s.cfg.Loader != nil
	if byActivity {
		before = now.Add(-s.cfg.UserIdle)
	}
	var idle []lr.UserID
	if prune {
		cut := before.UnixNano()
		for id, us := range s.users {
			if byActivity && us.active.Load() < cut || !byActivity && us.prunable(before) {
				idle = append(idle, id)
			}
		}
	}
	s.mu.RUnlock()

	var changes []change
	s.mu.Lock()
	for _, ord := range stale {
		sr := s.streamers[ord]
		if sr == nil || sr.cur == nil || sr.cur.lastEvent >= cut {
			continue
		}
		s.end(sr, ord, sr.cur.lastEvent, true)
		changes = append(changes, change{ord, false})
	}
	snap := s.next(changes)
	s.mu.Unlock()
	s.m.expired.Add(float64(len(changes)))
	s.publish(snap)
	if prune {
		s.pruned = now
		if byActivity {
			s.m.evicted.Add(float64(s.evictIdle(idle, before)))
		} else {
			s.m.evicted.Add(float64(s.pruneUsers(idle, before)))
		}
	}
	return len(changes)
}

// prunable says whether pruneUsers has anything to do for us: an unfollow
// mark older than before, or no active follow and no watch after before.
func (us *user) prunable(before time.Time) bool {
	cut := before.UnixNano()
	active := false
	for _, m := range us.follows {
		if m.active {
			active = true
		} else if m.ts < cut {
			return true
		}
	}
	if active {
		return false
	}
	for _, w := range us.history {
		if w.JoinedAt.After(before) || w.LeftAt.After(before) {
			return false
		}
	}
	return true
}

// pruneUsers forgets the users among ids with no active follow and no
// watch after before, and their unfollow marks older than before, taking
// the write lock for a chunk of users at a time. It returns how many users
// it forgot.
func (s *State) pruneUsers(ids []lr.UserID, before time.Time) int {
	cut := before.UnixNano()
	forgot := 0
	for len(ids) > 0 {
		n := min(len(ids), 1024)
		s.mu.Lock()
		for _, id := range ids[:n] {
			us := s.users[id]
			if us == nil {
				continue
			}
			for st, m := range us.follows {
				if !m.active && m.ts < cut {
					delete(us.follows, st)
				}
			}
			// No stale mark is left, so prunable now means idle.
			if us.prunable(before) {
				delete(s.users, id)
				forgot++
			}
		}
		s.mu.Unlock()
		ids = ids[n:]
	}
	return forgot
}

// SetFollow records that user follows (active) or unfollowed streamer as of
// at; an older record than the one held is ignored. For a State without a
// Loader (tests, benchmarks): with one, Ensure loads a user's follows.
func (s *State) SetFollow(u lr.UserID, streamerID lr.StreamerID, active bool, at time.Time) {
	s.mu.Lock()
	s.follow(u, streamerID, active, at.UnixNano())
	s.mu.Unlock()
}

// SeedWatch adds a finished watch to u's history (for a State without a
// Loader; with one, Ensure loads a user's watches the same way); a zero
// end means still watching.
// Events replayed afterwards add to it; a join of the same stream at the
// same time as a watch held already is not added again, so a seeded watch
// that is replayed too shows once.
func (s *State) SeedWatch(u lr.UserID, streamerID lr.StreamerID, stream lr.StreamID, start, end time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watch(u, streamerID, stream, true, start.UnixNano())
	if !end.IsZero() {
		s.watch(u, streamerID, stream, false, end.UnixNano())
	}
}

// next returns the next version of the live set after changes (made under
// the write lock, which the caller holds), or nil when there are none.
func (s *State) next(changes []change) *Snapshot {
	if len(changes) == 0 {
		return nil
	}
	s.seq++
	s.nLive = int(s.live.GetCardinality())
	s.m.live.Set(float64(s.nLive))
	return &Snapshot{live: s.live.Clone(), Seq: s.seq, At: time.Now(), changes: changes}
}

// publish hands snap (nil: nothing changed) to OnPublish, then makes it the
// one Snapshot returns. Called without the lock, by the one writer.
func (s *State) publish(snap *Snapshot) {
	if snap == nil {
		return
	}
	if s.cfg.OnPublish != nil {
		s.cfg.OnPublish(snap)
	}
	s.snap.Store(snap)
}

func (s *State) streamer(id lr.StreamerID) (uint32, *streamer) {
	ord := s.cfg.Ordinals.Ordinal(id)
	if int(ord) >= len(s.streamers) {
		n := max(int(ord)+1, 2*len(s.streamers))
		s.streamers = append(s.streamers, make([]*streamer, n-len(s.streamers))...)
	}
	sr := s.streamers[ord]
	if sr == nil {
		sr = &streamer{id: id}
		s.streamers[ord] = sr
	}
	return ord, sr
}

// apply applies one event under the write lock and reports whether it
// changed anything and which live-set changes it made.
func (s *State) apply(e *lr.Event) (bool, []change) {
	ts := e.TS.UnixNano()
	switch e.Type {
	case lr.EventFollowCreated, lr.EventFollowDeleted:
		ok := s.follow(e.UserID, e.StreamerID, e.Type == lr.EventFollowCreated, ts)
		s.users[e.UserID].touch(ts)
		return ok, nil
	}
	ord, sr := s.streamer(e.StreamerID)
	c := sr.cur
	switch e.Type {
	case lr.EventStreamStarted:
		if c != nil {
			if c.id == e.StreamID {
				c.touch(ts)
				return false, nil
			}
			if ts < c.start {
				return false, nil // a late start of an older stream
			}
			// A new stream replaces the current one, which ended unannounced.
			s.end(sr, ord, ts, false)
			if endAt, ok := s.endedSet.get(sr.id, e.StreamID); ok && ts <= endAt {
				// The new stream's end came first: it began (so the current
				// one is over) but is not live.
				sr.endedID, sr.endedAt = e.StreamID, endAt
				return true, []change{{ord, false}}
			}
			s.begin(sr, ord, e, ts)
			return true, []change{{ord, false}, {ord, true}}
		}
		if e.StreamID == sr.endedID || ts < sr.endedAt {
			return false, nil // the stream that ended, or older than it
		}
		if endAt, ok := s.endedSet.get(sr.id, e.StreamID); ok && ts <= endAt {
			return false, nil // its end arrived before it, stamped later
		}
		s.begin(sr, ord, e, ts)
		return true, []change{{ord, true}}
	case lr.EventStreamEnded:
		// Every end is remembered, also one that arrives before its
		// stream's start (out of order) and so ends nothing now.
		s.endedSet.add(sr.id, e.StreamID, ts)
		if c == nil || c.id != e.StreamID || ts < c.start {
			return false, nil // late end of an older stream, or of one never seen live
		}
		s.end(sr, ord, ts, false)
		return true, []change{{ord, false}}
	case lr.EventStreamHeartbeat:
		if c != nil {
			if c.id != e.StreamID {
				return false, nil
			}
			c.touch(ts)
			return true, nil
		}
		// A heartbeat of a stream we do not hold as live: a stream that
		// expired while its events were delayed is revived; one whose start
		// is older than the replay window starts now.
		if e.StreamID == sr.endedID {
			if !sr.endedExpired || ts <= sr.endedAt || sr.ended == nil {
				return false, nil
			}
			sr.cur, sr.ended, sr.endedID, sr.endedAt, sr.endedExpired = sr.ended, nil, 0, 0, false
			sr.cur.touch(ts)
			s.live.Add(ord)
			return true, []change{{ord, true}}
		}
		if ts < sr.endedAt {
			return false, nil
		}
		if _, ok := s.endedSet.get(sr.id, e.StreamID); ok {
			return false, nil // a stream whose end is known never comes back
		}
		s.begin(sr, ord, e, ts)
		return true, []change{{ord, true}}
	}
	// Viewer and gift events belong to the current stream only.
	if c == nil || c.id != e.StreamID || ts < c.start {
		return false, nil
	}
	switch e.Type {
	case lr.EventViewerJoined, lr.EventViewerLeft:
		joined := e.Type == lr.EventViewerJoined
		if !c.viewer(e.UserID, joined, ts) {
			return false, nil
		}
		s.watch(e.UserID, sr.id, c.id, joined, ts)
		s.users[e.UserID].touch(ts)
		return true, nil
	case lr.EventGiftSent:
		c.gift(gift{ts: ts, amount: e.Amount, user: e.UserID})
		return true, nil
	}
	return false, nil
}

func (s *State) begin(sr *streamer, ord uint32, e *lr.Event, ts int64) {
	sr.cur = &stream{id: e.StreamID, category: e.Category, title: e.Title, language: lr.LanguageOf(e.Language), start: ts, lastEvent: ts,
		viewers: make(map[lr.UserID]viewerMark)}
	sr.cur.counts = append(sr.cur.counts, countPoint{ts, 0})
	s.live.Add(ord)
}

func (s *State) end(sr *streamer, ord uint32, ts int64, expired bool) {
	c := sr.cur
	sr.cur = nil
	sr.endedID, sr.endedAt, sr.endedExpired = c.id, ts, expired
	sr.ended = nil
	if expired {
		sr.ended = c
	}
	s.live.Remove(ord)
}

func (c *stream) touch(ts int64) {
	if ts > c.lastEvent {
		c.lastEvent = ts
	}
}

// viewer records a join or leave; it reports false for a stale or repeated one.
func (c *stream) viewer(u lr.UserID, joined bool, ts int64) bool {
	c.touch(ts)
	m, ok := c.viewers[u]
	if ok && (ts < m.ts || m.present == joined) {
		return false
	}
	if !ok && !joined {
		// A leave with no join: remember it so a late join does not count.
		c.viewers[u] = viewerMark{ts: ts}
		return false
	}
	c.viewers[u] = viewerMark{ts: ts, present: joined}
	if joined {
		c.nViewers++
		c.peak = max(c.peak, c.nViewers)
	} else {
		c.nViewers--
		c.pruneLeft(ts)
	}
	at := max(ts, c.counts[len(c.counts)-1].ts)
	c.counts = append(c.counts, countPoint{at, int32(c.nViewers)})
	// Keep the points of the last viewersAgo (+1 min of slack) and the one
	// before them, which gives the count at the start of that span.
	cut := at - int64(viewersAgo+time.Minute)
	i := sort.Search(len(c.counts), func(i int) bool { return c.counts[i].ts >= cut })
	if i > 1 {
		c.counts = append(c.counts[:0], c.counts[i-1:]...)
	}
	return true
}

// pruneLeft drops the leave marks older than leftMarkTTL before now (event
// time) once they outnumber the present viewers and 64: amortised, each
// sweep removes at least as many marks as the leaves since the last one.
func (c *stream) pruneLeft(now int64) {
	if len(c.viewers) < 2*c.nViewers+64 || len(c.viewers) < c.sweepAt {
		return
	}
	cut := now - int64(leftMarkTTL)
	for u, m := range c.viewers {
		if !m.present && m.ts < cut {
			delete(c.viewers, u)
		}
	}
	// The marks that stay are recent: sweep again once the map has grown
	// by as much again.
	c.sweepAt = 2 * len(c.viewers)
}

func (c *stream) gift(g gift) {
	c.touch(g.ts)
	i := len(c.gifts)
	for i > 0 && c.gifts[i-1].ts > g.ts {
		i--
	}
	c.gifts = slices.Insert(c.gifts, i, g)
	c.giftVersion++
	c.giftNewest = max(c.giftNewest, g.ts)
	cut := c.giftNewest - int64(giftWindow30)
	j := 0
	for j < len(c.gifts) && c.gifts[j].ts <= cut {
		j++
	}
	if j > 0 {
		c.gifts = append(c.gifts[:0], c.gifts[j:]...)
	}
}

func (s *State) user(u lr.UserID) *user {
	us := s.users[u]
	if us == nil {
		us = &user{}
		s.users[u] = us
	}
	return us
}

func (s *State) follow(u lr.UserID, st lr.StreamerID, active bool, ts int64) bool {
	us := s.user(u)
	if m, ok := us.follows[st]; ok && ts <= m.ts {
		return false
	}
	if us.follows == nil {
		us.follows = make(map[lr.StreamerID]followMark)
	}
	us.follows[st] = followMark{ts: ts, active: active}
	return true
}

func (s *State) watch(u lr.UserID, st lr.StreamerID, stream lr.StreamID, joined bool, ts int64) {
	us := s.user(u)
	t := time.Unix(0, ts).UTC()
	if !joined {
		for i := len(us.history) - 1; i >= 0; i-- {
			w := &us.history[i]
			if w.StreamID == stream && w.LeftAt.IsZero() && !w.JoinedAt.After(t) {
				w.LeftAt = t
				return
			}
		}
		return
	}
	i := len(us.history)
	for i > 0 && us.history[i-1].JoinedAt.After(t) {
		i--
	}
	if seededAlready(us.history, stream, t) {
		return
	}
	us.history = slices.Insert(us.history, i, Watch{StreamerID: st, StreamID: stream, JoinedAt: t})
	if n := len(us.history) - s.cfg.HistoryLen; n > 0 {
		us.history = append(us.history[:0], us.history[n:]...)
	}
}

// endedWindow remembers the end times of the last n streams that ended by
// a stream.ended event, oldest forgotten first (a FIFO ring beside a map).
type endedWindow struct {
	at   map[endedKey]int64 // unix ns of the newest end seen
	ring []endedKey
	next int
	full bool
}

type endedKey struct {
	streamer lr.StreamerID
	stream   lr.StreamID
}

func newEndedWindow(n int) endedWindow {
	return endedWindow{at: make(map[endedKey]int64), ring: make([]endedKey, n)}
}

// add remembers that stream of streamer ended at ts (the later end if it
// is already known).
func (w *endedWindow) add(streamer lr.StreamerID, stream lr.StreamID, ts int64) {
	k := endedKey{streamer, stream}
	if old, ok := w.at[k]; ok {
		w.at[k] = max(old, ts)
		return
	}
	if w.full {
		delete(w.at, w.ring[w.next])
	}
	w.at[k] = ts
	w.ring[w.next] = k
	w.next++
	if w.next == len(w.ring) {
		w.next, w.full = 0, true
	}
}

// get returns when stream of streamer ended, if that is remembered.
func (w *endedWindow) get(streamer lr.StreamerID, stream lr.StreamID) (int64, bool) {
	ts, ok := w.at[endedKey{streamer, stream}]
	return ts, ok
}

// dedupe remembers the hashes of the last n event ids: a FIFO ring of
// hashes and an open-addressing set of them (linear probing, load <= 1/4,
// deletion by backward shift so no tombstones build up; a general-purpose
// map under constant insert and delete was the largest cost of Apply).
type dedupe struct {
	seed  maphash.Seed
	table []uint64 // 0 = empty
	mask  uint64
	ring  []uint64
	next  int
	full  bool
}

func newDedupe(n int) dedupe {
	size := 1
	for size < 4*n {
		size <<= 1
	}
	return dedupe{seed: maphash.MakeSeed(), table: make([]uint64, size), mask: uint64(size - 1), ring: make([]uint64, n)}
}

// seen reports whether id is among the remembered ids, and remembers it.
func (d *dedupe) seen(id string) bool {
	h := maphash.String(d.seed, id) | 1 // never 0
	i := h & d.mask
	for {
		v := d.table[i]
		if v == h {
			return true
		}
		if v == 0 {
			break
		}
		i = (i + 1) & d.mask
	}
	if d.full {
		d.remove(d.ring[d.next])
		d.insert(h) // the removal may have opened a slot earlier on h's path
	} else {
		d.table[i] = h
	}
	d.ring[d.next] = h
	d.next++
	if d.next == len(d.ring) {
		d.next, d.full = 0, true
	}
	return false
}

func (d *dedupe) insert(h uint64) {
	i := h & d.mask
	for d.table[i] != 0 {
		i = (i + 1) & d.mask
	}
	d.table[i] = h
}

// remove deletes h (present) and shifts later entries of its cluster back.
func (d *dedupe) remove(h uint64) {
	i := h & d.mask
	for d.table[i] != h {
		if d.table[i] == 0 {
			return
		}
		i = (i + 1) & d.mask
	}
	j := i
	for {
		j = (j + 1) & d.mask
		v := d.table[j]
		if v == 0 {
			break
		}
		k := v & d.mask
		// The entry at j may stay if its home k lies cyclically in (i, j].
		if (i <= j && i < k && k <= j) || (i > j && (i < k || k <= j)) {
			continue
		}
		d.table[i] = v
		i = j
	}
	d.table[i] = 0
}
