package sim

import (
	"cmp"
	"container/heap"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	lr "github.com/liverecall/liverecall"
)

// Choice is the ground truth of one viewing decision: at TS, User chose
// Streamer (live in Stream) among the streamers live at that moment.
type Choice struct {
	TS       time.Time
	User     lr.UserID
	Streamer lr.StreamerID
	Stream   lr.StreamID
	// Repeat: the user had watched this streamer before (among the
	// streamers the user remembers; see Config.Habit).
	Repeat bool
	// Habit: the choice came from the user's habits rather than from
	// exploring by taste and popularity.
	Habit bool
	// LiveCount is how many streamers were live at TS (Streamer included).
	LiveCount int
	// Live appends the streamers live at TS to dst, in no particular order,
	// and returns it. It is only valid during the Choice callback.
	Live func(dst []lr.StreamerID) []lr.StreamerID
	// IsLive reports whether a streamer was live at TS. Only valid during
	// the Choice callback.
	IsLive func(lr.StreamerID) bool
	// Context is the visit's request context in a world with
	// Config.Context (the user's local hour and weekday at TS, the visit's
	// device, the user's language and country), what a client would send
	// with the request; zero otherwise.
	Context lr.RequestContext
	// Affinity returns the probability that the simulator's choice model
	// picks a streamer at this decision (habits and exploration; see
	// response.go): the world's true preference of User at TS, given who
	// is live and the user's habits just before the decision. The live
	// streamers' affinities sum to 1; 0 for a streamer not live. Only
	// valid during the Choice callback; it draws nothing, so calling it
	// changes no event.
	Affinity func(lr.StreamerID) float64
}

// Stats counts what a Run emitted in its window.
type Stats struct {
	Events        map[lr.EventType]int64
	Streams       int64 // streams started in the window
	Choices       int64 // viewing decisions (one viewer.joined each)
	RepeatChoices int64 // of which the user had watched the streamer before
	HabitChoices  int64 // of which came from habit rather than exploration
	NoLive        int64 // visits that found nobody live
	WatchSeconds  int64 // total of the windows' watch sessions, counted at viewer.left
	Reopened      int64 // streams already live that RunLive announced (not in Events)
	// ReopenedViewers counts the viewer.joined events RunLive re-emitted
	// for the viewers already watching (not in Events).
	ReopenedViewers int64
}

// RepeatShare is RepeatChoices / Choices (0 with no choices).
func (s Stats) RepeatShare() float64 {
	if s.Choices == 0 {
		return 0
	}
	return float64(s.RepeatChoices) / float64(s.Choices)
}

// TotalEvents sums Events.
func (s Stats) TotalEvents() int64 {
	var n int64
	for _, v := range s.Events {
		n += v
	}
	return n
}

type kind uint8

const (
	kHour kind = iota
	kLeave
	kGift
	kFollow
	kUnfollow
	kEnd
	kStart
	kHeartbeat
	kVisit
)

// prio orders items of equal time: ticks first, then what closes (viewers
// leave before their stream ends), then starts, then new viewers, so a
// visit never sees a stream that ends at that instant.
var prio = [...]uint8{kHour: 0, kLeave: 1, kGift: 1, kFollow: 1, kUnfollow: 1, kEnd: 2, kStart: 3, kHeartbeat: 4, kVisit: 5}

type item struct {
	ts       int64 // unix ms
	seq      uint64
	stream   int64 // stream id; for kStart the planned length in ms
	amount   float32
	user     int32
	streamer int32
	kind     kind
}

type queue []item

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	a, b := &q[i], &q[j]
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if prio[a.kind] != prio[b.kind] {
		return prio[a.kind] < prio[b.kind]
	}
	return a.seq < b.seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}

