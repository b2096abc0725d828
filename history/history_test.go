package history

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

// write writes name (in a fresh directory) with content and returns its path.
func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const okSessions = "user_id,streamer_id,start,end\n1,101,2026-03-01T20:00:00Z,2026-03-01T20:45:00Z\n"

// Every validation problem has a fixed message naming the file and the line
// (CSV) or row (Parquet); a file with problems gives no plan.
func TestProblemsGolden(t *testing.T) {
	type in struct {
		kind Kind
		name string
		csv  string
	}
	for _, tc := range []struct {
		name  string
		files []in
		want  []string
	}{
		{"unknown column", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end,colour\n1,2,0,1,red\n"}},
			[]string{`s.csv:1: unknown column "colour"; a sessions file takes user_id (user, uid, viewer_id); streamer_id (streamer, room_id, room, channel_id, broadcaster_id); stream_id (stream, live_id, broadcast_id) optional; start (started_at, joined_at, start_time); end (ended_at, left_at, end_time) optional; duration_s (duration, seconds) optional`}},
		{"missing required column", []in{{Sessions, "s.csv", "user_id,start,end\n1,0,1\n"}},
			[]string{`s.csv:1: no streamer_id column (named streamer_id, streamer, room_id, room, channel_id or broadcaster_id)`}},
		{"no end nor duration", []in{{Sessions, "s.csv", "user,room,joined_at\n1,2,0\n"}},
			[]string{`s.csv:1: no end column (end, ended_at, left_at or end_time) and no duration_s column (duration_s, duration or seconds): a session needs one`}},
		{"field twice", []in{{Sessions, "s.csv", "user_id,uid,streamer_id,start,end\n1,1,2,0,1\n"}},
			[]string{`s.csv:1: columns "user_id" and "uid" both give user_id`}},
		{"bad id", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end\nabc,2,0,1\n"}},
			[]string{`s.csv:2: user_id "abc" is not a non-negative integer`}},
		{"bad time", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end\n1,2,yesterday,1\n"}},
			[]string{`s.csv:2: start "yesterday" is not a time (want RFC 3339 with a zone, e.g. 2026-03-01T20:00:00Z, or Unix seconds)`}},
		{"time without zone", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end\n1,2,2026-03-01T20:00:00,1\n"}},
			[]string{`s.csv:2: start "2026-03-01T20:00:00" is not a time (want RFC 3339 with a zone, e.g. 2026-03-01T20:00:00Z, or Unix seconds)`}},
		{"milliseconds", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end\n1,2,1772398800000,1772398900000\n"}},
			[]string{`s.csv:2: start 1772398800000 is not Unix seconds (milliseconds? want seconds, or RFC 3339)`,
				`s.csv:2: end 1772398900000 is not Unix seconds (milliseconds? want seconds, or RFC 3339)`}},
		{"end before start", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end\n1,2,2026-03-01T20:00:00Z,2026-03-01T19:00:00Z\n"}},
			[]string{`s.csv:2: end 2026-03-01T19:00:00Z is before start 2026-03-01T20:00:00Z`}},
		{"negative duration", []in{{Sessions, "s.csv", "user_id,streamer_id,start,duration_s\n1,2,1772398800,-5\n"}},
			[]string{`s.csv:2: negative duration_s -5`}},
		{"end and duration disagree", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end,duration_s\n1,2,1772398800,1772398860,30\n"}},
			[]string{`s.csv:2: end and duration_s disagree: end - start is 60s, duration_s 30`}},
		{"neither end nor duration in a row", []in{{Sessions, "s.csv", "user_id,streamer_id,start,end,duration_s\n1,2,1772398800,,\n"}},
			[]string{`s.csv:2: neither end nor duration_s is given`}},
		{"duplicate session", []in{{Sessions, "s.csv", okSessions + "1,101,1772395200,1772396000\n"}},
			[]string{`s.csv:3: duplicate session: user 1, streamer 101, start 2026-03-01T20:00:00Z (first at s.csv:2)`}},
		{"duplicate session across files", []in{{Sessions, "a.csv", okSessions}, {Sessions, "b.csv", okSessions}},
			[]string{`b.csv:2: duplicate session: user 1, streamer 101, start 2026-03-01T20:00:00Z (first at a.csv:2)`}},
		{"wrong field count", []in{{Sessions, "s.csv", okSessions + "1,101,1772395200\n"}},
			[]string{`s.csv:3: 3 fields, want 4 (as in the header)`}},
		{"csv syntax", []in{{Sessions, "s.csv", okSessions + "1,\"101,1772395200,1\n"}},
			[]string{`s.csv:3: extraneous or missing " in quoted-field`}},
		{"empty file", []in{{Sessions, "s.csv", ""}},
			[]string{`s.csv: empty file (want a header line naming the columns)`}},
		{"unsupported format", []in{{Sessions, "s.json", "{}"}},
			[]string{`s.json: unsupported format ".json" (want .csv or .parquet)`}},
		{"duplicate stream id", []in{{Sessions, "s.csv", okSessions},
			{Streams, "t.csv", "stream_id,streamer_id,start,end\n7,101,2026-03-01T19:00:00Z,2026-03-01T22:00:00Z\n7,101,2026-03-01T23:00:00Z,\n"}},
			[]string{`t.csv:3: duplicate stream_id 7 (first at t.csv:2)`}},
		{"duplicate stream start", []in{{Sessions, "s.csv", okSessions},
			{Streams, "t.csv", "streamer_id,start,end\n101,2026-03-01T19:00:00Z,2026-03-01T22:00:00Z\n101,2026-03-01T19:00:00Z,\n"}},
			[]string{`t.csv:3: duplicate stream: streamer 101, start 2026-03-01T19:00:00Z (first at t.csv:2)`}},
		{"stream end before start", []in{{Streams, "t.csv", "streamer_id,start,end\n101,2026-03-01T19:00:00Z,2026-03-01T18:00:00Z\n"}},
			[]string{`t.csv:2: end 2026-03-01T18:00:00Z is before start 2026-03-01T19:00:00Z`}},
		{"session in no stream", []in{{Sessions, "s.csv", okSessions},
			{Streams, "t.csv", "streamer_id,start,end\n101,2026-03-01T21:00:00Z,2026-03-01T22:00:00Z\n"}},
			[]string{`s.csv:2: no stream of streamer 101 in the streams files is live at 2026-03-01T20:00:00Z`}},
		{"session's stream unknown", []in{{Sessions, "s.csv", "user_id,streamer_id,stream_id,start,end\n1,101,9,1772395200,1772396000\n"},
			{Streams, "t.csv", "stream_id,streamer_id,start\n7,101,2026-03-01T19:00:00Z\n"}},
			[]string{`s.csv:2: stream_id 9 is in no streams file`}},
		{"session's stream of another streamer", []in{{Sessions, "s.csv", "user_id,streamer_id,stream_id,start,end\n1,101,7,1772395200,1772396000\n"},
			{Streams, "t.csv", "stream_id,streamer_id,start\n7,102,2026-03-01T19:00:00Z\n"}},
			[]string{`s.csv:2: stream_id 7 is a stream of streamer 102, not 101`}},
		{"stream id of two streamers", []in{{Sessions, "s.csv", "user_id,streamer_id,stream_id,start,end\n1,101,7,1772395200,1772396000\n2,102,7,1772395200,1772396000\n"}},
			[]string{`s.csv:3: stream_id 7 has rows of streamer 101 (s.csv:2) and of streamer 102`}},
		{"bad amount", []in{{Gifts, "g.csv", "user_id,streamer_id,sent_at,amount\n1,101,1772395200,0\n1,101,1772395200,lots\n"}},
			[]string{`g.csv:2: amount 0 is not above zero`, `g.csv:3: amount "lots" is not a number`}},
		{"duplicate gift id", []in{{Gifts, "g.csv", "gift_id,user_id,streamer_id,sent_at,amount\na,1,101,1772395200,1\na,1,101,1772395201,1\n"}},
			[]string{`g.csv:3: duplicate gift_id "a" (first at g.csv:2)`}},
		{"duplicate follow", []in{{Follows, "f.csv", "user_id,streamer_id,created_at\n1,101,1772395200\n1,101,1772395300\n"}},
			[]string{`f.csv:3: duplicate follow: user 1, streamer 101 (first at f.csv:2)`}},
		{"bad boolean", []in{{Follows, "f.csv", "user_id,streamer_id,created_at,active\n1,101,1772395200,maybe\n"}},
			[]string{`f.csv:2: active "maybe" is not a boolean (want true or false)`}},
		{"follow updated before created", []in{{Follows, "f.csv", "user_id,streamer_id,created_at,updated_at\n1,101,1772395200,1772395100\n"}},
			[]string{`f.csv:2: updated_at 2026-03-01T19:58:20Z is before created_at 2026-03-01T20:00:00Z`}},
		{"live empty time", []in{{Live, "l.csv", "streamer_id,at\n101,\n"}},
			[]string{`l.csv:2: at is empty`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var files []File
			for _, f := range tc.files {
				files = append(files, File{Kind: f.kind, Path: write(t, dir, f.name, f.csv)})
			}
			plan, err := Read(files, Options{StreamGap: DefaultStreamGap})
			var probs *Problems
			if !errors.As(err, &probs) {
				t.Fatalf("Read = %v, %v; want *Problems", plan, err)
			}
			var got []string
			for _, p := range probs.List {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
			if probs.Total != len(tc.want) {
				t.Errorf("Total %d, want %d", probs.Total, len(tc.want))
			}
		})
	}
}

// The error counts problems per file, on one line.
func TestProblemsError(t *testing.T) {
	dir := t.TempDir()
	_, err := Read([]File{
		{Sessions, write(t, dir, "s.csv", "user_id,streamer_id,start,end\nx,1,1,2\ny,1,1,2\n")},
		{Gifts, write(t, dir, "g.csv", "user_id,streamer_id,sent_at,amount\n1,1,1,-1\n")},
	}, Options{})
	if got, want := err.Error(), "3 problems in the input (s.csv 2, g.csv 1); nothing written"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Parquet problems name the row; a header problem names the file.
func TestParquetProblems(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "s.parquet")
	t0 := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	if err := embed.WriteParquetTable(p, cols("user_id", "int64", "room_id", "int64", "joined_at", "timestamp_ms", "left_at", "timestamp_ms"),
		[][]any{{int64(1), int64(2), t0, t0.Add(time.Minute)}, {int64(1), int64(2), t0.Add(time.Hour), t0}, {nil, int64(2), t0, t0}}); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "b.parquet")
	if err := embed.WriteParquetTable(bad, cols("user_id", "int64", "streamer", "int64", "when", "timestamp_ms"), [][]any{{int64(1), int64(2), t0}}); err != nil {
		t.Fatal(err)
	}
	notPQ := write(t, dir, "x.parquet", "not parquet")
	_, err := Read([]File{{Sessions, p}, {Sessions, bad}, {Gifts, notPQ}}, Options{})
	var probs *Problems
	if !errors.As(err, &probs) {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs.List {
		got = append(got, p.String())
	}
	want := []string{
		`s.parquet row 2: end 2026-03-01T20:00:00Z is before start 2026-03-01T21:00:00Z`,
		`s.parquet row 3: user_id is empty`,
		`b.parquet: unknown column "when"; a sessions file takes ` + describe(Sessions),
		`b.parquet: no start column (named start, started_at, joined_at or start_time)`,
		`b.parquet: no end column (end, ended_at, left_at or end_time) and no duration_s column (duration_s, duration or seconds): a session needs one`,
	}
	if len(got) < len(want) || !reflect.DeepEqual(got[:len(want)], want) {
		t.Errorf("problems:\n got %q\nwant %q", got, want)
	}
	if len(got) != len(want)+1 || !strings.HasPrefix(got[len(want)], "x.parquet: not a Parquet file") {
		t.Errorf("the last problem should say x.parquet is not Parquet: %q", got)
	}
}

func at(hm string) time.Time {
	t, err := time.Parse(time.RFC3339, "2026-03-01T"+hm+":00Z")
	if err != nil {
		panic(err)
	}
	return t
}

type span struct {
	streamer   int64
	start, end string
}

func spans(rows []postgres.StreamRow) []span {
	var out []span
	for _, s := range rows {
		out = append(out, span{int64(s.StreamerID), s.StartedAt.Format("15:04"), s.EndedAt.Format("15:04")})
	}
	return out
}

// Streams derived from sessions (hand-computed): a streamer's sessions make
// one stream while each starts within the gap of the latest end so far; a
// live row is a moment that can bridge a gap; rows naming a stream_id make
// that stream whatever the gaps.
func TestDeriveStreams(t *testing.T) {
	dir := t.TempDir()
	// Streamer 1: [20:00,20:10], [20:15,20:20], [20:50,21:00].
	// Streamer 2: [20:00,21:00] inside which [20:10,20:20]; then [21:30,21:31].
	// Streamer 3: stream_id 42 from 20:00 to 23:00 across a 2-hour gap.
	sessions := write(t, dir, "s.csv", `user_id,streamer_id,stream_id,start,end
1,1,,2026-03-01T20:00:00Z,2026-03-01T20:10:00Z
2,1,,2026-03-01T20:15:00Z,2026-03-01T20:20:00Z
3,1,,2026-03-01T20:50:00Z,2026-03-01T21:00:00Z
1,2,,2026-03-01T20:00:00Z,2026-03-01T21:00:00Z
2,2,,2026-03-01T20:10:00Z,2026-03-01T20:20:00Z
3,2,,2026-03-01T21:30:00Z,2026-03-01T21:31:00Z
1,3,42,2026-03-01T20:00:00Z,2026-03-01T20:30:00Z
2,3,42,2026-03-01T22:30:00Z,2026-03-01T23:00:00Z
`)
	live := write(t, dir, "l.csv", "streamer_id,at\n1,2026-03-01T20:30:00Z\n1,2026-03-01T20:30:00Z\n")
	for _, tc := range []struct {
		gap    time.Duration
		live   bool
		want   []span
		splits int
	}{
		// 20:15 is 5 minutes after 20:10: joined at a 5-minute gap, not at 4.
		{5 * time.Minute, false, []span{{3, "20:00", "23:00"}, {1, "20:00", "20:20"}, {1, "20:50", "21:00"}, {2, "20:00", "21:00"}, {2, "21:30", "21:31"}}, 2},
		{4 * time.Minute, false, []span{{3, "20:00", "23:00"}, {1, "20:00", "20:10"}, {1, "20:15", "20:20"}, {1, "20:50", "21:00"}, {2, "20:00", "21:00"}, {2, "21:30", "21:31"}}, 3},
		// Gap 0: only overlapping sessions join (streamer 2's nested one).
		{0, false, []span{{3, "20:00", "23:00"}, {1, "20:00", "20:10"}, {1, "20:15", "20:20"}, {1, "20:50", "21:00"}, {2, "20:00", "21:00"}, {2, "21:30", "21:31"}}, 3},
		// The live row at 20:30 bridges 20:20 → 20:50 at a 20-minute gap.
		{20 * time.Minute, true, []span{{3, "20:00", "23:00"}, {1, "20:00", "21:00"}, {2, "20:00", "21:00"}, {2, "21:30", "21:31"}}, 1},
		{20 * time.Minute, false, []span{{3, "20:00", "23:00"}, {1, "20:00", "20:20"}, {1, "20:50", "21:00"}, {2, "20:00", "21:00"}, {2, "21:30", "21:31"}}, 2},
		{time.Hour, false, []span{{3, "20:00", "23:00"}, {1, "20:00", "21:00"}, {2, "20:00", "21:31"}}, 0},
	} {
		files := []File{{Sessions, sessions}}
		if tc.live {
			files = append(files, File{Live, live})
		}
		p, err := Read(files, Options{StreamGap: tc.gap})
		if err != nil {
			t.Fatal(err)
		}
		if got := spans(p.Rows.Streams); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("gap %s live %v: streams\n got %v\nwant %v", tc.gap, tc.live, got, tc.want)
		}
		d := p.Derived
		wantLive := 0
		if tc.live {
			wantLive = 1 // the repeated observation counts once
		}
		if d == nil || d.Splits != tc.splits || d.Streams != len(tc.want) || d.Streamers != 3 || d.ByStreamID != 1 || d.LiveRows != wantLive {
			t.Errorf("gap %s live %v: derivation %+v, want %d streams, %d splits", tc.gap, tc.live, d, len(tc.want), tc.splits)
		}
		// Every session is in its stream, and a derived stream's id is
		// the same in every import.
		byID := map[int64]postgres.StreamRow{}
		for _, s := range p.Rows.Streams {
			byID[int64(s.ID)] = s
		}
		for _, w := range p.Rows.Watches {
			s, ok := byID[int64(w.StreamID)]
			if !ok || s.StreamerID != w.StreamerID || w.StartedAt.Before(s.StartedAt) || w.EndedAt.After(s.EndedAt) {
				t.Errorf("gap %s: session %+v is not in its stream %+v", tc.gap, w, s)
			}
		}
		again, _ := Read(files, Options{StreamGap: tc.gap})
		if !reflect.DeepEqual(again.Rows, p.Rows) {
			t.Errorf("gap %s: a second read gives other rows", tc.gap)
		}
	}
}

