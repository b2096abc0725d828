package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// waitLimit bounds the waits for a condition (generous: a loaded machine
// under -race).
const waitLimit = 60 * time.Second

// waitingForAdvisoryLock reports whether a session of db's database waits
// for an advisory lock.
func waitingForAdvisoryLock(t *testing.T, db *postgres.DB) bool {
	t.Helper()
	var n int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n > 0
}

func TestLockTrainingSerialisesRuns(t *testing.T) {
	db := pgtest.Open(t)
	ctx := context.Background()
	release1, err := db.LockTraining(ctx, func() { t.Error("the first run waited") })
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	got := make(chan error, 1)
	var release2 func()
	go func() {
		var err error
		release2, err = db.LockTraining(ctx, func() { close(waited) })
		got <- err
	}()
	select {
	case <-waited:
	case err := <-got:
		t.Fatalf("the second run took the lock while the first held it (err %v)", err)
	case <-time.After(waitLimit):
		t.Fatal("the second run neither waited nor took the lock")
	}
	for deadline := time.Now().Add(waitLimit); !waitingForAdvisoryLock(t, db); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second run is not blocked on the lock")
		}
	}
	select {
	case err := <-got:
		t.Fatalf("the second run returned while the first held the lock: %v", err)
	default:
	}
	release1()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitLimit):
		t.Fatal("the second run did not get the lock once the first released it")
	}
	release2()
	// Free again.
	release3, err := db.LockTraining(ctx, func() { t.Error("waited for a released lock") })
	if err != nil {
		t.Fatal(err)
	}
	release3()
}

func TestLockTrainingWaitEndsWithTheContext(t *testing.T) {
	db := pgtest.Open(t)
	release1, err := db.LockTraining(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan struct{})
	got := make(chan error, 1)
	go func() {
		_, err := db.LockTraining(ctx, func() { close(waited) })
		got <- err
	}()
	select {
	case <-waited:
	case err := <-got:
		t.Fatalf("took the lock while another held it (err %v)", err)
	case <-time.After(waitLimit):
		t.Fatal("neither waited nor took the lock")
	}
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("a cancelled wait did not return")
	}
	// The cancelled waiter keeps nothing: once the first releases, the lock
	// can be taken (perhaps after a wait: the server may grant it to the
	// cancelled waiter's session just before that session ends).
	release1()
	lctx, lcancel := context.WithTimeout(context.Background(), waitLimit)
	defer lcancel()
	r, err := db.LockTraining(lctx, nil)
	if err != nil {
		t.Fatalf("the lock was not free again within %v: %v", waitLimit, err)
	}
	r()
}
