package postgres

import (
	"context"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// SinkResult says what one WriteEvents did.
type SinkResult struct {
	New      int // events not written before
	Replayed int // events already written by an earlier call (dropped)
	Streams  int // streams started
	Ended    int // streams ended
	Sessions int // watch sessions closed (join paired with leave)
	Gifts    int
	Follows  int // follow rows changed
	Unpaired int // viewer.left with no open join
	Expired  int // streams ended because no event came for the expiry time
	Revived  int // expired streams that a later event showed still live
}

// WriteEvents writes one batch of events as training data, in one
// transaction: streams (started and ended), watch sessions (viewer.joined
// paired with the next viewer.left of the same user and stream, in seconds),
// gifts and follows (the newest event time wins). It is idempotent by event
// id: every id is recorded in sink_events in the same transaction, and an
// event already recorded is dropped, so a batch written again after a crash
// changes nothing. Bulk paths use COPY into a temporary table. Events must be
// given in partition order (each streamer's events in order); heartbeats
// only move the stream's last_event_at. It is safe for concurrent use by
// different sinks only if they write disjoint streamers (as consumer-group
// partitions are).
//
// Streams whose newest event is older than the batch's newest event time
// minus DefaultStreamExpiry are ended as expired (see WriteEventsExpiring).
func (db *DB) WriteEvents(ctx context.Context, evs []lr.Event) (SinkResult, error) {
	return db.WriteEventsExpiring(ctx, evs, DefaultStreamExpiry)
}

// WriteEventsExpiring is WriteEvents with an explicit expiry.
// With expiry > 0, streams whose newest event is older than the batch's
// newest event time minus expiry are ended with end_reason 'expired'
// (ended_at = their last event), and an expired stream that gets a later
// event is opened again.
func (db *DB) WriteEventsExpiring(ctx context.Context, evs []lr.Event, expiry time.Duration) (SinkResult, error) {
	const op = "postgres.WriteEvents"
	var res SinkResult
	if len(evs) == 0 {
		return res, nil
	}
	// Keep the first of repeated ids within the batch.
	seen := make(map[string]struct{}, len(evs))
	uniq := make([]lr.Event, 0, len(evs))
	for _, e := range evs {
		if _, dup := seen[e.ID]; dup {
			res.Replayed++
			continue
		}
		seen[e.ID] = struct{}{}
		uniq = append(uniq, e)
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		res = SinkResult{Replayed: res.Replayed}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE sink_in (
			seq int NOT NULL, event_id text NOT NULL, type text NOT NULL, ts timestamptz NOT NULL,
			streamer_id bigint NOT NULL, stream_id bigint NOT NULL, user_id bigint NOT NULL,
			amount double precision NOT NULL, category text NOT NULL, title text NOT NULL) ON COMMIT DROP`); err != nil {
			return err
		}
		i := 0
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sink_in"},
			[]string{"seq", "event_id", "type", "ts", "streamer_id", "stream_id", "user_id", "amount", "category", "title"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if i >= len(uniq) {
					return nil, nil
				}
				e := &uniq[i]
				i++
				return []any{i - 1, e.ID, string(e.Type), e.TS, int64(e.StreamerID), int64(e.StreamID), int64(e.UserID),
					e.Amount, e.Category, e.Title}, nil
			})); err != nil {
			return err
		}
		// Record the ids; drop from sink_in (and from the batch) those
		// recorded before.
		rows, err := tx.Query(ctx, `WITH ins AS (
				INSERT INTO sink_events (event_id, ts) SELECT event_id, ts FROM sink_in
				ON CONFLICT (event_id) DO NOTHING RETURNING event_id)
			DELETE FROM sink_in s WHERE NOT EXISTS (SELECT 1 FROM ins WHERE ins.event_id = s.event_id)
			RETURNING s.event_id`)
		if err != nil {
			return err
		}
		replayed, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		res.Replayed += len(replayed)
		fresh := uniq
		if len(replayed) > 0 {
			old := make(map[string]struct{}, len(replayed))
			for _, id := range replayed {
				old[id] = struct{}{}
			}
			fresh = make([]lr.Event, 0, len(uniq)-len(replayed))
			for _, e := range uniq {
				if _, ok := old[e.ID]; !ok {
					fresh = append(fresh, e)
				}
			}
		}
		res.New = len(fresh)
		if len(fresh) == 0 {
			return nil
		}
		ct, err := tx.Exec(ctx, `INSERT INTO streams (id, streamer_id, category, title, started_at, last_event_at)
			SELECT DISTINCT ON (stream_id) stream_id, streamer_id, category, title, ts, ts
			FROM sink_in WHERE type = 'stream.started' ORDER BY stream_id, ts, seq
			ON CONFLICT (id) DO NOTHING`)
		if err != nil {
			return err
		}
		res.Streams = int(ct.RowsAffected())
		if _, err = tx.Exec(ctx, `UPDATE streams s SET last_event_at = m.ts
			FROM (SELECT stream_id, max(ts) AS ts FROM sink_in
			      WHERE type IN ('stream.started', 'stream.ended', 'stream.heartbeat', 'viewer.joined', 'viewer.left', 'gift.sent')
			      GROUP BY stream_id) m
			WHERE s.id = m.stream_id AND (s.last_event_at IS NULL OR s.last_event_at < m.ts)`); err != nil {
			return err
		}
		if ct, err = tx.Exec(ctx, `UPDATE streams SET ended_at = NULL, end_reason = NULL
			WHERE end_reason = 'expired' AND last_event_at > ended_at
			  AND id IN (SELECT stream_id FROM sink_in WHERE type <> 'stream.ended')`); err != nil {
			return err
		}
		res.Revived = int(ct.RowsAffected())
		if ct, err = tx.Exec(ctx, `UPDATE streams s SET ended_at = i.ts, end_reason = 'ended'
			FROM (SELECT DISTINCT ON (stream_id) stream_id, ts FROM sink_in WHERE type = 'stream.ended'
			      ORDER BY stream_id, ts, seq) i
			WHERE s.id = i.stream_id AND (s.ended_at IS NULL OR s.end_reason = 'expired') AND i.ts >= s.started_at`); err != nil {
			return err
		}
		res.Ended = int(ct.RowsAffected())
		if expiry > 0 {
			var newest time.Time
			for _, e := range fresh {
				if e.TS.After(newest) {
					newest = e.TS
				}
			}
			if ct, err = tx.Exec(ctx, `UPDATE streams SET ended_at = last_event_at, end_reason = 'expired'
				WHERE ended_at IS NULL AND last_event_at < $1`, newest.Add(-expiry)); err != nil {
				return err
			}
			res.Expired = int(ct.RowsAffected())
		}
		if ct, err = tx.Exec(ctx, `INSERT INTO gifts (event_id, user_id, streamer_id, stream_id, amount, sent_at)
			SELECT event_id, user_id, streamer_id, stream_id, amount, ts FROM sink_in WHERE type = 'gift.sent'
			ON CONFLICT (event_id) DO NOTHING`); err != nil {
			return err
		}
		res.Gifts = int(ct.RowsAffected())
		if ct, err = tx.Exec(ctx, `INSERT INTO follows (user_id, streamer_id, active, created_at, updated_at)
			SELECT DISTINCT ON (user_id, streamer_id) user_id, streamer_id, type = 'follow.created', ts, ts
			FROM sink_in WHERE type IN ('follow.created', 'follow.deleted')
			ORDER BY user_id, streamer_id, ts DESC, seq DESC
			ON CONFLICT (user_id, streamer_id) DO UPDATE SET
				active = excluded.active,
				updated_at = excluded.updated_at,
				created_at = CASE WHEN excluded.active AND NOT follows.active THEN excluded.created_at ELSE follows.created_at END
			WHERE follows.updated_at < excluded.updated_at`); err != nil {
			return err
		}
		res.Follows = int(ct.RowsAffected())
		return db.pairSessions(ctx, tx, fresh, &res)
	})
	if err != nil {
		return SinkResult{}, lr.E(op, lr.EUNAVAILABLE, err)
	}
	return res, nil
}

type joinKey struct {
	user   int64
	stream int64
}

type openJoin struct {
	id       string
	streamer int64
	at       time.Time
	stored   bool // already a row of pending_joins
}

// pairSessions pairs the batch's viewer events with each other and with the
// joins pending from earlier batches. A leave closes the newest open join of
// its user and stream dated at or before it; older open joins of that pair
// (whose leave was lost) are dropped with it. A stream.ended closes every
// open join of its stream at the end time; such a session's event_id is
// "<end event id>/<join event id>".
func (db *DB) pairSessions(ctx context.Context, tx pgx.Tx, fresh []lr.Event, res *SinkResult) error {
	var hasLeave, hasJoin, hasEnd bool
	for _, e := range fresh {
		hasLeave = hasLeave || e.Type == lr.EventViewerLeft
		hasJoin = hasJoin || e.Type == lr.EventViewerJoined
		hasEnd = hasEnd || e.Type == lr.EventStreamEnded
	}
	if !hasLeave && !hasJoin && !hasEnd {
		return nil
	}
	open := map[joinKey][]openJoin{}
	if hasLeave || hasEnd {
		rows, err := tx.Query(ctx, `SELECT p.event_id, p.user_id, p.stream_id, p.streamer_id, p.joined_at
			FROM pending_joins p
			WHERE (p.user_id, p.stream_id) IN (SELECT user_id, stream_id FROM sink_in WHERE type = 'viewer.left')
			   OR p.stream_id IN (SELECT stream_id FROM sink_in WHERE type = 'stream.ended')
			ORDER BY p.joined_at, p.event_id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var j openJoin
			var k joinKey
			if err := rows.Scan(&j.id, &k.user, &k.stream, &j.streamer, &j.at); err != nil {
				rows.Close()
				return err
			}
			j.stored = true
			open[k] = append(open[k], j)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	var sessions [][]any
	var drop []string
	// closeUpTo closes the open joins of k dated at or before at: the newest
	// becomes a session (all of them if all is set), the rest are dropped.
	closeUpTo := func(k joinKey, at time.Time, id string, all bool) bool {
		js := open[k]
		n := sort.Search(len(js), func(i int) bool { return js[i].at.After(at) })
		if n == 0 {
			return false
		}
		for i, j := range js[:n] {
			if all || i == n-1 {
				sid := id
				if all {
					sid = id + "/" + j.id
				}
				sessions = append(sessions, []any{sid, k.user, k.stream, j.streamer, j.at, at, int32(at.Sub(j.at) / time.Second)})
			}
			if j.stored {
				drop = append(drop, j.id)
			}
		}
		open[k] = append(js[:0:0], js[n:]...)
		return true
	}
	for _, e := range fresh {
		k := joinKey{int64(e.UserID), int64(e.StreamID)}
		switch e.Type {
		case lr.EventViewerJoined:
			js := append(open[k], openJoin{id: e.ID, streamer: int64(e.StreamerID), at: e.TS})
			sort.SliceStable(js, func(a, b int) bool { return js[a].at.Before(js[b].at) })
			open[k] = js
		case lr.EventViewerLeft:
			if !closeUpTo(k, e.TS, e.ID, false) {
				res.Unpaired++
			}
		case lr.EventStreamEnded:
			var keys []joinKey
			for k := range open {
				if k.stream == int64(e.StreamID) {
					keys = append(keys, k)
				}
			}
			sort.Slice(keys, func(a, b int) bool { return keys[a].user < keys[b].user })
			for _, k := range keys {
				closeUpTo(k, e.TS, e.ID, true)
			}
		}
	}
	var keep [][]any
	for k, js := range open {
		for _, j := range js {
			if !j.stored {
				keep = append(keep, []any{j.id, k.user, k.stream, j.streamer, j.at})
			}
		}
	}
	if len(sessions) > 0 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"watch_sessions"},
			[]string{"event_id", "user_id", "stream_id", "streamer_id", "started_at", "ended_at", "seconds"}, pgx.CopyFromRows(sessions))
		if err != nil {
			return err
		}
		res.Sessions = int(n)
	}
	if len(keep) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pending_joins"},
			[]string{"event_id", "user_id", "stream_id", "streamer_id", "joined_at"}, pgx.CopyFromRows(keep)); err != nil {
			return err
		}
	}
	if len(drop) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM pending_joins WHERE event_id = ANY($1)`, drop); err != nil {
			return err
		}
	}
	return nil
}

// DefaultStreamExpiry is the expiry the sink uses unless told otherwise; it
// matches the live state's.
const DefaultStreamExpiry = 10 * time.Minute

// SinkCounts is how many rows each training table holds (for tests and the
// sink's log line).
type SinkCounts struct {
	Events, Streams, Ended, Expired, Sessions, Pending, Gifts, Follows int64
	Seconds                                                            int64 // sum of watch_sessions.seconds
	GiftValue                                                          float64
}

// CountSinkRows returns SinkCounts.
func (db *DB) CountSinkRows(ctx context.Context) (SinkCounts, error) {
	var c SinkCounts
	err := db.Pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM sink_events),
		(SELECT count(*) FROM streams),
		(SELECT count(*) FROM streams WHERE end_reason = 'ended'),
		(SELECT count(*) FROM streams WHERE end_reason = 'expired'),
		(SELECT count(*) FROM watch_sessions),
		(SELECT count(*) FROM pending_joins),
		(SELECT count(*) FROM gifts),
		(SELECT count(*) FROM follows WHERE active),
		(SELECT coalesce(sum(seconds), 0) FROM watch_sessions),
		(SELECT coalesce(sum(amount), 0) FROM gifts)`).Scan(
		&c.Events, &c.Streams, &c.Ended, &c.Expired, &c.Sessions, &c.Pending, &c.Gifts, &c.Follows, &c.Seconds, &c.GiftValue)
	return c, lr.E("postgres.CountSinkRows", lr.EINTERNAL, err)
}
