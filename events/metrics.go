package events

import (
	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
)

// Metrics are the Prometheus metrics of the Kafka edge: NewLiveMetrics
// registers those of the live consumer (serve), NewSinkMetrics those of
// the sink, so neither process exports metrics it never updates.
type Metrics struct {
	consumedVec        *prometheus.CounterVec
	consumedBy         map[lr.EventType]prometheus.Counter
	decodeFailures     prometheus.Counter
	deadLettered       prometheus.Counter
	deadLetterFailures prometheus.Counter
	lag                *prometheus.GaugeVec
	staleness          prometheus.Gauge
	caughtUp           prometheus.Gauge
	brokerErrors       prometheus.Counter
	brokerUp           prometheus.Gauge
	sinkBatches        prometheus.Counter
	sinkEvents         prometheus.Counter
	sinkSeconds        prometheus.Histogram
	sinkUnpaired       *prometheus.CounterVec
}

// NewLiveMetrics creates the metrics of a process that runs the live
// consumer (serve) and registers with reg, unless it is nil, the ones the
// live consumer updates: events consumed, decode failures, lag,
// staleness, caught-up, broker errors and broker up. The sink's own
// metrics are not registered, so the process does not export them.
func NewLiveMetrics(reg prometheus.Registerer) *Metrics {
	m := newMetrics()
	if reg != nil {
		reg.MustRegister(m.consumedVec, m.decodeFailures, m.lag, m.staleness, m.caughtUp, m.brokerErrors, m.brokerUp)
	}
	return m
}

// NewSinkMetrics creates the metrics of the sink's process and registers
// with reg, unless it is nil, the ones the sink updates: events consumed,
// decode failures, dead letters and their failures, broker errors, and
// the sink's batches, events, batch time and unpaired viewer events. The
// live consumer's lag, staleness, caught-up and broker-up gauges are not
// registered.
func NewSinkMetrics(reg prometheus.Registerer) *Metrics {
	m := newMetrics()
	if reg != nil {
		reg.MustRegister(m.consumedVec, m.decodeFailures, m.deadLettered, m.deadLetterFailures, m.brokerErrors,
			m.sinkBatches, m.sinkEvents, m.sinkSeconds, m.sinkUnpaired)
	}
	return m
}

// newMetrics creates every metric of the Kafka edge, unregistered.
func newMetrics() *Metrics {
	m := &Metrics{
		consumedVec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_events_consumed_total",
			Help: "Events read and decoded, by type."}, []string{"type"}),
		consumedBy: map[lr.EventType]prometheus.Counter{},
		decodeFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_events_decode_failures_total",
			Help: "Messages that did not decode or validate (bad input), skipped (and dead-lettered by the sink)."}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_events_dead_lettered_total",
			Help: "Bad messages written to the dead-letter topic (by the sink; once per source offset)."}),
		deadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_events_dead_letter_failures_total",
			Help: "Failed attempts to write a dead letter; each is retried until the broker takes it."}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_events_lag_messages",
			Help: "Messages between the newest high-water mark seen and the next offset to apply, per partition."}, []string{"topic", "partition"}),
		staleness: prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_events_staleness_seconds",
			Help: "Age of the newest broker high-water-mark poll whose offsets are all applied; grows while the broker is unreachable or the consumer falls behind."}),
		caughtUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_events_caught_up",
			Help: "1 once every partition was applied up to its high-water mark at start."}),
		brokerErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_events_broker_errors_total",
			Help: "Failed requests to the Kafka brokers (each is retried with backoff)."}),
		brokerUp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_events_broker_up",
			Help: "1 if the last high-water mark poll succeeded."}),
		sinkBatches: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_sink_batches_total",
			Help: "Batches written to Postgres and committed to Kafka by the sink."}),
		sinkEvents: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_sink_events_total",
			Help: "Events the sink wrote (including replays the database dropped as already written)."}),
		sinkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_sink_batch_seconds",
			Help: "Time to write one batch to Postgres.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		sinkUnpaired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_sink_unpaired_events_total",
			Help: "Viewer events the sink could not pair into a watch session, by kind: leave_without_join (no join of the user and stream came within the expiry), duplicate_join (a join while the user was already in the stream)."}, []string{"kind"}),
	}
	for _, k := range []string{"leave_without_join", "duplicate_join"} {
		m.sinkUnpaired.WithLabelValues(k)
	}
	for _, t := range lr.EventTypes {
		m.consumedBy[t] = m.consumedVec.WithLabelValues(string(t))
	}
	return m
}

func (m *Metrics) consumed(t lr.EventType) {
	if c := m.consumedBy[t]; c != nil {
		c.Inc()
	}
}

// SinkUnpaired counts viewer events the sink's store could not pair into a
// watch session (postgres.SinkResult.Unpaired and DuplicateJoins): leaves
// given up without a join, and joins repeated while the user was already in
// the stream. The SinkStore adapter calls it after each write.
func (m *Metrics) SinkUnpaired(leaves, duplicateJoins int) {
	if leaves > 0 {
		m.sinkUnpaired.WithLabelValues("leave_without_join").Add(float64(leaves))
	}
	if duplicateJoins > 0 {
		m.sinkUnpaired.WithLabelValues("duplicate_join").Add(float64(duplicateJoins))
	}
}
