package online

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/liverecall/liverecall/experiment"
)

// The per-arm metrics, drawn from the last reports at each scrape: the
// labels are the serving experiments, their arms and the report's four
// metric names, so an experiment's series end when it stops.
var (
	descUsers = prometheus.NewDesc("liverecall_experiment_users",
		"Users with impressions in the arm (interleaving: the team) since the experiment's start.", []string{"experiment", "arm"}, nil)
	descImpressions = prometheus.NewDesc("liverecall_experiment_impressions",
		"Impressions of the arm (interleaving: positions the team contributed) in the report's window.", []string{"experiment", "arm"}, nil)
	descMetric = prometheus.NewDesc("liverecall_experiment_metric",
		"The arm's value of a report metric (watch_through_rate, watch_seconds_per_impression, gifts_per_1000_impressions, follows_per_1000_impressions).", []string{"experiment", "arm", "metric"}, nil)
	descDiff = prometheus.NewDesc("liverecall_experiment_diff",
		"The arm's difference against control in a metric (arm - control).", []string{"experiment", "arm", "metric"}, nil)
	descDiffLow = prometheus.NewDesc("liverecall_experiment_diff_ci_low",
		"Lower end of the 95% confidence interval of the arm's difference against control (delta method).", []string{"experiment", "arm", "metric"}, nil)
	descDiffHigh = prometheus.NewDesc("liverecall_experiment_diff_ci_high",
		"Upper end of the 95% confidence interval of the arm's difference against control (delta method).", []string{"experiment", "arm", "metric"}, nil)
	descDiffP = prometheus.NewDesc("liverecall_experiment_diff_p",
		"Two-sided p-value of the arm's difference against control being 0.", []string{"experiment", "arm", "metric"}, nil)
	descSRMChi = prometheus.NewDesc("liverecall_experiment_srm_chi_square",
		"Chi-square of the users per arm against the arms' configured shares (A/B experiments).", []string{"experiment"}, nil)
	descSRMP = prometheus.NewDesc("liverecall_experiment_srm_p",
		"P-value of the sample-ratio-mismatch check; a small value means the assignment is broken.", []string{"experiment"}, nil)
	descWins = prometheus.NewDesc("liverecall_experiment_interleaving_wins",
		"Interleaved pages the arm's team won (more watched positions than the other team's).", []string{"experiment", "arm"}, nil)
	descTies = prometheus.NewDesc("liverecall_experiment_interleaving_ties",
		"Interleaved pages with watches where both teams drew as many.", []string{"experiment"}, nil)
	descWinP = prometheus.NewDesc("liverecall_experiment_interleaving_p",
		"Two-sided sign-test p-value of the interleaving wins.", []string{"experiment"}, nil)
	descAt = prometheus.NewDesc("liverecall_experiment_report_timestamp_seconds",
		"When the experiment's exported report was computed (Unix time): old while its refreshes fail.", []string{"experiment"}, nil)
)

// collector exports the Reporter's last reports.
type collector struct{ r *Reporter }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descUsers, descImpressions, descMetric, descDiff, descDiffLow, descDiffHigh, descDiffP,
		descSRMChi, descSRMP, descWins, descTies, descWinP, descAt} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.cur.Load()
	if s == nil {
		return
	}
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for _, rep := range s.reports {
		x := rep.Experiment
		g(descAt, float64(rep.GeneratedAt.UnixNano())/1e9, x)
		for _, a := range rep.Arms {
			g(descUsers, float64(a.Users), x, a.Arm)
			g(descImpressions, float64(a.Impressions), x, a.Arm)
			for _, m := range experiment.Metrics {
				g(descMetric, a.Metrics[m], x, a.Arm, m)
				if d, ok := a.Diffs[m]; ok {
					g(descDiff, d.Delta, x, a.Arm, m)
					g(descDiffLow, d.Low, x, a.Arm, m)
					g(descDiffHigh, d.High, x, a.Arm, m)
					g(descDiffP, d.P, x, a.Arm, m)
				}
			}
		}
		if rep.SRM != nil {
			g(descSRMChi, rep.SRM.ChiSquare, x)
			g(descSRMP, rep.SRM.P, x)
		}
		if in := rep.Interleaving; in != nil {
			for arm, w := range in.Wins {
				g(descWins, float64(w), x, arm)
			}
			g(descTies, float64(in.Ties), x)
			g(descWinP, in.P, x)
		}
	}
}
