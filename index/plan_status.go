package index

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// PlanSummary is the planner's state of one index in plain values (for
// the status): see PlannerStatus for the full table.
type PlanSummary struct {
	// Plan is "measured" (by the self-check's recall table and costs, for
	// RecallTarget) or "threshold" (no profile, or the target off).
	Plan         string
	RecallTarget float64
	// SearchEf is the ef of graph searches without a filter; 0 when the
	// plan scans them exactly (no swept ef reached the target, or the scan
	// is cheaper).
	SearchEf int
	// PlanEf is, per measured accepted share ("1" is no filter, "0.2" a
	// fifth of the index), the ef chosen (0: scanned exactly: no ef
	// reached the target), and PlanRecall the recall@10 the self-check
	// measured there (at the widest ef when none reached the target).
	PlanEf     map[string]int
	PlanRecall map[string]float64
}

// Summary returns x's PlanSummary.
func (x *Index) Summary() PlanSummary {
	p := x.planner
	if p == nil {
		return PlanSummary{Plan: "threshold", SearchEf: x.graph.efSearch}
	}
	s := PlanSummary{Plan: "measured", RecallTarget: p.target, PlanEf: map[string]int{}, PlanRecall: map[string]float64{}}
	if st, ef := p.choose(-1, x.graph.Len(), false); st == StrategyHNSW {
		s.SearchEf = ef
	}
	for _, r := range p.rows {
		key := shareLabel(r.Share)
		s.PlanEf[key], s.PlanRecall[key] = r.Ef, r.Recall
	}
	return s
}

func shareLabel(share float64) string { return strconv.FormatFloat(share, 'g', 3, 64) }

// planCollector exports, at each scrape, the plan of every serving index
// (the active version of each kind and those served for experiments):
// the ef chosen and the recall measured per accepted share, and the whole
// recall table of the self-check.
type planCollector struct {
	m                  *Manager
	planEf, planRecall *prometheus.Desc
	measured, searchEf *prometheus.Desc
}

func newPlanCollector(m *Manager) *planCollector {
	l := []string{"kind", "version", "share"}
	return &planCollector{m: m,
		planEf: prometheus.NewDesc("liverecall_index_plan_ef",
			"Beam (ef) the planner uses for graph searches at each measured accepted share (1: no filter): the smallest whose self-check recall@10 reached the target; 0: searches at that share scan exactly.", l, nil),
		planRecall: prometheus.NewDesc("liverecall_index_plan_recall",
			"Recall@10 the self-check measured at the planned ef for each accepted share (at the widest ef when none reached the target).", l, nil),
		measured: prometheus.NewDesc("liverecall_index_measured_recall",
			"Recall@10 of the graph against exact search the self-check measured per ef and accepted share.", append(l, "ef"), nil),
		searchEf: prometheus.NewDesc("liverecall_index_search_ef",
			"Beam of unfiltered graph searches of the serving index (0: they scan exactly).", []string{"kind", "version"}, nil),
	}
}

func (c *planCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.planEf
	ch <- c.planRecall
	ch <- c.measured
	ch <- c.searchEf
}

func (c *planCollector) Collect(ch chan<- prometheus.Metric) {
	for _, k := range c.m.cfg.Kinds {
		s := c.m.slots[k]
		cur := s.cur.Load()
		var xs []*Index
		if cur != nil {
			xs = append(xs, cur)
		}
		if e := s.extras.Load(); e != nil {
			for _, x := range e.byID {
				if x != cur {
					xs = append(xs, x)
				}
			}
		}
		for _, x := range xs {
			c.collect(ch, string(k), x)
		}
	}
}

// collect sends x's plan metrics.
func (c *planCollector) collect(ch chan<- prometheus.Metric, kind string, x *Index) {
	ver := x.Model.Version
	s := x.Summary()
	ch <- prometheus.MustNewConstMetric(c.searchEf, prometheus.GaugeValue, float64(s.SearchEf), kind, ver)
	for share, ef := range s.PlanEf {
		ch <- prometheus.MustNewConstMetric(c.planEf, prometheus.GaugeValue, float64(ef), kind, ver, share)
		ch <- prometheus.MustNewConstMetric(c.planRecall, prometheus.GaugeValue, s.PlanRecall[share], kind, ver, share)
	}
	if prof := x.profile; prof != nil {
		for si, share := range prof.Shares {
			for e, r := range prof.Recall[si] {
				ch <- prometheus.MustNewConstMetric(c.measured, prometheus.GaugeValue, r, kind, ver, shareLabel(share), strconv.Itoa(prof.Efs[e]))
			}
		}
	}
}
