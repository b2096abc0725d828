package history

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
)

// DefaultStreamGap is the gap between a streamer's sessions (or live
// observations) beyond which a derived stream ends and the next begins.
const DefaultStreamGap = 30 * time.Minute

// Options tune Read.
type Options struct {
	// StreamGap: when streams are derived, a streamer's sessions (and live
	// observations) are one stream as long as each begins no later than
	// StreamGap after the latest end before it. 0 joins only overlapping
	// or touching sessions.
	StreamGap time.Duration
	// Progress, if not nil, is given the bytes of input read as they are
	// read (Parquet files count whole once read).
	Progress func(bytes int64)
}

// FileCount is how many rows of one file were read.
type FileCount struct {
	Name string
	Kind Kind
	Rows int
}

// Derivation says how streams were derived when no streams file was given.
type Derivation struct {
	Gap       time.Duration
	Streams   int // streams derived
	Streamers int // streamers they belong to
	// Splits counts the streams that start a new stream of their streamer
	// after a gap longer than Gap.
	Splits int
	// ByStreamID counts the derived streams whose id the sessions (or live
	// rows) gave: each spans its rows, gaps or not.
	ByStreamID int
	// LiveRows counts the rows of live files used.
	LiveRows int
}

// Plan is a validated history, ready for postgres.DB.ImportHistory.
type Plan struct {
	Rows    postgres.ImportRows
	Files   []FileCount
	Derived *Derivation // nil when streams files were given
	// From and To are the earliest and latest time in the input.
	From, To time.Time
}

// loc is where a row is: its file and its CSV line or Parquet row.
type loc struct {
	f    *fileInfo
	line int
}

type fileInfo struct {
	name    string
	parquet bool
}

func (l loc) String() string {
	if l.f.parquet {
		return fmt.Sprintf("%s row %d", l.f.name, l.line)
	}
	return fmt.Sprintf("%s:%d", l.f.name, l.line)
}

type sessionRec struct {
	user, streamer, stream int64
	hasStream              bool
	start, end             time.Time
	at                     loc
}

type streamRec struct {
	id, streamer    int64
	hasID           bool
	start, end      time.Time // end zero: still live
	category, title string
	at              loc
}

type giftRec struct {
	user, streamer, stream int64
	hasStream              bool
	at                     time.Time
	amount                 float64
	id                     string
	where                  loc
}

type liveRec struct {
	streamer, stream int64
	hasStream        bool
	at               time.Time
	where            loc
}

type reader struct {
	probs    Problems
	sessions []sessionRec
	streams  []streamRec
	gifts    []giftRec
	follows  []postgres.FollowRow
	live     []liveRec
	files    []FileCount

	sessionKey map[[3]int64]loc
	streamID   map[int64]loc
	streamKey  map[[2]int64]loc
	giftID     map[string]loc
	followKey  map[[2]int64]loc
	liveKey    map[[2]int64]bool
}