// runner is the dynamic state of one Run.
type runner struct {
	w    *World
	r    *rand.Rand
	q    queue
	seq  uint64 // items pushed
	eseq uint64 // events generated (emitted or not): the event id counter

	from, to int64
	emit     func(lr.Event) error
	choice   func(Choice) error
	stats    Stats
	idPrefix []byte
	idBuf    []byte

	// streamers
	sStream   []int64 // current stream id, 0 when offline
	sEnd      []int64 // end of the current stream
	sNextFree []int64 // earliest start of the next stream
	sNext     []int64 // start of the next scheduled stream (0: none)
	sNext2    []int64 // and of the one after it
	sViewers  []int32
	live      *fenwick // quality of live streamers by (category, language)
	liveList  []int32
	livePos   []int32
	nextID    int64

	// users
	uBusy  []int64  // watching until
	slotS  []int32  // remembered streamer + 1, 0 empty
	slotN  []uint16 // times watched
	slotF  []bool   // following
	cands  []int32
	candW  []float64
	liveFn func(dst []lr.StreamerID) []lr.StreamerID
	isLive func(lr.StreamerID) bool

	// the decision being reported, for Choice.Affinity: its user, habit
	// probability and live habit streamers with their weights (taken
	// before the decision updates the user's habits)
	affU      int32
	affHabitP float64
	affHabitS []int32
	affHabitW []float64
	affinity  func(lr.StreamerID) float64
	// live popularity by group, category, language and in all, and the
	// user's category and language draw probabilities, filled by the
	// first Affinity call of a decision (affReady)
	affReady          bool
	affGroupT         []float64
	affCatT           []float64
	affLangT          []float64
	affAllT           float64
	affPCat, affPLang []float64

	// for RunLive: the id counter and time of each live stream's start
	// event, and of each user's current watch (uWatchS: streamer + 1, 0
	// when not watching), allocated only when reopen
	sStartSeq []uint64
	sStartTS  []int64
	uWatchS   []int32
	uJoinSeq  []uint64
	uJoinTS   []int64
	uWatchID  []int64
	reopen    bool

	// cr draws what only a world with Config.Context draws (nil without).
	cr     *rand.Rand
	devMix alias
}

// Run simulates the world from its Start up to to and calls emit for every
// event with a time in [from, to), in event-time order (ties in a fixed
// order), and choice (if not nil) for every viewing decision in that
// window, just before the decision's viewer.joined event, so that whatever
// the earlier events built is exactly what was known at the decision.
// Everything before from is simulated but not emitted, so the events of a
// window do not depend on from: Run(from, to) gives exactly the events of
// Run(Start, to) that fall in [from, to). Streams already live at from
// (and viewers already watching) were started before the window; their
// later events are emitted. Event ids are "sim<seed>-<n>", unique and
// deterministic.
//
// The same world and window give a byte-identical event stream. Run may be
// called concurrently on one World; emit and choice are called from the
// calling goroutine. An error from emit or choice, or ctx's, stops the run
// and is returned.
func (w *World) Run(ctx context.Context, from, to time.Time, emit func(lr.Event) error, choice func(Choice) error) (Stats, error) {
	return w.run(ctx, from, to, emit, choice, false)
}

// RunLive is Run for a consumer that starts at from with no earlier state
// (a live service reading a topic that holds only this window): before the
// window's first event it announces what is live at from, so the consumer
// starts from the simulator's truth. For every stream already live, in
// stream id order, it re-emits the original stream.started event (same id,
// same time, before from) followed by a stream.heartbeat at from (id: the
// start's id + "-hb" + from in Unix ms), so a consumer that expires silent
// streams keeps a stream started hours ago; then, in the order they joined,
// the original viewer.joined event (same id, same time) of every viewer
// watching at from, so the streams' audiences are right from the start and
// the later viewer.left events pair with a join. Stats.Reopened counts the
// streams announced and Stats.ReopenedViewers the joins re-emitted; neither
// is in Stats.Events.
func (w *World) RunLive(ctx context.Context, from, to time.Time, emit func(lr.Event) error, choice func(Choice) error) (Stats, error) {
	return w.run(ctx, from, to, emit, choice, true)
}

