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

// OpenTelemetry's SDK and exporter are wired in internal/tracing only: the
// other packages depend on go.opentelemetry.io/otel/trace (through
// internal/spans) and nothing else of OpenTelemetry.
func TestOnlyTracingImportsTheOtelSDK(t *testing.T) {
	for _, l := range goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		fields := strings.Fields(l)
		if len(fields) == 0 {
			continue
		}
		pkg := fields[0]
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, "go.opentelemetry.io/") {
				continue
			}
			allowed := imp == "go.opentelemetry.io/otel/trace" || imp == "go.opentelemetry.io/otel/attribute" || imp == "go.opentelemetry.io/otel/codes"
			if !allowed && pkg != module+"/internal/tracing" {
				t.Errorf("%s imports %s; only internal/tracing may import OpenTelemetry beyond trace, attribute and codes", pkg, imp)
			}
		}
	}
}
