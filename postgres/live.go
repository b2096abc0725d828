package postgres

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// UserState is what the live state loads of one user (UserState).
type UserState struct {
	// Follows: the active follows and the unfollows updated at or after
	// since; UserID, CreatedAt are not read.
	Follows []FollowRow
	// Watches: the newest watches started at or after since, oldest first:
	// sessions of watch_sessions and joins still open in pending_joins
	// (EndedAt zero, EventID the join's id, Seconds 0).
	Watches []WatchRow
}

// UserState reads what the live state holds of user u (see the fields of
// UserState): at most perUser watches (perUser <= 0: 20). Both statements
// are point reads on indexes led by user_id (the follows key,
// watch_sessions_user_started, pending_joins_user_stream) and travel in
// one round trip. A user with nothing stored gets an empty UserState. A
// lost or refused connection is lr.EUNAVAILABLE (naming the database), a
// cancelled or expired ctx returns its error.
func (db *DB) UserState(ctx context.Context, u lr.UserID, since time.Time, perUser int) (UserState, error) {
	const op = "postgres.UserState"
	if perUser <= 0 {
		perUser = 20
	}
	var b pgx.Batch
	b.Queue(`SELECT streamer_id, active, updated_at FROM follows
		WHERE user_id = $1 AND (active OR updated_at >= $2)`, int64(u), since)
	b.Queue(`SELECT event_id, stream_id, streamer_id, started_at, ended_at, seconds FROM (
			(SELECT event_id, stream_id, streamer_id, started_at, ended_at, seconds FROM watch_sessions
			 WHERE user_id = $1 AND started_at >= $2 ORDER BY started_at DESC, event_id DESC LIMIT $3)
			UNION ALL
			(SELECT event_id, stream_id, streamer_id, joined_at, NULL, 0 FROM pending_joins
			 WHERE user_id = $1 AND joined_at >= $2 ORDER BY joined_at DESC, event_id DESC LIMIT $3)) w
		ORDER BY started_at DESC, event_id DESC LIMIT $3`, int64(u), since, perUser)
	br := db.Pool.SendBatch(ctx, &b)
	defer br.Close()
	var st UserState
	rows, err := br.Query()
	if err != nil {
		return UserState{}, db.wrapCtx(ctx, op, err)
	}
	for rows.Next() {
		f := FollowRow{UserID: u}
		var s int64
		if err := rows.Scan(&s, &f.Active, &f.UpdatedAt); err != nil {
			rows.Close()
			return UserState{}, db.wrapCtx(ctx, op, err)
		}
		f.StreamerID = lr.StreamerID(s)
		st.Follows = append(st.Follows, f)
	}
	if err := rows.Err(); err != nil {
		return UserState{}, db.wrapCtx(ctx, op, err)
	}
	rows, err = br.Query()
	if err != nil {
		return UserState{}, db.wrapCtx(ctx, op, err)
	}
	for rows.Next() {
		r := WatchRow{UserID: u}
		var stream, streamer int64
		var end *time.Time
		if err := rows.Scan(&r.EventID, &stream, &streamer, &r.StartedAt, &end, &r.Seconds); err != nil {
			rows.Close()
			return UserState{}, db.wrapCtx(ctx, op, err)
		}
		r.StreamID, r.StreamerID = lr.StreamID(stream), lr.StreamerID(streamer)
		if end != nil {
			r.EndedAt = *end
		}
		st.Watches = append(st.Watches, r)
	}
	if err := rows.Err(); err != nil {
		return UserState{}, db.wrapCtx(ctx, op, err)
	}
	slices.Reverse(st.Watches)
	return st, nil
}

