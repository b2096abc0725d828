package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func loadHistory(t *testing.T, db *postgres.DB, users, streamers, watches int) postgres.HistoryCounts {
	t.Helper()
	ctx := context.Background()
	l, err := db.LoadHistory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := 1; i <= users; i++ {
		must(t, l.User(postgres.UserRow{ID: lr.UserID(i), Language: "en", Country: "US", CreatedAt: t0}))
	}
	for i := 1; i <= streamers; i++ {
		must(t, l.Streamer(postgres.StreamerRow{ID: lr.StreamerID(i), Name: fmt.Sprint("s", i), Category: "music", Language: "de", CreatedAt: t0}))
		ended := t0.Add(2 * time.Hour)
		if i%2 == 0 {
			ended = time.Time{}
		}
		must(t, l.Stream(postgres.StreamRow{ID: lr.StreamID(i), StreamerID: lr.StreamerID(i), Category: "music", Title: "t", StartedAt: t0, EndedAt: ended}))
		must(t, l.Follow(postgres.FollowRow{UserID: 1, StreamerID: lr.StreamerID(i), Active: i%3 != 0, CreatedAt: t0, UpdatedAt: t0.Add(time.Minute)}))
	}
	for i := 0; i < watches; i++ {
		s := lr.StreamerID(1 + i%streamers)
		must(t, l.Watch(postgres.WatchRow{EventID: fmt.Sprint("e", i), UserID: lr.UserID(1 + i%users), StreamID: lr.StreamID(s), StreamerID: s,
			StartedAt: t0.Add(time.Duration(i) * time.Millisecond), EndedAt: t0.Add(time.Duration(i)*time.Millisecond + time.Minute), Seconds: 60}))
		if i%10 == 0 {
			must(t, l.Gift(postgres.GiftRow{EventID: fmt.Sprint("g", i), UserID: lr.UserID(1 + i%users), StreamerID: s, StreamID: lr.StreamID(s), Amount: 5, SentAt: t0}))
		}
	}
	c, err := l.Close()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadHistoryRoundTripCounts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ users, streamers, watches int }{
		{1, 1, 0},
		{500, 30, 5000},
		{20000, 3000, 200000},
	} {
		t.Run(fmt.Sprintf("%d-%d-%d", tc.users, tc.streamers, tc.watches), func(t *testing.T) {
			db := pgtest.Open(t)
			start := time.Now()
			got := loadHistory(t, db, tc.users, tc.streamers, tc.watches)
			took := time.Since(start)
			want := postgres.HistoryCounts{Users: int64(tc.users), Streamers: int64(tc.streamers), Streams: int64(tc.streamers),
				Watches: int64(tc.watches), Gifts: int64((tc.watches + 9) / 10), Follows: int64(tc.streamers)}
			if got != want {
				t.Fatalf("loader counted %+v, want %+v", got, want)
			}
			inDB, err := db.CountHistory(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if inDB != want {
				t.Fatalf("database holds %+v, want %+v", inDB, want)
			}
			rows := want.Users + want.Streamers + want.Streams + want.Watches + want.Gifts + want.Follows
			t.Logf("%d rows in %v (%.0f rows/s)", rows, took.Round(time.Millisecond), float64(rows)/took.Seconds())

			var open, ended, active int
			err = db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM streams WHERE ended_at IS NULL AND end_reason IS NULL),
				(SELECT count(*) FROM streams WHERE ended_at = started_at + interval '2 hours' AND end_reason = 'ended'),
				(SELECT count(*) FROM follows WHERE active)`).Scan(&open, &ended, &active)
			if err != nil {
				t.Fatal(err)
			}
			if open != tc.streamers/2 || ended != tc.streamers-tc.streamers/2 || active != tc.streamers-tc.streamers/3 {
				t.Fatalf("open %d, ended %d, active follows %d", open, ended, active)
			}
		})
	}
}

func TestLoadHistoryDuplicateNamesTheTable(t *testing.T) {
	db := pgtest.Open(t)
	loadHistory(t, db, 10, 5, 10)
	l, err := db.LoadHistory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Add fails once the COPY has failed, or Close reports it.
	for i := 0; i < 50000 && err == nil; i++ {
		err = l.Streamer(postgres.StreamerRow{ID: lr.StreamerID(i + 1), CreatedAt: time.Now()})
	}
	_, cerr := l.Close()
	if err == nil {
		err = cerr
	}
	if lr.ErrorCode(err) != lr.EINVALID || !strings.Contains(err.Error(), "streamers") || !strings.Contains(err.Error(), "(id)=(1)") {
		t.Fatalf("duplicate streamer: %v", err)
	}
	// Nothing of the failed load was written; the first load is intact.
	c, err := db.CountHistory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Streamers != 5 || c.Users != 10 {
		t.Fatalf("after the failed load: %+v", c)
	}
	if err := db.TruncateHistory(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.CountHistory(context.Background()); c != (postgres.HistoryCounts{}) {
		t.Fatalf("after truncate: %+v", c)
	}
}

func TestLoadHistoryAbortWritesNothing(t *testing.T) {
	db := pgtest.Open(t)
	l, err := db.LoadHistory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		must(t, l.User(postgres.UserRow{ID: lr.UserID(i + 1), CreatedAt: time.Now()}))
	}
	l.Abort()
	if err := l.User(postgres.UserRow{ID: 1}); err == nil {
		t.Fatal("add after abort accepted")
	}
	c, err := db.CountHistory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Users != 0 {
		t.Fatalf("%d users written by an aborted load", c.Users)
	}
}

// The simulated world of the history is recorded, replaced by the next
// load's, and forgotten with the history.
func TestSimWorldRecorded(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	if _, ok, err := db.SimWorldRecorded(ctx); ok || err != nil {
		t.Fatalf("empty database: recorded %v, %v", ok, err)
	}
	w := postgres.SimWorld{Seed: 7, Start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Days: 7, Streamers: 50, Users: 500}
	for _, w := range []postgres.SimWorld{w, {Seed: 8, Start: w.Start.AddDate(0, 0, 1), Days: 3, Streamers: 5, Users: 6, Context: true}} {
		if err := db.SetSimWorld(ctx, w); err != nil {
			t.Fatal(err)
		}
		got, ok, err := db.SimWorldRecorded(ctx)
		if err != nil || !ok || got != w {
			t.Fatalf("recorded %+v %v %v, want %+v", got, ok, err, w)
		}
	}
	if err := db.TruncateHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.SimWorldRecorded(ctx); ok || err != nil {
		t.Fatalf("after TruncateHistory: recorded %v, %v", ok, err)
	}
}
