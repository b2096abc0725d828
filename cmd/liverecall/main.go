// Command liverecall is the one binary of the service. It only wires the
// packages together; each subcommand lives in its own cmd_*.go file and
// registers itself in commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

// command is one subcommand. run parses args itself (with newFlagSet) and
// returns an error for a non-zero exit.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, app *App, args []string) error
}

var commands = map[string]*command{}

func register(c *command) {
	if _, dup := commands[c.name]; dup {
		panic("duplicate command " + c.name)
	}
	commands[c.name] = c
}

// App is what every subcommand gets: where to write and how to log.
type App struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
	Log            *slog.Logger
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	app := &App{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	os.Exit(Run(ctx, app, os.Args[1:]))
}

// Run executes one subcommand and returns the process exit code: 0 on
// success, 2 on a usage error, 1 on any other failure, whose one-line
// explanation goes to Stderr.
func Run(ctx context.Context, app *App, args []string) int {
	if app.Getenv == nil {
		app.Getenv = os.Getenv
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(app.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(app.Stderr, "liverecall: unknown command %q\n", args[0])
		usage(app.Stderr)
		return 2
	}
	if app.Log == nil {
		app.Log = newLogger(app.Stderr, app.Getenv("LIVERECALL_LOG_LEVEL"), app.Getenv("LIVERECALL_LOG_FORMAT"))
	}
	err := cmd.run(ctx, app, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	fmt.Fprintf(app.Stderr, "liverecall %s: %s\n", cmd.name, oneLine(err))
	return 1
}

// errUsage marks an error already reported by a flag set.
var errUsage = errors.New("usage")

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: liverecall <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'liverecall <command> -h' for the flags of a command; every flag also reads a LIVERECALL_* environment variable (see README.md).")
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil || level == "" {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
