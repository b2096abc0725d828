package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"

	lr "github.com/liverecall/liverecall"
)

// History rows: one struct per history table (see migrations/001_schema.sql).

// UserRow is a row of users.
type UserRow struct {
	ID        lr.UserID
	Language  string
	Country   string
	CreatedAt time.Time
}

// StreamerRow is a row of streamers.
type StreamerRow struct {
	ID        lr.StreamerID
	Name      string
	Category  string
	Language  string
	Banned    bool
	CreatedAt time.Time
}

// StreamRow is a row of streams. A zero EndedAt is written as NULL (still
// live); otherwise end_reason is 'ended'.
type StreamRow struct {
	ID         lr.StreamID
	StreamerID lr.StreamerID
	Category   string
	Title      string
	StartedAt  time.Time
	EndedAt    time.Time
}

// WatchRow is a row of watch_sessions; EventID is the id of the event that
// closed the session.
type WatchRow struct {
	EventID    string
	UserID     lr.UserID
	StreamID   lr.StreamID
	StreamerID lr.StreamerID
	StartedAt  time.Time
	EndedAt    time.Time
	Seconds    int32
}

// GiftRow is a row of gifts.
type GiftRow struct {
	EventID    string
	UserID     lr.UserID
	StreamerID lr.StreamerID
	StreamID   lr.StreamID
	Amount     float64
	SentAt     time.Time
}

