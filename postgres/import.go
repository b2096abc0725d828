package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// ImportRows is a validated history to add to the history tables (the
// history package reads and checks it from files). Watch sessions and gifts
// carry deterministic event ids and streams deterministic ids, so importing
// the same rows again adds nothing.
type ImportRows struct {
	Users     []UserRow
	Streamers []StreamerRow
	Streams   []StreamRow
	Watches   []WatchRow
	Gifts     []GiftRow
	Follows   []FollowRow
}

// Counts returns how many rows of each table in holds.
func (in *ImportRows) Counts() HistoryCounts {
	return HistoryCounts{Users: int64(len(in.Users)), Streamers: int64(len(in.Streamers)), Streams: int64(len(in.Streams)),
		Watches: int64(len(in.Watches)), Gifts: int64(len(in.Gifts)), Follows: int64(len(in.Follows))}
}

// ImportHistory adds in to the history tables in one transaction: each
// table's rows go by binary COPY into a temporary staging table, then into
// the table with INSERT … ON CONFLICT on its key (users, streamers and
// streams by id, watch_sessions and gifts by event_id: rows already there
// are kept as they are; follows by (user, streamer), where the row with the
// newer updated_at wins, as in the sink). It returns the rows each table
// gained (for follows: added or updated); a second import of the same rows
// gains none. Either everything is written or, on any error, nothing.
// progress, when not nil, is called after each table with its name and the
// rows it was given.
func (db *DB) ImportHistory(ctx context.Context, in ImportRows, progress func(table string, rows int)) (HistoryCounts, error) {
	const op = "postgres.ImportHistory"
	var added HistoryCounts
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		added = HistoryCounts{}
		// step stages n rows of table, made one at a time by row (no copy
		// of the whole input is built), and inserts them.
		step := func(table string, cols []string, n int, row func(i int) []any, insert string, into *int64) error {
			stage := "import_" + table
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+stage+` (LIKE `+table+` INCLUDING DEFAULTS) ON COMMIT DROP`); err != nil {
				return err
			}
			if n > 0 {
				i := 0
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{stage}, cols, pgx.CopyFromFunc(func() ([]any, error) {
					if i == n {
						return nil, nil
					}
					i++
					return row(i - 1), nil
				})); err != nil {
					return err
				}
				ct, err := tx.Exec(ctx, insert)
				if err != nil {
					return err
				}
				*into = ct.RowsAffected()
			}
			if progress != nil {
				progress(table, n)
			}
			return nil
		}
		if err := step("users", []string{"id", "language", "country", "created_at"}, len(in.Users), func(i int) []any {
			r := &in.Users[i]
			return []any{int64(r.ID), r.Language, r.Country, r.CreatedAt}
		}, `INSERT INTO users SELECT * FROM import_users ON CONFLICT (id) DO NOTHING`, &added.Users); err != nil {
			return err
		}
		if err := step("streamers", []string{"id", "name", "category", "language", "banned", "created_at"}, len(in.Streamers), func(i int) []any {
			r := &in.Streamers[i]
			return []any{int64(r.ID), r.Name, r.Category, r.Language, r.Banned, r.CreatedAt}
		}, `INSERT INTO streamers SELECT * FROM import_streamers ON CONFLICT (id) DO NOTHING`, &added.Streamers); err != nil {
			return err
		}
		if err := step("streams", []string{"id", "streamer_id", "category", "title", "started_at", "ended_at", "end_reason", "last_event_at"}, len(in.Streams), func(i int) []any {
			r := &in.Streams[i]
			var ended, reason any
			last := r.StartedAt
			if !r.EndedAt.IsZero() {
				ended, reason, last = r.EndedAt, "ended", r.EndedAt
			}
			return []any{int64(r.ID), int64(r.StreamerID), r.Category, r.Title, r.StartedAt, ended, reason, last}
		}, `INSERT INTO streams SELECT * FROM import_streams ON CONFLICT (id) DO NOTHING`, &added.Streams); err != nil {
			return err
		}
		if err := step("watch_sessions", []string{"event_id", "user_id", "stream_id", "streamer_id", "started_at", "ended_at", "seconds"}, len(in.Watches), func(i int) []any {
			r := &in.Watches[i]
			return []any{r.EventID, int64(r.UserID), int64(r.StreamID), int64(r.StreamerID), r.StartedAt, r.EndedAt, r.Seconds}
		}, `INSERT INTO watch_sessions SELECT * FROM import_watch_sessions ON CONFLICT (event_id) DO NOTHING`, &added.Watches); err != nil {
			return err
		}
		if err := step("gifts", []string{"event_id", "user_id", "streamer_id", "stream_id", "amount", "sent_at"}, len(in.Gifts), func(i int) []any {
			r := &in.Gifts[i]
			return []any{r.EventID, int64(r.UserID), int64(r.StreamerID), int64(r.StreamID), r.Amount, r.SentAt}
		}, `INSERT INTO gifts SELECT * FROM import_gifts ON CONFLICT (event_id) DO NOTHING`, &added.Gifts); err != nil {
			return err
		}
		return step("follows", []string{"user_id", "streamer_id", "active", "created_at", "updated_at"}, len(in.Follows), func(i int) []any {
			r := &in.Follows[i]
			return []any{int64(r.UserID), int64(r.StreamerID), r.Active, r.CreatedAt, r.UpdatedAt}
		}, `INSERT INTO follows SELECT * FROM import_follows ON CONFLICT (user_id, streamer_id) DO UPDATE SET
				active = excluded.active,
				updated_at = excluded.updated_at,
				created_at = CASE WHEN excluded.active AND NOT follows.active THEN excluded.created_at ELSE follows.created_at END
			WHERE follows.updated_at < excluded.updated_at`, &added.Follows)
	})
	if err != nil {
		return HistoryCounts{}, db.wrapCtx(ctx, op, err)
	}
	return added, nil
}
