package postgres

import (
	"context"
	"time"

	lr "github.com/liverecall/liverecall"
)

// trainingLockSQL names the advisory lock LockTraining takes.
const trainingLockSQL = `hashtext('liverecall.train')`

// LockTraining takes the training lock, so that two embedding training runs
// (mf and ncf: they write the same tables and each needs a machine's worth
// of memory) never run at once against one database, whoever started them.
// If another run holds the lock, waiting (if not nil) is called once and
// LockTraining blocks until the lock is free or ctx ends; it then returns
// ctx's error. The lock is a session-level PostgreSQL advisory lock on a
// connection of its own, taken out of the pool: release unlocks it and
// closes that connection. A process that dies or loses the connection
// frees the lock too (the server ends its session).
func (db *DB) LockTraining(ctx context.Context, waiting func()) (release func(), err error) {
	const op = "postgres.LockTraining"
	pc, err := db.Pool.Acquire(ctx)
	if err != nil {
		return nil, lr.E(op, lr.EUNAVAILABLE, err)
	}
	conn := pc.Hijack()
	closeConn := func() { _ = conn.Close(context.WithoutCancel(ctx)) }
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+trainingLockSQL+`)`).Scan(&got); err != nil {
		closeConn()
		return nil, lr.E(op, lr.EUNAVAILABLE, err)
	}
	if !got {
		if waiting != nil {
			waiting()
		}
		if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(`+trainingLockSQL+`)`); err != nil {
			// Closing the session also drops a lock granted just before
			// ctx ended.
			closeConn()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, lr.E(op, lr.EUNAVAILABLE, err)
		}
	}
	return func() {
		// Unlock first, so the lock is free when release returns; closing
		// alone would free it only once the server has ended the session.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		_, _ = conn.Exec(uctx, `SELECT pg_advisory_unlock(`+trainingLockSQL+`)`)
		closeConn()
	}, nil
}

// unlockTimeout bounds release's unlock; if it fails, closing the
// connection frees the lock.
const unlockTimeout = 5 * time.Second
