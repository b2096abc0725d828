package live

import (
	"fmt"
	"iter"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	lr "github.com/liverecall/liverecall"
)

// Snapshot is one published version of the live set: the ordinals of the
// streamers live when it was published, its version and the changes from
// the version before. Any number of goroutines may read it; nobody may
// modify it. It satisfies small interfaces such as
// interface{ Contains(uint32) bool; GetCardinality() uint64 } and
// index.LiveSet, by which the index knows a filter for the live set its
// live matrices mirror.
type Snapshot struct {
	live *roaring.Bitmap
	Seq  uint64    // the version: 0 is the empty set New starts with, each publication adds one
	At   time.Time // wall time of publication
	// changes made this version from the one before, in order (a
	// streamer may go offline and live again in one version).
	changes []change

	// dense is the live set as one bit per ordinal, built by the first
	// Contains: a request asks Contains hundreds of times (the scans'
	// filter, merge), and a bit test is a fraction of the bitmap's binary
	// searches. Lazily, so a snapshot replaced before anyone reads it (a
	// replay publishes thousands) costs nothing.
	denseOnce sync.Once
	dense     []uint64
}

// Contains reports whether the streamer with ordinal ord was live.
func (s *Snapshot) Contains(ord uint32) bool {
	s.denseOnce.Do(s.buildDense)
	w := ord >> 6
	return int(w) < len(s.dense) && s.dense[w]&(1<<(ord&63)) != 0
}

func (s *Snapshot) buildDense() {
	if s.live.IsEmpty() {
		return
	}
	d := make([]uint64, s.live.Maximum()>>6+1)
	it := s.live.Iterator()
	for it.HasNext() {
		ord := it.Next()
		d[ord>>6] |= 1 << (ord & 63)
	}
	s.dense = d
}

// Version returns Seq: each published Snapshot's is one more than the
// version before it, the first (empty, from New) is 0.
func (s *Snapshot) Version() uint64 { return s.Seq }

// Changes yields the changes that made this version from the one before,
// in the order they were made: the streamer with the ordinal went live
// (true) or offline (false). A streamer may appear more than once (a new
// stream replacing the current one goes offline, then live). Applying them
// in order to the previous version gives this one.
func (s *Snapshot) Changes() iter.Seq2[uint32, bool] {
	return func(yield func(uint32, bool) bool) {
		for _, c := range s.changes {
			if !yield(c.ord, c.live) {
				return
			}
		}
	}
}

// GetCardinality returns how many streamers were live.
func (s *Snapshot) GetCardinality() uint64 { return s.live.GetCardinality() }

// Ordinals returns the live ordinals in increasing order (a new slice).
func (s *Snapshot) Ordinals() []uint32 { return s.live.ToArray() }

// Bitmap returns the live set itself, shared: callers must not modify it
// (Clone it first if they need to).
func (s *Snapshot) Bitmap() *roaring.Bitmap { return s.live }

// Snapshot returns the last published live set. It never blocks and never
// returns nil.
func (s *State) Snapshot() *Snapshot { return s.snap.Load() }

// Features are the real-time signals of one live stream, as of a time.
type Features struct {
	StreamerID       lr.StreamerID
	StreamID         lr.StreamID
	Category         string
	Title            string
	Language         string // the stream's language (primary subtag, lower-case); "" when unknown
	StartedAt        time.Time
	LastEventAt      time.Time
	Age              time.Duration // now - StartedAt, never negative
	Viewers          int           // distinct users present now
	Viewers5mAgo     int           // distinct users present 5 minutes ago (0 if the stream is younger)
	PeakViewers      int
	Gifts1m          int
	Gifts5m          int
	Gifts30m         int
	GiftValue1m      float64
	GiftValue5m      float64
	GiftValue30m     float64
	UniqueGifters30m int
}

// Features returns the features of the live stream of the streamer with
// ordinal ord as of the State's clock, and false if that streamer is not live.
func (s *State) Features(ord uint32) (Features, bool) {
	return s.FeaturesAt(ord, s.cfg.Clock())
}

