package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/liverecall/liverecall/postgres/pgtest"
)

// `train` waits for the training lock another run holds (two CronJobs, or
// one started by hand, never train at once), and its wait ends with its
// context.
func TestTrainWaitsForTheTrainingLock(t *testing.T) {
	db, url := pgtest.OpenURL(t)
	release, err := db.LockTraining(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer release()

	app, _, _ := testApp(nil)
	app.Log = newLogger(io.Discard, "error", "text")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runTrain(ctx, app, []string{"--database-url", url, "--model", "ncf"}) }()
	for deadline := time.Now().Add(eventually); ; time.Sleep(10 * time.Millisecond) {
		var n int
		if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("train ran while another run held the training lock: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("train is not waiting for the training lock after %v", eventually)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("train: %v, want it cancelled while waiting for the lock", err)
		}
	case <-time.After(eventually):
		t.Fatalf("train did not end within %v of its context", eventually)
	}
}
