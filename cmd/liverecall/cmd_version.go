package main

import (
	"context"
	"fmt"
	"runtime"
)

func init() {
	register(&command{name: "version", summary: "print the version", run: func(ctx context.Context, app *App, args []string) error {
		fmt.Fprintf(app.Stdout, "liverecall %s (%s)\n", Version, runtime.Version())
		return nil
	}})
}
