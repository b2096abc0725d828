package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/backoff"
)

// listenRetry is Listen's wait before reconnecting.
var listenRetry = backoff.Policy{Initial: time.Second, Max: 30 * time.Second}

// Listen subscribes to channel (LISTEN) on a connection of its own and calls
// fn with each notification's payload, in order, until ctx ends; it then
// returns ctx's error. After every (re)subscription it calls fn("") first:
// notifications sent while it was not listening are lost, so the caller
// should treat "" as "re-check the current state". When the connection
// fails it waits (about 1 s doubling to 30 s, jittered, or until ctx ends)
// and reconnects.
// fn runs on Listen's goroutine; a slow fn delays later notifications (the
// server queues them). Listen blocks; run it on its own goroutine.
func (db *DB) Listen(ctx context.Context, channel string, fn func(payload string)) error {
	for attempt := 0; ; attempt++ {
		err := db.listenOnce(ctx, channel, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		_ = err // the connection failed: reconnect after a pause
		if err := backoff.Sleep(ctx, listenRetry.Delay(attempt)); err != nil {
			return err
		}
	}
}

func (db *DB) listenOnce(ctx context.Context, channel string, fn func(string)) error {
	pc, err := db.Pool.Acquire(ctx)
	if err != nil {
		return lr.E("postgres.Listen", lr.EUNAVAILABLE, err)
	}
	// The connection leaves the pool for good: a LISTENing connection must
	// not serve other queries.
	conn := pc.Hijack()
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return lr.E("postgres.Listen", lr.EUNAVAILABLE, err)
	}
	fn("")
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return lr.E("postgres.Listen", lr.EUNAVAILABLE, err)
		}
		fn(n.Payload)
	}
}
