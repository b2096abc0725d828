package main

import (
	"time"

	"github.com/liverecall/liverecall/experiment"
	"github.com/liverecall/liverecall/experiment/online"
)

// experimentReportConfig is the experiment-report part of serviceConfig.
type experimentReportConfig struct {
	every        time.Duration // 0: never refreshed
	watchSeconds int
	within       time.Duration
}

// newExperimentReports makes the serve process's Reporter: the running
// and paused experiments' reports, recomputed from PostgreSQL every
// cfg.experimentReports.every by run, exported as liverecall_experiment_*
// metrics and given to the dashboard (Reports). A failed refresh keeps
// the last reports; requests never wait for one.
func (s *service) newExperimentReports() *online.Reporter {
	c := s.cfg.experimentReports
	return online.New(online.Config{Store: s.db, Query: experiment.Query{WatchSeconds: c.watchSeconds, Within: c.within},
		Every: c.every, Registerer: s.reg, Log: s.app.Log.With("part", "experiment-reports")})
}