// FollowRow is a row of follows (the current state of one pair).
type FollowRow struct {
	UserID     lr.UserID
	StreamerID lr.StreamerID
	Active     bool
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// HistoryCounts counts rows of the history tables.
type HistoryCounts struct {
	Users, Streamers, Streams, Watches, Gifts, Follows int64
}

// historyTables are the tables LoadHistory writes, in HistoryCounts order.
var historyTables = []string{"users", "streamers", "streams", "watch_sessions", "gifts", "follows"}

// copyBatch is how many rows travel from the producer to a COPY at once.
const copyBatch = 2048

// HistoryLoader bulk-loads history with one binary COPY per table, all six
// running at once on their own connections, fed as rows are added, so a
// simulated history goes to the database in one pass without being held in
// memory. Rows must not collide with rows already in the tables (COPY does
// not upsert): a duplicate key fails the load with an EINVALID error naming
// the table and the key.
//
// Each table's COPY commits on its own when Close succeeds; if any fails,
// Close (or Abort) cancels the others, whose rows are then not written, but
// a table whose COPY had already finished keeps its rows. The Add methods
// must be called from one goroutine; they block while the database is
// behind, and return the load's error once it has failed.
type HistoryLoader struct {
	ctx    context.Context
	cancel context.CancelFunc
	g      *errgroup.Group

	users     *copyStream[UserRow]
	streamers *copyStream[StreamerRow]
	streams   *copyStream[StreamRow]
	watches   *copyStream[WatchRow]
	gifts     *copyStream[GiftRow]
	follows   *copyStream[FollowRow]
	closed    bool
}

// LoadHistory opens the six COPY connections and returns a loader. Call
// Close to finish the load or Abort to give it up.
func (db *DB) LoadHistory(ctx context.Context) (*HistoryLoader, error) {
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	l := &HistoryLoader{ctx: gctx, cancel: cancel, g: g}
	conns := make([]*pgx.Conn, len(historyTables))
	for i := range conns {
		c, err := pgx.Connect(ctx, db.url)
		if err != nil {
			for _, c := range conns[:i] {
				c.Close(context.Background())
			}
			cancel()
			return nil, &lr.Error{Code: lr.EUNAVAILABLE, Op: "postgres.LoadHistory", Message: "cannot open a COPY connection", Err: err}
		}
		conns[i] = c
	}
	l.users = startCopy(l, conns[0], "users", []string{"id", "language", "country", "created_at"},
		func(r UserRow) []any { return []any{int64(r.ID), r.Language, r.Country, r.CreatedAt} })
	l.streamers = startCopy(l, conns[1], "streamers", []string{"id", "name", "category", "language", "banned", "created_at"},
		func(r StreamerRow) []any {
			return []any{int64(r.ID), r.Name, r.Category, r.Language, r.Banned, r.CreatedAt}
		})
	l.streams = startCopy(l, conns[2], "streams", []string{"id", "streamer_id", "category", "title", "started_at", "ended_at", "end_reason"},
		func(r StreamRow) []any {
			var ended, reason any
			if !r.EndedAt.IsZero() {
				ended, reason = r.EndedAt, "ended"
			}
			return []any{int64(r.ID), int64(r.StreamerID), r.Category, r.Title, r.StartedAt, ended, reason}
		})
	l.watches = startCopy(l, conns[3], "watch_sessions", []string{"event_id", "user_id", "stream_id", "streamer_id", "started_at", "ended_at", "seconds"},
		func(r WatchRow) []any {
			return []any{r.EventID, int64(r.UserID), int64(r.StreamID), int64(r.StreamerID), r.StartedAt, r.EndedAt, r.Seconds}
		})
	l.gifts = startCopy(l, conns[4], "gifts", []string{"event_id", "user_id", "streamer_id", "stream_id", "amount", "sent_at"},
		func(r GiftRow) []any {
			return []any{r.EventID, int64(r.UserID), int64(r.StreamerID), int64(r.StreamID), r.Amount, r.SentAt}
		})
	l.follows = startCopy(l, conns[5], "follows", []string{"user_id", "streamer_id", "active", "created_at", "updated_at"},
		func(r FollowRow) []any {
			return []any{int64(r.UserID), int64(r.StreamerID), r.Active, r.CreatedAt, r.UpdatedAt}
		})
	return l, nil
}

// User adds a row of users.
func (l *HistoryLoader) User(r UserRow) error { return l.users.add(l, r) }

// Streamer adds a row of streamers.
func (l *HistoryLoader) Streamer(r StreamerRow) error { return l.streamers.add(l, r) }

// Stream adds a row of streams.
func (l *HistoryLoader) Stream(r StreamRow) error { return l.streams.add(l, r) }

// Watch adds a row of watch_sessions.
func (l *HistoryLoader) Watch(r WatchRow) error { return l.watches.add(l, r) }

// Gift adds a row of gifts.
func (l *HistoryLoader) Gift(r GiftRow) error { return l.gifts.add(l, r) }

// Follow adds a row of follows.
func (l *HistoryLoader) Follow(r FollowRow) error { return l.follows.add(l, r) }

// Close sends the last rows, waits for every COPY to finish and returns the
// rows each wrote, or the first error of the load.
func (l *HistoryLoader) Close() (HistoryCounts, error) {
	if l.closed {
		return HistoryCounts{}, lr.Errorf(lr.EINVALID, "postgres.HistoryLoader: closed twice")
	}
	l.closed = true
	var ferr error
	for _, f := range []func() error{
		func() error { return l.users.finish(l) }, func() error { return l.streamers.finish(l) },
		func() error { return l.streams.finish(l) }, func() error { return l.watches.finish(l) },
		func() error { return l.gifts.finish(l) }, func() error { return l.follows.finish(l) },
	} {
		if err := f(); err != nil && ferr == nil {
			ferr = err
			l.cancel()
		}
	}
	err := l.g.Wait()
	l.cancel()
	if err == nil {
		err = ferr
	}
	if err != nil {
		return HistoryCounts{}, err
	}
	return HistoryCounts{Users: l.users.n, Streamers: l.streamers.n, Streams: l.streams.n,
		Watches: l.watches.n, Gifts: l.gifts.n, Follows: l.follows.n}, nil
}

// Abort cancels every COPY (nothing more is written) and waits for them.
func (l *HistoryLoader) Abort() {
	if l.closed {
		return
	}
	l.closed = true
	l.cancel()
	_ = l.g.Wait()
}

// err returns the load's error once the group has failed.
func (l *HistoryLoader) err() error {
	// The group's context is cancelled by the first failing COPY; Wait
	// returns that error without blocking once all have stopped, which they
	// do promptly after cancellation.
	if err := l.g.Wait(); err != nil {
		return err
	}
	return lr.E("postgres.LoadHistory", lr.EUNAVAILABLE, context.Cause(l.ctx))
}

type copyStream[T any] struct {
	table string
	ch    chan []T
	buf   []T
	n     int64
}

func startCopy[T any](l *HistoryLoader, conn *pgx.Conn, table string, cols []string, row func(T) []any) *copyStream[T] {
	c := &copyStream[T]{table: table, ch: make(chan []T, 4), buf: make([]T, 0, copyBatch)}
	l.g.Go(func() error {
		defer conn.Close(context.Background())
		src := &chanSource[T]{ctx: l.ctx, ch: c.ch, i: -1, row: row}
		n, err := conn.CopyFrom(l.ctx, pgx.Identifier{table}, cols, src)
		if err == nil {
			err = src.err
		}
		if err != nil {
			return copyErr(table, err)
		}
		c.n = n
		return nil
	})
	return c
}

func (c *copyStream[T]) add(l *HistoryLoader, r T) error {
	if l.closed {
		return lr.Errorf(lr.EINVALID, "postgres.HistoryLoader: row added after Close or Abort")
	}
	c.buf = append(c.buf, r)
	if len(c.buf) < copyBatch {
		return nil
	}
	return c.flush(l)
}

func (c *copyStream[T]) flush(l *HistoryLoader) error {
	if len(c.buf) == 0 {
		return nil
	}
	select {
	case c.ch <- c.buf:
		c.buf = make([]T, 0, copyBatch)
		return nil
	case <-l.ctx.Done():
		return l.err()
	}
}

func (c *copyStream[T]) finish(l *HistoryLoader) error {
	err := c.flush(l)
	close(c.ch)
	return err
}

// chanSource is a pgx.CopyFromSource over batches arriving on a channel.
type chanSource[T any] struct {
	ctx   context.Context
	ch    <-chan []T
	batch []T
	i     int
	row   func(T) []any
	err   error
}

func (s *chanSource[T]) Next() bool {
	s.i++
	for s.i >= len(s.batch) {
		select {
		case b, ok := <-s.ch:
			if !ok {
				return false
			}
			s.batch, s.i = b, 0
		case <-s.ctx.Done():
			s.err = s.ctx.Err()
			return false
		}
	}
	return true
}

func (s *chanSource[T]) Values() ([]any, error) { return s.row(s.batch[s.i]), nil }
func (s *chanSource[T]) Err() error             { return s.err }

func copyErr(table string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return lr.Errorf(lr.EINVALID, "history load: duplicate key in %s (%s); load into empty tables or truncate them first", table, pgErr.Detail)
		case "23514", "23502":
			return lr.Errorf(lr.EINVALID, "history load: row rejected by %s (%s)", table, pgErr.Message)
		}
	}
	if errors.Is(err, context.Canceled) {
		return lr.E("postgres.LoadHistory", lr.EUNAVAILABLE, fmt.Errorf("copy into %s cancelled: %w", table, err))
	}
	return lr.E("postgres.LoadHistory", lr.EINTERNAL, fmt.Errorf("copy into %s: %w", table, err))
}

