package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// WithDefaultMaxConns sizes the pool unless the URL does.
func TestWithDefaultMaxConns(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t)
	db, err := postgres.Open(ctx, url, postgres.WithDefaultMaxConns(9))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.Pool.Config().MaxConns; got != 9 {
		t.Errorf("pool of %d connections, want the default given, 9", got)
	}
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	db3, err := postgres.Open(ctx, url+sep+"pool_max_conns=3", postgres.WithDefaultMaxConns(9))
	if err != nil {
		t.Fatal(err)
	}
	defer db3.Close()
	if got := db3.Pool.Config().MaxConns; got != 3 {
		t.Errorf("pool of %d connections with pool_max_conns=3 in the URL, want 3", got)
	}
}
