package main

import (
	"os"
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
