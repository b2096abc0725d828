package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestListenReceivesActivationsAndReconnects(t *testing.T) {
	db := pgtest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() { done <- db.Listen(ctx, postgres.ReloadChannel, func(p string) { got <- p }) }()
	next := func() string {
		t.Helper()
		select {
		case p := <-got:
			return p
		case <-time.After(60 * time.Second): // generous: a loaded machine under -race
			t.Fatal("no callback within 60s")
			return ""
		}
	}
	if p := next(); p != "" {
		t.Fatalf("first callback %q, want \"\" (subscribed)", p)
	}
	m, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "l1", Dim: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	var payload struct {
		Kind string `json:"kind"`
		ID   int64  `json:"id"`
	}
	if p := next(); json.Unmarshal([]byte(p), &payload) != nil || payload.ID != m.ID || payload.Kind != "mf" {
		t.Fatalf("payload %q, want id %d kind mf", p, m.ID)
	}
	// Kill the listening backend: Listen reconnects and says so with "".
	if _, err := db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`); err != nil {
		t.Fatal(err)
	}
	if p := next(); p != "" {
		t.Fatalf("after reconnect %q, want \"\"", p)
	}
	if _, err := db.ActivateModel(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if p := next(); p == "" {
		t.Fatal("no payload after reconnect")
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen returned %v, want context.Canceled", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Listen did not return after cancel")
	}
}
