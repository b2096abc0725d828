package events

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// registered returns the names of the metrics registered on reg.
func registered(t *testing.T, reg *prometheus.Registry) map[string]bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, mf := range mfs {
		out[mf.GetName()] = true
	}
	return out
}

// serve (the live consumer) exports no sink metric, and the sink none of
// the live consumer's gauges.
func TestMetricsPerProcess(t *testing.T) {
	live, sink := prometheus.NewRegistry(), prometheus.NewRegistry()
	lm, sm := NewLiveMetrics(live), NewSinkMetrics(sink)
	// Give every vector a child so that it is gathered.
	for _, m := range []*Metrics{lm, sm} {
		m.lag.WithLabelValues("t", "0").Set(1)
		m.SinkUnpaired(1, 1)
	}
	ln, sn := registered(t, live), registered(t, sink)
	for name := range ln {
		if strings.HasPrefix(name, "liverecall_sink_") || strings.HasPrefix(name, "liverecall_events_dead_letter") {
			t.Errorf("the live consumer's registry exports %s", name)
		}
	}
	for _, name := range []string{"liverecall_events_lag_messages", "liverecall_events_staleness_seconds", "liverecall_events_caught_up", "liverecall_events_broker_up"} {
		if !ln[name] {
			t.Errorf("the live consumer's registry lacks %s", name)
		}
		if sn[name] {
			t.Errorf("the sink's registry exports %s", name)
		}
	}
	for _, name := range []string{"liverecall_sink_batches_total", "liverecall_sink_events_total", "liverecall_sink_batch_seconds",
		"liverecall_sink_unpaired_events_total", "liverecall_events_dead_lettered_total", "liverecall_events_dead_letter_failures_total"} {
		if !sn[name] {
			t.Errorf("the sink's registry lacks %s", name)
		}
	}
	for _, name := range []string{"liverecall_events_consumed_total", "liverecall_events_decode_failures_total", "liverecall_events_broker_errors_total"} {
		if !ln[name] || !sn[name] {
			t.Errorf("%s: in live %v, in sink %v; want both", name, ln[name], sn[name])
		}
	}
}
