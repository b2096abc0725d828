package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// WriteImpressions stores imps idempotently: a replayed impression (same
// shown_at, request id and position) is dropped by the primary key. An
// impression's context goes to the ctx_* columns (NULL for what it does
// not know), its experiment, arm and team to those columns (NULL when
// empty: the default configuration).
func (db *DB) WriteImpressions(ctx context.Context, imps []lr.Impression) error {
	if len(imps) == 0 {
		return nil
	}
	return lr.E("postgres.WriteImpressions", lr.EINTERNAL, pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE imp_in (LIKE impressions INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
			return err
		}
		i := 0
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"imp_in"},
			[]string{"shown_at", "request_id", "position", "user_id", "streamer_id", "stream_id", "score", "channels", "model_versions", "features",
				"ctx_hour", "ctx_weekday", "ctx_device", "ctx_language", "ctx_country", "experiment", "arm", "team"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i == len(imps) {
					return nil, nil
				}
				im := imps[i]
				i++
				if im.Channels == nil {
					im.Channels = []string{}
				}
				row := []any{im.ShownAt, im.RequestID, int16(im.Position), int64(im.UserID), int64(im.StreamerID), int64(im.StreamID),
					float32(im.Score), im.Channels, im.ModelVersions, im.Features, nil, nil, nil, nil, nil,
					nullText(im.Experiment), nullText(im.Arm), nullText(im.Team)}
				if c := im.Context; c != nil {
					if c.LocalTime {
						row[10], row[11] = int16(c.Hour), int16(c.Weekday)
					}
					row[12], row[13], row[14] = nullText(string(c.Device)), nullText(c.Language), nullText(c.Country)
				}
				return row, nil
			})); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO impressions SELECT * FROM imp_in ON CONFLICT DO NOTHING`)
		return err
	}))
}

// nullText is s, or NULL when s is empty.
func nullText(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// EnsureImpressionPartitions creates the daily partitions from today for days days.
func (db *DB) EnsureImpressionPartitions(ctx context.Context, days int) (int, error) {
	var made int
	err := db.Pool.QueryRow(ctx, `SELECT create_impression_partitions($1::date, $2)`, time.Now().UTC().Format("2006-01-02"), days).Scan(&made)
	return made, lr.E("postgres.EnsureImpressionPartitions", lr.EINTERNAL, err)
}

// LabeledImpression is an impression with what the user did next.
type LabeledImpression struct {
	lr.Impression
	Watched bool // a watch of the streamer of at least minSeconds began within window
	// WatchSeconds is the longest watch of the streamer that began within
	// window (0: none); not capped.
	WatchSeconds float64
	Gift         bool // the user sent the streamer a gift during such a watch
	Follow       bool // the user followed the streamer within window
}

// LabeledImpressions streams the impressions shown since `since`, in time
// order, each labelled with what the user did with that streamer within
// window after it was shown: watched at least minSeconds, how long
// (the longest session begun in the window), a gift during such a session,
// a follow (the follow's first time falls in the window); with their
// context (nil when the request said nothing).
func (db *DB) LabeledImpressions(ctx context.Context, since time.Time, window time.Duration, minSeconds int, fn func(LabeledImpression) error) error {
	rows, err := db.Pool.Query(ctx, `
		SELECT i.shown_at, i.request_id, i.position, i.user_id, i.streamer_id, i.stream_id, i.score, i.channels, i.model_versions, i.features,
		       i.ctx_hour, i.ctx_weekday, i.ctx_device, i.ctx_language, i.ctx_country,
		       COALESCE(ws.longest >= $3, false), COALESCE(ws.longest, 0), COALESCE(ws.gift, false),
		       EXISTS (SELECT 1 FROM follows f
		                WHERE f.user_id = i.user_id AND f.streamer_id = i.streamer_id
		                  AND f.created_at >= i.shown_at AND f.created_at < i.shown_at + $2 * interval '1 second')
		FROM impressions i
		LEFT JOIN LATERAL (
		       SELECT max(w.seconds) AS longest,
		              bool_or(EXISTS (SELECT 1 FROM gifts g
		                               WHERE g.user_id = w.user_id AND g.streamer_id = w.streamer_id
		                                 AND g.sent_at >= w.started_at AND g.sent_at <= w.ended_at)) AS gift
		       FROM watch_sessions w
		       WHERE w.user_id = i.user_id AND w.streamer_id = i.streamer_id
		         AND w.started_at >= i.shown_at AND w.started_at < i.shown_at + $2 * interval '1 second') ws ON true
		WHERE i.shown_at >= $1 ORDER BY i.shown_at, i.request_id, i.position`,
		since, window.Seconds(), minSeconds)
	if err != nil {
		return lr.E("postgres.LabeledImpressions", lr.EINTERNAL, err)
	}
	defer rows.Close()
	for rows.Next() {
		var li LabeledImpression
		var pos int16
		var score float32
		var uid, sid, stid, secs int64
		var hour, weekday *int16
		var device, lang, country *string
		if err := rows.Scan(&li.ShownAt, &li.RequestID, &pos, &uid, &sid, &stid, &score, &li.Channels, &li.ModelVersions, &li.Features,
			&hour, &weekday, &device, &lang, &country, &li.Watched, &secs, &li.Gift, &li.Follow); err != nil {
			return lr.E("postgres.LabeledImpressions", lr.EINTERNAL, err)
		}
		li.Context = impressionContext(hour, weekday, device, lang, country)
		li.WatchSeconds = float64(secs)
		li.Position, li.Score, li.UserID, li.StreamerID, li.StreamID = int(pos), float64(score), lr.UserID(uid), lr.StreamerID(sid), lr.StreamID(stid)
		if err := fn(li); err != nil {
			return err
		}
	}
	return lr.E("postgres.LabeledImpressions", lr.EINTERNAL, rows.Err())
}

// impressionContext is the context of an impression's ctx_* columns, nil
// when they are all NULL.
func impressionContext(hour, weekday *int16, device, lang, country *string) *lr.RequestContext {
	var c lr.RequestContext
	if hour != nil && weekday != nil {
		c.LocalTime, c.Hour, c.Weekday = true, int(*hour), time.Weekday(*weekday)
	}
	if device != nil {
		c.Device = lr.Device(*device)
	}
	if lang != nil {
		c.Language = *lang
	}
	if country != nil {
		c.Country = *country
	}
	if !c.Known() {
		return nil
	}
	return &c
}
