package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The HTTP edge does HTTP only: it reaches a recommendation through
// api.Recommender and the root package's types, so none of the packages
// that compose one is among its dependencies.
func TestAPIImportsNoPipelinePackage(t *testing.T) {
	// go test puts its own toolchain first on the PATH; the working
	// directory is this package's.
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/liverecall/liverecall/"
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != module+"api" {
		t.Fatalf("go list -deps . did not list api last: %v", deps)
	}
	for _, p := range deps {
		for _, banned := range []string{"recall", "rerank", "live", "index", "recommend", "embed", "postgres", "events"} {
			if p == module+banned || strings.HasPrefix(p, module+banned+"/") {
				t.Errorf("api depends on %s", p)
			}
		}
	}
}
