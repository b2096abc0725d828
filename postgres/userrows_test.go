package postgres_test

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

type userRow struct {
	model, user int64
	vec, mlp    []float32
}

// seedUserRows writes MF rows for users 1-3 and NCF rows for users 2-4,
// with an MLP embedding for 2 and 3 only, and returns the two model ids.
func seedUserRows(t *testing.T, db *postgres.DB) (int64, int64, []userRow) {
	t.Helper()
	mf := mustCreate(t, db, lr.ModelMF, "mf")
	ncf := mustCreate(t, db, lr.ModelNCF, "ncf")
	odd := []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, math.MaxFloat32, -1.5}
	rows := []userRow{
		{mf.ID, 1, []float32{1, 2, 3}, nil},
		{mf.ID, 2, odd, nil},
		{mf.ID, 3, []float32{}, nil},
		{ncf.ID, 2, []float32{4, 5}, []float32{6, 7, 8}},
		{ncf.ID, 3, []float32{9}, odd},
		{ncf.ID, 4, []float32{10, 11}, nil},
	}
	i := 0
	_, err := db.Pool.CopyFrom(context.Background(), pgx.Identifier{"user_embeddings"}, []string{"model_id", "user_id", "vec", "mlp"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == len(rows) {
				return nil, nil
			}
			r := rows[i]
			i++
			return []any{r.model, r.user, r.vec, r.mlp}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	return mf.ID, ncf.ID, rows
}

func collectUserRows(t *testing.T, db *postgres.DB, models, users []int64) []userRow {
	t.Helper()
	var got []userRow
	err := db.UserRows(context.Background(), models, users, func(model, user int64, vec, mlp []float32) error {
		got = append(got, userRow{model, user, vec, mlp})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b userRow) int {
		if a.model != b.model {
			return int(a.model - b.model)
		}
		return int(a.user - b.user)
	})
	return got
}

func sameFloats(a, b []float32) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestUserRowsReadsTheRequestedRowsBitIdentical(t *testing.T) {
	db := pgtest.Open(t)
	mf, ncf, all := seedUserRows(t, db)
	// Users 5 and 99 have no rows; user 1 has none under ncf, user 4 none under mf.
	got := collectUserRows(t, db, []int64{mf, ncf}, []int64{1, 2, 4, 5, 99})
	var want []userRow
	for _, r := range all {
		if r.user != 3 {
			want = append(want, r)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.model != w.model || g.user != w.user || !sameFloats(g.vec, w.vec) || !sameFloats(g.mlp, w.mlp) {
			t.Errorf("row %d = %+v, want %+v", i, g, w)
		}
	}
	// One model only; an empty vector is an empty, not a nil, slice.
	got = collectUserRows(t, db, []int64{mf}, []int64{3, 4})
	if len(got) != 1 || got[0].user != 3 || got[0].vec == nil || len(got[0].vec) != 0 || got[0].mlp != nil {
		t.Fatalf("mf rows of users 3, 4 = %+v, want user 3 with an empty vector", got)
	}
	if got := collectUserRows(t, db, nil, []int64{1}); len(got) != 0 {
		t.Fatalf("no models: %v", got)
	}
	if got := collectUserRows(t, db, []int64{mf}, nil); len(got) != 0 {
		t.Fatalf("no users: %v", got)
	}
}

// The same rows in the text format (the simple protocol never asks for
// binary), which UserRows decodes through pgx's scan instead.
func TestUserRowsTextFormatMatchesBinary(t *testing.T) {
	db := pgtest.Open(t)
	mf, ncf, _ := seedUserRows(t, db)
	u, _ := url.Parse(db.URL())
	q := u.Query()
	q.Set("default_query_exec_mode", "simple_protocol")
	u.RawQuery = q.Encode()
	simple, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer simple.Close()
	users := []int64{1, 2, 3, 4}
	bin, text := collectUserRows(t, db, []int64{mf, ncf}, users), collectUserRows(t, simple, []int64{mf, ncf}, users)
	if len(bin) != 6 || len(text) != len(bin) {
		t.Fatalf("binary %d rows, text %d, want 6", len(bin), len(text))
	}
	for i := range bin {
		if bin[i].model != text[i].model || bin[i].user != text[i].user || !sameFloats(bin[i].vec, text[i].vec) || !sameFloats(bin[i].mlp, text[i].mlp) {
			t.Errorf("row %d: binary %+v, text %+v", i, bin[i], text[i])
		}
	}
}

func TestUserRowsIsAPreparedStatement(t *testing.T) {
	db := pgtest.Open(t)
	mf, _, _ := seedUserRows(t, db)
	u, _ := url.Parse(db.URL())
	q := u.Query()
	q.Set("pool_max_conns", "1") // one session, so the check below sees the statement's
	u.RawQuery = q.Encode()
	one, err := postgres.Open(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	for range 3 {
		collectUserRows(t, one, []int64{mf}, []int64{1})
	}
	var n int
	if err := one.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM user_embeddings%' AND statement NOT LIKE '%pg_prepared_statements%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d prepared statements read user_embeddings on the session, want 1", n)
	}
}

func TestUserRowsStopsOnTheCallbacksError(t *testing.T) {
	db := pgtest.Open(t)
	mf, ncf, _ := seedUserRows(t, db)
	stop := errors.New("stop")
	calls := 0
	err := db.UserRows(context.Background(), []int64{mf, ncf}, []int64{1, 2, 3, 4}, func(int64, int64, []float32, []float32) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("err %v after %d calls, want the callback's error after 1", err, calls)
	}
}

func TestUserRowsReportsALostConnectionAsUnavailable(t *testing.T) {
	db := pgtest.Open(t)
	mf, _, _ := seedUserRows(t, db)
	link := newRelay(t, db.URL())
	cut, err := postgres.Open(context.Background(), link.url)
	if err != nil {
		t.Fatal(err)
	}
	defer cut.Close()
	if got := collectUserRows(t, cut, []int64{mf}, []int64{1}); len(got) != 1 {
		t.Fatalf("through the relay: %v", got)
	}
	link.cut()
	err = cut.UserRows(context.Background(), []int64{mf}, []int64{1}, func(int64, int64, []float32, []float32) error { return nil })
	if lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("with the server cut off: %v (code %s), want unavailable", err, lr.ErrorCode(err))
	}
}

// relay forwards TCP connections to the test server until cut (listener
// and every connection closed), which the client sees as a lost server
// without the machine's server being touched.
type relay struct {
	url   string
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newRelay(t *testing.T, dbURL string) *relay {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.Host = ln.Addr().String()
	r := &relay{url: u.String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, c, up)
			r.mu.Unlock()
			go func() { io.Copy(up, c); up.Close(); c.Close() }()
			go func() { io.Copy(c, up); up.Close(); c.Close() }()
		}
	}()
	t.Cleanup(r.cut)
	return r
}

func (r *relay) cut() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}
