package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/liverecall/liverecall/postgres"
)

func init() {
	register(&command{name: "migrate", summary: "apply the schema (up) or show where it stands (status)", run: runMigrate})
}

func runMigrate(ctx context.Context, app *App, args []string) error {
	f := newFlags(app, "migrate")
	dbURL := f.String(sDatabaseURL)
	create := f.FlagSet.Bool("create-database", false, "create the database first if the server does not have it")
	f.Usage = func() {
		fmt.Fprintln(app.Stderr, "usage: liverecall migrate [flags] up|status")
		f.PrintDefaults()
	}
	if err := f.Parse(args); err != nil {
		return err
	}
	action := "up"
	if f.NArg() > 0 {
		action = f.Arg(0)
		// Flags may also follow the action: "migrate up --create-database".
		if err := f.Parse(f.Args()[1:]); err != nil {
			return err
		}
		if f.NArg() > 0 {
			fmt.Fprintf(app.Stderr, "liverecall migrate: unexpected argument %q\n", f.Arg(0))
			return errUsage
		}
	}
	switch action {
	case "up":
		if *create {
			made, err := postgres.CreateDatabaseIfMissing(ctx, *dbURL)
			if err != nil {
				return err
			}
			if made {
				app.Log.Info("created database")
			}
		}
		st, err := postgres.Migrate(ctx, *dbURL, func(seq int32, name string) {
			app.Log.Info("applying migration", "seq", seq, "name", name)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "schema at version %d of %d\n", st.Current, st.Latest)
		return nil
	case "status":
		st, err := postgres.Status(ctx, *dbURL)
		if err != nil {
			return err
		}
		fmt.Fprintf(app.Stdout, "schema at version %d of %d", st.Current, st.Latest)
		if len(st.Pending) > 0 {
			fmt.Fprintf(app.Stdout, "; pending: %s", strings.Join(st.Pending, ", "))
		}
		fmt.Fprintln(app.Stdout)
		return nil
	}
	fmt.Fprintf(app.Stderr, "liverecall migrate: unknown action %q (want up or status)\n", action)
	return errUsage
}
