package recall_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recall"
)

func TestIntegrityCacheLoadsFromPostgres(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	if _, err := db.Pool.Exec(ctx, `INSERT INTO streamers (id, banned) VALUES (1, true), (2, false);
		INSERT INTO user_blocks (user_id, streamer_id) VALUES (7, 3), (7, 4), (8, 3)`); err != nil {
		t.Fatal(err)
	}
	c := recall.NewIntegrityCache(db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if c.Banned(1) {
		t.Fatal("banned before the first load")
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.Banned(1) || c.Banned(2) || len(c.Blocked(7)) != 2 || len(c.Blocked(8)) != 1 || c.Blocked(9) != nil {
		t.Fatalf("banned(1)=%v banned(2)=%v blocks 7:%v 8:%v", c.Banned(1), c.Banned(2), c.Blocked(7), c.Blocked(8))
	}
	var _ recall.Integrity = c
}
