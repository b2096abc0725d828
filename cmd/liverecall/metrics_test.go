package main

import (
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
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

// The Go collector exports, beside its defaults, the scheduler's latency
// histogram: how long ready goroutines waited for a processor.
func TestGoCollectorExportsSchedulingLatency(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(goCollector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
		if mf.GetName() == "go_sched_latencies_seconds" {
			if mf.GetType() != dto.MetricType_HISTOGRAM || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetHistogram().GetBucket()) == 0 {
				t.Fatalf("go_sched_latencies_seconds: %v", mf)
			}
			return
		}
	}
	t.Fatalf("no go_sched_latencies_seconds among %v", names)
}