// CountHistory counts the rows of the history tables.
func (db *DB) CountHistory(ctx context.Context) (HistoryCounts, error) {
	var c HistoryCounts
	err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM streamers),
		(SELECT count(*) FROM streams), (SELECT count(*) FROM watch_sessions),
		(SELECT count(*) FROM gifts), (SELECT count(*) FROM follows)`).
		Scan(&c.Users, &c.Streamers, &c.Streams, &c.Watches, &c.Gifts, &c.Follows)
	return c, lr.E("postgres.CountHistory", lr.EINTERNAL, err)
}

// TruncateHistory empties the history tables (users, streamers, streams,
// watch_sessions, gifts, follows) and forgets the simulated world they held
// (sim_world) in one statement. Models, embeddings, blocks and impressions
// are left alone.
func (db *DB) TruncateHistory(ctx context.Context) error {
	_, err := db.Pool.Exec(ctx, `TRUNCATE users, streamers, streams, watch_sessions, gifts, follows, sim_world`)
	return lr.E("postgres.TruncateHistory", lr.EINTERNAL, err)
}

// SimWorld is the simulated world whose history the history tables hold
// (see `liverecall simulate`): the same seed, size and start give the same
// world.
type SimWorld struct {
	Seed      uint64
	Start     time.Time
	Days      int
	Streamers int
	Users     int
	// Context: the world has request context (sim.Config.Context).
	Context bool
}

// SetSimWorld records w as the world of the history tables, replacing any
// world recorded before.
func (db *DB) SetSimWorld(ctx context.Context, w SimWorld) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO sim_world (seed, start, days, streamers, users, context) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (one) DO UPDATE SET seed = EXCLUDED.seed, start = EXCLUDED.start, days = EXCLUDED.days,
		streamers = EXCLUDED.streamers, users = EXCLUDED.users, context = EXCLUDED.context, loaded_at = now()`,
		int64(w.Seed), w.Start, w.Days, w.Streamers, w.Users, w.Context)
	return lr.E("postgres.SetSimWorld", lr.EINTERNAL, err)
}

// SimWorldRecorded returns the world recorded by SetSimWorld, and false if
// none is (history loaded otherwise, or none at all).
func (db *DB) SimWorldRecorded(ctx context.Context) (SimWorld, bool, error) {
	var w SimWorld
	var seed int64
	err := db.Pool.QueryRow(ctx, `SELECT seed, start, days, streamers, users, context FROM sim_world`).Scan(&seed, &w.Start, &w.Days, &w.Streamers, &w.Users, &w.Context)
	if errors.Is(err, pgx.ErrNoRows) {
		return SimWorld{}, false, nil
	}
	if err != nil {
		return SimWorld{}, false, lr.E("postgres.SimWorld", lr.EINTERNAL, err)
	}
	w.Seed, w.Start = uint64(seed), w.Start.UTC()
	return w, true, nil
}
