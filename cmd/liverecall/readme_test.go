package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
)

// README.md documents every setting the binary reads, every subcommand, and
// the test command CI runs.
func TestReadmeDocumentsSettingsAndCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, s := range settings {
		if !strings.Contains(readme, "`"+s.Env+"`") {
			t.Errorf("README.md does not document %s", s.Env)
		}
		if !strings.Contains(readme, "`"+s.Default+"`") && s.Default != "" {
			t.Errorf("README.md does not give the default of %s (%s)", s.Env, s.Default)
		}
	}
	for name := range commands {
		if !strings.Contains(readme, "`"+name) {
			t.Errorf("README.md does not document the %s command", name)
		}
	}
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ci), "make test") || !strings.Contains(readme, "make test") {
		t.Error("README.md and .ci/run must both name `make test`")
	}
}

// README.md explains every flag of the reranker's commands where it
// explains the command: import-rerank's in "Serving a tree model trained
// in Python", train's rerank flags (their usage begins "rerank") in "The
// reranker". Settings read from the environment are the configuration
// table's (TestReadmeDocumentsSettingsAndCommands).
func TestReadmeExplainsRerankFlags(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, c := range []struct {
		command, section string
		only             func(usage string) bool
	}{
		{"import-rerank", "## Serving a tree model trained in Python", func(string) bool { return true }},
		{"train", "### The reranker", func(usage string) bool { return strings.HasPrefix(usage, "rerank") }},
	} {
		var help bytes.Buffer
		app := &App{Stdout: &help, Stderr: &help, Getenv: func(string) string { return "" }}
		if code := Run(context.Background(), app, []string{c.command, "-h"}); code != 0 {
			t.Fatalf("%s -h: %d\n%s", c.command, code, help.String())
		}
		flags := regexp.MustCompile(`(?m)^  -([a-z-]+).*\n\s+(.*)$`).FindAllStringSubmatch(help.String(), -1)
		i := strings.Index(readme, c.section+"\n")
		if i < 0 || len(flags) < 5 {
			t.Fatalf("README.md section %q at %d, %d flags parsed from %s -h", c.section, i, len(flags), c.command)
		}
		section := readme[i+len(c.section):]
		if j := strings.Index(section, "\n#"); j >= 0 {
			section = section[:j]
		}
		checked := 0
		for _, f := range flags {
			if strings.Contains(f[2], "[$") || !c.only(f[2]) {
				continue
			}
			checked++
			if !strings.Contains(section, "--"+f[1]) {
				t.Errorf("README.md's %q does not explain %s --%s", c.section, c.command, f[1])
			}
		}
		if checked < 4 {
			t.Errorf("%s: only %d flags checked", c.command, checked)
		}
	}
}
