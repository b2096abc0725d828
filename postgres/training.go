package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// Reads for the embedding training job. Each streams its rows to fn in time
// order without holding the result in memory; an error from fn stops the
// stream and is returned as is. since bounds the history read (the zero
// time reads everything).

// TrainingWatches streams the watch sessions started at or after since,
// ordered by start time.
func (db *DB) TrainingWatches(ctx context.Context, since time.Time, fn func(WatchRow) error) error {
	return scanRows(ctx, db, "postgres.TrainingWatches",
		`SELECT event_id, user_id, stream_id, streamer_id, started_at, ended_at, seconds
		   FROM watch_sessions WHERE started_at >= $1 ORDER BY started_at, event_id`, since,
		func(r pgx.Rows) (WatchRow, error) {
			var w WatchRow
			err := r.Scan(&w.EventID, &w.UserID, &w.StreamID, &w.StreamerID, &w.StartedAt, &w.EndedAt, &w.Seconds)
			return w, err
		}, fn)
}

// TrainingGifts streams the gifts sent at or after since, ordered by time.
func (db *DB) TrainingGifts(ctx context.Context, since time.Time, fn func(GiftRow) error) error {
	return scanRows(ctx, db, "postgres.TrainingGifts",
		`SELECT event_id, user_id, streamer_id, stream_id, amount, sent_at
		   FROM gifts WHERE sent_at >= $1 ORDER BY sent_at, event_id`, since,
		func(r pgx.Rows) (GiftRow, error) {
			var g GiftRow
			err := r.Scan(&g.EventID, &g.UserID, &g.StreamerID, &g.StreamID, &g.Amount, &g.SentAt)
			return g, err
		}, fn)
}

// TrainingFollows streams the active follows (whatever their age: a follow
// is a standing signal), ordered by creation time.
func (db *DB) TrainingFollows(ctx context.Context, fn func(FollowRow) error) error {
	return scanRows(ctx, db, "postgres.TrainingFollows",
		`SELECT user_id, streamer_id, active, created_at, updated_at
		   FROM follows WHERE active ORDER BY created_at, user_id, streamer_id`, nil,
		func(r pgx.Rows) (FollowRow, error) {
			var f FollowRow
			err := r.Scan(&f.UserID, &f.StreamerID, &f.Active, &f.CreatedAt, &f.UpdatedAt)
			return f, err
		}, fn)
}

// TrainingStreams streams the live sessions that were live at or after
// since (still open, or ended after since), ordered by start. An open
// stream has a zero EndedAt.
func (db *DB) TrainingStreams(ctx context.Context, since time.Time, fn func(StreamRow) error) error {
	return scanRows(ctx, db, "postgres.TrainingStreams",
		`SELECT id, streamer_id, category, title, started_at, ended_at
		   FROM streams WHERE ended_at IS NULL OR ended_at >= $1 ORDER BY started_at, id`, since,
		func(r pgx.Rows) (StreamRow, error) {
			var s StreamRow
			var end *time.Time
			err := r.Scan(&s.ID, &s.StreamerID, &s.Category, &s.Title, &s.StartedAt, &end)
			if end != nil {
				s.EndedAt = *end
			}
			return s, err
		}, fn)
}

// scanRows runs query with arg (none when arg is nil) and calls fn on each
// row decoded by scan.
func scanRows[T any](ctx context.Context, db *DB, op, query string, arg any, scan func(pgx.Rows) (T, error), fn func(T) error) error {
	var rows pgx.Rows
	var err error
	if arg == nil {
		rows, err = db.Pool.Query(ctx, query)
	} else {
		rows, err = db.Pool.Query(ctx, query, arg)
	}
	if err != nil {
		return lr.E(op, lr.EINTERNAL, err)
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return lr.E(op, lr.EINTERNAL, err)
		}
		if err := fn(v); err != nil {
			return err
		}
	}
	return lr.E(op, lr.EINTERNAL, rows.Err())
}

// DeleteStagedModel deletes version id and its vectors if it is still
// staged (a version that was ever activated is kept for rollback). Deleting
// a missing or non-staged version is an ECONFLICT error.
func (db *DB) DeleteStagedModel(ctx context.Context, id int64) error {
	tag, err := db.Pool.Exec(ctx, `DELETE FROM embedding_models WHERE id = $1 AND status = 'staged'`, id)
	if err != nil {
		return lr.E("postgres.DeleteStagedModel", lr.EINTERNAL, err)
	}
	if tag.RowsAffected() == 0 {
		return lr.Errorf(lr.ECONFLICT, "model version id %d is not a staged version", id)
	}
	return nil
}

// UnknownIDs returns the ids among ids (in their order, at most limit of
// them) that the database has never seen on side: a user is known from
// users, watch_sessions, gifts or follows; a streamer from streamers or
// streams.
func (db *DB) UnknownIDs(ctx context.Context, side lr.EmbeddingSide, ids []int64, limit int) ([]int64, error) {
	var q string
	switch side {
	case lr.SideUser:
		q = `SELECT x.id FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n)
		      WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = x.id)
		        AND NOT EXISTS (SELECT 1 FROM watch_sessions w WHERE w.user_id = x.id)
		        AND NOT EXISTS (SELECT 1 FROM gifts g WHERE g.user_id = x.id)
		        AND NOT EXISTS (SELECT 1 FROM follows f WHERE f.user_id = x.id)
		      ORDER BY x.n LIMIT $2`
	case lr.SideStreamer:
		q = `SELECT x.id FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n)
		      WHERE NOT EXISTS (SELECT 1 FROM streamers s WHERE s.id = x.id)
		        AND NOT EXISTS (SELECT 1 FROM streams st WHERE st.streamer_id = x.id)
		      ORDER BY x.n LIMIT $2`
	default:
		return nil, lr.Errorf(lr.EINVALID, "unknown embedding side %q", side)
	}
	rows, err := db.Pool.Query(ctx, q, ids, limit)
	if err != nil {
		return nil, lr.E("postgres.UnknownIDs", lr.EINTERNAL, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	return out, lr.E("postgres.UnknownIDs", lr.EINTERNAL, err)
}
