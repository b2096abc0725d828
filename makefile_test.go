package liverecall_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `make build` (and so `make demo`) says it is compiling when the binary is
// missing or older than a source file, and says nothing when it is current.
// The Makefile runs in a scratch directory with GO=true, so nothing is
// compiled.
func TestMakeBuildSaysWhenItCompiles(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, body string, mtime time.Time) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	build := func() string {
		t.Helper()
		cmd := exec.Command("make", "--no-print-directory", "build", "GO=true")
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make build: %v\n%s", err, out)
		}
		return string(out)
	}
	t0 := time.Now().Add(-time.Hour)
	write("Makefile", string(mk), t0)
	write("cmd/liverecall/main.go", "package main\n", t0)
	const says = "compiling bin/liverecall"
	if out := build(); !strings.Contains(out, says) {
		t.Fatalf("no binary, and make build does not say it compiles:\n%s", out)
	}
	write("bin/liverecall", "#!/bin/sh\n", t0.Add(time.Minute))
	if out := build(); strings.Contains(out, says) {
		t.Fatalf("a current binary, and make build says it compiles:\n%s", out)
	}
	write("cmd/liverecall/main.go", "package main\n\n", t0.Add(2*time.Minute))
	if out := build(); !strings.Contains(out, says) {
		t.Fatalf("a source newer than the binary, and make build does not say it compiles:\n%s", out)
	}
}

// `make test` (what README.md and .ci/run use) runs, on a fresh machine,
// everything the contract checks need: it installs Node.js and npm (Debian
// packages) when npm is missing and the pinned Redocly CLI with npm into
// .tools/, installs the Debian packages of the tests, and then runs the
// OpenAPI lint, `go mod tidy -diff`, vet, the format check and every Go
// test (the schema tests and the manifest decoding among them). Checked
// with `make -n`, which prints the commands without running them.
func TestMakeTestRunsTheContractChecks(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	mk, err := os.ReadFile("Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // no .tools/: the Redocly CLI is missing
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-n", "--no-print-directory", "test", "GO=go")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make -n test: %v\n%s", err, out)
	}
	for _, want := range []string{
		"apt-get install -y -qq --no-install-recommends nodejs npm",
		"npm install --prefix .tools",
		"@redocly/cli@",
		"for t in kcat:kcat chromium:chromium",
		"go vet ./...",
		"gofmt -l",
		"go mod tidy -diff",
		".tools/node_modules/.bin/redocly lint --config redocly.yaml",
		"go test -race -p 2 -timeout 20m -count=1 ./...",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make test does not run %q:\n%s", want, out)
		}
	}
}