// Read reads and validates files (in the order of Kinds, then as given) and
// returns what they would add. Every row of every file is checked before
// Read returns: a *Problems error lists what is wrong, with file and line
// (or Parquet row), and then nothing may be written. Checks: the header
// (unknown columns, a field given twice, missing required columns), ids,
// times (RFC 3339 or Unix seconds), end before start, negative durations,
// end and duration_s that disagree, amounts, booleans, duplicates (a
// session's user, streamer and start; a stream's id, or streamer and
// start; a gift_id; a follow's user and streamer), and that each session
// falls in a stream of its streamer when streams files are given. Streams
// files and live files exclude each other (EINVALID); without streams files
// the streams are derived (see Options.StreamGap and Plan.Derived).
func Read(files []File, opt Options) (*Plan, error) {
	var haveStreams, haveLive bool
	for _, f := range files {
		if _, ok := columns[f.Kind]; !ok {
			return nil, lr.Errorf(lr.EINVALID, "%s: unknown kind of history file %q", filepath.Base(f.Path), f.Kind)
		}
		haveStreams = haveStreams || f.Kind == Streams
		haveLive = haveLive || f.Kind == Live
	}
	if haveStreams && haveLive {
		return nil, lr.Errorf(lr.EINVALID, "streams files and live files exclude each other: live rows only serve to derive streams when no streams file is given")
	}
	if opt.StreamGap < 0 {
		return nil, lr.Errorf(lr.EINVALID, "stream gap %s: want zero or more", opt.StreamGap)
	}
	r := &reader{sessionKey: map[[3]int64]loc{}, streamID: map[int64]loc{}, streamKey: map[[2]int64]loc{},
		giftID: map[string]loc{}, followKey: map[[2]int64]loc{}, liveKey: map[[2]int64]bool{}}
	ordered := make([]File, 0, len(files))
	for _, k := range Kinds {
		for _, f := range files {
			if f.Kind == k {
				ordered = append(ordered, f)
			}
		}
	}
	for _, f := range ordered {
		fc := FileCount{Name: filepath.Base(f.Path), Kind: f.Kind}
		fi := &fileInfo{name: fc.Name, parquet: strings.ToLower(filepath.Ext(f.Path)) != ".csv"}
		err := readFile(f, &r.probs, opt.Progress, func(h header, line int, cells []string) {
			at := loc{fi, line}
			if r.row(f.Kind, h, at, cells) {
				fc.Rows++
			}
		})
		if err != nil {
			return nil, err
		}
		r.files = append(r.files, fc)
	}
	p := &Plan{Files: r.files}
	streams := r.streamsFor(p, haveStreams, opt.StreamGap)
	if r.probs.Total > 0 {
		return nil, &r.probs
	}
	r.sessionKey, r.streamKey, r.giftID, r.followKey, r.liveKey = nil, nil, nil, nil, nil // let them go while the rows are built
	r.build(p, streams)
	return p, nil
}

func (r *reader) problem(at loc, format string, args ...any) {
	r.probs.add(Problem{File: at.f.name, Line: at.line, Parquet: at.f.parquet, Msg: fmt.Sprintf(format, args...)})
}