func (w *World) run(ctx context.Context, from, to time.Time, emit func(lr.Event) error, choice func(Choice) error, reopen bool) (Stats, error) {
	if from.Before(w.cfg.Start) {
		return Stats{}, lr.Errorf(lr.EINVALID, "sim: window starts at %s, before the world's start %s", from.UTC().Format(time.RFC3339), w.cfg.Start.Format(time.RFC3339))
	}
	if !to.After(from) {
		return Stats{}, lr.Errorf(lr.EINVALID, "sim: empty window [%s, %s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	ns, nu := len(w.sCat), len(w.uRate)
	rn := &runner{
		w: w, r: rand.New(rand.NewPCG(w.cfg.Seed, 0x5eed0002)),
		from: from.UnixMilli(), to: to.UnixMilli(), emit: emit, choice: choice,
		stats:     Stats{Events: map[lr.EventType]int64{}},
		sStream:   make([]int64, ns),
		sEnd:      make([]int64, ns),
		sNextFree: make([]int64, ns),
		sNext:     make([]int64, ns),
		sNext2:    make([]int64, ns),
		sViewers:  make([]int32, ns),
		live:      newFenwick(w.groupLen),
		livePos:   make([]int32, ns),
		uBusy:     make([]int64, nu),
		slotS:     make([]int32, nu*slotsPerU),
		slotN:     make([]uint16, nu*slotsPerU),
		slotF:     make([]bool, nu*slotsPerU),
		idPrefix:  strconv.AppendUint([]byte("sim"), w.cfg.Seed, 10),
		sStartSeq: make([]uint64, ns),
		sStartTS:  make([]int64, ns),
		reopen:    reopen,
	}
	if reopen {
		rn.uWatchS, rn.uJoinSeq = make([]int32, nu), make([]uint64, nu)
		rn.uJoinTS, rn.uWatchID = make([]int64, nu), make([]int64, nu)
	}
	if w.cfg.Context {
		rn.cr, rn.devMix = rand.New(rand.NewPCG(w.cfg.Seed, 0x5eed0005)), newAlias(deviceMix)
	}
	rn.idPrefix = append(rn.idPrefix, '-')
	rn.liveFn = func(dst []lr.StreamerID) []lr.StreamerID {
		for _, s := range rn.liveList {
			dst = append(dst, StreamerID(int(s)))
		}
		return dst
	}
	rn.isLive = func(id lr.StreamerID) bool {
		i := int64(id) - idBase
		return i >= 0 && i < int64(ns) && rn.sStream[i] != 0
	}
	rn.affinity = func(id lr.StreamerID) float64 {
		i := int64(id) - idBase
		if i < 0 || i >= int64(ns) || rn.sStream[i] == 0 {
			return 0
		}
		return rn.affinityOf(int32(i))
	}
	rn.seedHabits()
	rn.push(item{ts: w.cfg.Start.UnixMilli(), kind: kHour})
	for n := 0; rn.q.Len() > 0; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return rn.stats, err
			}
		}
		it := heap.Pop(&rn.q).(item)
		if rn.reopen && it.ts >= rn.from {
			rn.reopen = false
			if err := rn.reopenLive(); err != nil {
				return rn.stats, err
			}
		}
		if it.ts >= rn.to {
			break
		}
		if err := rn.step(it); err != nil {
			return rn.stats, err
		}
	}
	return rn.stats, nil
}

func (rn *runner) push(it item) {
	it.seq = rn.seq
	rn.seq++
	heap.Push(&rn.q, it)
}

