package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recommend"
	"github.com/liverecall/liverecall/userstore"
)

// seedHistory writes a synthetic live history (planted taste groups) into
// the history tables of db.
func seedHistory(t *testing.T, db *postgres.DB, h *embed.History) {
	t.Helper()
	ctx := context.Background()
	var streams, watches, gifts, follows [][]any
	for i, s := range h.Streams {
		var end any
		if !s.End.IsZero() {
			end = s.End
		}
		streams = append(streams, []any{int64(i + 1), s.Streamer, s.Start, end})
	}
	for i, w := range h.Watches {
		watches = append(watches, []any{fmt.Sprintf("w%d", i), w.User, int64(0), w.Streamer, w.At, w.At, int32(w.Seconds)})
	}
	for i, g := range h.Gifts {
		gifts = append(gifts, []any{fmt.Sprintf("g%d", i), g.User, g.Streamer, int64(0), g.Amount, g.At})
	}
	for _, f := range h.Follows {
		follows = append(follows, []any{f.User, f.Streamer, true, f.At, f.At})
	}
	for _, c := range []struct {
		table string
		cols  []string
		rows  [][]any
	}{
		{"streams", []string{"id", "streamer_id", "started_at", "ended_at"}, streams},
		{"watch_sessions", []string{"event_id", "user_id", "stream_id", "streamer_id", "started_at", "ended_at", "seconds"}, watches},
		{"gifts", []string{"event_id", "user_id", "streamer_id", "stream_id", "amount", "sent_at"}, gifts},
		{"follows", []string{"user_id", "streamer_id", "active", "created_at", "updated_at"}, follows},
	} {
		if _, err := db.Pool.CopyFrom(ctx, pgx.Identifier{c.table}, c.cols, pgx.CopyFromRows(c.rows)); err != nil {
			t.Fatalf("seed %s: %v", c.table, err)
		}
	}
}

func openTestDB(t *testing.T) (*postgres.DB, string) {
	t.Helper()
	db, url := pgtest.OpenURL(t)
	return db, url
}

func runCmd(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	app, out, errb := testApp(map[string]string{"DATABASE_URL": url, "LIVERECALL_TRAIN_WINDOW": "0"})
	code := Run(context.Background(), app, args)
	return code, out.String(), errb.String()
}

func versions(t *testing.T, db *postgres.DB, kind lr.ModelKind) map[string]lr.ModelStatus {
	t.Helper()
	ms, err := db.ListModels(context.Background(), kind)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]lr.ModelStatus{}
	for _, m := range ms {
		out[m.Version] = m.Status
	}
	return out
}