// row parses and checks one row of kind k; it reports whether it was good.
func (r *reader) row(k Kind, h header, at loc, cells []string) bool {
	bad := false
	id := func(f string) int64 {
		v, err := parseID(f, h.cell(cells, f))
		if err != nil {
			r.problem(at, "%v", err)
			bad = true
		}
		return v
	}
	optID := func(f string) (int64, bool) {
		if h.cell(cells, f) == "" {
			return 0, false
		}
		return id(f), true
	}
	tm := func(f string) time.Time {
		v, err := parseTime(f, h.cell(cells, f))
		if err != nil {
			r.problem(at, "%v", err)
			bad = true
		}
		return v
	}
	switch k {
	case Sessions:
		s := sessionRec{user: id(cUser), streamer: id(cStreamer), start: tm(cStart), at: at}
		s.stream, s.hasStream = optID(cStream)
		endS, durS := h.cell(cells, cEnd), h.cell(cells, cDuration)
		var dur float64
		if durS != "" {
			var err error
			if dur, err = parseSeconds(cDuration, durS); err != nil {
				r.problem(at, "%v", err)
				return false
			}
		}
		switch {
		case endS != "":
			s.end = tm(cEnd)
		case durS != "":
			s.end = s.start.Add(time.Duration(dur * float64(time.Second))).Truncate(time.Microsecond)
		default:
			r.problem(at, "neither end nor duration_s is given")
			return false
		}
		if bad {
			return false
		}
		if s.end.Before(s.start) {
			r.problem(at, "end %s is before start %s", fmtTime(s.end), fmtTime(s.start))
			return false
		}
		if endS != "" && durS != "" {
			if got := s.end.Sub(s.start).Seconds(); math.Abs(got-dur) > 1 {
				r.problem(at, "end and duration_s disagree: end - start is %ss, duration_s %s", strconv.FormatFloat(got, 'f', -1, 64), durS)
				return false
			}
		}
		key := [3]int64{s.user, s.streamer, s.start.UnixMicro()}
		if first, dup := r.sessionKey[key]; dup {
			r.problem(at, "duplicate session: user %d, streamer %d, start %s (first at %s)", s.user, s.streamer, fmtTime(s.start), first)
			return false
		}
		r.sessionKey[key] = at
		r.sessions = append(r.sessions, s)
	case Streams:
		s := streamRec{streamer: id(cStreamer), start: tm(cStart), at: at,
			category: h.cell(cells, cCategory), title: h.cell(cells, cTitle)}
		s.id, s.hasID = optID(cStream)
		if h.cell(cells, cEnd) != "" {
			s.end = tm(cEnd)
		}
		if bad {
			return false
		}
		if !s.end.IsZero() && s.end.Before(s.start) {
			r.problem(at, "end %s is before start %s", fmtTime(s.end), fmtTime(s.start))
			return false
		}
		if s.hasID {
			if first, dup := r.streamID[s.id]; dup {
				r.problem(at, "duplicate stream_id %d (first at %s)", s.id, first)
				return false
			}
			r.streamID[s.id] = at
		}
		key := [2]int64{s.streamer, s.start.UnixMicro()}
		if first, dup := r.streamKey[key]; dup {
			r.problem(at, "duplicate stream: streamer %d, start %s (first at %s)", s.streamer, fmtTime(s.start), first)
			return false
		}
		r.streamKey[key] = at
		r.streams = append(r.streams, s)
	case Gifts:
		g := giftRec{user: id(cUser), streamer: id(cStreamer), at: tm(cSentAt), id: h.cell(cells, cGiftID), where: at}
		g.stream, g.hasStream = optID(cStream)
		amount, err := parseAmount(h.cell(cells, cAmount))
		if err != nil {
			r.problem(at, "%v", err)
			bad = true
		}
		if bad {
			return false
		}
		g.amount = amount
		if g.id != "" {
			if first, dup := r.giftID[g.id]; dup {
				r.problem(at, "duplicate gift_id %q (first at %s)", g.id, first)
				return false
			}
			r.giftID[g.id] = at
		}
		r.gifts = append(r.gifts, g)
	case Follows:
		f := postgres.FollowRow{UserID: lr.UserID(id(cUser)), StreamerID: lr.StreamerID(id(cStreamer)), Active: true, CreatedAt: tm(cCreated)}
		f.UpdatedAt = f.CreatedAt
		if h.cell(cells, cUpdated) != "" {
			f.UpdatedAt = tm(cUpdated)
		}
		if s := h.cell(cells, cActive); s != "" {
			v, err := parseBool(cActive, s)
			if err != nil {
				r.problem(at, "%v", err)
				bad = true
			}
			f.Active = v
		}
		if bad {
			return false
		}
		if f.UpdatedAt.Before(f.CreatedAt) {
			r.problem(at, "updated_at %s is before created_at %s", fmtTime(f.UpdatedAt), fmtTime(f.CreatedAt))
			return false
		}
		key := [2]int64{int64(f.UserID), int64(f.StreamerID)}
		if first, dup := r.followKey[key]; dup {
			r.problem(at, "duplicate follow: user %d, streamer %d (first at %s)", f.UserID, f.StreamerID, first)
			return false
		}
		r.followKey[key] = at
		r.follows = append(r.follows, f)
	case Live:
		l := liveRec{streamer: id(cStreamer), at: tm(cAt), where: at}
		l.stream, l.hasStream = optID(cStream)
		if bad {
			return false
		}
		key := [2]int64{l.streamer, l.at.UnixMicro()}
		if r.liveKey[key] {
			return true // the same observation twice says nothing more
		}
		r.liveKey[key] = true
		r.live = append(r.live, l)
	}
	return true
}

// streamsFor returns the streams of the import, given or derived, and
// gives every session its stream (reporting a session that falls in none).
func (r *reader) streamsFor(p *Plan, given bool, gap time.Duration) []postgres.StreamRow {
	var out []postgres.StreamRow
	if given {
		for _, s := range r.streams {
			id := s.id
			if !s.hasID {
				id = streamID(s.streamer, s.start)
			}
			out = append(out, postgres.StreamRow{ID: lr.StreamID(id), StreamerID: lr.StreamerID(s.streamer),
				Category: s.category, Title: s.title, StartedAt: s.start, EndedAt: s.end})
		}
	} else {
		out = r.derive(p, gap)
	}
	byID := map[int64]postgres.StreamRow{}
	byStreamer := map[int64][]postgres.StreamRow{}
	for _, s := range out {
		byID[int64(s.ID)] = s
		byStreamer[int64(s.StreamerID)] = append(byStreamer[int64(s.StreamerID)], s)
	}
	for _, ss := range byStreamer {
		sort.Slice(ss, func(a, b int) bool { return ss[a].StartedAt.Before(ss[b].StartedAt) })
	}
	for i := range r.sessions {
		s := &r.sessions[i]
		if s.hasStream {
			if !given {
				continue // derive made the stream and checked its streamer
			}
			st, ok := byID[s.stream]
			switch {
			case !ok:
				r.problem(s.at, "stream_id %d is in no streams file", s.stream)
			case int64(st.StreamerID) != s.streamer:
				r.problem(s.at, "stream_id %d is a stream of streamer %d, not %d", s.stream, st.StreamerID, s.streamer)
			}
			continue
		}
		st, ok := containing(byStreamer[s.streamer], s.start)
		if !ok {
			r.problem(s.at, "no stream of streamer %d in the streams files is live at %s", s.streamer, fmtTime(s.start))
			continue
		}
		s.stream = int64(st.ID)
	}
	for i := range r.gifts {
		g := &r.gifts[i]
		if !g.hasStream {
			if st, ok := containing(byStreamer[g.streamer], g.at); ok {
				g.stream = int64(st.ID)
			}
		}
	}
	return out
}