func (rn *runner) step(it item) error {
	w := rn.w
	switch it.kind {
	case kHour:
		rn.hour(it.ts)
	case kStart:
		s := it.streamer
		rn.nextID++
		id := rn.nextID
		rn.sStream[s], rn.sEnd[s] = id, it.ts+it.stream
		rn.sNext[s], rn.sNext2[s] = rn.sNext2[s], 0
		rn.live.add(int(w.groupOf[s]), w.sSlot[s], w.sQuality[s])
		rn.livePos[s] = int32(len(rn.liveList))
		rn.liveList = append(rn.liveList, s)
		rn.sStartSeq[s], rn.sStartTS[s] = rn.eseq, it.ts
		rn.push(item{ts: rn.sEnd[s], kind: kEnd, streamer: s, stream: id})
		if hb := w.cfg.Heartbeat.Milliseconds(); hb > 0 && it.ts+hb < rn.sEnd[s] {
			rn.push(item{ts: it.ts + hb, kind: kHeartbeat, streamer: s, stream: id})
		}
		if rn.in(it.ts) {
			rn.stats.Streams++
			rn.stats.Events[lr.EventStreamStarted]++
			return rn.emit(rn.startEvent(s))
		}
		rn.eseq++
	case kEnd:
		s := it.streamer
		rn.sStream[s] = 0
		rn.live.add(int(w.groupOf[s]), w.sSlot[s], -w.sQuality[s])
		last := rn.liveList[len(rn.liveList)-1]
		rn.liveList[rn.livePos[s]] = last
		rn.livePos[last] = rn.livePos[s]
		rn.liveList = rn.liveList[:len(rn.liveList)-1]
		return rn.maybe(it, lr.EventStreamEnded)
	case kHeartbeat:
		if hb := w.cfg.Heartbeat.Milliseconds(); it.ts+hb < rn.sEnd[it.streamer] {
			rn.push(item{ts: it.ts + hb, kind: kHeartbeat, streamer: it.streamer, stream: it.stream})
		}
		return rn.maybe(it, lr.EventStreamHeartbeat)
	case kVisit:
		return rn.visit(it.ts, it.user, it.amount != 0)
	case kLeave:
		rn.sViewers[it.streamer]--
		if rn.uWatchS != nil {
			rn.uWatchS[it.user] = 0
		}
		if rn.in(it.ts) {
			rn.stats.WatchSeconds += int64(it.amount)
		}
		// Some viewers move on to another stream in the same visit.
		if rn.r.Float64() < 0.3 {
			rn.push(item{ts: it.ts + 5000 + rn.r.Int64N(55000), kind: kVisit, user: it.user})
		}
		it.amount = 0
		return rn.maybe(it, lr.EventViewerLeft)
	case kGift:
		return rn.maybe(it, lr.EventGiftSent)
	case kFollow:
		return rn.maybe(it, lr.EventFollowCreated)
	case kUnfollow:
		return rn.maybe(it, lr.EventFollowDeleted)
	}
	return nil
}

// startEvent is the stream.started event of streamer s's current stream
// and advances the id counter if it is the event being generated now.
func (rn *runner) startEvent(s int32) lr.Event {
	w := rn.w
	id := rn.sStream[s]
	seq := rn.sStartSeq[s]
	if seq == rn.eseq {
		rn.eseq++
	}
	cat := Categories[w.sCat[s]]
	rn.idBuf = strconv.AppendUint(append(rn.idBuf[:0], rn.idPrefix...), seq, 10)
	e := lr.Event{ID: string(rn.idBuf), Type: lr.EventStreamStarted, TS: time.UnixMilli(rn.sStartTS[s]).UTC(),
		StreamerID: StreamerID(int(s)), StreamID: lr.StreamID(id), Category: cat,
		Title: cat + " with " + streamerName(w.cfg.Seed, int(s)) + " #" + strconv.FormatInt(id, 10), V: lr.EventVersion}
	if w.cfg.Context {
		e.Language = Languages[w.sLang[s]]
	}
	return e
}

// reopenLive announces the streams live now and their viewers (RunLive).
func (rn *runner) reopenLive() error {
	live := slices.Clone(rn.liveList)
	slices.SortFunc(live, func(a, b int32) int { return cmp.Compare(rn.sStream[a], rn.sStream[b]) })
	at := time.UnixMilli(rn.from).UTC()
	hb := "-hb" + strconv.FormatInt(rn.from, 10)
	for _, s := range live {
		rn.stats.Reopened++
		e := rn.startEvent(s)
		if err := rn.emit(e); err != nil {
			return err
		}
		if err := rn.emit(lr.Event{ID: e.ID + hb, Type: lr.EventStreamHeartbeat, TS: at, StreamerID: e.StreamerID, StreamID: e.StreamID, V: lr.EventVersion}); err != nil {
			return err
		}
	}
	var watching []int32
	for u, s := range rn.uWatchS {
		if s != 0 {
			watching = append(watching, int32(u))
		}
	}
	slices.SortFunc(watching, func(a, b int32) int { return cmp.Compare(rn.uJoinSeq[a], rn.uJoinSeq[b]) })
	for _, u := range watching {
		rn.stats.ReopenedViewers++
		rn.idBuf = strconv.AppendUint(append(rn.idBuf[:0], rn.idPrefix...), rn.uJoinSeq[u], 10)
		e := lr.Event{ID: string(rn.idBuf), Type: lr.EventViewerJoined, TS: time.UnixMilli(rn.uJoinTS[u]).UTC(),
			StreamerID: StreamerID(int(rn.uWatchS[u] - 1)), StreamID: lr.StreamID(rn.uWatchID[u]), UserID: UserID(int(u)), V: lr.EventVersion}
		if err := rn.emit(e); err != nil {
			return err
		}
	}
	return nil
}

