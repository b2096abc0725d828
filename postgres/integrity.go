package postgres

import (
	"context"

	lr "github.com/liverecall/liverecall"
)

// BannedStreamers returns the ids of every banned streamer.
func (db *DB) BannedStreamers(ctx context.Context) ([]lr.StreamerID, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id FROM streamers WHERE banned`)
	if err != nil {
		return nil, lr.E("postgres.BannedStreamers", lr.EINTERNAL, err)
	}
	defer rows.Close()
	var out []lr.StreamerID
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, lr.E("postgres.BannedStreamers", lr.EINTERNAL, err)
		}
		out = append(out, lr.StreamerID(id))
	}
	return out, lr.E("postgres.BannedStreamers", lr.EINTERNAL, rows.Err())
}

// UserBlocks returns every user's blocked streamers, streamed from the table.
func (db *DB) UserBlocks(ctx context.Context) (map[lr.UserID][]lr.StreamerID, error) {
	rows, err := db.Pool.Query(ctx, `SELECT user_id, streamer_id FROM user_blocks`)
	if err != nil {
		return nil, lr.E("postgres.UserBlocks", lr.EINTERNAL, err)
	}
	defer rows.Close()
	out := map[lr.UserID][]lr.StreamerID{}
	for rows.Next() {
		var u, s int64
		if err := rows.Scan(&u, &s); err != nil {
			return nil, lr.E("postgres.UserBlocks", lr.EINTERNAL, err)
		}
		out[lr.UserID(u)] = append(out[lr.UserID(u)], lr.StreamerID(s))
	}
	return out, lr.E("postgres.UserBlocks", lr.EINTERNAL, rows.Err())
}
