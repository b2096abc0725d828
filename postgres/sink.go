package postgres

import (
	"context"
	"slices"
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
	// PendingLeaves counts the batch's viewer.left events that found no
	// open join of their user and stream at or before them; they wait in
	// pending_leaves for a join that arrives late.
	PendingLeaves int
	// Unpaired counts pending leaves given up: no join of their user and
	// stream at or before them came within the expiry (event time).
	Unpaired int
	// DuplicateJoins counts viewer.joined events dropped because the user
	// was already in the stream (an older open join of the same user and
	// stream, closed by the same leave or end, covers them).
	DuplicateJoins int
	Expired        int // streams ended because no event came for the expiry time
	Revived        int // expired streams that a later event showed still live
}

// WriteEvents writes one batch of events as training data, in one
// transaction: streams (started and ended), watch sessions (viewer.joined
// paired with viewer.left of the same user and stream, in seconds, whatever
// order the two arrive in; see pairSessions),
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
// event is opened again; viewer.left events that waited that long for their
// join are given up (SinkResult.Unpaired).
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
			if ct, err = tx.Exec(ctx, `UPDATE streams SET ended_at = last_event_at, end_reason = 'expired'
				WHERE ended_at IS NULL AND last_event_at < $1`, newest(fresh).Add(-expiry)); err != nil {
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
		if err := db.pairSessions(ctx, tx, fresh, &res); err != nil {
			return err
		}
		if expiry > 0 {
			// Leaves whose join did not come within the expiry are given up.
			if ct, err = tx.Exec(ctx, `DELETE FROM pending_leaves WHERE left_at < $1`, newest(fresh).Add(-expiry)); err != nil {
				return err
			}
			res.Unpaired = int(ct.RowsAffected())
		}
		return nil
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

// pairState is the pairing of one batch: the open joins and the pending
// leaves of the (user, stream) pairs it touches, loaded from pending_joins
// and pending_leaves, and what the batch does with them.
type pairState struct {
	joins    map[joinKey][]openJoin // by at, then arrival
	leaves   map[joinKey][]openJoin // pending leaves, by at, then arrival
	sessions [][]any
	dropJ    []string // stored joins closed or dropped
	dropL    []string // stored leaves paired
}

// session records the session [j.at, at] of k, closed by event id.
func (p *pairState) session(k joinKey, j openJoin, at time.Time, id string) {
	p.sessions = append(p.sessions, []any{id, k.user, k.stream, j.streamer, j.at, at, int32(at.Sub(j.at) / time.Second)})
	if j.stored {
		p.dropJ = append(p.dropJ, j.id)
	}
}

// insertSorted inserts x into js after every element dated at or before it.
func insertSorted(js []openJoin, x openJoin) []openJoin {
	i := sort.Search(len(js), func(i int) bool { return js[i].at.After(x.at) })
	return slices.Insert(js, i, x)
}

// pairSessions pairs the batch's viewer events with each other and with the
// joins and leaves pending from earlier batches, always within one (user,
// stream) pair; a user's events at other streams never touch each other.
// The rules, which give the same sessions whatever order a join and its
// leave arrive in (within the expiry). One case still depends on arrival
// order: a repeated join that arrives after the leave already paired with a
// later join (joins at t1 and t3, leave at t5, arriving as leave, t3, t1)
// opens a session of its own until the stream ends, where in time order it
// would have been counted as a duplicate.
//
//   - A leave closes the oldest open join of its pair dated at or before it:
//     one session from that join to the leave (event_id: the leave's id).
//     The other open joins dated strictly before the leave were repeated
//     joins while the user was already in the stream; they are dropped and
//     counted (DuplicateJoins). Open joins dated exactly at the leave stay
//     open: they are the user's next join in the same second.
//   - A leave with no open join at or before it waits in pending_leaves
//     (PendingLeaves): a join of its pair dated at or before it that
//     arrives later is paired with the oldest such leave.
//   - A stream.ended closes, for every user, the oldest open join of the
//     stream dated at or before the end; event_id "<end event id>/<join
//     event id>". The other joins of the user dated at or before the end
//     are dropped as duplicates.
//   - Pending leaves older than the batch's newest event time minus expiry
//     are given up and counted (Unpaired); with expiry <= 0 they are kept.
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
	p := &pairState{joins: map[joinKey][]openJoin{}, leaves: map[joinKey][]openJoin{}}
	load := func(into map[joinKey][]openJoin, query string) error {
		rows, err := tx.Query(ctx, query)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			j := openJoin{stored: true}
			var k joinKey
			if err := rows.Scan(&j.id, &k.user, &k.stream, &j.streamer, &j.at); err != nil {
				return err
			}
			into[k] = append(into[k], j)
		}
		return rows.Err()
	}
	if hasLeave || hasEnd {
		if err := load(p.joins, `SELECT p.event_id, p.user_id, p.stream_id, p.streamer_id, p.joined_at
			FROM pending_joins p
			WHERE (p.user_id, p.stream_id) IN (SELECT user_id, stream_id FROM sink_in WHERE type = 'viewer.left')
			   OR p.stream_id IN (SELECT stream_id FROM sink_in WHERE type = 'stream.ended')
			ORDER BY p.joined_at, p.event_id`); err != nil {
			return err
		}
	}
	if hasJoin {
		if err := load(p.leaves, `SELECT p.event_id, p.user_id, p.stream_id, p.streamer_id, p.left_at
			FROM pending_leaves p
			WHERE (p.user_id, p.stream_id) IN (SELECT user_id, stream_id FROM sink_in WHERE type = 'viewer.joined')
			ORDER BY p.left_at, p.event_id`); err != nil {
			return err
		}
	}
	for _, e := range fresh {
		k := joinKey{int64(e.UserID), int64(e.StreamID)}
		switch e.Type {
		case lr.EventViewerJoined:
			j := openJoin{id: e.ID, streamer: int64(e.StreamerID), at: e.TS}
			ls := p.leaves[k]
			if i := sort.Search(len(ls), func(i int) bool { return !ls[i].at.Before(e.TS) }); i < len(ls) {
				// A leave that came before its join.
				l := ls[i]
				p.session(k, j, l.at, l.id)
				if l.stored {
					p.dropL = append(p.dropL, l.id)
				}
				p.leaves[k] = slices.Delete(ls, i, i+1)
				continue
			}
			p.joins[k] = insertSorted(p.joins[k], j)
		case lr.EventViewerLeft:
			js := p.joins[k]
			n := sort.Search(len(js), func(i int) bool { return js[i].at.After(e.TS) })
			if n == 0 {
				p.leaves[k] = insertSorted(p.leaves[k], openJoin{id: e.ID, streamer: int64(e.StreamerID), at: e.TS})
				res.PendingLeaves++
				continue
			}
			p.session(k, js[0], e.TS, e.ID)
			rest := js[:0:0]
			for _, j := range js[1:n] {
				if j.at.Equal(e.TS) {
					rest = append(rest, j) // the next join, in the same second
					continue
				}
				res.DuplicateJoins++
				if j.stored {
					p.dropJ = append(p.dropJ, j.id)
				}
			}
			p.joins[k] = append(rest, js[n:]...)
		case lr.EventStreamEnded:
			var keys []joinKey
			for k := range p.joins {
				if k.stream == int64(e.StreamID) {
					keys = append(keys, k)
				}
			}
			sort.Slice(keys, func(a, b int) bool { return keys[a].user < keys[b].user })
			for _, k := range keys {
				js := p.joins[k]
				n := sort.Search(len(js), func(i int) bool { return js[i].at.After(e.TS) })
				if n == 0 {
					continue
				}
				p.session(k, js[0], e.TS, e.ID+"/"+js[0].id)
				for _, j := range js[1:n] {
					res.DuplicateJoins++
					if j.stored {
						p.dropJ = append(p.dropJ, j.id)
					}
				}
				p.joins[k] = append(js[:0:0], js[n:]...)
			}
		}
	}
	var keepJ, keepL [][]any
	for k, js := range p.joins {
		for _, j := range js {
			if !j.stored {
				keepJ = append(keepJ, []any{j.id, k.user, k.stream, j.streamer, j.at})
			}
		}
	}
	for k, ls := range p.leaves {
		for _, l := range ls {
			if !l.stored {
				keepL = append(keepL, []any{l.id, k.user, k.stream, l.streamer, l.at})
			}
		}
	}
	if len(p.sessions) > 0 {
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"watch_sessions"},
			[]string{"event_id", "user_id", "stream_id", "streamer_id", "started_at", "ended_at", "seconds"}, pgx.CopyFromRows(p.sessions))
		if err != nil {
			return err
		}
		res.Sessions = int(n)
	}
	if len(keepJ) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pending_joins"},
			[]string{"event_id", "user_id", "stream_id", "streamer_id", "joined_at"}, pgx.CopyFromRows(keepJ)); err != nil {
			return err
		}
	}
	if len(keepL) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pending_leaves"},
			[]string{"event_id", "user_id", "stream_id", "streamer_id", "left_at"}, pgx.CopyFromRows(keepL)); err != nil {
			return err
		}
	}
	if len(p.dropJ) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM pending_joins WHERE event_id = ANY($1)`, p.dropJ); err != nil {
			return err
		}
	}
	if len(p.dropL) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM pending_leaves WHERE event_id = ANY($1)`, p.dropL); err != nil {
			return err
		}
	}
	return nil
}

// newest returns the newest event time of evs.
func newest(evs []lr.Event) time.Time {
	var t time.Time
	for _, e := range evs {
		if e.TS.After(t) {
			t = e.TS
		}
	}
	return t
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