func TestTrainLifecycle(t *testing.T) {
	ctx := context.Background()
	db, url := openTestDB(t)
	seedHistory(t, db, embed.SyntheticHistory(2, 60, 30, 3, 8, 3))

	listener, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.ReloadChannel); err != nil {
		t.Fatal(err)
	}
	code, out, errb := runCmd(t, url, "train", "--model", "mf", "--version", "v1", "--dim", "8")
	if code != 0 || !strings.Contains(out, "activated mf/v1") {
		t.Fatalf("first train: code %d out %q err %s", code, out, errb)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second) // generous: a loaded machine
	n, err := listener.WaitForNotification(wctx)
	cancel()
	if err != nil || !strings.Contains(n.Payload, `"version":"v1"`) {
		t.Fatalf("no reload notification after activation: %v %+v", err, n)
	}
	if !strings.Contains(errb, `"msg":"training","model":"mf","epoch":1`) {
		t.Errorf("no per-epoch log on a non-terminal: %s", errb)
	}
	code, out, errb = runCmd(t, url, "train", "--model", "mf", "--version", "v2", "--dim", "8", "--seed", "2")
	if code != 0 || !strings.Contains(errb, "active version on the same held-out watches") {
		t.Fatalf("second train: code %d out %q err %s", code, out, errb)
	}
	if got := versions(t, db, lr.ModelMF); got["v1"] != lr.StatusRetired || got["v2"] != lr.StatusActive {
		t.Fatalf("after v2: %v", got)
	}
	active, _ := db.ActiveModel(ctx, lr.ModelMF)
	if n, _ := db.CountEmbeddings(ctx, active.ID, lr.SideStreamer); n != 30 || active.Dim != 8 {
		t.Fatalf("active %v has %d streamer vectors", active, n)
	}
	if n, _ := db.CountEmbeddings(ctx, active.ID, lr.SideUser); n != 60 {
		t.Fatalf("active has %d user vectors", n)
	}
	if !strings.Contains(string(active.Metrics), `"repeat"`) || !strings.Contains(string(active.Metrics), `"active"`) {
		t.Fatalf("metrics %s", active.Metrics)
	}
	// A negative margin demands a gain no model can make: the version is
	// staged, not activated, the exit is non-zero and v2 stays active.
	code, _, errb = runCmd(t, url, "train", "--model", "mf", "--version", "v3", "--dim", "8", "--margin", "-1")
	if code != 1 || !strings.Contains(errb, "staged but not activated") {
		t.Fatalf("refused train: code %d err %s", code, errb)
	}
	if got := versions(t, db, lr.ModelMF); got["v2"] != lr.StatusActive || got["v3"] != lr.StatusStaged {
		t.Fatalf("after refusal: %v", got)
	}
	// --force activates regardless.
	if code, _, errb = runCmd(t, url, "train", "--model", "mf", "--version", "v4", "--dim", "8", "--margin", "-1", "--force"); code != 0 {
		t.Fatalf("forced: code %d err %s", code, errb)
	}
	if got := versions(t, db, lr.ModelMF); got["v4"] != lr.StatusActive || got["v2"] != lr.StatusRetired {
		t.Fatalf("after force: %v", got)
	}
	// NCF stores its scorer beside the version's vectors, without users:
	// each user's MLP embedding is stored with the user's vector.
	if code, out, errb = runCmd(t, url, "train", "--model", "ncf", "--version", "n1", "--dim", "8", "--epochs", "3"); code != 0 {
		t.Fatalf("ncf: code %d out %q err %s", code, out, errb)
	}
	nv, err := db.ActiveModel(ctx, lr.ModelNCF)
	if err != nil {
		t.Fatal(err)
	}
	format, blob, err := db.ModelScorer(ctx, nv.ID)
	if err != nil {
		t.Fatal(err)
	}
	s, err := embed.DecodeScorer(format, blob)
	if err != nil {
		t.Fatal(err)
	}
	if format != embed.ScorerFormat || s.HoldsUsers() {
		t.Fatalf("stored scorer: format %q, holds users %v", format, s.HoldsUsers())
	}
	if _, ok := s.ScoreFor(make([]float32, 8), make([]float32, 32), 1001); !ok {
		t.Fatal("stored scorer does not know streamer 1001")
	}
	for _, c := range []struct {
		id   int64
		mlps int
	}{{nv.ID, 60}, {active.ID, 0}} {
		var n int
		if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM user_embeddings WHERE model_id = $1 AND cardinality(mlp) = 32`, c.id).Scan(&n); err != nil || n != c.mlps {
			t.Fatalf("version %d: %d users with an MLP embedding (err %v), want %d", c.id, n, err, c.mlps)
		}
	}
}

// TrainLive's model, written the way train writes it and loaded the way a
// replica loads it, scores every user from the user's stored row exactly
// as the in-memory model does; a legacy scorer holding its users still
// loads, with a warning, and scores from its own users.
func TestTrainNCFScoresFromTheStore(t *testing.T) {
	ctx := context.Background()
	db, _ := openTestDB(t)
	cfg := embed.DefaultLiveConfig(lr.ModelNCF)
	cfg.NeuMF.Dim, cfg.NeuMF.Layers, cfg.NeuMF.Epochs = 8, []int{16, 8, 8}, 3
	m, err := embed.TrainLive(ctx, embed.SyntheticHistory(2, 60, 30, 3, 8, 3), cfg)
	if err != nil {
		t.Fatal(err)
	}
	params, scorer, err := versionParams(lr.ModelNCF, cfg, m)
	if err != nil {
		t.Fatal(err)
	}
	mv, err := stageVersion(ctx, db, lr.ModelNCF, "n1", m.Dim, map[string]any{}, params, m.Users, m.Streamers, scorer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	var serving atomic.Value
	serving.Store("n1")
	var logs bytes.Buffer
	ords := lr.NewOrdinals()
	models := recommend.NewModels(recommend.ModelsConfig{Store: db, Ordinals: ords, Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Serving: func(kind lr.ModelKind) string {
			if kind != lr.ModelNCF {
				return ""
			}
			return serving.Load().(string)
		}})
	models.LoadNCF(ctx)
	loaded := models.NCF()
	if loaded == nil || strings.Contains(logs.String(), "retrain") {
		t.Fatalf("scorer of n1 not loaded, or loaded as legacy: %s", logs.String())
	}
	memory := recommend.NewNeuMF("n1", mv.ID, m.Scorer, ords)
	var ask []uint32
	for _, s := range m.Streamers {
		ask = append(ask, ords.Ordinal(lr.StreamerID(s.ID)))
	}
	want, got := make([]float32, len(ask)), make([]float32, len(ask))
	rows, err := db.Pool.Query(ctx, `SELECT user_id, vec, mlp FROM user_embeddings WHERE model_id = $1`, mv.ID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id int64
		var vec, mlp []float32
		if err := rows.Scan(&id, &vec, &mlp); err != nil {
			t.Fatal(err)
		}
		u := lr.UserID(id)
		b := loaded.ForUser(u, userstore.Row{Versions: userstore.Versions{NCF: mv.ID}, NCF: vec, MLP: mlp})
		if b == nil || !b.ScoreOrdinals(u, ask, got) || !memory.ScoreOrdinals(u, ask, want) {
			t.Fatalf("user %d not scored (bound %v)", id, b != nil)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("user %d: from the store %v, in memory %v", id, got, want)
		}
		n++
	}
	if err := rows.Err(); err != nil || n != len(m.Users) {
		t.Fatalf("%d user rows (err %v), want %d", n, err, len(m.Users))
	}

	// A version whose scorer is the legacy format.
	v1, err := m.Scorer.MarshalBinaryV1()
	if err != nil {
		t.Fatal(err)
	}
	old, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelNCF, Version: "n0", Dim: m.Dim, Params: []byte("{}"), Metrics: []byte("{}")})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutModelScorer(ctx, old.ID, embed.ScorerFormatV1, v1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	serving.Store("n0")
	models.LoadNCF(ctx)
	models.LoadNCF(ctx) // already loaded: no second load, no second warning
	legacy := models.NCF()
	if legacy == nil {
		t.Fatalf("legacy scorer not loaded: %s", logs.String())
	}
	if c := strings.Count(logs.String(), "holds its users' weights in memory"); c != 1 {
		t.Fatalf("%d legacy warnings, want 1: %s", c, logs.String())
	}
	u := lr.UserID(m.Users[0].ID)
	b := legacy.ForUser(u, userstore.Row{})
	if b == nil || !b.ScoreOrdinals(u, ask, got) || !memory.ScoreOrdinals(u, ask, want) || !slices.Equal(got, want) {
		t.Fatalf("legacy scorer: %v, in memory %v", got, want)
	}
}

func TestTrainRefusesWithoutWriting(t *testing.T) {
	db, url := openTestDB(t)
	code, _, errb := runCmd(t, url, "train", "--model", "mf")
	if code != 1 || !strings.Contains(errb, "too little data") {
		t.Fatalf("empty history: code %d err %s", code, errb)
	}
	seedHistory(t, db, embed.SyntheticHistory(3, 30, 12, 3, 4, 3))
	code, _, errb = runCmd(t, url, "train", "--model", "ncf", "--lr", "1e30", "--epochs", "2")
	if code != 1 || !strings.Contains(errb, "diverged") || !strings.Contains(errb, "nothing written") {
		t.Fatalf("diverging: code %d err %s", code, errb)
	}
	code, _, errb = runCmd(t, url, "train", "--model", "svd")
	if code != 2 {
		t.Fatalf("bad model: code %d err %s", code, errb)
	}
	for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
		if got := versions(t, db, kind); len(got) != 0 {
			t.Fatalf("%s versions written on refusal: %v", kind, got)
		}
	}
}
