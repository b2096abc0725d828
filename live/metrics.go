package live

import (
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
)

type metrics struct {
	live    prometheus.Gauge
	dupes   prometheus.Counter
	ignored prometheus.Counter
	expired prometheus.Counter
	apply   prometheus.Histogram
	applied *prometheus.CounterVec
	types   map[lr.EventType]prometheus.Counter
}

// newMetrics creates the State's metrics and registers them with reg when
// reg is not nil.
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		live: prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_live_streamers",
			Help: "Streamers live in the last published snapshot."}),
		dupes: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_live_dedupe_hits_total",
			Help: "Events dropped because their id was seen within the dedupe window."}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_live_events_ignored_total",
			Help: "Events that changed nothing: late, stale, or for a stream that is not live."}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_live_streams_expired_total",
			Help: "Streams ended because no event came for the expiry time."}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_live_apply_seconds",
			Help:    "Time to apply one batch of events to the live state.",
			Buckets: prometheus.ExponentialBuckets(1e-6, 4, 10)}),
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_live_events_applied_total",
			Help: "Events that changed the live state, by type."}, []string{"type"}),
		types: make(map[lr.EventType]prometheus.Counter),
	}
	for _, t := range lr.EventTypes {
		m.types[t] = m.applied.WithLabelValues(string(t))
	}
	if reg != nil {
		reg.MustRegister(m.live, m.dupes, m.ignored, m.expired, m.apply, m.applied)
	}
	return m
}

func (m *metrics) byType(t lr.EventType) {
	if c := m.types[t]; c != nil {
		c.Inc()
	}
}
