package foldin

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	outcomes     *prometheus.CounterVec
	skippedRate  prometheus.Counter
	skippedQueue prometheus.Counter
	coalesced    prometheus.Counter
	solve        prometheus.Histogram
	delay        prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, f *Folder) *metrics {
	skipped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_foldin_skipped_total",
		Help: "Fold-ins of user vectors not done, by reason: rate (over the per-second cap) or queue_full (too many users waiting); the user's next watch event schedules one again."},
		[]string{"reason"})
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_foldin_total",
			Help: "Fold-ins of user MF vectors by outcome: done (a folded vector serves), empty (no watch to fold in), failed (the solve did not give a finite vector: the nightly vector serves), error (the nightly vector or the Gramian could not be read), no_model."},
			[]string{"outcome"}),
		skippedRate:  skipped.WithLabelValues("rate"),
		skippedQueue: skipped.WithLabelValues("queue_full"),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_foldin_coalesced_total",
			Help: "Watch events whose user was already waiting for a fold-in (debounced into it)."}),
		solve: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_foldin_solve_seconds",
			Help:    "Time of one fold-in solve.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .05}}),
		delay: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_foldin_delay_seconds",
			Help:    "From a user's first watch event of a fold-in to the folded vector serving (the debounce included).",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 1.5, 2, 3, 5, 10, 30}}),
	}
	if reg != nil {
		vectors := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_foldin_vectors",
			Help: "Folded user vectors held in memory."}, func() float64 { return float64(f.Len()) })
		pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_foldin_pending",
			Help: "Users waiting for a fold-in."}, func() float64 { return float64(f.Pending()) })
		reg.MustRegister(m.outcomes, skipped, m.coalesced, m.solve, m.delay, vectors, pending)
	}
	return m
}
