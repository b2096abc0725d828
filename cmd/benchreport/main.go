// Command benchreport turns the outputs of the `make bench-<area>` targets
// (saved under .bench/<area>.txt) into BENCHMARKS.md on standard output: the
// machine, and per area the command, its tables as printed, and its
// headline JSON (the last line). It invents no figure: everything it writes
// comes from those files.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

var areas = []struct{ name, title string }{
	{"index", "Index: our HNSW vs coder/hnsw vs exact scan"},
	{"events", "Event ingestion and freshness"},
	{"embed", "Embeddings: ALS, BPR, NeuMF on the published splits"},
	{"recall", "Recall API latency"},
	{"quality", "End-to-end quality on the simulator"},
	{"experiments", "Online experiments on the simulator"},
}

func main() {
	dir := ".bench"
	if len(os.Args) > 1 {
		dir = os.Args[1]
	}
	var b bytes.Buffer
	fmt.Fprintln(&b, "# Benchmarks")
	fmt.Fprintln(&b)
	fmt.Fprintf(&b, "Written by `make bench` on %s. Every figure below is copied from the output of the command\nnamed above it; rerun that command to reproduce it.\n\n", time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s, %s/%s.\n", cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	for _, a := range areas {
		out, err := os.ReadFile(filepath.Join(dir, a.name+".txt"))
		fmt.Fprintf(&b, "\n## %s\n\n", a.title)
		if err != nil {
			fmt.Fprintf(&b, "Not run (`make bench-%s` produced no output).\n", a.name)
			continue
		}
		text := strings.TrimRight(string(out), "\n")
		lines := strings.Split(text, "\n")
		last := lines[len(lines)-1]
		quick := ""
		if os.Getenv("QUICK") != "" {
			quick = "QUICK=1 "
		}
		fmt.Fprintf(&b, "Command: `%smake bench-%s`\n\n```\n%s\n```\n", quick, a.name, strings.Join(lines[:len(lines)-1], "\n"))
		var head map[string]any
		if json.Unmarshal([]byte(last), &head) == nil {
			fmt.Fprintf(&b, "\nHeadline (last line): `%s`\n", last)
		} else {
			fmt.Fprintf(&b, "\nThe last line is not a JSON object: the run did not finish.\n")
		}
	}
	os.Stdout.Write(b.Bytes())
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
