package postgres_test

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func TestOneActiveModelPerKindIsEnforcedByTheDatabase(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	a := mustCreate(t, db, lr.ModelMF, "a")
	b := mustCreate(t, db, lr.ModelMF, "b")
	n := mustCreate(t, db, lr.ModelNCF, "n")

	// Bypass the application: a second active row of one kind must be refused.
	if _, err := db.Pool.Exec(ctx, `UPDATE embedding_models SET status='active', activated_at=now() WHERE id = ANY($1)`, []int64{a.ID, b.ID}); err == nil {
		t.Fatal("database accepted two active mf versions")
	}
	// One active per kind, kinds independent.
	if _, err := db.Pool.Exec(ctx, `UPDATE embedding_models SET status='active', activated_at=now() WHERE id = ANY($1)`, []int64{a.ID, n.ID}); err != nil {
		t.Fatalf("one active mf and one active ncf refused: %v", err)
	}
	// An active row must say when it was activated.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO embedding_models (kind, version, dim, status) VALUES ('ncf','x',8,'retired')`); err == nil {
		t.Fatal("database accepted a retired version that was never activated")
	}
}

func TestActivateRetiresThePreviousAndNotifies(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)

	conn, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+postgres.ReloadChannel); err != nil {
		t.Fatal(err)
	}

	a := mustCreate(t, db, lr.ModelMF, "a")
	b := mustCreate(t, db, lr.ModelMF, "b")
	if a.Status != lr.StatusStaged {
		t.Fatalf("new version status %s, want staged", a.Status)
	}
	if _, err := db.ActiveModel(ctx, lr.ModelMF); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("ActiveModel with none active: %v, want not_found", err)
	}
	for _, m := range []lr.ModelVersion{a, b} {
		got, err := db.ActivateModel(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != lr.StatusActive || got.ActivatedAt == nil {
			t.Fatalf("activated %+v", got)
		}
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second) // generous: a loaded machine
		note, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("no notification after activating %s: %v", m.Version, err)
		}
		var payload struct {
			Kind    string `json:"kind"`
			ID      int64  `json:"id"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(note.Payload), &payload); err != nil || payload.ID != m.ID || payload.Kind != "mf" {
			t.Fatalf("notification %q (err %v), want id %d", note.Payload, err, m.ID)
		}
	}
	active, err := db.ActiveModel(ctx, lr.ModelMF)
	if err != nil || active.ID != b.ID {
		t.Fatalf("active = %v (err %v), want b", active, err)
	}
	old, _ := db.ModelByID(ctx, a.ID)
	if old.Status != lr.StatusRetired {
		t.Fatalf("previous active is %s, want retired", old.Status)
	}
	if _, err := db.ActivateModel(ctx, 999999); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("activating a missing id: %v", err)
	}
	if _, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelMF, Version: "a", Dim: 4}); lr.ErrorCode(err) != lr.ECONFLICT {
		t.Fatalf("duplicate version label: %v, want conflict", err)
	}
}

func TestCopyEmbeddingsRoundTripIsBitIdentical(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	const n, dim = 100_000, 64
	m := mustCreate(t, db, lr.ModelMF, "big")
	rng := rand.New(rand.NewPCG(1, 2))
	rows := make([]lr.Embedding, n)
	for i := range rows {
		v := make([]float32, dim)
		for j := range v {
			v[j] = float32(rng.NormFloat64())
		}
		rows[i] = lr.Embedding{ID: int64(i)*7 + 3, Vec: v}
	}
	// Values a text round trip would damage.
	rows[0].Vec[0] = float32(math.Copysign(0, -1))
	rows[0].Vec[1] = math.SmallestNonzeroFloat32
	rows[0].Vec[2] = math.MaxFloat32
	rows[0].Vec[3] = 0.1

	start := time.Now()
	written, err := db.CopyEmbeddings(ctx, m.ID, lr.SideStreamer, rows)
	if err != nil || written != n {
		t.Fatalf("CopyEmbeddings wrote %d (err %v)", written, err)
	}
	t.Logf("COPY of %d x %d in %v", n, dim, time.Since(start))
	if c, err := db.CountEmbeddings(ctx, m.ID, lr.SideStreamer); err != nil || c != n {
		t.Fatalf("count %d, err %v", c, err)
	}

	i := 0
	err = db.StreamEmbeddings(ctx, m.ID, lr.SideStreamer, func(id int64, vec []float32) error {
		want := rows[i]
		if id != want.ID || len(vec) != dim {
			t.Fatalf("row %d: id %d dim %d, want id %d", i, id, len(vec), want.ID)
		}
		for j := range vec {
			if math.Float32bits(vec[j]) != math.Float32bits(want.Vec[j]) {
				t.Fatalf("row %d col %d: %08x, want %08x", i, j, math.Float32bits(vec[j]), math.Float32bits(want.Vec[j]))
			}
		}
		i++
		return nil
	})
	if err != nil || i != n {
		t.Fatalf("streamed %d rows, err %v", i, err)
	}

	// A duplicate id in a batch is refused as invalid input and nothing is written.
	m2 := mustCreate(t, db, lr.ModelMF, "dup")
	_, err = db.CopyEmbeddings(ctx, m2.ID, lr.SideUser, []lr.Embedding{{ID: 1, Vec: []float32{1}}, {ID: 1, Vec: []float32{2}}})
	if lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("duplicate ids: %v, want invalid", err)
	}
	if c, _ := db.CountEmbeddings(ctx, m2.ID, lr.SideUser); c != 0 {
		t.Fatalf("%d rows written from a refused batch", c)
	}
}

func mustCreate(t *testing.T, db *postgres.DB, kind lr.ModelKind, version string) lr.ModelVersion {
	t.Helper()
	m, err := db.CreateModelVersion(context.Background(), lr.ModelVersion{Kind: kind, Version: version, Dim: 64})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// User rows carry their MLP embedding (an NCF user's NeuMF weights) into
// user_embeddings.mlp bit-identical, NULL where a row has none; a batch
// without any MLP (MF, imported versions) leaves the column NULL, and
// streamer rows cannot carry one.
func TestCopyEmbeddingsWritesUserMLP(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	m := mustCreate(t, db, lr.ModelNCF, "mlp")
	rows := []lr.Embedding{
		{ID: 1, Vec: []float32{1, 2}, MLP: []float32{float32(math.Copysign(0, -1)), math.SmallestNonzeroFloat32, 0.1}},
		{ID: 2, Vec: []float32{3, 4}},
		{ID: 3, Vec: []float32{5, 6}, MLP: []float32{-1, math.MaxFloat32, 7}},
	}
	if n, err := db.CopyEmbeddings(ctx, m.ID, lr.SideUser, rows); err != nil || n != 3 {
		t.Fatalf("CopyEmbeddings: %d, %v", n, err)
	}
	for _, want := range rows {
		var vec, mlp []float32
		if err := db.Pool.QueryRow(ctx, `SELECT vec, mlp FROM user_embeddings WHERE model_id = $1 AND user_id = $2`, m.ID, want.ID).Scan(&vec, &mlp); err != nil {
			t.Fatal(err)
		}
		if !bitsEqual(vec, want.Vec) || !bitsEqual(mlp, want.MLP) || (mlp == nil) != (want.MLP == nil) {
			t.Fatalf("user %d: vec %v mlp %v, want %v %v", want.ID, vec, mlp, want.Vec, want.MLP)
		}
	}
	mf := mustCreate(t, db, lr.ModelMF, "no-mlp")
	if _, err := db.CopyEmbeddings(ctx, mf.ID, lr.SideUser, []lr.Embedding{{ID: 1, Vec: []float32{1}}}); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM user_embeddings WHERE model_id = $1 AND mlp IS NULL`, mf.ID).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("MF user rows with a NULL mlp: %d, %v", nulls, err)
	}
	_, err := db.CopyEmbeddings(ctx, mf.ID, lr.SideStreamer, []lr.Embedding{{ID: 9, Vec: []float32{1}, MLP: []float32{1}}})
	if lr.ErrorCode(err) != lr.EINVALID {
		t.Fatalf("streamer row with an MLP: %v, want invalid", err)
	}
}

func bitsEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestSampleUserEmbeddingsPicksStoredUsersWithoutAScan(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	m := mustCreate(t, db, lr.ModelMF, "sample")
	if got, err := db.SampleUserEmbeddings(ctx, m.ID, 10); err != nil || len(got) != 0 {
		t.Fatalf("no users: %d vectors, err %v", len(got), err)
	}
	const n = 5000
	rows := make([]lr.Embedding, n)
	stored := map[float32]bool{}
	for i := range rows {
		// Component 0 identifies the row.
		rows[i] = lr.Embedding{ID: int64(i)*13 + 5, Vec: []float32{float32(i + 1), 1, 2}}
		stored[float32(i+1)] = true
	}
	if _, err := db.CopyEmbeddings(ctx, m.ID, lr.SideUser, rows); err != nil {
		t.Fatal(err)
	}
	got, err := db.SampleUserEmbeddings(ctx, m.ID, 200)
	if err != nil || len(got) != 200 {
		t.Fatalf("%d vectors, err %v", len(got), err)
	}
	distinct := map[float32]bool{}
	for _, v := range got {
		if len(v) != 3 || !stored[v[0]] {
			t.Fatalf("sampled %v, not a stored user vector", v)
		}
		distinct[v[0]] = true
	}
	if len(distinct) < 150 {
		t.Fatalf("200 samples of %d users hit only %d distinct ones", n, len(distinct))
	}
	again, _ := db.SampleUserEmbeddings(ctx, m.ID, 200)
	for i := range got {
		if again[i][0] != got[i][0] {
			t.Fatalf("sample %d differs between calls (%v, %v): not seeded by the version", i, got[i][0], again[i][0])
		}
	}
	// The probes read the primary key, not the table.
	if _, err := db.Pool.Exec(ctx, `ANALYZE user_embeddings`); err != nil {
		t.Fatal(err)
	}
	rowsPlan, err := db.Pool.Query(ctx, `EXPLAIN SELECT e.vec FROM unnest($2::bigint[]) AS s(start)
		CROSS JOIN LATERAL (SELECT vec FROM user_embeddings WHERE model_id = $1 AND user_id >= s.start ORDER BY user_id LIMIT 1) e`, m.ID, []int64{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var all string
	for rowsPlan.Next() {
		var line string
		if err := rowsPlan.Scan(&line); err != nil {
			t.Fatal(err)
		}
		all += line + "\n"
	}
	rowsPlan.Close()
	if !strings.Contains(all, "Index Scan using user_embeddings_pkey") || strings.Contains(all, "Seq Scan on user_embeddings") {
		t.Fatalf("sample plan does not probe the primary key:\n%s", all)
	}
}