// With streams files, sessions and gifts go to the stream of their
// streamer live at their start (the latest started), or the stream_id
// they name; streams files and live files exclude each other.
func TestStreamsGiven(t *testing.T) {
	dir := t.TempDir()
	streams := write(t, dir, "t.csv", `stream_id,streamer_id,start,end,category
7,1,2026-03-01T19:00:00Z,2026-03-01T21:00:00Z,music
8,1,2026-03-01T20:30:00Z,,games
9,2,2026-03-01T19:00:00Z,2026-03-01T19:30:00Z,
`)
	sessions := write(t, dir, "s.csv", `user_id,streamer_id,stream_id,start,duration_s
1,1,,2026-03-01T20:00:00Z,60
1,1,,2026-03-01T22:00:00Z,60.5
2,1,7,2026-03-01T20:40:00Z,1
`)
	gifts := write(t, dir, "g.csv", "user_id,streamer_id,sent_at,amount\n1,1,2026-03-01T20:35:00Z,2\n1,2,2026-03-01T20:00:00Z,3\n")
	p, err := Read([]File{{Sessions, sessions}, {Streams, streams}, {Gifts, gifts}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Derived != nil {
		t.Errorf("derived %+v with a streams file", p.Derived)
	}
	var got []int64
	for _, w := range p.Rows.Watches {
		got = append(got, int64(w.StreamID))
	}
	if want := []int64{7, 8, 7}; !reflect.DeepEqual(got, want) {
		t.Errorf("sessions' streams %v, want %v", got, want)
	}
	if w := p.Rows.Watches[1]; w.Seconds != 60 || !w.EndedAt.Equal(at("22:01").Add(500*time.Millisecond)) {
		t.Errorf("duration 60.5: %+v", w)
	}
	if g := p.Rows.Gifts; g[0].StreamID != 8 || g[1].StreamID != 0 {
		t.Errorf("gifts' streams %d %d, want 8 (the latest live) and 0 (none live)", g[0].StreamID, g[1].StreamID)
	}
	if s := p.Rows.Streamers; len(s) != 2 || s[0].Category != "games" || s[1].Category != "" {
		t.Errorf("streamers %+v: want 1 with its latest category, 2 with none", s)
	}
	if _, err := Read([]File{{Streams, streams}, {Live, write(t, dir, "l.csv", "streamer_id,at\n")}}, Options{}); err == nil || errors.As(err, new(*Problems)) {
		t.Errorf("streams and live files together: %v", err)
	}
}

// Parquet and CSV files of the same history give the same rows, whatever
// the column names (aliases), time encodings (RFC 3339, Unix seconds,
// TIMESTAMP columns) and the order of columns.
func TestParquetEqualsCSV(t *testing.T) {
	dir := t.TempDir()
	t0 := at("20:00")
	csvFiles := []File{
		{Sessions, write(t, dir, "s.csv", "user_id,streamer_id,start,end\n1,101,2026-03-01T20:00:00Z,2026-03-01T20:45:00.25Z\n2,101,1772396400,1772399000\n")},
		{Streams, write(t, dir, "t.csv", "stream_id,streamer_id,start,end,category,title\n5,101,2026-03-01T19:00:00Z,2026-03-01T23:00:00Z,music,hello\n")},
		{Gifts, write(t, dir, "g.csv", "user_id,streamer_id,sent_at,amount\n1,101,2026-03-01T20:30:00Z,2.5\n1,101,2026-03-01T20:30:00Z,2.5\n")},
		{Follows, write(t, dir, "f.csv", "user_id,streamer_id,created_at,active,updated_at\n1,101,2026-02-01T00:00:00Z,false,2026-02-02T00:00:00Z\n")},
	}
	pq := func(name string, cols []embed.ParquetColumn, rows ...[]any) string {
		p := filepath.Join(dir, name)
		if err := embed.WriteParquetTable(p, cols, rows); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pqFiles := []File{
		{Sessions, pq("s.parquet", cols("room_id", "int64", "user", "int64", "joined_at", "timestamp_us", "duration_s", "double"),
			[]any{int64(101), int64(1), t0, 2700.25}, []any{int64(101), int64(2), time.Unix(1772396400, 0), 2600.0})},
		{Streams, pq("t.parquet", cols("stream_id", "int64", "streamer_id", "int64", "started_at", "string", "ended_at", "timestamp_ms", "category", "string", "title", "string"),
			[]any{int64(5), int64(101), "2026-03-01T19:00:00Z", at("23:00"), "music", "hello"})},
		{Gifts, pq("g.parquet", cols("user_id", "int64", "streamer_id", "int64", "ts", "timestamp_ms", "coins", "double"),
			[]any{int64(1), int64(101), at("20:30"), 2.5}, []any{int64(1), int64(101), at("20:30"), 2.5})},
		{Follows, pq("f.parquet", cols("user_id", "int64", "streamer_id", "int64", "followed_at", "string", "active", "bool", "updated_at", "int64"),
			[]any{int64(1), int64(101), "2026-02-01 00:00:00Z", false, time.Date(2026, 2, 2, 0, 0, 0, 0, time.UTC).Unix()})},
	}
	a, err := Read(csvFiles, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Read(pqFiles, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a.Rows, b.Rows) {
		t.Errorf("CSV and Parquet differ:\n csv     %+v\n parquet %+v", a.Rows, b.Rows)
	}
	if n := len(a.Rows.Gifts); n != 2 || a.Rows.Gifts[0].EventID == a.Rows.Gifts[1].EventID {
		t.Errorf("two identical gifts in the same second must be two rows with their own ids: %+v", a.Rows.Gifts)
	}
}

// cols makes Parquet columns from name, type pairs.
func cols(nameType ...string) []embed.ParquetColumn {
	var out []embed.ParquetColumn
	for i := 0; i+1 < len(nameType); i += 2 {
		out = append(out, embed.ParquetColumn{Name: nameType[i], Type: nameType[i+1]})
	}
	return out
}
