package main

import (
	"sort"
	"strings"
	"testing"
)

// metricNames lists every metric reg can export, observed yet or not,
// from its collectors' descriptions. A histogram or summary also names
// its _bucket, _sum and _count series.
func (r *metricsRegistry) metricNames(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, d := range r.descs() {
		s := d.String()
		_, rest, ok := strings.Cut(s, `fqName: "`)
		name, _, ok2 := strings.Cut(rest, `"`)
		if !ok || !ok2 || name == "" {
			t.Fatalf("cannot read the metric name of %s", s)
		}
		out[name] = ""
	}
	// The type of each family, from what the registry gathers (families
	// with no series yet keep "").
	mfs, err := r.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetType().String()
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
