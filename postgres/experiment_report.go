package postgres

import (
	"context"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/experiment"
)

// experimentOutcomesSQL labels each impression of one experiment in a
// window as LabeledImpressions does (watched: its user's longest watch of
// its streamer starting within the window after it lasted at least N
// seconds; its seconds; a gift during such a watch; a follow within the
// window), once, and aggregates the labelled rows three ways in the same
// statement: per arm (the team in an interleaving experiment) and user
// (kind 0), per arm and time bucket (kind 1), and per page, into the
// count of pages each team won and of ties (kind 2, interleaving only).
//
// The watches are joined in bulk — the experiment's users' sessions
// started in the window, hash-joined to the impressions on user and
// streamer — rather than looked up per impression (a LATERAL index
// lookup per impression was the slower plan on a few hundred thousand
// impressions).
//
// $1 experiment, $2/$3 the [from, to) window, $4 the window after an
// impression (s), $5 N (s), $6 the bucket width (s), $7/$8 the two arms
// of an interleaving experiment, $9 whether to count pages.
const experimentOutcomesSQL = `
WITH shown AS MATERIALIZED (
	SELECT i.request_id, i.position, i.user_id, i.streamer_id, i.shown_at, COALESCE(NULLIF(i.team, ''), i.arm) AS arm
	FROM impressions i
	WHERE i.experiment = $1 AND i.shown_at >= $2 AND i.shown_at < $3
	  AND COALESCE(NULLIF(i.team, ''), i.arm) IS NOT NULL
),
ws AS (
	SELECT w.user_id, w.streamer_id, w.started_at, w.seconds,
	       EXISTS (SELECT 1 FROM gifts g
	                WHERE g.user_id = w.user_id AND g.streamer_id = w.streamer_id
	                  AND g.sent_at >= w.started_at AND g.sent_at <= w.ended_at) AS gift
	FROM watch_sessions w
	WHERE w.started_at >= $2 AND w.started_at < $3::timestamptz + $4 * interval '1 second'
	  AND w.user_id IN (SELECT user_id FROM shown)
),
imp AS MATERIALIZED (
	SELECT i.request_id, i.user_id, i.shown_at, i.arm,
	       COALESCE(max(ws.seconds), 0)::float8 AS secs,
	       COALESCE(max(ws.seconds) >= $5, false) AS watched,
	       COALESCE(bool_or(ws.gift), false) AS gift,
	       EXISTS (SELECT 1 FROM follows f
	                WHERE f.user_id = i.user_id AND f.streamer_id = i.streamer_id
	                  AND f.created_at >= i.shown_at AND f.created_at < i.shown_at + $4 * interval '1 second') AS follow
	FROM shown i
	LEFT JOIN ws ON ws.user_id = i.user_id AND ws.streamer_id = i.streamer_id
	            AND ws.started_at >= i.shown_at AND ws.started_at < i.shown_at + $4 * interval '1 second'
	GROUP BY i.request_id, i.position, i.user_id, i.streamer_id, i.shown_at, i.arm
)
SELECT 0 AS kind, arm, NULL::timestamptz AS t, count(*) AS imps, count(*) FILTER (WHERE watched), sum(secs),
       count(*) FILTER (WHERE gift), count(*) FILTER (WHERE follow)
FROM imp GROUP BY arm, user_id
UNION ALL
SELECT 1, arm, date_bin($6 * interval '1 second', shown_at, timestamptz '2000-01-01 00:00:00+00'), count(*), count(*) FILTER (WHERE watched), sum(secs),
       count(*) FILTER (WHERE gift), count(*) FILTER (WHERE follow)
FROM imp GROUP BY arm, 3
UNION ALL
SELECT 2, NULL, NULL, count(*) FILTER (WHERE w0 > w1), count(*) FILTER (WHERE w1 > w0), 0,
       count(*) FILTER (WHERE w0 = w1 AND w0 > 0), 0
FROM (SELECT count(*) FILTER (WHERE watched AND arm = $7) AS w0, count(*) FILTER (WHERE watched AND arm = $8) AS w1
      FROM imp GROUP BY request_id, user_id) pages
WHERE $9::boolean
ORDER BY 1, 3, 2`

// ExperimentOutcomes reads what e's report is computed from (see
// experiment.Outcomes) for q, which must be resolved (Query.Resolve):
// e's impressions shown in [q.From, q.To), labelled by q.WatchSeconds and
// q.Within, aggregated in PostgreSQL per user and arm (per team in an
// interleaving experiment), per q.Bucket (aligned to UTC hours from
// 2000-01-01) and arm, and per page. The statement reads each impression
// once. An experiment with no impressions gives empty Outcomes.
func (db *DB) ExperimentOutcomes(ctx context.Context, e *lr.Experiment, q experiment.Query) (experiment.Outcomes, error) {
	const op = "postgres.ExperimentOutcomes"
	var a0, a1 string
	if len(e.Arms) == 2 {
		a0, a1 = e.Arms[0].Name, e.Arms[1].Name
	}
	rows, err := db.Pool.Query(ctx, experimentOutcomesSQL, e.Name, q.From, q.To, q.Within.Seconds(), q.WatchSeconds,
		q.Bucket.Seconds(), a0, a1, e.Mode == lr.ModeInterleave)
	if err != nil {
		return experiment.Outcomes{}, lr.E(op, lr.EINTERNAL, err)
	}
	defer rows.Close()
	o := experiment.Outcomes{Users: map[string][]experiment.UserAgg{}, Series: map[string][]experiment.SeriesBucket{}}
	for rows.Next() {
		var kind int32
		var arm *string
		var t *time.Time
		var u experiment.UserAgg
		if err := rows.Scan(&kind, &arm, &t, &u.Impressions, &u.Watched, &u.WatchSeconds, &u.Gifts, &u.Follows); err != nil {
			return experiment.Outcomes{}, lr.E(op, lr.EINTERNAL, err)
		}
		switch kind {
		case 0:
			o.Users[*arm] = append(o.Users[*arm], u)
		case 1:
			o.Series[*arm] = append(o.Series[*arm], experiment.SeriesBucket{Time: *t, Totals: u})
		case 2:
			o.Wins, o.Ties = [2]int64{u.Impressions, u.Watched}, u.Gifts
		}
	}
	return o, lr.E(op, lr.EINTERNAL, rows.Err())
}