func (rn *runner) in(ts int64) bool { return ts >= rn.from && ts < rn.to }

func (rn *runner) maybe(it item, t lr.EventType) error {
	if !rn.in(it.ts) {
		rn.eseq++
		return nil
	}
	stream := it.stream
	if t == lr.EventFollowCreated || t == lr.EventFollowDeleted {
		stream = 0
	}
	return rn.event(it.ts, t, it.streamer, stream, it.user, float64(it.amount), "", "")
}

func (rn *runner) event(ts int64, t lr.EventType, s int32, stream int64, u int32, amount float64, cat, title string) error {
	rn.idBuf = strconv.AppendUint(append(rn.idBuf[:0], rn.idPrefix...), rn.eseq, 10)
	rn.eseq++
	e := lr.Event{
		ID: string(rn.idBuf), Type: t, TS: time.UnixMilli(ts).UTC(), StreamerID: StreamerID(int(s)),
		StreamID: lr.StreamID(stream), Amount: amount, Category: cat, Title: title, V: lr.EventVersion,
	}
	if u >= 0 {
		e.UserID = UserID(int(u))
	}
	rn.stats.Events[t]++
	return rn.emit(e)
}

// hour generates the visits of the hour starting at ts and, at midnight,
// the day's stream schedule; then it schedules the next hour.
func (rn *runner) hour(ts int64) {
	w, r := rn.w, rn.r
	hod := int((ts % msPerDay) / msPerHour)
	if hod == 0 {
		// Schedules are drawn a day ahead so that a stream may start before
		// midnight; on the first day the world's own day is drawn too.
		if ts == w.cfg.Start.UnixMilli() {
			rn.schedule(ts, ts)
		}
		rn.schedule(ts, ts+msPerDay)
	}
	for c := 0; c < chronos; c++ {
		if len(w.userOfPos[c]) == 0 {
			continue
		}
		n := poisson(r, w.chronoRate[c]*curve(uint8(c), hod))
		for i := 0; i < n; i++ {
			u := w.userOfPos[c][w.userPick[c].sample(r)]
			rn.push(item{ts: ts + r.Int64N(msPerHour), kind: kVisit, user: u})
		}
	}
	rn.push(item{ts: ts + msPerHour, kind: kHour})
}

var (
	giftAmounts = []float64{1, 5, 10, 20, 50, 100, 500}
	giftPick    = newAlias([]float64{40, 25, 15, 10, 6, 3, 1})
)

