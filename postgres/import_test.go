package postgres_test

import (
	"context"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func importRows(t0 time.Time) postgres.ImportRows {
	return postgres.ImportRows{
		Users:     []postgres.UserRow{{ID: 1, CreatedAt: t0}},
		Streamers: []postgres.StreamerRow{{ID: 10, Category: "music", CreatedAt: t0}},
		Streams: []postgres.StreamRow{{ID: 100, StreamerID: 10, StartedAt: t0, EndedAt: t0.Add(time.Hour)},
			{ID: 101, StreamerID: 10, StartedAt: t0.Add(2 * time.Hour)}},
		Watches: []postgres.WatchRow{{EventID: "import:1:10:0", UserID: 1, StreamID: 100, StreamerID: 10, StartedAt: t0, EndedAt: t0.Add(time.Minute), Seconds: 60}},
		Gifts:   []postgres.GiftRow{{EventID: "import:gift:a", UserID: 1, StreamerID: 10, StreamID: 100, Amount: 2, SentAt: t0}},
		Follows: []postgres.FollowRow{{UserID: 1, StreamerID: 10, Active: true, CreatedAt: t0, UpdatedAt: t0}},
	}
}

// ImportHistory adds rows once: a second call with the same rows adds
// none; a follow changes only to a newer state; streams get last_event_at
// and end_reason as the sink gives them.
func TestImportHistoryIdempotent(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC)
	in := importRows(t0)
	var calls []string
	added, err := db.ImportHistory(ctx, in, func(table string, n int) { calls = append(calls, table) })
	if err != nil {
		t.Fatal(err)
	}
	if added != in.Counts() {
		t.Errorf("first import added %+v, want %+v", added, in.Counts())
	}
	if len(calls) != 6 {
		t.Errorf("progress called for %v, want the six tables", calls)
	}
	if added, err = db.ImportHistory(ctx, in, nil); err != nil || added != (postgres.HistoryCounts{}) {
		t.Errorf("second import added %+v, %v; want nothing", added, err)
	}
	var reason *string
	var last time.Time
	if err := db.Pool.QueryRow(ctx, `SELECT end_reason, last_event_at FROM streams WHERE id = 100`).Scan(&reason, &last); err != nil {
		t.Fatal(err)
	}
	if reason == nil || *reason != "ended" || !last.Equal(t0.Add(time.Hour)) {
		t.Errorf("stream 100: end_reason %v, last_event_at %s", reason, last)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT end_reason, last_event_at FROM streams WHERE id = 101`).Scan(&reason, &last); err != nil {
		t.Fatal(err)
	}
	if reason != nil || !last.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("open stream 101: end_reason %v, last_event_at %s", reason, last)
	}
	// An older follow state loses; a newer one wins.
	older := postgres.ImportRows{Follows: []postgres.FollowRow{{UserID: 1, StreamerID: 10, Active: false, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0.Add(-time.Hour)}}}
	if added, _ := db.ImportHistory(ctx, older, nil); added.Follows != 0 {
		t.Errorf("an older follow state changed the row")
	}
	newer := postgres.ImportRows{Follows: []postgres.FollowRow{{UserID: 1, StreamerID: 10, Active: false, CreatedAt: t0, UpdatedAt: t0.Add(time.Hour)}}}
	if added, _ := db.ImportHistory(ctx, newer, nil); added.Follows != 1 {
		t.Errorf("a newer follow state did not change the row")
	}
}

// ImportHistory is one transaction: a row the database refuses in the last
// tables leaves the first ones unwritten too.
func TestImportHistoryAllOrNothing(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	in := importRows(time.Date(2026, 3, 1, 20, 0, 0, 0, time.UTC))
	in.Gifts[0].Amount = -1 // gifts CHECK (amount > 0)
	if _, err := db.ImportHistory(ctx, in, nil); err == nil {
		t.Fatal("a gift of -1 was imported")
	} else if lr.ErrorCode(err) == "" {
		t.Errorf("error without a code: %v", err)
	}
	c, err := db.CountHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c != (postgres.HistoryCounts{}) {
		t.Errorf("a failed import wrote %+v", c)
	}
}
