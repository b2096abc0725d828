package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/api"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/recall"
)

func init() {
	register(&command{name: "experiment", summary: "manage online experiments: create, start, pause, stop, list, report", run: runExperiment})
}

const experimentUsage = `usage: liverecall experiment [flags] ACTION
actions:
  create --file FILE   store the experiment FILE holds (JSON, README "Experiments"; - reads stdin) as a draft and print it
  start NAME           start a draft or paused experiment
  pause NAME           pause a running experiment (its users get the default configuration)
  stop NAME            stop an experiment for good
  list                 list every experiment
  report NAME          the experiment's figures per arm from its impressions and their outcomes
                       (flags after report: liverecall experiment report -h)`

func runExperiment(ctx context.Context, app *App, args []string) error {
	if len(args) > 0 && args[0] == "report" {
		return runExperimentReport(ctx, app, args[1:])
	}
	f := newFlags(app, "experiment")
	dbURL := f.String(sDatabaseURL)
	file := f.FlagSet.String("file", "", "create: the experiment's JSON file (- for stdin)")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, experimentUsage)
		f.PrintDefaults()
	}
	pos, err := parseWithPositional(f, args)
	if err != nil {
		return err
	}
	usageErr := func(format string, a ...any) error {
		fmt.Fprintf(app.Stderr, "liverecall experiment: "+format+"\n", a...)
		fmt.Fprintln(app.Stderr, experimentUsage)
		return errUsage
	}
	if len(pos) == 0 {
		return usageErr("no action")
	}
	action, rest := pos[0], pos[1:]
	switch action {
	case "create":
		if *file == "" || len(rest) > 0 {
			return usageErr("create takes --file FILE and no argument")
		}
	case "start", "pause", "stop":
		if len(rest) != 1 {
			return usageErr("%s takes one experiment name", action)
		}
	case "list":
		if len(rest) > 0 {
			return usageErr("list takes no argument")
		}
	case "report":
		// Flags came before the action ("experiment --database-url U
		// report NAME"): report takes them on.
		if *file != "" {
			return usageErr("--file is for create only")
		}
		return runExperimentReport(ctx, app, append([]string{"--" + sDatabaseURL.Flag, *dbURL}, rest...))
	default:
		return usageErr("unknown action %q", action)
	}
	if *file != "" && action != "create" {
		return usageErr("--file is for create only")
	}
	var in lr.Experiment
	if action == "create" {
		// Read and check the file before touching the database.
		if in, err = readExperimentFile(app, *file); err != nil {
			return err
		}
	}
	db, err := postgres.Open(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	switch action {
	case "create":
		e, err := db.CreateExperiment(ctx, in, recall.Channels)
		if err != nil {
			return err
		}
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintf(app.Stdout, "%s\n", b)
		return nil
	case "list":
		exps, err := db.ListExperiments(ctx)
		if err != nil {
			return err
		}
		printExperiments(app.Stdout, exps)
		return warnRetiredArms(ctx, app.Stdout, db, "")
	}
	do := map[string]func(context.Context, string) (lr.Experiment, error){
		"start": db.StartExperiment, "pause": db.PauseExperiment, "stop": db.StopExperiment,
	}[action]
	e, err := do(ctx, rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Stdout, "experiment %s: %s\n", e.Name, e.Status)
	return nil
}

// readExperimentFile reads an experiment's JSON (lr.Experiment) from path
// ("-": stdin): one object, no unknown field, nothing after it. Errors are
// EINVALID and name the file.
func readExperimentFile(app *App, path string) (lr.Experiment, error) {
	var b []byte
	var err error
	if path == "-" {
		b, err = io.ReadAll(os.Stdin)
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return lr.Experiment{}, lr.Errorf(lr.EINVALID, "reading %s: %v", path, err)
	}
	// As strict as a request body: besides unknown fields, a key twice
	// (encoding/json would keep the last "share") or in another case
	// than its field's is refused.
	var e lr.Experiment
	if err := api.DecodeStrict(b, &e); err != nil {
		return e, lr.Errorf(lr.EINVALID, "%s: not an experiment: %v", path, lr.ErrorMessage(err))
	}
	if e.Status != "" && e.Status != lr.ExperimentDraft {
		app.Log.Info("an experiment is created as a draft; status ignored", "status", e.Status)
	}
	return e, nil
}

// printExperiments writes exps as a table.
func printExperiments(w io.Writer, exps []lr.Experiment) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tMODE\tLAYER\tSTART\tEND\tARMS")
	for _, e := range exps {
		end := "-"
		if !e.End.IsZero() {
			end = e.End.UTC().Format(time.RFC3339)
		}
		arms := make([]string, len(e.Arms))
		for i, a := range e.Arms {
			arms[i] = a.Name + " " + strconv.FormatFloat(a.Share*100, 'g', 4, 64) + "%"
			if c := armSummary(a.Config); c != "" {
				arms[i] += " (" + c + ")"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Name, e.Status, e.Mode, e.Layer, e.Start.UTC().Format(time.RFC3339), end, strings.Join(arms, ", "))
	}
	tw.Flush()
}

// armSummary names what an arm's configuration changes: its versions and
// how many channel settings.
func armSummary(c lr.ArmConfig) string {
	var s []string
	for _, v := range [][2]string{{"mf", c.MFVersion}, {"ncf", c.NCFVersion}, {"rerank", c.RerankVersion}} {
		if v[1] != "" {
			s = append(s, v[0]+"="+v[1])
		}
	}
	if len(c.Disabled) > 0 {
		s = append(s, "-"+strings.Join(c.Disabled, ",-"))
	}
	if len(c.Enabled) > 0 {
		s = append(s, "+"+strings.Join(c.Enabled, ",+"))
	}
	if n := len(c.PerChannel) + len(c.Quota) + len(c.ChannelBudgetMS); n > 0 {
		s = append(s, strconv.Itoa(n)+" channel settings")
	}
	return strings.Join(s, " ")
}

// warnRetiredArms writes a note for every arm of an experiment that is not
// stopped which names a retired version of kind ("" any): replicas serve
// its users with the default configuration.
func warnRetiredArms(ctx context.Context, w io.Writer, db *postgres.DB, kind string) error {
	arms, err := db.ArmsNamingRetired(ctx, kind)
	if err != nil {
		return err
	}
	for _, a := range arms {
		fmt.Fprintf(w, "warning: experiment %s (%s), arm %s: %s %s is retired; replicas serve the arm's users with the default configuration until the version is activated again or the experiment is stopped\n",
			a.Experiment, a.Status, a.Arm, a.Field, a.Version)
	}
	return nil
}

// parseWithPositional parses args with f, flags and positional arguments
// in any order ("experiment start NAME --database-url U"), and returns the
// positional ones.
func parseWithPositional(f *flags, args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return nil, err
		}
		args = f.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
