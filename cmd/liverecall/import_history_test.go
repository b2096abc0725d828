package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

func tm(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func counts(t *testing.T, db *postgres.DB) postgres.HistoryCounts {
	t.Helper()
	c, err := db.CountHistory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The history files of the round trip, as CSV and as Parquet: two
// streamers' streams, three sessions, two gifts, two follows (one ended).
func roundTripFiles(t *testing.T, dir, format string) []string {
	t.Helper()
	if format == "csv" {
		return []string{
			"--streams", writeFile(t, dir, "streams.csv", "stream_id,streamer_id,start,end,category\n"+
				"7,101,2026-03-01T19:00:00Z,2026-03-01T22:00:00Z,music\n8,102,2026-03-01T20:00:00Z,,games\n"),
			"--sessions", writeFile(t, dir, "sessions.csv", "user_id,streamer_id,start,end\n"+
				"1,101,2026-03-01T19:30:00Z,2026-03-01T20:00:00Z\n2,101,1772395200,1772395290\n1,102,2026-03-01T21:00:00.5Z,2026-03-01T21:10:00.5Z\n"),
			"--gifts", writeFile(t, dir, "gifts.csv", "user_id,streamer_id,sent_at,amount\n2,101,2026-03-01T20:01:00Z,5\n1,102,2026-03-01T21:05:00Z,1.5\n"),
			"--follows", writeFile(t, dir, "follows.csv", "user_id,streamer_id,created_at,active\n1,101,2026-02-01T00:00:00Z,true\n2,102,2026-02-01T00:00:00Z,false\n"),
		}
	}
	pq := func(name string, cols []embed.ParquetColumn, rows ...[]any) string {
		p := filepath.Join(dir, name)
		if err := embed.WriteParquetTable(p, cols, rows); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := func(name, typ string) embed.ParquetColumn { return embed.ParquetColumn{Name: name, Type: typ} }
	return []string{
		"--streams", pq("streams.parquet", []embed.ParquetColumn{c("stream_id", "int64"), c("streamer_id", "int64"), c("start", "timestamp_ms"), c("end", "timestamp_ms"), c("category", "string")},
			[]any{int64(7), int64(101), tm("2026-03-01T19:00:00Z"), tm("2026-03-01T22:00:00Z"), "music"},
			[]any{int64(8), int64(102), tm("2026-03-01T20:00:00Z"), nil, "games"}),
		"--sessions", pq("sessions.parquet", []embed.ParquetColumn{c("user_id", "int64"), c("room_id", "int64"), c("joined_at", "timestamp_us"), c("duration_s", "double")},
			[]any{int64(1), int64(101), tm("2026-03-01T19:30:00Z"), 1800.0},
			[]any{int64(2), int64(101), tm("2026-03-01T20:00:00Z"), 90.0},
			[]any{int64(1), int64(102), tm("2026-03-01T21:00:00.5Z"), 600.0}),
		"--gifts", pq("gifts.parquet", []embed.ParquetColumn{c("user_id", "int64"), c("streamer_id", "int64"), c("sent_at", "string"), c("amount", "double")},
			[]any{int64(2), int64(101), "2026-03-01T20:01:00Z", 5.0},
			[]any{int64(1), int64(102), "1772399100", 1.5}),
		"--follows", pq("follows.parquet", []embed.ParquetColumn{c("user_id", "int64"), c("streamer_id", "int64"), c("created_at", "timestamp_ms"), c("active", "bool")},
			[]any{int64(1), int64(101), tm("2026-02-01T00:00:00Z"), true},
			[]any{int64(2), int64(102), tm("2026-02-01T00:00:00Z"), false}),
	}
}

// Each file type, CSV and Parquet, loads and reads back through the reads
// train and eval --format live use (readHistory), with every session in
// its stream.
func TestImportHistoryRoundTrip(t *testing.T) {
	for _, format := range []string{"csv", "parquet"} {
		t.Run(format, func(t *testing.T) {
			ctx := context.Background()
			db, url := openTestDB(t)
			args := append([]string{"import-history"}, roundTripFiles(t, t.TempDir(), format)...)
			code, out, errb := runCmd(t, url, args...)
			if code != 0 {
				t.Fatalf("import-history: %d %s", code, errb)
			}
			h, err := readHistory(ctx, db, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			want := &embed.History{
				Watches: []embed.Watch{
					{User: 1, Streamer: 101, At: tm("2026-03-01T19:30:00Z"), Seconds: 1800},
					{User: 2, Streamer: 101, At: tm("2026-03-01T20:00:00Z"), Seconds: 90},
					{User: 1, Streamer: 102, At: tm("2026-03-01T21:00:00.5Z"), Seconds: 600},
				},
				Gifts: []embed.Gift{
					{User: 2, Streamer: 101, At: tm("2026-03-01T20:01:00Z"), Amount: 5},
					{User: 1, Streamer: 102, At: tm("2026-03-01T21:05:00Z"), Amount: 1.5},
				},
				Follows: []embed.Follow{{User: 1, Streamer: 101, At: tm("2026-02-01T00:00:00Z")}},
				Streams: []embed.Stream{
					{Streamer: 101, Start: tm("2026-03-01T19:00:00Z"), End: tm("2026-03-01T22:00:00Z")},
					{Streamer: 102, Start: tm("2026-03-01T20:00:00Z")},
				},
			}
			normalize(h)
			if !reflect.DeepEqual(h, want) {
				t.Errorf("read back:\n got %+v\nwant %+v", h, want)
			}
			var streams []int64
			if err := db.TrainingWatches(ctx, time.Time{}, func(w postgres.WatchRow) error {
				streams = append(streams, int64(w.StreamID))
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if want := []int64{7, 7, 8}; !reflect.DeepEqual(streams, want) {
				t.Errorf("sessions' streams %v, want %v", streams, want)
			}
			if c := counts(t, db); c != (postgres.HistoryCounts{Users: 2, Streamers: 2, Streams: 2, Watches: 3, Gifts: 2, Follows: 2}) {
				t.Errorf("counts %+v", c)
			}
			if !strings.Contains(out, "watch_sessions          3         3         0") {
				t.Errorf("summary does not report 3 sessions added:\n%s", out)
			}
		})
	}
}

// normalize puts read-back times in UTC, as the expectations are.
func normalize(h *embed.History) {
	for i := range h.Watches {
		h.Watches[i].At = h.Watches[i].At.UTC()
	}
	for i := range h.Gifts {
		h.Gifts[i].At = h.Gifts[i].At.UTC()
	}
	for i := range h.Follows {
		h.Follows[i].At = h.Follows[i].At.UTC()
	}
	for i := range h.Streams {
		h.Streams[i].Start = h.Streams[i].Start.UTC()
		if !h.Streams[i].End.IsZero() {
			h.Streams[i].End = h.Streams[i].End.UTC()
		}
	}
}

// readmeExample returns the arguments of the import-history example in
// README.md, with its paths made relative to this package.
func readmeExample(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "liverecall import-history --sessions testdata/history/") {
			continue
		}
		var args []string
		for _, a := range strings.Fields(line)[1:] {
			if strings.HasPrefix(a, "testdata/") {
				a = "../../" + a
			}
			args = append(args, a)
		}
		return args
	}
	t.Fatal("README.md has no example line `liverecall import-history --sessions testdata/history/...`")
	return nil
}

// The README's example: its dry run prints testdata/history/example.golden
// (streams derived with a hand-checkable split) and writes nothing; the
// import then adds those rows, and a second run adds none.
func TestImportHistoryReadmeExampleDryRunAndIdempotence(t *testing.T) {
	db, url := openTestDB(t)
	args := readmeExample(t)
	dry := append(append([]string{}, args...), "--dry-run")
	code, out, errb := runCmd(t, url, dry...)
	if code != 0 {
		t.Fatalf("dry run: %d %s", code, errb)
	}
	golden, err := os.ReadFile("../../testdata/history/example.golden")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(golden) {
		t.Errorf("dry run printed\n%s\nwant (testdata/history/example.golden)\n%s", out, golden)
	}
	if c := counts(t, db); c != (postgres.HistoryCounts{}) {
		t.Fatalf("the dry run wrote %+v", c)
	}

	code, out, errb = runCmd(t, url, args...)
	if code != 0 {
		t.Fatalf("import: %d %s", code, errb)
	}
	first := counts(t, db)
	if first != (postgres.HistoryCounts{Users: 4, Streamers: 3, Streams: 4, Watches: 8, Gifts: 3, Follows: 2}) {
		t.Errorf("after the import: %+v\n%s", first, out)
	}
	code, out, errb = runCmd(t, url, args...)
	if code != 0 {
		t.Fatalf("second import: %d %s", code, errb)
	}
	if c := counts(t, db); c != first {
		t.Errorf("the second import changed the tables: %+v, then %+v", first, c)
	}
	for _, line := range []string{
		"users                   4         0         4",
		"streams                 4         0         4",
		"watch_sessions          8         0         8",
		"gifts                   3         0         3",
		"follows                 2         0         2",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("the second import's summary lacks %q:\n%s", line, out)
		}
	}

	// An overlapping re-export (streamer 101's sessions again, and one new
	// session of a new streamer) adds only the new session, its stream and
	// its streamer.
	dir := t.TempDir()
	again := writeFile(t, dir, "export2.csv", "user_id,streamer_id,start,end\n"+
		"1,101,2026-03-01T20:00:00Z,2026-03-01T20:45:00Z\n2,101,2026-03-01T20:10:00Z,2026-03-01T21:30:00Z\n3,101,2026-03-01T21:00:00Z,2026-03-01T21:20:00Z\n"+
		"1,104,2026-03-02T10:00:00Z,2026-03-02T10:30:00Z\n")
	if code, out, errb = runCmd(t, url, "import-history", "--sessions", again); code != 0 {
		t.Fatalf("re-export: %d %s", code, errb)
	}
	want := first
	want.Watches++
	want.Streams++
	want.Streamers++
	if c := counts(t, db); c != want {
		t.Errorf("after the overlapping re-export: %+v, want %+v\n%s", c, want, out)
	}
}

// A file with a problem is refused before anything is written: the other,
// good files of the same run are not loaded either, and the problems are
// printed with file and line.
func TestImportHistoryRefusesBadFileWhole(t *testing.T) {
	db, url := openTestDB(t)
	if code, _, errb := runCmd(t, url, readmeExample(t)...); code != 0 {
		t.Fatalf("import: %s", errb)
	}
	before := counts(t, db)
	dir := t.TempDir()
	good := writeFile(t, dir, "more.csv", "user_id,streamer_id,start,end\n9,109,2026-03-03T10:00:00Z,2026-03-03T10:30:00Z\n")
	bad := writeFile(t, dir, "bad_gifts.csv", "user_id,streamer_id,sent_at,amount\n9,109,2026-03-03T10:05:00Z,1\n9,109,2026-03-03T10:06:00Z,-2\n9,109,later,1\n")
	code, out, errb := runCmd(t, url, "import-history", "--sessions", good, "--gifts", bad)
	if code != 1 {
		t.Fatalf("exit %d, want 1; out %q err %q", code, out, errb)
	}
	for _, want := range []string{
		"bad_gifts.csv:3: amount -2 is not above zero\n",
		"bad_gifts.csv:4: sent_at \"later\" is not a time (want RFC 3339 with a zone, e.g. 2026-03-01T20:00:00Z, or Unix seconds)\n",
		"liverecall import-history: 2 problems in the input (bad_gifts.csv 2); nothing written\n",
	} {
		if !strings.Contains(errb, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb)
		}
	}
	if c := counts(t, db); c != before {
		t.Errorf("a refused import changed the tables: %+v, then %+v", before, c)
	}
}

// A history imported from files evaluates exactly like the same history
// written into the tables directly (seedHistory, as the simulator and sink
// tests do), and trains: the import keeps the conventions train and eval
// --format live rely on. With streams derived instead of given, every
// held-out watch is still evaluated.
func TestImportHistoryTrainsAndEvaluatesLikeSeeded(t *testing.T) {
	h := embed.SyntheticHistory(4, 60, 30, 3, 8, 3)
	// The import refuses a user's second session on a streamer at the same
	// start: drop those, from both sides.
	seen := map[[3]int64]bool{}
	ws := h.Watches[:0]
	for _, w := range h.Watches {
		k := [3]int64{w.User, w.Streamer, w.At.UnixMicro()}
		if !seen[k] {
			seen[k] = true
			ws = append(ws, w)
		}
	}
	h.Watches = ws
	dir := t.TempDir()
	var sessions, streams, gifts, follows strings.Builder
	sessions.WriteString("user_id,streamer_id,start,duration_s\n")
	for _, w := range h.Watches {
		fmt.Fprintf(&sessions, "%d,%d,%s,%g\n", w.User, w.Streamer, w.At.Format(time.RFC3339), w.Seconds)
	}
	streams.WriteString("streamer_id,start,end\n")
	for _, s := range h.Streams {
		fmt.Fprintf(&streams, "%d,%d,%d\n", s.Streamer, s.Start.Unix(), s.End.Unix())
	}
	gifts.WriteString("user_id,streamer_id,sent_at,amount\n")
	for _, g := range h.Gifts {
		fmt.Fprintf(&gifts, "%d,%d,%s,%g\n", g.User, g.Streamer, g.At.Format(time.RFC3339Nano), g.Amount)
	}
	follows.WriteString("user_id,streamer_id,created_at\n")
	for _, f := range h.Follows {
		fmt.Fprintf(&follows, "%d,%d,%s\n", f.User, f.Streamer, f.At.Format(time.RFC3339Nano))
	}
	files := []string{"--sessions", writeFile(t, dir, "s.csv", sessions.String()), "--gifts", writeFile(t, dir, "g.csv", gifts.String()),
		"--follows", writeFile(t, dir, "f.csv", follows.String())}
	withStreams := append([]string{"import-history", "--streams", writeFile(t, dir, "t.csv", streams.String())}, files...)

	evalPop := func(url string) map[string]any {
		t.Helper()
		code, out, errb := runCmd(t, url, "eval", "--format", "live", "--model", "pop", "--json")
		if code != 0 {
			t.Fatalf("eval: %d %s", code, errb)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("eval output %q: %v", out, err)
		}
		delete(m, "train_s")
		return m
	}
	seededDB, seededURL := openTestDB(t)
	seedHistory(t, seededDB, h)
	want := evalPop(seededURL)
	if n, _ := want["n"].(float64); n < 100 {
		t.Fatalf("the seeded history evaluates only %v watches", want["n"])
	}

	_, url := openTestDB(t)
	if code, _, errb := runCmd(t, url, withStreams...); code != 0 {
		t.Fatalf("import-history: %d %s", code, errb)
	}
	if got := evalPop(url); !reflect.DeepEqual(got, want) {
		t.Errorf("eval --format live on the import:\n got %v\nwant %v (the same history seeded directly)", got, want)
	}
	if code, _, errb := runCmd(t, url, "train", "--model", "mf", "--version", "imported", "--dim", "8"); code != 0 {
		t.Fatalf("train on the import: %d %s", code, errb)
	}

	_, derivedURL := openTestDB(t)
	if code, _, errb := runCmd(t, derivedURL, append([]string{"import-history"}, files...)...); code != 0 {
		t.Fatalf("import-history (derived streams): %d %s", code, errb)
	}
	got := evalPop(derivedURL)
	if got["n"] != want["n"] || got["repeat_n"] != want["repeat_n"] {
		t.Errorf("with derived streams %v held-out watches were evaluated, want %v", got["n"], want["n"])
	}
}

// Usage errors exit 2 before reading anything: no files, --streams with
// --live, a stray argument; a negative gap is refused.
func TestImportHistoryUsage(t *testing.T) {
	_, url := openTestDB(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "no files"},
		{[]string{"--streams", "a.csv", "--live", "b.csv"}, 2, "--streams and --live exclude each other"},
		{[]string{"--sessions", "a.csv", "b.csv"}, 2, `unexpected argument "b.csv"`},
		{[]string{"--sessions", "a.csv", "--stream-gap", "-1m"}, 1, "--stream-gap -1m0s: want zero or more"},
		{[]string{"--sessions", "missing.csv"}, 1, "missing.csv: open missing.csv: no such file or directory"},
	} {
		code, _, errb := runCmd(t, url, append([]string{"import-history"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errb, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errb, tc.code, tc.want)
		}
	}
}

// Live rows (CSV and Parquet) take part in the derivation: streamer 5's
// sessions at 20:00-20:10 and 21:00-21:10 are 50 minutes apart, two
// streams at --stream-gap 30m, but seen live at 20:30 and 20:55 it is one
// stream 20:00-21:10; streamer 6, seen live at 20:00 and 20:20 with no
// session, was live 20:00-20:20.
func TestImportHistoryLiveRows(t *testing.T) {
	sessions := "user_id,streamer_id,start,end\n1,5,2026-03-01T20:00:00Z,2026-03-01T20:10:00Z\n2,5,2026-03-01T21:00:00Z,2026-03-01T21:10:00Z\n"
	want := []embed.Stream{
		{Streamer: 5, Start: tm("2026-03-01T20:00:00Z"), End: tm("2026-03-01T21:10:00Z")},
		{Streamer: 6, Start: tm("2026-03-01T20:00:00Z"), End: tm("2026-03-01T20:20:00Z")},
	}
	for _, format := range []string{"csv", "parquet"} {
		t.Run(format, func(t *testing.T) {
			db, url := openTestDB(t)
			dir := t.TempDir()
			var live string
			if format == "csv" {
				live = writeFile(t, dir, "live.csv", "streamer_id,at\n5,2026-03-01T20:30:00Z\n5,2026-03-01T20:55:00Z\n6,1772395200\n6,2026-03-01T20:20:00Z\n")
			} else {
				live = filepath.Join(dir, "live.parquet")
				if err := embed.WriteParquetTable(live, []embed.ParquetColumn{{Name: "streamer", Type: "int64"}, {Name: "observed_at", Type: "timestamp_ms"}},
					[][]any{{int64(5), tm("2026-03-01T20:30:00Z")}, {int64(5), tm("2026-03-01T20:55:00Z")}, {int64(6), tm("2026-03-01T20:00:00Z")}, {int64(6), tm("2026-03-01T20:20:00Z")}}); err != nil {
					t.Fatal(err)
				}
			}
			code, out, errb := runCmd(t, url, "import-history", "--sessions", writeFile(t, dir, "s.csv", sessions), "--live", live)
			if code != 0 {
				t.Fatalf("import-history: %d %s", code, errb)
			}
			if !strings.Contains(out, "streams: derived from the sessions and 4 live rows with --stream-gap 30m: 2 streams of 2 streamers, 0 split off by a longer gap, 0 by stream_id") {
				t.Errorf("derivation not reported:\n%s", out)
			}
			h, err := readHistory(context.Background(), db, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			normalize(h)
			sort.Slice(h.Streams, func(a, b int) bool { return h.Streams[a].Streamer < h.Streams[b].Streamer })
			if !reflect.DeepEqual(h.Streams, want) {
				t.Errorf("streams %+v, want %+v", h.Streams, want)
			}
		})
	}
}
