package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

func init() {
	register(&command{name: "version", summary: "print the version, the commit it was built from and the Go version", run: func(ctx context.Context, app *App, args []string) error {
		fmt.Fprintln(app.Stdout, versionLine(Version, readBuildInfo()))
		return nil
	}})
}

// buildInfo is what the binary knows of its own build.
type buildInfo struct {
	module   string // the module version ("(devel)" when built from a checkout)
	commit   string // the VCS revision, "" when not stamped
	modified bool   // built from a work tree with uncommitted changes
}

func readBuildInfo() buildInfo {
	var b buildInfo
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.module = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.commit = s.Value
		case "vcs.modified":
			b.modified = s.Value == "true"
		}
	}
	return b
}

// releaseVersion is the release version given at build time (-X
// main.Version), else the module version, else "unreleased".
func releaseVersion(release string, b buildInfo) string {
	v := release
	if v == "" || v == "dev" {
		v = b.module
	}
	if v == "" || v == "(devel)" {
		v = "unreleased"
	}
	return v
}

// versionLine says which build this is without a word that reads as a
// subcommand: the release version given at build time (-X main.Version),
// else the module version, else "unreleased"; then the commit when the
// build stamped one, and the Go version.
func versionLine(release string, b buildInfo) string {
	parts := []string{"liverecall version " + releaseVersion(release, b)}
	if b.commit != "" {
		c := b.commit[:min(12, len(b.commit))]
		if b.modified {
			c += " with uncommitted changes"
		}
		parts = append(parts, "commit "+c)
	}
	parts = append(parts, "built with "+runtime.Version())
	return strings.Join(parts, ", ")
}
