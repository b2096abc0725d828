package postgres

import (
	"context"
	"time"

	lr "github.com/liverecall/liverecall"
)

// StreamFollows calls fn for every active follow, with the event time of the
// event that set it, without holding the result in memory. The live state
// loads them at start and then keeps them current from events. An error from
// fn stops the stream and is returned as is.
func (db *DB) StreamFollows(ctx context.Context, fn func(u lr.UserID, s lr.StreamerID, at time.Time) error) error {
	rows, err := db.Pool.Query(ctx, `SELECT user_id, streamer_id, updated_at FROM follows WHERE active`)
	if err != nil {
		return lr.E("postgres.StreamFollows", lr.EINTERNAL, err)
	}
	defer rows.Close()
	var u, s int64
	var at time.Time
	for rows.Next() {
		if err := rows.Scan(&u, &s, &at); err != nil {
			return lr.E("postgres.StreamFollows", lr.EINTERNAL, err)
		}
		if err := fn(lr.UserID(u), lr.StreamerID(s), at); err != nil {
			return err
		}
	}
	return lr.E("postgres.StreamFollows", lr.EINTERNAL, rows.Err())
}

// RecentWatches calls fn for every watch session that started at or after
// since, oldest first (to seed user session history at start).
func (db *DB) RecentWatches(ctx context.Context, since time.Time, fn func(u lr.UserID, s lr.StreamerID, stream lr.StreamID, start, end time.Time) error) error {
	rows, err := db.Pool.Query(ctx, `SELECT user_id, streamer_id, stream_id, started_at, ended_at
		FROM watch_sessions WHERE started_at >= $1 ORDER BY started_at, event_id`, since)
	if err != nil {
		return lr.E("postgres.RecentWatches", lr.EINTERNAL, err)
	}
	defer rows.Close()
	var u, s, st int64
	var a, b time.Time
	for rows.Next() {
		if err := rows.Scan(&u, &s, &st, &a, &b); err != nil {
			return lr.E("postgres.RecentWatches", lr.EINTERNAL, err)
		}
		if err := fn(lr.UserID(u), lr.StreamerID(s), lr.StreamID(st), a, b); err != nil {
			return err
		}
	}
	return lr.E("postgres.RecentWatches", lr.EINTERNAL, rows.Err())
}
