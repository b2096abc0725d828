package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/experiment/online"
	"github.com/liverecall/liverecall/postgres"
)

// How an experiment report labels impressions; read by `experiment
// report` (as the defaults of --watch-seconds and --within) and by serve
// (its reports for metrics and the dashboard), so both agree.
var (
	sExpWatchSeconds = defSetting(setting{"experiment-watch-seconds", "LIVERECALL_EXPERIMENT_WATCH_SECONDS", "60",
		"experiment reports: an impression counts as watched after a watch of its streamer of at least this many seconds"})
	sExpWatchWithin = defSetting(setting{"experiment-watch-within", "LIVERECALL_EXPERIMENT_WATCH_WITHIN", "10m",
		"experiment reports: ... that starts within this after the impression (gifts count during such a watch, follows within this)"})
	sExpReportEvery = defSetting(setting{"experiment-report-every", "LIVERECALL_EXPERIMENT_REPORT_EVERY", "1m",
		"how often serve recomputes the running and paused experiments' reports from PostgreSQL for its metrics and the dashboard (0: never)"})
)

// runExperimentReport is `liverecall experiment report NAME`: the
// experiment's online figures per arm, computed in PostgreSQL and by
// package experiment (see README "Experiment reports").
func runExperimentReport(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "experiment report")
	dbURL := f.String(sDatabaseURL)
	watchDefault, err := strconv.Atoi(f.value(sExpWatchSeconds))
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not an integer", sExpWatchSeconds.Env, f.value(sExpWatchSeconds))
	}
	withinDefault, err := time.ParseDuration(f.value(sExpWatchWithin))
	if err != nil {
		f.err = fmt.Errorf("$%s: %q is not a duration (e.g. 10m)", sExpWatchWithin.Env, f.value(sExpWatchWithin))
	}
	watch := f.FlagSet.Int("watch-seconds", watchDefault, "an impression counts as watched after a watch of at least this many seconds [$"+sExpWatchSeconds.Env+"]")
	within := f.FlagSet.Duration("within", withinDefault, "... starting within this after the impression [$"+sExpWatchWithin.Env+"]")
	from := f.FlagSet.String("from", "", "read the impressions shown from this time (RFC 3339; default: the experiment's start)")
	to := f.FlagSet.String("to", "", "... until this time, excluded (RFC 3339; default: now minus --within, so every impression had its whole window, or the experiment's end if earlier)")
	bucket := f.FlagSet.Duration("bucket", time.Hour, "width of the time buckets of the series (--json)")
	asJSON := f.FlagSet.Bool("json", false, "print the report as JSON (with each arm's series)")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, "usage: liverecall experiment report [flags] NAME")
		f.PrintDefaults()
	}
	// Flags may come before and after the name.
	if err := f.Parse(args); err != nil {
		return err
	}
	var name string
	if f.NArg() > 0 {
		name = f.Arg(0)
		if err := f.Parse(f.Args()[1:]); err != nil {
			return err
		}
	}
	if name == "" || f.NArg() > 0 {
		if f.NArg() > 0 {
			fmt.Fprintf(app.Stderr, "liverecall experiment report: unexpected argument %q\n", f.Arg(0))
		} else {
			fmt.Fprintln(app.Stderr, "liverecall experiment report: name the experiment")
		}
		f.Usage()
		return errUsage
	}
	q := experiment.Query{WatchSeconds: *watch, Within: *within, Bucket: *bucket}
	for _, t := range []struct {
		flag string
		arg  string
		dst  *time.Time
	}{{"from", *from, &q.From}, {"to", *to, &q.To}} {
		if t.arg == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.arg)
		if err != nil {
			fmt.Fprintf(app.Stderr, "liverecall experiment report: --%s %q is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)\n", t.flag, t.arg)
			return errUsage
		}
		*t.dst = v
	}
	if *watch < 1 || *within <= 0 || *bucket <= 0 {
		fmt.Fprintln(app.Stderr, "liverecall experiment report: --watch-seconds, --within and --bucket must be positive")
		return errUsage
	}
	db, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := online.Report(ctx, db, name, q, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(app.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	printReport(app.Stdout, r)
	return nil
}

// metricHeads are the table's short column names of experiment.Metrics.
var metricHeads = map[string]string{
	experiment.WatchThroughRate:          "watch-through",
	experiment.WatchSecondsPerImpression: "watch s/imp",
	experiment.GiftsPer1000:              "gifts/1k imp",
	experiment.FollowsPer1000:            "follows/1k imp",
}

// printReport writes r as text: a header, one row per arm, each arm's
// differences against control, the SRM check and the interleaving wins.
func printReport(w io.Writer, r experiment.Report) {
	fmt.Fprintf(w, "experiment %s (%s, %s): impressions from %s to %s\n", r.Experiment, r.Mode, r.Status,
		r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	fmt.Fprintf(w, "watched: a watch of at least %d s starting within %s of the impression\n", r.WatchSeconds, time.Duration(r.WithinSeconds)*time.Second)
	names := make([]string, len(r.Arms))
	width := len("arm")
	var control *experiment.ArmReport
	for i, a := range r.Arms {
		names[i] = a.Arm
		if a.Control {
			names[i] += " (control)"
			control = &r.Arms[i]
		}
		width = max(width, len(names[i]))
	}
	fmt.Fprintf(w, "\n%-*s %6s %8s %12s", width, "arm", "share", "users", "impressions")
	for _, m := range experiment.Metrics {
		fmt.Fprintf(w, " %14s", metricHeads[m])
	}
	fmt.Fprintln(w)
	for i, a := range r.Arms {
		fmt.Fprintf(w, "%-*s %5.1f%% %8d %12d", width, names[i], 100*a.Share, a.Users, a.Impressions)
		for _, m := range experiment.Metrics {
			fmt.Fprintf(w, " %14.4f", a.Metrics[m])
		}
		fmt.Fprintln(w)
	}
	for _, a := range r.Arms {
		if a.Control || r.Interleaving != nil || control == nil {
			continue
		}
		fmt.Fprintf(w, "\n%s - %s, 95%% CI, two-sided p:\n", a.Arm, control.Arm)
		if len(a.Diffs) == 0 {
			fmt.Fprintln(w, "  (fewer than 2 users in an arm: no difference computed)")
		}
		for _, m := range experiment.Metrics {
			d, ok := a.Diffs[m]
			if !ok {
				continue
			}
			rel := "n/a" // control is 0
			if control.Metrics[m] != 0 {
				rel = fmt.Sprintf("%+.2f%%", 100*d.Relative)
			}
			fmt.Fprintf(w, "  %-28s %+12.4f %10s  [%+.4f, %+.4f]  p=%s\n", m, d.Delta, "("+rel+")", d.Low, d.High, formatP(d.P))
		}
	}
	if s := r.SRM; s != nil {
		verdict := "ok"
		if s.Mismatch {
			verdict = fmt.Sprintf("MISMATCH (p < %g): the users per arm do not match the shares; do not trust the differences", experiment.SRMThreshold)
		}
		fmt.Fprintf(w, "\nSRM: chi-square %.3f, df %d, p=%s: %s\n", s.ChiSquare, s.DF, formatP(s.P), verdict)
	}
	if in := r.Interleaving; in != nil {
		var parts []string
		for _, a := range r.Arms {
			parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", a.Arm, in.Wins[a.Arm], 100*in.Share[a.Arm]))
		}
		fmt.Fprintf(w, "\ninterleaving: pages won %s, ties %d; sign test p=%s\n", strings.Join(parts, ", "), in.Ties, formatP(in.P))
	}
	fmt.Fprintf(w, "\nmethod: %s\n", r.Method)
}

// formatP prints a p-value with 3 significant digits.
func formatP(p float64) string { return strconv.FormatFloat(p, 'g', 3, 64) }
