package index

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	version    *prometheus.GaugeVec
	vectors    *prometheus.GaugeVec
	live       *prometheus.GaugeVec
	buildSecs  *prometheus.GaugeVec
	recall     *prometheus.GaugeVec
	lastReload *prometheus.GaugeVec
	failures   *prometheus.CounterVec
	searches   *prometheus.CounterVec

	servingVersions *prometheus.GaugeVec
	extraFailures   *prometheus.CounterVec
}

// newMetrics registers the index metrics with reg (nil: not registered).
func newMetrics(reg prometheus.Registerer) *metrics {
	kind := []string{"kind"}
	m := &metrics{
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_model_id",
			Help: "Id (embedding_models.id) of the model version the index of each kind serves."}, kind),
		vectors: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_vectors",
			Help: "Streamer vectors in the serving index."}, kind),
		live: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_live_vectors",
			Help: "Rows of the compact live matrix of the serving index."}, kind),
		buildSecs: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_last_build_seconds",
			Help: "Duration of the last successful rebuild (load, validate, build, self-check)."}, kind),
		recall: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_selfcheck_recall",
			Help: "Recall@10 of the serving index against exact search on a sample, measured before the swap."}, kind),
		lastReload: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful swap."}, kind),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_index_reload_failures_total",
			Help: "Rebuilds refused or failed; the serving index was kept."}, kind),
		searches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_index_searches_total",
			Help: "Searches by the strategy the planner chose (hnsw or exact)."}, []string{"kind", "strategy"}),
		servingVersions: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "liverecall_index_serving_versions",
			Help: "1 for each model version of each kind this replica serves or was asked to: role active (the active version), experiment (loaded beside it for running experiments), loading, or failed (could not be loaded; its arms get the default configuration)."},
			[]string{"kind", "version", "role"}),
		extraFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_index_version_load_failures_total",
			Help: "Loads of extra serving versions (for experiments) that failed or were refused; the active index was kept."}, kind),
	}
	if reg != nil {
		reg.MustRegister(m.version, m.vectors, m.live, m.buildSecs, m.recall, m.lastReload, m.failures, m.searches, m.servingVersions, m.extraFailures)
	}
	return m
}
