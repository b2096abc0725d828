package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// The pool holds DefaultMaxConns connections unless the URL says otherwise.
func TestPoolSize(t *testing.T) {
	url := pgtest.New(t)
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	for _, c := range []struct {
		url  string
		want int32
	}{{url, postgres.DefaultMaxConns}, {url + sep + "pool_max_conns=3", 3}} {
		db, err := postgres.Open(context.Background(), c.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := db.Pool.Config().MaxConns; got != c.want {
			t.Errorf("pool of %s: %d connections, want %d", c.url, got, c.want)
		}
		db.Close()
	}
}