// FeaturesAt is Features as of now. Windows are (now-w, now] in event time.
func (s *State) FeaturesAt(ord uint32, now time.Time) (Features, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if int(ord) >= len(s.streamers) || s.streamers[ord] == nil || s.streamers[ord].cur == nil {
		return Features{}, false
	}
	sr := s.streamers[ord]
	return sr.cur.features(sr.id, now.UnixNano()), true
}

// FeaturesAtMany is FeaturesAt for many ordinals under one read lock:
// *out[i], live[i] answer ords[i] (out and live must be as long as ords;
// out's pointers let callers fill features kept inside their own structs).
func (s *State) FeaturesAtMany(ords []uint32, now time.Time, out []*Features, live []bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns := now.UnixNano()
	// In chunks, one pointer level at a time: each pass's loads do not
	// depend on each other, so their cache misses overlap instead of
	// following one another down every candidate's pointer chain.
	const chunk = 32
	var srs [chunk]*streamer
	var cur [chunk]*stream
	for lo := 0; lo < len(ords); lo += chunk {
		part := ords[lo:min(lo+chunk, len(ords))]
		for i, ord := range part {
			srs[i] = nil
			if int(ord) < len(s.streamers) {
				srs[i] = s.streamers[ord]
			}
		}
		for i := range part {
			cur[i] = nil
			if srs[i] != nil {
				cur[i] = srs[i].cur
			}
		}
		for _, c := range cur[:len(part)] {
			if c != nil {
				c.prefetch()
			}
		}
		for i, c := range cur[:len(part)] {
			if c == nil {
				*out[lo+i], live[lo+i] = Features{}, false
				continue
			}
			c.featuresInto(out[lo+i], srs[i].id, ns)
			live[lo+i] = true
		}
	}
}

// FeaturesOf is Features by streamer id.
func (s *State) FeaturesOf(id lr.StreamerID) (Features, bool) {
	ord, ok := s.cfg.Ordinals.Lookup(id)
	if !ok {
		return Features{}, false
	}
	return s.Features(ord)
}

// sink keeps prefetch's loads from being optimised away.
var sink atomic.Int64

// prefetch loads the stream's own fields and the heads of its viewer-count and
// gift histories, so that featuresInto's reads hit the cache.
func (c *stream) prefetch() {
	x := c.start
	if len(c.counts) > 0 {
		x += c.counts[len(c.counts)-1].ts
	}
	if len(c.gifts) > 0 {
		x += c.gifts[len(c.gifts)-1].ts
	}
	if x == 1 {
		sink.Add(1)
	}
}

func (c *stream) features(id lr.StreamerID, now int64) Features {
	var f Features
	c.featuresInto(&f, id, now)
	return f
}

func (c *stream) featuresInto(fp *Features, id lr.StreamerID, now int64) {
	*fp = Features{
		StreamerID: id, StreamID: c.id, Category: c.category, Title: c.title, Language: c.language,
		StartedAt: time.Unix(0, c.start).UTC(), LastEventAt: time.Unix(0, c.lastEvent).UTC(),
		Age: time.Duration(max(0, now-c.start)), Viewers: c.nViewers, PeakViewers: c.peak,
	}
	f := fp
	ago := now - int64(viewersAgo)
	if ago >= c.start {
		i := sort.Search(len(c.counts), func(i int) bool { return c.counts[i].ts > ago })
		if i > 0 {
			f.Viewers5mAgo = int(c.counts[i-1].n)
		}
	}
	gs := c.giftStatsAt(now)
	f.Gifts1m, f.GiftValue1m = gs.n1, gs.value1
	f.Gifts5m, f.GiftValue5m = gs.n5, gs.value5
	f.Gifts30m, f.GiftValue30m = gs.n30, gs.value30
	f.UniqueGifters30m = gs.unique30
}

// giftStats are a stream's gift features at one time, with the span of
// times they hold for unchanged: until a gift in a window ages out of it,
// a gift stamped later than now comes in, or a new gift arrives (which
// changes the stream's giftVersion).
type giftStats struct {
	version     uint64
	from, until int64 // unix ns: they hold for now in [from, until)
	n1, n5, n30 int
	value1      float64
	value5      float64
	value30     float64
	unique30    int
}