// containing returns the latest-starting stream of ss (sorted by start)
// that is live at t: started at or before t, not ended before it.
func containing(ss []postgres.StreamRow, t time.Time) (postgres.StreamRow, bool) {
	i := sort.Search(len(ss), func(i int) bool { return ss[i].StartedAt.After(t) })
	for j := i - 1; j >= 0; j-- {
		if ss[j].EndedAt.IsZero() || !ss[j].EndedAt.Before(t) {
			return ss[j], true
		}
	}
	return postgres.StreamRow{}, false
}

// derive makes the streams from the sessions and live rows. Rows that name
// a stream_id make that stream, from its earliest start to its latest end.
// The others, per streamer in time order, make one stream while each begins
// no later than gap after the latest end so far (a live row is a moment).
func (r *reader) derive(p *Plan, gap time.Duration) []postgres.StreamRow {
	d := &Derivation{Gap: gap, LiveRows: len(r.live)}
	p.Derived = d
	type span struct {
		streamer   int64
		start, end time.Time
		at         loc
	}
	byID := map[int64]*span{}
	var ids []int64
	perStreamer := map[int64][]span{}
	addID := func(id, streamer int64, start, end time.Time, at loc) {
		s, ok := byID[id]
		if !ok {
			byID[id] = &span{streamer, start, end, at}
			ids = append(ids, id)
			return
		}
		if s.streamer != streamer {
			r.problem(at, "stream_id %d has rows of streamer %d (%s) and of streamer %d", id, s.streamer, s.at, streamer)
			return
		}
		if start.Before(s.start) {
			s.start = start
		}
		if end.After(s.end) {
			s.end = end
		}
	}
	for _, s := range r.sessions {
		if s.hasStream {
			addID(s.stream, s.streamer, s.start, s.end, s.at)
		} else {
			perStreamer[s.streamer] = append(perStreamer[s.streamer], span{s.streamer, s.start, s.end, s.at})
		}
	}
	for _, l := range r.live {
		if l.hasStream {
			addID(l.stream, l.streamer, l.at, l.at, l.where)
		} else {
			perStreamer[l.streamer] = append(perStreamer[l.streamer], span{l.streamer, l.at, l.at, l.where})
		}
	}
	var out []postgres.StreamRow
	streamers := map[int64]bool{}
	for _, id := range ids {
		s := byID[id]
		out = append(out, postgres.StreamRow{ID: lr.StreamID(id), StreamerID: lr.StreamerID(s.streamer), StartedAt: s.start, EndedAt: s.end})
		streamers[s.streamer] = true
		d.ByStreamID++
	}
	keys := make([]int64, 0, len(perStreamer))
	for k := range perStreamer {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool { return keys[a] < keys[b] })
	for _, k := range keys {
		ss := perStreamer[k]
		sort.Slice(ss, func(a, b int) bool { return ss[a].start.Before(ss[b].start) })
		cur := ss[0]
		emit := func(s span) {
			out = append(out, postgres.StreamRow{ID: lr.StreamID(streamID(k, s.start)), StreamerID: lr.StreamerID(k), StartedAt: s.start, EndedAt: s.end})
		}
		for _, s := range ss[1:] {
			if s.start.After(cur.end.Add(gap)) {
				emit(cur)
				d.Splits++
				cur = s
				continue
			}
			if s.end.After(cur.end) {
				cur.end = s.end
			}
		}
		emit(cur)
		streamers[k] = true
	}
	d.Streams, d.Streamers = len(out), len(streamers)
	return out
}

