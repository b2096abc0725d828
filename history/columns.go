package history

import (
	"fmt"
	"strings"
)

// Kind is what a history file holds.
type Kind string

// The kinds of history files.
const (
	Sessions Kind = "sessions" // watch sessions: who watched whom, when
	Streams  Kind = "streams"  // live streams: who was live from when to when
	Gifts    Kind = "gifts"
	Follows  Kind = "follows"
	Live     Kind = "live" // who was live when: one row per streamer seen live at a moment
)

// Kinds lists every kind, in the order files are read.
var Kinds = []Kind{Streams, Live, Sessions, Gifts, Follows}

// column is one field of a file kind: its canonical name, the other names
// accepted for it, and whether a file must have it.
type column struct {
	name     string
	aliases  []string
	required bool
}

// The field names, shared by several kinds.
const (
	cUser     = "user_id"
	cStreamer = "streamer_id"
	cStream   = "stream_id"
	cStart    = "start"
	cEnd      = "end"
	cDuration = "duration_s"
	cCategory = "category"
	cTitle    = "title"
	cSentAt   = "sent_at"
	cAmount   = "amount"
	cGiftID   = "gift_id"
	cCreated  = "created_at"
	cUpdated  = "updated_at"
	cActive   = "active"
	cAt       = "at"
)

var (
	colUser     = column{cUser, []string{"user", "uid", "viewer_id"}, true}
	colStreamer = column{cStreamer, []string{"streamer", "room_id", "room", "channel_id", "broadcaster_id"}, true}
	colStream   = column{cStream, []string{"stream", "live_id", "broadcast_id"}, false}
)

// columns gives each kind's fields (see the README's "Importing history").
var columns = map[Kind][]column{
	Sessions: {colUser, colStreamer, colStream,
		{cStart, []string{"started_at", "joined_at", "start_time"}, true},
		{cEnd, []string{"ended_at", "left_at", "end_time"}, false},
		{cDuration, []string{"duration", "seconds"}, false}},
	Streams: {colStreamer, colStream,
		{cStart, []string{"started_at", "start_time"}, true},
		{cEnd, []string{"ended_at", "end_time"}, false},
		{cCategory, []string{"game", "genre"}, false},
		{cTitle, nil, false}},
	Gifts: {colUser, colStreamer, colStream,
		{cSentAt, []string{"at", "time", "ts"}, true},
		{cAmount, []string{"value", "coins", "price"}, true},
		{cGiftID, []string{"event_id"}, false}},
	Follows: {colUser, colStreamer,
		{cCreated, []string{"followed_at", "at", "time", "ts"}, true},
		{cActive, nil, false},
		{cUpdated, nil, false}},
	Live: {colStreamer, colStream,
		{cAt, []string{"time", "ts", "observed_at"}, true}},
}

// header maps a file's columns to its kind's fields: pos[field] is the
// column index of the field, absent when the file lacks it.
type header struct {
	pos map[string]int
}

// parseHeader checks a file's column names against its kind: every column
// must name a field (by its name or an alias, case and surrounding space
// ignored), no field twice, every required field present; sessions need
// end or duration_s. It returns the problems found (none: the header is
// good).
func parseHeader(k Kind, names []string) (header, []string) {
	h := header{pos: map[string]int{}}
	var probs []string
	byName := map[string]string{}
	for _, c := range columns[k] {
		byName[c.name] = c.name
		for _, a := range c.aliases {
			byName[a] = c.name
		}
	}
	seenAs := map[string]string{}
	for i, n := range names {
		key := strings.ToLower(strings.TrimSpace(n))
		f, ok := byName[key]
		if !ok {
			probs = append(probs, fmt.Sprintf("unknown column %q; a %s file takes %s", n, k, describe(k)))
			continue
		}
		if prev, dup := seenAs[f]; dup {
			probs = append(probs, fmt.Sprintf("columns %q and %q both give %s", prev, n, f))
			continue
		}
		seenAs[f] = n
		h.pos[f] = i
	}
	for _, c := range columns[k] {
		if _, ok := h.pos[c.name]; c.required && !ok {
			probs = append(probs, fmt.Sprintf("no %s column (%s)", c.name, names2(c)))
		}
	}
	if k == Sessions {
		_, e := h.pos[cEnd]
		_, d := h.pos[cDuration]
		if !e && !d {
			probs = append(probs, "no end column (end, ended_at, left_at or end_time) and no duration_s column (duration_s, duration or seconds): a session needs one")
		}
	}
	return h, probs
}

func names2(c column) string {
	all := append([]string{c.name}, c.aliases...)
	if len(all) == 1 {
		return "named " + all[0]
	}
	return "named " + strings.Join(all[:len(all)-1], ", ") + " or " + all[len(all)-1]
}

// describe lists a kind's fields for an error message: required ones
// first, aliases in parentheses.
func describe(k Kind) string {
	var parts []string
	for _, c := range columns[k] {
		s := c.name
		if len(c.aliases) > 0 {
			s += " (" + strings.Join(c.aliases, ", ") + ")"
		}
		if !c.required {
			s += " optional"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// cell returns the trimmed value of field f in a row, "" when the file has
// no such column.
func (h header) cell(cells []string, f string) string {
	i, ok := h.pos[f]
	if !ok || i >= len(cells) {
		return ""
	}
	return strings.TrimSpace(cells[i])
}

// has says whether the file has field f.
func (h header) has(f string) bool {
	_, ok := h.pos[f]
	return ok
}
