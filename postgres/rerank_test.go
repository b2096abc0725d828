package postgres_test

import (
	"context"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestRerankModelLifecycle(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	if _, err := db.ActiveRerankModel(ctx); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("no model yet: %v", err)
	}
	a, err := db.CreateRerankModel(ctx, "r1", []byte(`{"bias":1}`), nil)
	if err != nil || a.Status != lr.StatusStaged {
		t.Fatalf("create: %+v %v", a, err)
	}
	b, _ := db.CreateRerankModel(ctx, "r2", []byte(`{"bias":2}`), []byte(`{"logloss":0.3}`))
	if _, err := db.CreateRerankModel(ctx, "r2", []byte(`{}`), nil); lr.ErrorCode(err) != lr.ECONFLICT {
		t.Fatalf("duplicate: %v", err)
	}
	for _, id := range []int64{a.ID, b.ID} {
		if err := db.ActivateRerankModel(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	m, err := db.ActiveRerankModel(ctx)
	if err != nil || m.Version != "r2" || string(m.Weights) != `{"bias": 2}` {
		t.Fatalf("active %+v (weights %s) %v", m, m.Weights, err)
	}
	// By version, whatever its status (r1 is retired now).
	if got, st, err := db.RerankWeights(ctx, "r1"); err != nil || string(got) != `{"bias": 1}` || st != lr.StatusRetired {
		t.Fatalf("r1's weights: %s %s %v", got, st, err)
	}
	if _, _, err := db.RerankWeights(ctx, "r9"); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("missing version: %v", err)
	}
	if err := db.ActivateRerankModel(ctx, 999); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("missing id: %v", err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE rerank_models SET status='active', activated_at=now()`); err == nil {
		t.Fatal("database accepted two active rerank models")
	}
}
