package experiment

import (
	"time"

	lr "github.com/liverecall/liverecall"
)

// Query says which impressions of an experiment a report reads and how
// they are labelled.
type Query struct {
	// From and To bound the impressions' shown_at, [From, To). Resolve
	// fills them in: From the experiment's start, To the last instant
	// whose impressions have had their whole Within window.
	From, To time.Time
	// WatchSeconds and Within label an impression watched when a watch
	// of its streamer by its user of at least WatchSeconds started
	// within Within after it (gifts are counted during such watches,
	// follows within Within).
	WatchSeconds int
	Within       time.Duration
	// Bucket is the width of the series' time buckets (0: an hour).
	Bucket time.Duration
}

// DefaultWatchSeconds and DefaultWithin are the labelling of a Query
// that says none: the reranker's training label (train
// --rerank-min-seconds, --rerank-watch-within).
const (
	DefaultWatchSeconds = 60
	DefaultWithin       = 10 * time.Minute
)

// Resolve returns q with its zero fields defaulted for e at time now:
// From e.Start, To now − Within (impressions younger than that may still
// be followed by a watch; before e.End when that is earlier), the
// default labelling and an hour's buckets. It refuses (lr.EINVALID)
// negative figures and an empty window.
func (q Query) Resolve(e *lr.Experiment, now time.Time) (Query, error) {
	if q.WatchSeconds < 0 || q.Within < 0 || q.Bucket < 0 {
		return q, lr.Errorf(lr.EINVALID, "experiment report: watch seconds %d, within %s and bucket %s must not be negative", q.WatchSeconds, q.Within, q.Bucket)
	}
	if q.WatchSeconds == 0 {
		q.WatchSeconds = DefaultWatchSeconds
	}
	if q.Within == 0 {
		q.Within = DefaultWithin
	}
	if q.Bucket == 0 {
		q.Bucket = time.Hour
	}
	if q.From.IsZero() {
		q.From = e.Start
	}
	if q.To.IsZero() {
		q.To = now.Add(-q.Within)
		if !e.End.IsZero() && e.End.Before(q.To) {
			q.To = e.End
		}
	}
	if !q.To.After(q.From) {
		return q, lr.Errorf(lr.EINVALID, "experiment %s: report window from %s to %s is empty", e.Name, q.From.UTC().Format(time.RFC3339), q.To.UTC().Format(time.RFC3339))
	}
	return q, nil
}

// Outcomes is what a report is computed from: the aggregates the store
// reads for one experiment and Query.
type Outcomes struct {
	// Users holds, by arm name (ModeInterleave: by team), one aggregate
	// per user with impressions in the window.
	Users map[string][]UserAgg
	// Series holds, by arm name, the totals per time bucket, oldest
	// first; buckets with no impressions are absent.
	Series map[string][]SeriesBucket
	// Wins and Ties are the page outcomes of an interleaving experiment
	// (Wins[i]: pages won by e.Arms[i]'s team; see PageWinner).
	Wins [2]int64
	Ties int64
}

// SeriesBucket is an arm's totals over the impressions of one time bucket.
type SeriesBucket struct {
	Time   time.Time
	Totals UserAgg
}

// Build is e's report of o, read for q (resolved) at time now: Analyze
// of o.Users, with the window, the labelling, the series and (for
// ModeInterleave) the page wins.
func Build(e *lr.Experiment, q Query, o Outcomes, now time.Time) Report {
	r := Analyze(e, o.Users)
	r.GeneratedAt, r.From, r.To = now.UTC(), q.From.UTC(), q.To.UTC()
	r.WatchSeconds, r.WithinSeconds = q.WatchSeconds, int(q.Within/time.Second)
	for i := range r.Arms {
		for _, b := range o.Series[r.Arms[i].Arm] {
			r.Arms[i].Series = append(r.Arms[i].Series, Point{Time: b.Time.UTC(), Impressions: b.Totals.Impressions, Metrics: b.Totals.Metrics()})
		}
	}
	if e.Mode == lr.ModeInterleave {
		r.Interleaving = Interleave(e, o.Wins, o.Ties)
	}
	return r
}
