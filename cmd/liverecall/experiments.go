package main

import (
	"context"
	"maps"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
)

// armVersions returns the model versions the arms of exps name: by kind
// (each of kinds present, empty when none is named, so that Serve drops
// what is no longer wanted) and the reranker versions, each once, sorted.
func armVersions(exps []lr.Experiment, kinds []lr.ModelKind) (map[lr.ModelKind][]string, []string) {
	want := map[lr.ModelKind]map[string]bool{}
	for _, k := range kinds {
		want[k] = map[string]bool{}
	}
	rr := map[string]bool{}
	for _, e := range exps {
		for _, a := range e.Arms {
			for k, v := range map[lr.ModelKind]string{lr.ModelMF: a.Config.MFVersion, lr.ModelNCF: a.Config.NCFVersion} {
				if v != "" && want[k] != nil {
					want[k][v] = true
				}
			}
			if a.Config.RerankVersion != "" {
				rr[a.Config.RerankVersion] = true
			}
		}
	}
	out := map[lr.ModelKind][]string{}
	for k, vs := range want {
		out[k] = slices.Sorted(maps.Keys(vs))
	}
	return out, slices.Sorted(maps.Keys(rr))
}

// syncExperiments reads the serving experiments (running or paused) from
// Postgres, hands them to the recommendation service (which assigns users
// from then on) and loads the model versions their arms name beside the
// active ones, dropping those no longer named. Until a version is loaded,
// and when it cannot be, the arms naming it get the default configuration
// (recommend counts those fallbacks; the index and the models report the
// version in /v1/admin/status and their metrics). When the experiments
// cannot be read, everything serving is kept.
func (s *service) syncExperiments(ctx context.Context) {
	exps, err := s.db.ServingExperiments(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.app.Log.Warn("serving experiments not read; the experiments and versions serving are kept", "err", err)
		}
		return
	}
	if err := s.experiments.Set(exps); err != nil {
		s.app.Log.Warn("experiments left out: their users get the default configuration", "err", err)
	}
	want, rerankVersions := armVersions(exps, s.idx.Kinds())
	// The index and the models log each version they cannot load, once per
	// distinct error (a standing failure is not repeated at every check),
	// and report it in the status and the metrics.
	_, _ = s.idx.Serve(ctx, want)
	// NeuMF scorers of the NCF versions the index serves for experiments
	// (without their index an arm falls back anyway).
	var ncf []lr.ModelVersion
	for _, v := range want[lr.ModelNCF] {
		if mv, ok := s.idx.ModelByVersion(lr.ModelNCF, v); ok {
			ncf = append(ncf, mv)
		}
	}
	_ = s.models.ServeExtra(ctx, rerankVersions, ncf)
}

// runExperiments syncs the experiments (syncExperiments) once the active
// indexes are loaded (loaded closed), then at every change announced on
// postgres.ExperimentsChannel and every checkEvery (a missed notification
// heals), until ctx ends.
func (s *service) runExperiments(ctx context.Context, loaded <-chan struct{}, checkEvery time.Duration) {
	select {
	case <-ctx.Done():
		return
	case <-loaded:
	}
	trigger := make(chan struct{}, 1)
	poke := func(string) {
		select {
		case trigger <- struct{}{}:
		default:
		}
	}
	go func() {
		if err := s.db.Listen(ctx, postgres.ExperimentsChannel, poke); err != nil && ctx.Err() == nil {
			s.app.Log.Error("experiments listener stopped; periodic checks continue", "err", err)
		}
	}()
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		s.syncExperiments(ctx)
		select {
		case <-ctx.Done():
			return
		case <-trigger:
		case <-t.C:
		}
	}
}
