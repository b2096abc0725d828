// Package online computes experiments' reports from the store: one
// report on demand (the experiment report command), and the reports of
// the serving experiments kept fresh in the serve process, exported as
// Prometheus metrics per arm and handed to the dashboard (Reporter).
package online

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
)

// Store is what reports are read from (postgres.DB).
type Store interface {
	// ExperimentByName returns the experiment; lr.ENOTFOUND if none.
	ExperimentByName(ctx context.Context, name string) (lr.Experiment, error)
	// ServingExperiments returns the running and paused experiments.
	ServingExperiments(ctx context.Context) ([]lr.Experiment, error)
	// ExperimentOutcomes reads e's aggregates for a resolved q.
	ExperimentOutcomes(ctx context.Context, e *lr.Experiment, q experiment.Query) (experiment.Outcomes, error)
}

// Report computes the report of the experiment named name from s for q
// (its zero fields defaulted by experiment.Query.Resolve at now). It
// returns lr.ENOTFOUND for an unknown experiment, lr.EINVALID for a bad
// query, and the store's error when it cannot read.
func Report(ctx context.Context, s Store, name string, q experiment.Query, now time.Time) (experiment.Report, error) {
	e, err := s.ExperimentByName(ctx, name)
	if err != nil {
		return experiment.Report{}, err
	}
	return reportOf(ctx, s, &e, q, now)
}

func reportOf(ctx context.Context, s Store, e *lr.Experiment, q experiment.Query, now time.Time) (experiment.Report, error) {
	q, err := q.Resolve(e, now)
	if err != nil {
		return experiment.Report{}, err
	}
	o, err := s.ExperimentOutcomes(ctx, e, q)
	if err != nil {
		return experiment.Report{}, err
	}
	return experiment.Build(e, q, o, now), nil
}

// Config configures a Reporter.
type Config struct {
	Store Store
	// Query is the labelling of every report (its From and To are
	// ignored: each report covers its experiment from its start to now
	// minus Query.Within).
	Query experiment.Query
	// Every is how often Run refreshes the reports (0: a minute); one
	// refresh may take at most that long.
	Every      time.Duration
	Registerer prometheus.Registerer // nil: no metrics
	Log        *slog.Logger          // nil: no logging
	Now        func() time.Time      // nil: time.Now
}

// Reporter keeps the reports of the serving (running or paused)
// experiments, refreshed from the store every Config.Every. A failed
// refresh keeps the last reports (of an experiment whose query failed,
// its last report) and is counted; it never touches serving. It is
// safe for concurrent use.
type Reporter struct {
	cfg  Config
	mu   sync.Mutex // one refresh at a time
	cur  atomic.Pointer[snapshot]
	runs *prometheus.CounterVec
	took prometheus.Gauge
}

// snapshot is the reports of one refresh, in the serving experiments'
// order, and the last refresh's error (nil: it succeeded).
type snapshot struct {
	reports []experiment.Report
	err     error
}

// New returns a Reporter that has computed nothing yet (see Refresh and
// Run) and registers its metrics with cfg.Registerer.
func New(cfg Config) *Reporter {
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	r := &Reporter{cfg: cfg,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "liverecall_experiment_report_refreshes_total",
			Help: "Experiment report computations by result: ok, or error (the store could not be read: the last report is kept)."}, []string{"result"}),
		took: prometheus.NewGauge(prometheus.GaugeOpts{Name: "liverecall_experiment_report_refresh_seconds",
			Help: "How long the last refresh of the serving experiments' reports took."}),
	}
	r.runs.WithLabelValues("ok")
	r.runs.WithLabelValues("error")
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(r.runs, r.took, collector{r})
	}
	return r
}

// Reports returns the last refresh's reports of the serving experiments
// (a copy of the list; the reports themselves are shared and must not
// be modified). Before any refresh it returns lr.EUNAVAILABLE; after a
// failed one, the reports kept and no error (each report says when it
// was computed).
func (r *Reporter) Reports(ctx context.Context) ([]experiment.Report, error) {
	s := r.cur.Load()
	if s == nil {
		return nil, lr.Errorf(lr.EUNAVAILABLE, "experiment reports are not computed yet")
	}
	if s.reports == nil && s.err != nil {
		return nil, lr.E("experiment reports", lr.EUNAVAILABLE, s.err)
	}
	return slices.Clone(s.reports), nil
}

// Refresh recomputes the reports of the serving experiments, within
// Config.Every. It returns the first error: the list of experiments
// unreadable (every report kept) or an experiment's outcomes unreadable
// (its last report kept, the others refreshed).
func (r *Reporter) Refresh(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Every)
	defer cancel()
	start := time.Now()
	defer func() { r.took.Set(time.Since(start).Seconds()) }()
	prev := map[string]experiment.Report{}
	var kept []experiment.Report
	if s := r.cur.Load(); s != nil {
		kept = s.reports
		for _, rep := range s.reports {
			prev[rep.Experiment] = rep
		}
	}
	exps, err := r.cfg.Store.ServingExperiments(ctx)
	if err != nil {
		r.runs.WithLabelValues("error").Inc()
		r.cfg.Log.Warn("experiment reports: cannot list the serving experiments; keeping the last reports", "err", err)
		r.cur.Store(&snapshot{reports: kept, err: err})
		return err
	}
	var first error
	reports := make([]experiment.Report, 0, len(exps))
	for i := range exps {
		e := &exps[i]
		if e.Start.After(r.cfg.Now()) {
			continue // nothing to report yet
		}
		q := r.cfg.Query
		q.From, q.To = time.Time{}, time.Time{}
		rep, err := reportOf(ctx, r.cfg.Store, e, q, r.cfg.Now())
		switch {
		case err == nil:
			r.runs.WithLabelValues("ok").Inc()
			reports = append(reports, rep)
		case lr.ErrorCode(err) == lr.EINVALID:
			// The window is still empty (started less than Within ago).
		default:
			r.runs.WithLabelValues("error").Inc()
			r.cfg.Log.Warn("experiment report failed; keeping its last report", "experiment", e.Name, "err", err)
			if first == nil {
				first = err
			}
			if old, ok := prev[e.Name]; ok {
				old.Status = e.Status
				reports = append(reports, old)
			}
		}
	}
	r.cur.Store(&snapshot{reports: reports, err: first})
	return first
}

// Run refreshes the reports now and then every Config.Every until ctx
// ends.
func (r *Reporter) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	for {
		if err := r.Refresh(ctx); err != nil && ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