// streamID is the id of a stream the files name by streamer and start
// only: the first 63 bits of a SHA-256 of both, so every import of the same
// stream gives it the same id.
func streamID(streamer int64, start time.Time) int64 {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(streamer))
	binary.BigEndian.PutUint64(b[8:], uint64(start.UnixMicro()))
	h := sha256.Sum256(append([]byte("liverecall stream "), b[:]...))
	id := int64(binary.BigEndian.Uint64(h[:8]) >> 1)
	if id == 0 {
		id = 1
	}
	return id
}

// build turns the checked records into rows.
func (r *reader) build(p *Plan, streams []postgres.StreamRow) {
	users := map[int64]time.Time{}
	streamers := map[int64]time.Time{}
	category := map[int64]struct {
		at  time.Time
		cat string
	}{}
	seen := func(m map[int64]time.Time, id int64, t time.Time) {
		if old, ok := m[id]; !ok || t.Before(old) {
			m[id] = t
		}
		if p.From.IsZero() || t.Before(p.From) {
			p.From = t
		}
		if t.After(p.To) {
			p.To = t
		}
	}
	in := &p.Rows
	in.Streams = streams
	in.Watches = make([]postgres.WatchRow, 0, len(r.sessions))
	in.Gifts = make([]postgres.GiftRow, 0, len(r.gifts))
	in.Follows = make([]postgres.FollowRow, 0, len(r.follows))
	for _, s := range streams {
		seen(streamers, int64(s.StreamerID), s.StartedAt)
		if !s.EndedAt.IsZero() {
			seen(streamers, int64(s.StreamerID), s.EndedAt)
		}
		if c := category[int64(s.StreamerID)]; s.Category != "" && !s.StartedAt.Before(c.at) {
			category[int64(s.StreamerID)] = struct {
				at  time.Time
				cat string
			}{s.StartedAt, s.Category}
		}
	}
	for _, s := range r.sessions {
		seen(users, s.user, s.start)
		seen(streamers, s.streamer, s.start)
		seen(streamers, s.streamer, s.end)
		in.Watches = append(in.Watches, postgres.WatchRow{
			EventID: fmt.Sprintf("import:%d:%d:%d", s.user, s.streamer, s.start.UnixMicro()),
			UserID:  lr.UserID(s.user), StreamID: lr.StreamID(s.stream), StreamerID: lr.StreamerID(s.streamer),
			StartedAt: s.start, EndedAt: s.end, Seconds: int32(s.end.Sub(s.start) / time.Second)})
	}
	rank := map[[3]int64]int{}
	for _, g := range r.gifts {
		seen(users, g.user, g.at)
		seen(streamers, g.streamer, g.at)
		id := "import:gift:" + g.id
		if g.id == "" {
			key := [3]int64{g.user, g.streamer, g.at.UnixMicro()}
			id = fmt.Sprintf("import:gift:%d:%d:%d:%d", g.user, g.streamer, g.at.UnixMicro(), rank[key])
			rank[key]++
		}
		in.Gifts = append(in.Gifts, postgres.GiftRow{EventID: id, UserID: lr.UserID(g.user), StreamerID: lr.StreamerID(g.streamer),
			StreamID: lr.StreamID(g.stream), Amount: g.amount, SentAt: g.at})
	}
	for _, f := range r.follows {
		seen(users, int64(f.UserID), f.CreatedAt)
		seen(streamers, int64(f.StreamerID), f.CreatedAt)
		in.Follows = append(in.Follows, f)
	}
	for _, id := range sortedKeys(users) {
		in.Users = append(in.Users, postgres.UserRow{ID: lr.UserID(id), CreatedAt: users[id]})
	}
	for _, id := range sortedKeys(streamers) {
		in.Streamers = append(in.Streamers, postgres.StreamerRow{ID: lr.StreamerID(id), Category: category[id].cat, CreatedAt: streamers[id]})
	}
}

func sortedKeys(m map[int64]time.Time) []int64 {
	ks := make([]int64, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(a, b int) bool { return ks[a] < ks[b] })
	return ks
}
