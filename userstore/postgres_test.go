package userstore

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// countingSource counts the queries that reach PostgreSQL.
type countingSource struct {
	*postgres.DB
	calls atomic.Int64
}

func (c *countingSource) UserRows(ctx context.Context, models, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	c.calls.Add(1)
	return c.DB.UserRows(ctx, models, users, fn)
}

func createModel(t *testing.T, db *postgres.DB, kind lr.ModelKind, version string, vecs map[int64][]float32, mlps map[int64][]float32) int64 {
	t.Helper()
	ctx := context.Background()
	m, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: kind, Version: version, Dim: 2})
	if err != nil {
		t.Fatal(err)
	}
	var rows []lr.Embedding
	for u, v := range vecs {
		rows = append(rows, lr.Embedding{ID: u, Vec: v})
	}
	if _, err := db.CopyEmbeddings(ctx, m.ID, lr.SideUser, rows); err != nil {
		t.Fatal(err)
	}
	for u, mlp := range mlps {
		if _, err := db.Pool.Exec(ctx, `UPDATE user_embeddings SET mlp = $1 WHERE model_id = $2 AND user_id = $3`, mlp, m.ID, u); err != nil {
			t.Fatal(err)
		}
	}
	return m.ID
}

func TestStoreOverPostgres(t *testing.T) {
	db := pgtest.Open(t)
	mf := createModel(t, db, lr.ModelMF, "mf", map[int64][]float32{1: {1, 1}, 2: {2, 2}}, nil)
	ncf := createModel(t, db, lr.ModelNCF, "ncf-a", map[int64][]float32{1: {10, 10}, 3: {30, 30}}, map[int64][]float32{1: {11, 12, 13}})
	ncf2 := createModel(t, db, lr.ModelNCF, "ncf-b", map[int64][]float32{1: {-10, -10}}, map[int64][]float32{1: {-11, -12, -13}})
	src := &countingSource{DB: db}
	s, _ := newStore(t, Config{Source: src, MaxBatch: 4, BatchWait: time.Hour})
	v := Versions{MF: mf, NCF: ncf}

	// Users 1-3 and an unknown one, each fetched by three requests at once:
	// one query.
	want := map[lr.UserID]Row{
		1:  {Versions: v, MF: []float32{1, 1}, NCF: []float32{10, 10}, MLP: []float32{11, 12, 13}},
		2:  {Versions: v, MF: []float32{2, 2}},
		3:  {Versions: v, NCF: []float32{30, 30}},
		99: {Versions: v},
	}
	same := func(a, b Row) bool {
		return a.Versions == b.Versions && slices.Equal(a.MF, b.MF) && slices.Equal(a.NCF, b.NCF) && slices.Equal(a.MLP, b.MLP) &&
			(a.MF == nil) == (b.MF == nil) && (a.NCF == nil) == (b.NCF == nil) && (a.MLP == nil) == (b.MLP == nil)
	}
	var wg sync.WaitGroup
	for range 3 {
		for u, w := range want {
			wg.Go(func() {
				r, err := s.Fetch(waitCtx(t), u, v)
				if err != nil || !same(r, w) {
					t.Errorf("user %d: %+v, %v; want %+v", u, r, err, w)
				}
			})
		}
	}
	wg.Wait()
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("%d queries for 4 users fetched 3 times each at once, want 1", n)
	}

	// Hits: no query.
	for u, w := range want {
		if r, err := s.Fetch(waitCtx(t), u, v); err != nil || !same(r, w) {
			t.Fatalf("user %d cached: %+v, %v", u, r, err)
		}
	}
	if n := src.calls.Load(); n != 1 {
		t.Fatalf("cached users queried again (%d queries)", n)
	}

	// A new NCF version: user 1's NCF vector and MLP come from it, never
	// from the version it replaced; the old entries are gone.
	v2 := Versions{MF: mf, NCF: ncf2}
	want = map[lr.UserID]Row{
		1:  {Versions: v2, MF: []float32{1, 1}, NCF: []float32{-10, -10}, MLP: []float32{-11, -12, -13}},
		2:  {Versions: v2, MF: []float32{2, 2}},
		3:  {Versions: v2},
		99: {Versions: v2},
	}
	for u, w := range want {
		wg.Go(func() {
			r, err := s.Fetch(waitCtx(t), u, v2)
			if err != nil || !same(r, w) {
				t.Errorf("user %d under the new version: %+v, %v; want %+v", u, r, err, w)
			}
		})
	}
	wg.Wait()
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d queries after the swap, want 2", n)
	}
	// 20 lookups in all: the first 12 are misses except for a request that
	// came after its user's batch was read (a hit, on a loaded machine),
	// the next 4 hits, the last 4 misses of the new version.
	if st := s.Stats(); st.Entries != 4 || st.Hits+st.Misses != 20 || st.Hits < 4 || st.Misses < 8 {
		t.Fatalf("Stats after the swap: %+v, want the new version's 4 entries and 20 lookups, at least 4 hits and 8 misses (each waiter of a flight counts)", st)
	}
}

// TestPrefetchOverPostgres: Prefetch starts the read of a user the cache
// does not hold and returns; the request's lookup then finds the row (or
// joins its read) with no second query, and counts a miss
// (prefetched_miss), not a hit; a cached user is not read again.
func TestPrefetchOverPostgres(t *testing.T) {
	db := pgtest.Open(t)
	mf := createModel(t, db, lr.ModelMF, "mf", map[int64][]float32{1: {1, 1}, 2: {2, 2}}, nil)
	src := &countingSource{DB: db}
	s, _ := newStore(t, Config{Source: src})
	v := Versions{MF: mf}

	s.Prefetch(1, v)
	s.Prefetch(1, v) // the same read
	ctx := waitCtx(t)
	for s.Stats().Entries != 1 {
		if ctx.Err() != nil {
			t.Fatal("the prefetched row never reached the cache")
		}
		time.Sleep(time.Millisecond)
	}
	if r, ok := s.Cached(1, v); !ok || !slices.Equal(r.MF, []float32{1, 1}) {
		t.Fatalf("Cached after Prefetch: %+v, %v", r, ok)
	}
	if got := testutil.ToFloat64(s.m.lookups.prefetched); got != 1 || testutil.ToFloat64(s.m.lookups.hit) != 0 {
		t.Fatalf("the prefetched user's lookup: %v prefetched misses, %v hits; want 1, 0", got, testutil.ToFloat64(s.m.lookups.hit))
	}
	if r, ok := s.Cached(1, v); !ok || r.MF == nil || testutil.ToFloat64(s.m.lookups.hit) != 1 {
		t.Fatal("the next request's lookup is not a hit")
	}
	s.Prefetch(1, v) // cached: nothing to read
	if n, p := src.calls.Load(), testutil.ToFloat64(s.m.prefetches); n != 1 || p != 2 {
		t.Fatalf("%d queries, %v prefetches; want 1, 2 (the second joined the first's read)", n, p)
	}

	// A Fetch right after the Prefetch joins its read.
	s.Prefetch(2, v)
	if r, err := s.Fetch(waitCtx(t), 2, v); err != nil || !slices.Equal(r.MF, []float32{2, 2}) {
		t.Fatalf("Fetch after Prefetch: %+v, %v", r, err)
	}
	if n := src.calls.Load(); n != 2 {
		t.Fatalf("%d queries for two prefetched users, want 2", n)
	}
	if st := s.Stats(); st.Misses != 2 || st.Hits != 1 {
		t.Fatalf("Stats: %+v, want 2 misses (the prefetched users' lookups) and 1 hit", st)
	}
}
