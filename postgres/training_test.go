package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestTrainingReads(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, q := range []string{
		`INSERT INTO streams (id, streamer_id, started_at, ended_at) VALUES
			(1, 10, '2026-03-01 10:00Z', '2026-03-01 11:00Z'),
			(2, 20, '2026-03-01 11:30Z', NULL),
			(3, 10, '2026-03-01 12:30Z', '2026-03-01 14:00Z')`,
		`INSERT INTO watch_sessions (event_id, user_id, stream_id, streamer_id, started_at, ended_at, seconds) VALUES
			('w2', 1, 3, 10, '2026-03-01 13:00Z', '2026-03-01 13:10Z', 600),
			('w1', 2, 2, 20, '2026-03-01 12:00Z', '2026-03-01 12:01Z', 60),
			('w0', 1, 1, 10, '2026-03-01 10:05Z', '2026-03-01 10:06Z', 60)`,
		`INSERT INTO gifts (event_id, user_id, streamer_id, stream_id, amount, sent_at) VALUES
			('g1', 1, 10, 3, 5, '2026-03-01 13:05Z'), ('g0', 1, 10, 1, 1, '2026-03-01 10:10Z')`,
		`INSERT INTO follows (user_id, streamer_id, active, created_at, updated_at) VALUES
			(1, 10, true, '2026-02-01Z', '2026-02-01Z'), (2, 10, false, '2026-02-01Z', '2026-02-02Z')`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var ws []postgres.WatchRow
	if err := db.TrainingWatches(ctx, t0, func(w postgres.WatchRow) error { ws = append(ws, w); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[0].EventID != "w1" || ws[1].EventID != "w2" || ws[1].Seconds != 600 || ws[1].StreamerID != 10 {
		t.Fatalf("watches since %v: %+v", t0, ws)
	}
	var gs []postgres.GiftRow
	if err := db.TrainingGifts(ctx, time.Time{}, func(g postgres.GiftRow) error { gs = append(gs, g); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].EventID != "g0" || gs[1].Amount != 5 {
		t.Fatalf("gifts: %+v", gs)
	}
	var fs []postgres.FollowRow
	if err := db.TrainingFollows(ctx, func(f postgres.FollowRow) error { fs = append(fs, f); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(fs) != 1 || fs[0].UserID != 1 {
		t.Fatalf("follows (active only): %+v", fs)
	}
	var ss []postgres.StreamRow
	if err := db.TrainingStreams(ctx, t0, func(s postgres.StreamRow) error { ss = append(ss, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ss) != 2 || ss[0].ID != 2 || !ss[0].EndedAt.IsZero() || ss[1].ID != 3 || !ss[1].EndedAt.Equal(time.Date(2026, 3, 1, 14, 0, 0, 0, time.UTC)) {
		t.Fatalf("streams live since %v: %+v", t0, ss)
	}
	stop := errors.New("stop")
	n := 0
	if err := db.TrainingWatches(ctx, time.Time{}, func(postgres.WatchRow) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("callback error: %v after %d rows", err, n)
	}
}

func TestUnknownIDsAndDeleteStaged(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	for _, q := range []string{
		`INSERT INTO streamers (id) VALUES (1)`,
		`INSERT INTO streams (id, streamer_id, started_at) VALUES (1, 2, now())`,
		`INSERT INTO watch_sessions (event_id, user_id, stream_id, streamer_id, started_at, ended_at, seconds) VALUES ('w', 10, 1, 2, now(), now(), 1)`,
		`INSERT INTO follows (user_id, streamer_id, created_at, updated_at) VALUES (11, 1, now(), now())`,
	} {
		if _, err := db.Pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.UnknownIDs(ctx, lr.SideStreamer, []int64{5, 1, 2, 3, 4}, 2)
	if err != nil || len(got) != 2 || got[0] != 5 || got[1] != 3 {
		t.Fatalf("unknown streamers: %v, %v", got, err)
	}
	got, err = db.UnknownIDs(ctx, lr.SideUser, []int64{10, 11, 12}, 10)
	if err != nil || len(got) != 1 || got[0] != 12 {
		t.Fatalf("unknown users: %v, %v", got, err)
	}
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "s", Dim: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CopyEmbeddings(ctx, mv.ID, lr.SideUser, []lr.Embedding{{ID: 1, Vec: []float32{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteStagedModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ModelByID(ctx, mv.ID); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("deleted version still there: %v", err)
	}
	a, _ := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "a", Dim: 2})
	if _, err := db.ActivateModel(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteStagedModel(ctx, a.ID); lr.ErrorCode(err) != lr.ECONFLICT {
		t.Fatalf("deleting the active version: %v, want conflict", err)
	}
}