// giftStatsAt returns the stream's gift features at now. Walking the
// 30-minute window (and sorting its gifters) for every candidate of every
// request cost a gift-heavy stream thousands of steps each time; the
// result is kept on the stream and reused while it holds. Callers hold
// the state's lock, read or write: under the read lock concurrent
// callers may each compute and store, and any of their results is right.
func (c *stream) giftStatsAt(now int64) *giftStats {
	if gs := c.giftCache.Load(); gs != nil && gs.version == c.giftVersion && now >= gs.from && now < gs.until {
		return gs
	}
	gs := c.computeGiftStats(now)
	c.giftCache.Store(gs)
	return gs
}

// computeGiftStats walks the gifts of the 30-minute window before now. The
// span it gives is exact both ways, so requests that took their time a
// little apart (concurrent requests do) share one result instead of each
// replacing the other's.
func (c *stream) computeGiftStats(now int64) *giftStats {
	gs := &giftStats{version: c.giftVersion, from: math.MinInt64, until: math.MaxInt64}
	var buf [64]lr.UserID
	gifters := buf[:0]
	for i := len(c.gifts) - 1; i >= 0; i-- {
		g := c.gifts[i]
		if g.ts > now {
			gs.until = min(gs.until, g.ts) // counts from then on
			continue
		}
		age := now - g.ts
		if age >= int64(giftWindow30) {
			// Earlier it was in the window (the newest such gift
			// comes first and bounds the rest).
			gs.from = max(gs.from, g.ts+int64(giftWindow30))
			break
		}
		gs.from = max(gs.from, g.ts) // earlier it was ahead of the clock
		gs.until = min(gs.until, g.ts+int64(giftWindow30))
		gs.n30++
		gs.value30 += g.amount
		gifters = append(gifters, g.user)
		if age < int64(giftWindow5) {
			gs.until = min(gs.until, g.ts+int64(giftWindow5))
			gs.n5++
			gs.value5 += g.amount
		} else {
			gs.from = max(gs.from, g.ts+int64(giftWindow5))
		}
		if age < int64(giftWindow1) {
			gs.until = min(gs.until, g.ts+int64(giftWindow1))
			gs.n1++
			gs.value1 += g.amount
		} else {
			gs.from = max(gs.from, g.ts+int64(giftWindow1))
		}
	}
	slices.Sort(gifters)
	gs.unique30 = len(slices.Compact(gifters))
	return gs
}

// History returns the streams user u watched, newest join first (a new
// slice; nil if none is known). At most Config.HistoryLen entries.
func (s *State) History(u lr.UserID) []Watch {
	s.mu.RLock()
	defer s.mu.RUnlock()
	us := s.users[u]
	if us == nil || len(us.history) == 0 {
		return nil
	}
	out := slices.Clone(us.history)
	slices.Reverse(out)
	return out
}

// Follows returns the streamers user u follows, in increasing id order (a
// new slice; nil if none).
func (s *State) Follows(u lr.UserID) []lr.StreamerID {
	s.mu.RLock()
	defer s.mu.RUnlock()
	us := s.users[u]
	if us == nil {
		return nil
	}
	var out []lr.StreamerID
	for id, m := range us.follows {
		if m.active {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Live returns how many streamers are live in the writer's current view.
func (s *State) Live() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.nLive
}

// Users returns how many users the State tracks (history or follows).
func (s *State) Users() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.users)
}

// Dump renders the whole state as of now as canonical text: the live set
// by streamer id with every feature, then each user's history and follows,
// sorted. Two States built from the same events give the same Dump. It is
// for tests and debugging; it holds the read lock while it runs.
func (s *State) Dump(now time.Time) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var lines []string
	for _, sr := range s.streamers {
		if sr == nil || sr.cur == nil {
			continue
		}
		f := sr.cur.features(sr.id, now.UnixNano())
		lines = append(lines, fmt.Sprintf("live streamer=%d %+v", sr.id, f))
	}
	for id, us := range s.users {
		for _, w := range us.history {
			lines = append(lines, fmt.Sprintf("watch user=%d %+v", id, w))
		}
		for st, m := range us.follows {
			lines = append(lines, fmt.Sprintf("follow user=%d streamer=%d active=%v ts=%d", id, st, m.active, m.ts))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
