package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/replay"
	"github.com/liverecall/liverecall/sim"
)

// writeHistoryCSV writes a header and rows to dir/name and returns its path.
func writeHistoryCSV(t *testing.T, dir, name, header string, rows []string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(header+"\n"+strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// exportHistory writes h as the CSV files import-history reads (sessions,
// streams, gifts, follows), as a warehouse export would: a session still
// open at the export's end (cut) ends there. It returns the files' flags.
func exportHistory(t *testing.T, h *replay.History, cut time.Time, withStreams bool) []string {
	t.Helper()
	dir := t.TempDir()
	ts := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
	var sessions, streams, gifts, follows []string
	for _, w := range h.Watches {
		end := w.End
		if end.IsZero() {
			end = cut
		}
		sessions = append(sessions, fmt.Sprintf("%d,%d,%s,%s,%d", w.User, w.Streamer, ts(w.Start), ts(end), w.Stream))
	}
	for _, s := range h.Streams {
		end := ""
		if !s.End.IsZero() {
			end = ts(s.End)
		}
		streams = append(streams, fmt.Sprintf("%d,%d,%s,%s,%s", s.Streamer, s.ID, ts(s.Start), end, s.Category))
	}
	for _, g := range h.Gifts {
		gifts = append(gifts, fmt.Sprintf("%d,%d,%s,%g,%d", g.User, g.Streamer, ts(g.At), g.Amount, g.Stream))
	}
	for _, f := range h.Follows {
		follows = append(follows, fmt.Sprintf("%d,%d,%s", f.User, f.Streamer, ts(f.At)))
	}
	args := []string{"--gifts", writeHistoryCSV(t, dir, "gifts.csv", "user_id,streamer_id,sent_at,amount,stream_id", gifts),
		"--follows", writeHistoryCSV(t, dir, "follows.csv", "user_id,streamer_id,created_at", follows)}
	if withStreams {
		args = append(args, "--sessions", writeHistoryCSV(t, dir, "sessions.csv", "user_id,streamer_id,start,end,stream_id", sessions),
			"--streams", writeHistoryCSV(t, dir, "streams.csv", "streamer_id,stream_id,start,end,category", streams))
	} else { // a log of sessions alone: the streams are derived from them
		for i, s := range sessions {
			sessions[i] = s[:strings.LastIndexByte(s, ',')]
		}
		args = append(args, "--sessions", writeHistoryCSV(t, dir, "sessions.csv", "user_id,streamer_id,start,end", sessions))
	}
	return args
}

// The whole pipeline on imported logs: the simulator's history exported to
// CSV files in the import-history format, loaded by import-history into a
// fresh database, then replayed by eval --format replay; the full system
// puts more of the watched streamers in its first ten than popularity does,
// and first at least as often as the user's most-watched live streamer.
// Once with the streams given, once from the sessions alone (streams
// derived), as a public log of who watched which room when would come.
func TestReplayOnImportedHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates, imports and replays a history")
	}
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	holdout := start.AddDate(0, 0, 3)
	cut := holdout.AddDate(0, 0, 1)
	w, err := sim.New(sim.Config{Seed: 5, Users: 2000, Streamers: 300, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	var b replay.Builder
	if _, err := w.Run(context.Background(), start, cut, func(e lr.Event) error { b.Add(e); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	h := b.History()
	for _, withStreams := range []bool{true, false} {
		t.Run(fmt.Sprintf("streams=%v", withStreams), func(t *testing.T) {
			url := pgtest.New(t)
			files := exportHistory(t, h, cut, withStreams)
			if code, out, errs := runCmd(t, url, append([]string{"import-history"}, files...)...); code != 0 {
				t.Fatalf("import-history: code %d\n%s\n%s", code, out, errs)
			}
			code, out, errs := runCmd(t, url, "eval", "--format", "replay", "--holdout-from", holdout.Format(time.RFC3339),
				"--eval-max", "600", "--dim", "8", "--json")
			if code != 0 {
				t.Fatalf("eval: code %d, stderr %s", code, errs)
			}
			var rep struct {
				Decisions int `json:"decisions"`
				NotLive   int `json:"not_live"`
				Rows      []struct {
					Name string             `json:"name"`
					All  map[string]float64 `json:"all"`
				} `json:"rows"`
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			hr := map[string]map[string]float64{}
			for _, r := range rep.Rows {
				hr[r.Name] = r.All
			}
			t.Logf("%d decisions (%d not live): full HR@1 %.4f HR@10 %.4f; popularity %.4f %.4f; repeat %.4f %.4f", rep.Decisions, rep.NotLive,
				hr["full"]["hr@1"], hr["full"]["hr@10"], hr["popularity"]["hr@1"], hr["popularity"]["hr@10"], hr["repeat"]["hr@1"], hr["repeat"]["hr@10"])
			if rep.Decisions < 200 {
				t.Fatalf("%d decisions (%d not live)", rep.Decisions, rep.NotLive)
			}
			if hr["full"]["hr@10"] <= hr["popularity"]["hr@10"] {
				t.Errorf("full system HR@10 %.4f, popularity %.4f", hr["full"]["hr@10"], hr["popularity"]["hr@10"])
			}
			if hr["full"]["hr@1"] < hr["repeat"]["hr@1"] {
				t.Errorf("full system HR@1 %.4f, the repeat heuristic %.4f", hr["full"]["hr@1"], hr["repeat"]["hr@1"])
			}
		})
	}
}