// userStatesFollowsSQL and userStatesWatchesSQL read what UserState reads
// for a batch of users: the follows by the follows key (user_id leads it),
// the watches per user by a lateral join over the array, each user's its
// newest perUser from watch_sessions_user_started and
// pending_joins_user_stream, as UserState's statement does for one.
const (
	userStatesFollowsSQL = `SELECT user_id, streamer_id, active, updated_at FROM follows
		WHERE user_id = ANY($1) AND (active OR updated_at >= $2)`
	userStatesWatchesSQL = `SELECT u.id, w.event_id, w.stream_id, w.streamer_id, w.started_at, w.ended_at, w.seconds
		FROM unnest($1::bigint[]) AS u(id) CROSS JOIN LATERAL (
			SELECT event_id, stream_id, streamer_id, started_at, ended_at, seconds FROM (
				(SELECT event_id, stream_id, streamer_id, started_at, ended_at, seconds FROM watch_sessions
				 WHERE user_id = u.id AND started_at >= $2 ORDER BY started_at DESC, event_id DESC LIMIT $3)
				UNION ALL
				(SELECT event_id, stream_id, streamer_id, joined_at, NULL, 0 FROM pending_joins
				 WHERE user_id = u.id AND joined_at >= $2 ORDER BY joined_at DESC, event_id DESC LIMIT $3)) x
			ORDER BY started_at DESC, event_id DESC LIMIT $3) w`
)

// UserStates is UserState for many users at once: both statements, each
// over the whole batch, in one round trip, so that a replica meeting many
// users at once (a cold start) costs the database two statements per
// batch, not two per user. Every user of users has an entry (an empty
// UserState when nothing is stored); duplicates are read once. Errors are
// those of UserState.
func (db *DB) UserStates(ctx context.Context, users []lr.UserID, since time.Time, perUser int) (map[lr.UserID]UserState, error) {
	const op = "postgres.UserStates"
	if perUser <= 0 {
		perUser = 20
	}
	out := make(map[lr.UserID]UserState, len(users))
	ids := make([]int64, 0, len(users))
	for _, u := range users {
		if _, ok := out[u]; !ok {
			out[u] = UserState{}
			ids = append(ids, int64(u))
		}
	}
	if len(ids) == 0 {
		return out, nil
	}
	var b pgx.Batch
	b.Queue(userStatesFollowsSQL, ids, since)
	b.Queue(userStatesWatchesSQL, ids, since, perUser)
	br := db.Pool.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, db.wrapCtx(ctx, op, err)
	}
	for rows.Next() {
		var f FollowRow
		var u, s int64
		if err := rows.Scan(&u, &s, &f.Active, &f.UpdatedAt); err != nil {
			rows.Close()
			return nil, db.wrapCtx(ctx, op, err)
		}
		f.UserID, f.StreamerID = lr.UserID(u), lr.StreamerID(s)
		st := out[f.UserID]
		st.Follows = append(st.Follows, f)
		out[f.UserID] = st
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrapCtx(ctx, op, err)
	}
	rows, err = br.Query()
	if err != nil {
		return nil, db.wrapCtx(ctx, op, err)
	}
	for rows.Next() {
		var r WatchRow
		var u, stream, streamer int64
		var end *time.Time
		if err := rows.Scan(&u, &r.EventID, &stream, &streamer, &r.StartedAt, &end, &r.Seconds); err != nil {
			rows.Close()
			return nil, db.wrapCtx(ctx, op, err)
		}
		r.UserID, r.StreamID, r.StreamerID = lr.UserID(u), lr.StreamID(stream), lr.StreamerID(streamer)
		if end != nil {
			r.EndedAt = *end
		}
		st := out[r.UserID]
		st.Watches = append(st.Watches, r)
		out[r.UserID] = st
	}
	if err := rows.Err(); err != nil {
		return nil, db.wrapCtx(ctx, op, err)
	}
	for _, st := range out {
		// Oldest first, as UserState returns them (the join's output order
		// is not guaranteed).
		slices.SortFunc(st.Watches, func(a, b WatchRow) int {
			if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
				return c
			}
			return strings.Compare(a.EventID, b.EventID)
		})
	}
	return out, nil
}

// wrapCtx is wrap, but returns ctx's error as is once ctx has ended (a
// statement cut short by its deadline is neither the server's fault nor a
// bug).
func (db *DB) wrapCtx(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return db.wrap(op, err)
}

// StreamFollows calls fn for every active follow, with the event time of the
// event that set it, without holding the result in memory. An error from fn
// stops the stream and is returned as is. (The live state loads one user's
// follows at a time: UserState.)
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
// since, oldest first.
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