// visit is one user's viewing decision at ts among the streamers live then.
//
// A user none of whose streamers is live comes back, half the time, when
// the favourite among them next goes live (as a notification would bring
// them); deferred says this visit is such a return.
func (rn *runner) visit(ts int64, u int32, deferred bool) error {
	w, r := rn.w, rn.r
	if w.uCreated[u] > ts {
		return nil // not signed up yet (Config.NewUserShare)
	}
	if rn.uBusy[u] > ts || len(rn.liveList) == 0 {
		if len(rn.liveList) == 0 && rn.in(ts) {
			rn.stats.NoLive++
		}
		return nil
	}
	slots := int(u) * slotsPerU
	// Habit: streamers the user watched before who are live now.
	rn.cands, rn.candW = rn.cands[:0], rn.candW[:0]
	var sumW float64
	for k := 0; k < slotsPerU; k++ {
		s := rn.slotS[slots+k] - 1
		if s < 0 || rn.sStream[s] == 0 {
			continue
		}
		wt := float64(rn.slotN[slots+k])
		if rn.slotF[slots+k] {
			wt *= 3
		}
		rn.cands = append(rn.cands, int32(k))
		rn.candW = append(rn.candW, wt)
		sumW += wt
	}
	if len(rn.cands) == 0 && !deferred && r.Float64() < w.cfg.Return {
		fav, favW := int32(-1), uint16(0)
		for k := 0; k < slotsPerU; k++ {
			s := rn.slotS[slots+k] - 1
			if s >= 0 && rn.sNext[s] > ts && rn.sNext[s] < ts+12*msPerHour && rn.slotN[slots+k] > favW {
				fav, favW = s, rn.slotN[slots+k]
			}
		}
		if fav >= 0 {
			rn.push(item{ts: rn.sNext[fav] + r.Int64N(20*60000), kind: kVisit, user: u, amount: 1})
			return nil
		}
	}
	s := int32(-1)
	habit := false
	habitP, rc := w.cfg.Habit, rn.context(ts, u)
	if rc.LocalTime && rc.Hour < 6 {
		habitP = max(habitP, nightHabit)
	}
	if rn.choice != nil && rn.in(ts) {
		// What Choice.Affinity needs, before the habits change.
		rn.affU, rn.affHabitP, rn.affReady = u, habitP, false
		rn.affHabitS, rn.affHabitW = rn.affHabitS[:0], append(rn.affHabitW[:0], rn.candW...)
		for _, k := range rn.cands {
			rn.affHabitS = append(rn.affHabitS, rn.slotS[slots+int(k)]-1)
		}
	}
	if len(rn.cands) > 0 && r.Float64() < habitP {
		x := r.Float64() * sumW
		k := rn.cands[len(rn.cands)-1]
		for i, wt := range rn.candW {
			if x < wt {
				k = rn.cands[i]
				break
			}
			x -= wt
		}
		s, habit = rn.slotS[slots+int(k)]-1, true
	} else {
		s = rn.explore(u)
	}
	if s < 0 {
		if rn.in(ts) {
			rn.stats.NoLive++
		}
		return nil
	}

	// Remember: find the streamer among the slots, else replace the least
	// watched (not followed if possible).
	slot, repeat := -1, false
	for k := 0; k < slotsPerU; k++ {
		if rn.slotS[slots+k] == s+1 {
			slot, repeat = slots+k, true
			break
		}
	}
	if slot < 0 {
		best := -1
		for k := 0; k < slotsPerU; k++ {
			i := slots + k
			if rn.slotS[i] == 0 {
				best = i
				break
			}
			if best < 0 || (rn.slotF[best] && !rn.slotF[i]) || (rn.slotF[best] == rn.slotF[i] && rn.slotN[i] < rn.slotN[best]) {
				best = i
			}
		}
		slot = best
		rn.slotS[slot], rn.slotN[slot], rn.slotF[slot] = s+1, 0, false
	}
	if rn.slotN[slot] < math.MaxUint16 {
		rn.slotN[slot]++
	}

	stream, end := rn.sStream[s], rn.sEnd[s]
	// Watch time: log-normal around 9 minutes, longer for streamers the user
	// knows and for popular streams; never past the stream's end.
	mins := lognormal(r, 9, 1.1)
	if repeat {
		mins *= 1.6
	}
	if rn.cr != nil {
		mins *= deviceWatch[slices.Index(simDevices, rc.Device)]
		if rc.Weekday == time.Saturday || rc.Weekday == time.Sunday {
			mins *= 1.25
		}
	}
	d := min(int64(mins*60000), end-ts)
	d = max(d, 1000)
	leave := min(ts+d, end)
	rn.uBusy[u] = leave
	rn.sViewers[s]++

	if rn.in(ts) {
		rn.stats.Choices++
		if repeat {
			rn.stats.RepeatChoices++
		}
		if habit {
			rn.stats.HabitChoices++
		}
	}
	// The choice is reported before its viewer.joined, so a recommender fed
	// the events is asked with exactly what was known before the decision.
	if rn.choice != nil && rn.in(ts) {
		err := rn.choice(Choice{TS: time.UnixMilli(ts).UTC(), User: UserID(int(u)), Streamer: StreamerID(int(s)),
			Stream: lr.StreamID(stream), Repeat: repeat, Habit: habit, LiveCount: len(rn.liveList), Live: rn.liveFn, IsLive: rn.isLive, Context: rc,
			Affinity: rn.affinity})
		if err != nil {
			return err
		}
	}
	if rn.uWatchS != nil {
		rn.uWatchS[u], rn.uJoinSeq[u], rn.uJoinTS[u], rn.uWatchID[u] = s+1, rn.eseq, ts, stream
	}
	if err := rn.event2(ts, lr.EventViewerJoined, s, stream, u); err != nil {
		return err
	}
	rn.push(item{ts: leave, kind: kLeave, streamer: s, stream: stream, user: u, amount: float32((leave - ts) / 1000)})
	if g := float64(w.uGenerous[u]); g > 0 {
		if repeat {
			g *= 1.5
		}
		if r.Float64() < g {
			rn.push(item{ts: ts + r.Int64N(leave-ts+1), kind: kGift, streamer: s, stream: stream, user: u,
				amount: float32(giftAmounts[giftPick.sample(r)])})
		}
	}
	switch {
	case !rn.slotF[slot] && rn.slotN[slot] >= 2 && r.Float64() < 0.2:
		rn.slotF[slot] = true
		rn.push(item{ts: ts + r.Int64N(leave-ts+1), kind: kFollow, streamer: s, stream: stream, user: u})
	case rn.slotF[slot] && r.Float64() < 0.003:
		rn.slotF[slot] = false
		rn.push(item{ts: leave, kind: kUnfollow, streamer: s, stream: stream, user: u})
	}
	return nil
}

