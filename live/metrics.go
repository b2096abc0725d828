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

	users        prometheus.GaugeFunc
	evicted      prometheus.Counter
	loads        *prometheus.CounterVec
	loadFailures prometheus.Counter
	loadSeconds  prometheus.Histogram
	loadBatch    prometheus.Histogram
}

// newMetrics creates the metrics of s and registers them with reg when reg
// is not nil.
func newMetrics(reg prometheus.Registerer, s *State) *metrics {
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
		users: prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_live_users",
			Help: "Users whose history or follows the live state holds."}, func() float64 { return float64(s.Users()) }),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_live_users_evicted_total",
			Help: "Users forgotten by the live state: idle for the user idle window (with a loader) or the user TTL (without)."}),
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_live_user_loads_total",
			Help: "Requests for a user whose stored state was not held, by outcome: ok (loaded within the wait), late (served before the load finished), error (the load failed; retried at the next request)."},
			[]string{"outcome"}),
		loadFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_live_user_load_failures_total",
			Help: "Loads of a user's stored state that failed or timed out, also those no request waited for any more."}),
		loadBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_live_user_load_batch_users",
			Help:    "Users per batched load (a Loader that reads many users at once).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_live_user_load_seconds",
			Help:    "Time to load one user's stored state (follows and watch history).",
			Buckets: prometheus.ExponentialBuckets(1e-4, 4, 9)}),
	}
	for _, o := range []LoadOutcome{LoadOK, LoadLate, LoadError} {
		m.loads.WithLabelValues(string(o))
	}
	for _, t := range lr.EventTypes {
		m.types[t] = m.applied.WithLabelValues(string(t))
	}
	if reg != nil {
		reg.MustRegister(m.live, m.dupes, m.ignored, m.expired, m.apply, m.applied,
			m.users, m.evicted, m.loads, m.loadFailures, m.loadSeconds, m.loadBatch)
	}
	return m
}

func (m *metrics) byType(t lr.EventType) {
	if c := m.types[t]; c != nil {
		c.Inc()
	}
}
