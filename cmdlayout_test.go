package liverecall_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/liverecall/liverecall"

// goList runs `go list` in the module root (this package's directory) and
// returns its output lines.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	// go test puts its own toolchain first on the PATH.
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// Library packages hold library code: every program (package main),
// benchmarks included, sits under cmd/.
func TestProgramsOnlyUnderCmd(t *testing.T) {
	for _, l := range goList(t, "-f", "{{.Name}} {{.ImportPath}}", "./...") {
		name, path, _ := strings.Cut(l, " ")
		if name == "main" && !strings.HasPrefix(path, module+"/cmd/") {
			t.Errorf("package main %s is outside cmd/", path)
		}
	}
}

// The service binary embeds the default broker (events/embedded), not the
// tests' helpers: nothing in it imports testing, events/kafkatest or
// postgres/pgtest.
func TestBinaryHasNoTestHelpers(t *testing.T) {
	deps := map[string]bool{}
	for _, p := range goList(t, "-deps", "./cmd/liverecall") {
		deps[p] = true
	}
	if !deps[module+"/events/embedded"] {
		t.Errorf("cmd/liverecall does not depend on events/embedded (the broker of `liverecall dev`)")
	}
	for _, p := range []string{"testing", module + "/events/kafkatest", module + "/postgres/pgtest"} {
		if deps[p] {
			t.Errorf("cmd/liverecall depends on %s", p)
		}
	}
}