func (rn *runner) event2(ts int64, t lr.EventType, s int32, stream int64, u int32) error {
	if !rn.in(ts) {
		rn.eseq++
		return nil
	}
	return rn.event(ts, t, s, stream, u, 0, "", "")
}

// nightHabit is the habit probability at local night (0-5 h) in a world
// with Config.Context.
const nightHabit = 1.0

// context is the request context of user u's visit at ts: zero without
// Config.Context; else the local time, a device (the user's usual one 3
// times in 4, else one of the mix, drawn from rn.cr), the language and
// country.
func (rn *runner) context(ts int64, u int32) lr.RequestContext {
	if rn.cr == nil {
		return lr.RequestContext{}
	}
	w := rn.w
	d := w.uDevice[u]
	if rn.cr.Float64() >= 0.75 {
		d = uint8(rn.devMix.sample(rn.cr))
	}
	l := w.uLang[u]
	rc := lr.RequestContext{Device: simDevices[d], Language: Languages[l], Country: countries[l][w.uCountry[u]]}
	return rc.AtLocalTime(time.UnixMilli(ts).In(time.FixedZone("", int(w.uOffset[u])*60)))
}

// explore picks a live streamer by the user's taste (a category; now and
// then any category), language (mostly the user's own) and popularity.
// It returns -1 when nobody is live.
func (rn *runner) explore(u int32) int32 {
	w, r := rn.w, rn.r
	nl := len(Languages)
	cat := -1
	if r.Float64() >= 0.05 {
		x := r.Float32()
		for k := 0; k < tasteTop; k++ {
			if x < w.uTasteCum[u][k] || k == tasteTop-1 {
				cat = int(w.uTasteCat[u][k])
				break
			}
		}
	} else {
		cat = r.IntN(len(Categories))
	}
	lang := int(w.uLang[u])
	if other := r.Float64(); other < 0.15 && (!w.cfg.Context || other < 0.05) {
		lang = r.IntN(nl)
	}
	g := cat*nl + lang
	if rn.live.total(g) == 0 && w.cfg.Context {
		// With context, users keep to their language: another category
		// of their taste in it, then any category in it.
		for k := 0; k < tasteTop && rn.live.total(g) == 0; k++ {
			g = int(w.uTasteCat[u][k])*nl + lang
		}
		if rn.live.total(g) == 0 {
			g = rn.pickStrided(lang, nl)
		}
	}
	if g < 0 || rn.live.total(g) == 0 {
		// Nobody of that category speaks the language: any language, then
		// anything live at all, by popularity.
		g = rn.pickGroup(cat*nl, (cat+1)*nl)
		if g < 0 {
			g = rn.pickGroup(0, len(w.groupLen))
		}
		if g < 0 {
			return -1
		}
	}
	slot := rn.live.find(g, r.Int64N(rn.live.total(g)))
	return rn.memberOf(g, slot)
}

