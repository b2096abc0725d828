package userstore

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	lookups struct {
		hit, negHit, miss, prefetched, bypass prometheus.Counter
	}
	fetches struct {
		ok, late, err prometheus.Counter
	}
	queries struct {
		ok, timeout, err, slots prometheus.Counter
	}
	lookupVec, fetchVec, queryVec *prometheus.CounterVec
	generations, prefetches       prometheus.Counter
	batchSize, querySeconds       prometheus.Histogram
	bytes, entries                prometheus.GaugeFunc
}

func newMetrics(s *Store) *metrics {
	m := &metrics{}
	m.lookupVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_userstore_lookups_total",
		Help: "User row lookups by result: hit (a cached row), negative_hit (a cached unknown user), miss (read from the store), prefetched_miss (a miss whose read a Prefetch of the same request started earlier: counted as a miss even when the row had arrived), bypass (a request on a replaced generation's versions, read without the cache)."},
		[]string{"result"})
	m.lookups.hit = m.lookupVec.WithLabelValues("hit")
	m.lookups.negHit = m.lookupVec.WithLabelValues("negative_hit")
	m.lookups.miss = m.lookupVec.WithLabelValues("miss")
	m.lookups.prefetched = m.lookupVec.WithLabelValues("prefetched_miss")
	m.lookups.bypass = m.lookupVec.WithLabelValues("bypass")
	m.fetchVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_userstore_fetches_total",
		Help: "Fetch outcomes: ok, late (the caller's deadline passed first; its row is still cached when it arrives), error (the store failed)."},
		[]string{"outcome"})
	m.fetches.ok = m.fetchVec.WithLabelValues("ok")
	m.fetches.late = m.fetchVec.WithLabelValues("late")
	m.fetches.err = m.fetchVec.WithLabelValues("error")
	m.queryVec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_userstore_queries_total",
		Help: "Batch queries by outcome: ok, timeout (the query did not answer within the query timeout), error (the store failed it: a lost connection, a refused query), no_slot (every query slot stayed busy for the query timeout)."},
		[]string{"outcome"})
	m.queries.ok = m.queryVec.WithLabelValues("ok")
	m.queries.timeout = m.queryVec.WithLabelValues("timeout")
	m.queries.err = m.queryVec.WithLabelValues("error")
	m.queries.slots = m.queryVec.WithLabelValues("no_slot")
	m.generations = prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_userstore_generations_replaced_total",
		Help: "Cache generations replaced by requests with new model versions (their entries dropped)."})
	m.prefetches = prometheus.NewCounter(prometheus.CounterOpts{Name: "liverecall_userstore_prefetches_total",
		Help: "Reads ahead of a request's lookup (Prefetch) of a user the cache did not hold: each started a read or joined the one in flight."})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_userstore_batch_users",
		Help:    "Users per batch query.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10)})
	m.querySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "liverecall_userstore_query_seconds",
		Help:    "Duration of a batch query to the store.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	m.bytes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_userstore_cache_bytes",
		Help: "Weight of the current generation's cache (vector bytes plus a fixed overhead per entry)."},
		func() float64 { b, _ := s.size(); return float64(b) })
	m.entries = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "liverecall_userstore_cache_entries",
		Help: "Users in the current generation's cache, unknown users included."},
		func() float64 { _, n := s.size(); return float64(n) })
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.lookupVec, m.fetchVec, m.queryVec, m.generations, m.prefetches, m.batchSize, m.querySeconds, m.bytes, m.entries}
}
