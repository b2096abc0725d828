package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/history"
	"github.com/liverecall/liverecall/postgres"
)

var sImportStreamGap = defSetting(setting{"stream-gap", "LIVERECALL_IMPORT_STREAM_GAP", "30m",
	"import-history: when streams are derived from the sessions, a gap longer than this between a streamer's sessions ends a stream"})

func init() {
	register(&command{name: "import-history", summary: "load watch sessions, streams, gifts and follows from CSV or Parquet files into the PostgreSQL history", run: runImportHistory})
}

// listFlag is a flag that may be repeated and takes comma-separated lists.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	*l = append(*l, splitCommaList(s)...)
	return nil
}

func runImportHistory(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "import-history")
	dbURL := f.String(sDatabaseURL)
	gap := f.Duration(sImportStreamGap)
	paths := map[history.Kind]*listFlag{}
	for _, k := range history.Kinds {
		paths[k] = &listFlag{}
	}
	f.FlagSet.Var(paths[history.Sessions], "sessions", "watch-session files (.csv or .parquet; repeat or comma-separate): user_id, streamer_id, start, end or duration_s, optional stream_id")
	f.FlagSet.Var(paths[history.Streams], "streams", "stream files: streamer_id, start, optional end, stream_id, category, title (without them streams are derived from the sessions)")
	f.FlagSet.Var(paths[history.Gifts], "gifts", "gift files: user_id, streamer_id, sent_at, amount, optional stream_id, gift_id")
	f.FlagSet.Var(paths[history.Follows], "follows", "follow files: user_id, streamer_id, created_at, optional active, updated_at")
	f.FlagSet.Var(paths[history.Live], "live", "who-was-live-when files: streamer_id, at, optional stream_id (used to derive streams; not with --streams)")
	dryRun := f.FlagSet.Bool("dry-run", false, "validate and print what would be loaded; write nothing")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, "usage: liverecall import-history --sessions F [--streams F | --live F] [--gifts F] [--follows F] [--stream-gap 30m] [--dry-run]")
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	var files []history.File
	for _, k := range history.Kinds {
		for _, p := range *paths[k] {
			files = append(files, history.File{Kind: k, Path: p})
		}
	}
	switch {
	case f.NArg() > 0:
		fmt.Fprintf(app.Stderr, "liverecall import-history: unexpected argument %q (files go after --sessions, --streams, --gifts, --follows or --live)\n", f.Arg(0))
		return errUsage
	case len(files) == 0:
		fmt.Fprintln(app.Stderr, "liverecall import-history: no files: give --sessions, --streams, --gifts, --follows or --live")
		return errUsage
	case len(*paths[history.Streams]) > 0 && len(*paths[history.Live]) > 0:
		fmt.Fprintln(app.Stderr, "liverecall import-history: --streams and --live exclude each other (live rows only serve to derive streams)")
		return errUsage
	case *gap < 0:
		return lr.Errorf(lr.EINVALID, "--stream-gap %s: want zero or more", *gap)
	}
	var total int64
	for _, fl := range files {
		if st, err := os.Stat(fl.Path); err == nil {
			total += st.Size()
		}
	}
	opt := history.Options{StreamGap: *gap}
	tty := isTerminal(app.Stderr)
	var bar *progressbar.ProgressBar
	if tty {
		bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(app.Stderr), progressbar.OptionSetDescription("reading"),
			progressbar.OptionShowBytes(true), progressbar.OptionSetPredictTime(true))
		opt.Progress = func(n int64) { _ = bar.Add64(n) }
	}
	began := time.Now()
	plan, err := history.Read(files, opt)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(app.Stderr)
	}
	if err != nil {
		if probs, ok := err.(*history.Problems); ok {
			for _, p := range probs.List {
				fmt.Fprintln(app.Stderr, p.String())
			}
			if more := probs.Total - len(probs.List); more > 0 {
				fmt.Fprintf(app.Stderr, "… and %d more\n", more)
			}
			return lr.Errorf(lr.EINVALID, "%s", probs.Error())
		}
		return err
	}
	app.Log.Info("history files read", "files", len(files), "elapsed", time.Since(began).Round(time.Millisecond).String())
	if *dryRun {
		printImportPlan(app.Stdout, plan, nil, true)
		return nil
	}
	db, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	var progress func(string, int)
	finish := func() {}
	if tty {
		c := plan.Rows.Counts()
		wbar := progressbar.NewOptions64(c.Users+c.Streamers+c.Streams+c.Watches+c.Gifts+c.Follows, progressbar.OptionSetWriter(app.Stderr),
			progressbar.OptionSetDescription("writing"), progressbar.OptionShowCount())
		progress = func(_ string, n int) { _ = wbar.Add(n) }
		finish = func() { _ = wbar.Finish(); fmt.Fprintln(app.Stderr) }
	}
	added, err := db.ImportHistory(ctx, plan.Rows, progress)
	finish()
	if err != nil {
		return err
	}
	printImportPlan(app.Stdout, plan, &added, false)
	return nil
}

// printImportPlan prints the files read, the time range, how streams were
// found, and per table the rows in the files and, after a load, the rows
// added and those already there.
func printImportPlan(w io.Writer, p *history.Plan, added *postgres.HistoryCounts, dry bool) {
	if dry {
		fmt.Fprintln(w, "dry run: nothing written")
	}
	var parts []string
	for _, f := range p.Files {
		parts = append(parts, fmt.Sprintf("%s (%s) %d rows", f.Name, f.Kind, f.Rows))
	}
	fmt.Fprintf(w, "files: %s\n", strings.Join(parts, ", "))
	if !p.From.IsZero() {
		fmt.Fprintf(w, "time range: %s to %s\n", p.From.Format(time.RFC3339), p.To.Format(time.RFC3339))
	}
	if d := p.Derived; d != nil {
		from := "the sessions"
		if d.LiveRows > 0 {
			from = fmt.Sprintf("the sessions and %d live rows", d.LiveRows)
		}
		fmt.Fprintf(w, "streams: derived from %s with --stream-gap %s: %d streams of %d streamers, %d split off by a longer gap, %d by stream_id\n",
			from, fmtGap(d.Gap), d.Streams, d.Streamers, d.Splits, d.ByStreamID)
	} else {
		fmt.Fprintln(w, "streams: from the streams files")
	}
	c := p.Rows.Counts()
	rows := []struct {
		name string
		n    int64
		add  int64
	}{{"users", c.Users, 0}, {"streamers", c.Streamers, 0}, {"streams", c.Streams, 0},
		{"watch_sessions", c.Watches, 0}, {"gifts", c.Gifts, 0}, {"follows", c.Follows, 0}}
	if added == nil {
		fmt.Fprintf(w, "%-15s %9s\n", "table", "rows")
		for _, r := range rows {
			fmt.Fprintf(w, "%-15s %9d\n", r.name, r.n)
		}
		return
	}
	a := []int64{added.Users, added.Streamers, added.Streams, added.Watches, added.Gifts, added.Follows}
	fmt.Fprintf(w, "%-15s %9s %9s %9s\n", "table", "rows", "added", "present")
	for i, r := range rows {
		fmt.Fprintf(w, "%-15s %9d %9d %9d\n", r.name, r.n, a[i], r.n-a[i])
	}
}

// fmtGap prints a duration without trailing zero units: 30m, 1h30m, 45s.
func fmtGap(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