// pickStrided picks one of the groups first, first+stride, ... by their
// live popularity; -1 when none has anybody live.
func (rn *runner) pickStrided(first, stride int) int {
	var sum int64
	for g := first; g < len(rn.w.groupLen); g += stride {
		sum += rn.live.total(g)
	}
	if sum == 0 {
		return -1
	}
	x := rn.r.Int64N(sum)
	for g := first; g < len(rn.w.groupLen); g += stride {
		if t := rn.live.total(g); x < t {
			return g
		}
		x -= rn.live.total(g)
	}
	return -1
}

func (rn *runner) pickGroup(lo, hi int) int {
	var sum int64
	for g := lo; g < hi; g++ {
		sum += rn.live.total(g)
	}
	if sum == 0 {
		return -1
	}
	x := rn.r.Int64N(sum)
	for g := lo; g < hi; g++ {
		t := rn.live.total(g)
		if x < t {
			return g
		}
		x -= t
	}
	return hi - 1
}

func (rn *runner) memberOf(g int, slot int32) int32 {
	return rn.w.members[rn.w.groupStart[g]+slot]
}

// seedHabits gives every user a few streamers watched before the world
// starts: by taste, language and popularity, preferring streamers who are
// usually live when the user is online. Without them the repeat share would
// only reach its steady state after weeks of simulated time.
func (rn *runner) seedHabits() {
	w := rn.w
	r := rand.New(rand.NewPCG(w.cfg.Seed, 0x5eed0003))
	all := newFenwick(w.groupLen)
	for s := range w.sCat {
		if w.sCreated[s] <= w.cfg.Start.UnixMilli() {
			all.add(int(w.groupOf[s]), w.sSlot[s], w.sQuality[s])
		}
	}
	saved := rn.live
	rn.live = all
	defer func() { rn.live = saved }()
	saveR := rn.r
	rn.r = r
	defer func() { rn.r = saveR }()
	var peak float64
	for _, x := range hourCurve {
		peak = math.Max(peak, x)
	}
	for u := range w.uRate {
		if w.uCreated[u] > w.cfg.Start.UnixMilli() {
			continue // a new user (Config.NewUserShare) has no habits yet
		}
		n := 2 + r.IntN(4)
		for k := 0; k < n; k++ {
			var s int32 = -1
			for try := 0; try < 8; try++ {
				c := rn.explore(int32(u))
				if c < 0 {
					break
				}
				s = c
				if r.Float64()*peak < curve(w.uChrono[u], int(w.sHour[c])) {
					break
				}
			}
			if s < 0 {
				break
			}
			i := u*slotsPerU + k
			dup := false
			for j := u * slotsPerU; j < i; j++ {
				dup = dup || rn.slotS[j] == s+1
			}
			if !dup {
				rn.slotS[i], rn.slotN[i] = s+1, uint16(1+r.IntN(4))
			}
		}
	}
}

// schedule draws the streams of the day starting at day, none before now.
func (rn *runner) schedule(now, day int64) {
	w, r := rn.w, rn.r
	for s := range w.sCat {
		if r.Float32() >= w.sDays[s] {
			continue
		}
		start := day + int64((float64(w.sHour[s])+0.75*r.NormFloat64())*float64(msPerHour))
		start = min(max(start, now), day+msPerDay-1)
		length := int64(math.Min(5, math.Max(1, lognormal(r, 2.5, 0.45))) * float64(msPerHour))
		if start < w.sCreated[s] || start < rn.sNextFree[s] {
			continue
		}
		rn.sNextFree[s] = start + length + 30*60*1000
		if rn.sNext[s] == 0 {
			rn.sNext[s] = start
		} else {
			rn.sNext2[s] = start
		}
		rn.push(item{ts: start, kind: kStart, streamer: int32(s), stream: length})
	}
}
