package postgres_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"
	"testing/iotest"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/migrations"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestModelScorerRoundTrip(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	for i, n := range []int{0, 1, 1000, 9<<20 + 17} { // empty, tiny, one chunk, three chunks
		mv := mustCreate(t, db, lr.ModelNCF, fmt.Sprintf("v%d", i))
		data := randomBytes(n, uint64(i))
		if err := db.PutModelScorer(ctx, mv.ID, "neumf-v1", data); err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		format, got, err := db.ModelScorer(ctx, mv.ID)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if format != "neumf-v1" || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read format %q and %d bytes back (equal %v)", n, format, len(got), bytes.Equal(got, data))
		}
		// ReadModelScorer streams the same bytes to fn (read here a byte
		// at a time, across the chunks' boundaries).
		called := false
		err = db.ReadModelScorer(ctx, mv.ID, func(format string, size int64, r io.Reader) error {
			called = true
			if format != "neumf-v1" || size != int64(n) {
				t.Errorf("%d bytes: ReadModelScorer gave format %q and size %d", n, format, size)
			}
			got, err := io.ReadAll(iotest.OneByteReader(r))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%d bytes: ReadModelScorer's reader gave %d bytes (equal %v), err %v", n, len(got), bytes.Equal(got, data), err)
			}
			return err
		})
		if err != nil || !called {
			t.Fatalf("%d bytes: ReadModelScorer: %v (fn called: %v)", n, err, called)
		}
		if n > 4<<20 {
			// fn that stops early: the rest is read and checked all the same.
			err = db.ReadModelScorer(ctx, mv.ID, func(_ string, _ int64, r io.Reader) error {
				_, err := io.ReadFull(r, make([]byte, 10))
				return err
			})
			if err != nil {
				t.Fatalf("%d bytes: ReadModelScorer with fn reading 10 bytes: %v", n, err)
			}
		}
	}
	mv := mustCreate(t, db, lr.ModelNCF, "none")
	if err := db.ReadModelScorer(ctx, mv.ID, func(string, int64, io.Reader) error { t.Error("fn called for a version without a scorer"); return nil }); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("ReadModelScorer of a version without a scorer: %v, want ENOTFOUND", err)
	}

	// Writing again replaces the scorer of a staged version.
	mv = mustCreate(t, db, lr.ModelNCF, "again")
	if err := db.PutModelScorer(ctx, mv.ID, "neumf-v1", randomBytes(9<<20, 1)); err != nil {
		t.Fatal(err)
	}
	second := randomBytes(100, 2)
	if err := db.PutModelScorer(ctx, mv.ID, "neumf-v2", second); err != nil {
		t.Fatal(err)
	}
	if format, got, err := db.ModelScorer(ctx, mv.ID); err != nil || format != "neumf-v2" || !bytes.Equal(got, second) {
		t.Fatalf("after a second write: format %q, %d bytes, err %v", format, len(got), err)
	}
	var chunks int
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM model_scorer_chunks WHERE model_id = $1`, mv.ID).Scan(&chunks); err != nil || chunks != 1 {
		t.Fatalf("%d chunks left after replacing a 3-chunk scorer by a small one (err %v)", chunks, err)
	}

	// Deleting the staged version deletes its scorer.
	if err := db.DeleteStagedModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.Pool.QueryRow(ctx, `SELECT count(*) FROM model_scorer_chunks WHERE model_id = $1`, mv.ID).Scan(&chunks); err != nil || chunks != 0 {
		t.Fatalf("%d chunks left after deleting the version (err %v)", chunks, err)
	}
}

func TestModelScorerMissingAndRefused(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	mv := mustCreate(t, db, lr.ModelNCF, "no-scorer")
	for _, id := range []int64{mv.ID, mv.ID + 1000} {
		if _, _, err := db.ModelScorer(ctx, id); lr.ErrorCode(err) != lr.ENOTFOUND {
			t.Errorf("scorer of version %d that has none: err %v, want not_found", id, err)
		}
	}
	if err := db.PutModelScorer(ctx, mv.ID+1000, "neumf-v1", []byte("x")); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Errorf("writing the scorer of a missing version: err %v, want not_found", err)
	}
	if err := db.PutModelScorer(ctx, mv.ID, "", []byte("x")); lr.ErrorCode(err) != lr.EINVALID {
		t.Errorf("empty format: err %v, want invalid", err)
	}
	// An active version's scorer is not replaced under its readers.
	if err := db.PutModelScorer(ctx, mv.ID, "neumf-v1", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.PutModelScorer(ctx, mv.ID, "neumf-v1", []byte("second")); lr.ErrorCode(err) != lr.ECONFLICT {
		t.Errorf("writing the scorer of an active version: err %v, want conflict", err)
	}
	if _, got, err := db.ModelScorer(ctx, mv.ID); err != nil || string(got) != "first" {
		t.Fatalf("active version's scorer: %q, err %v", got, err)
	}
	// Stored bytes that no longer match their checksum are refused.
	if _, err := db.Pool.Exec(ctx, `UPDATE model_scorer_chunks SET data = 'fir5t' WHERE model_id = $1`, mv.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.ModelScorer(ctx, mv.ID); lr.ErrorCode(err) != lr.EINTERNAL || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupted scorer: err %v, want internal 'corrupt'", err)
	}
	// ReadModelScorer says so at the end, even to fn that read nothing:
	// what fn decoded is then to be discarded.
	var readErr error
	err := db.ReadModelScorer(ctx, mv.ID, func(_ string, _ int64, r io.Reader) error {
		_, readErr = io.ReadAll(r)
		return nil // a careless fn: the error comes back all the same
	})
	if lr.ErrorCode(err) != lr.EINTERNAL || lr.ErrorCode(readErr) != lr.EINTERNAL || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupted scorer streamed: ReadModelScorer err %v, the reader's %v; want internal 'corrupt' from both", err, readErr)
	}
	if err := db.ReadModelScorer(ctx, mv.ID, func(string, int64, io.Reader) error { return nil }); lr.ErrorCode(err) != lr.EINTERNAL {
		t.Errorf("corrupted scorer, fn reading nothing: err %v, want internal", err)
	}
}

// TestMigrationMovesScorersOutOfParams applies the migrations before 005 to
// an empty database, writes a version the way the old train command did
// (the scorer base64 in params.neumf_scorer), then migrates to the latest.
func TestMigrationMovesScorersOutOfParams(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewEmpty(t)
	old := fstest.MapFS{}
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name < "005" {
			b, _ := fs.ReadFile(migrations.FS, name)
			old[name] = &fstest.MapFile{Data: b}
		}
	}
	if _, err := postgres.MigrateFS(ctx, url, old, nil); err != nil {
		t.Fatal(err)
	}
	db := open(t, url)
	blob := randomBytes(5000, 3)
	params, _ := json.Marshal(map[string]any{"trainer": "neumf", "dim": 8, "neumf_scorer": base64.StdEncoding.EncodeToString(blob)})
	withScorer, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelNCF, Version: "old", Dim: 8, Params: params})
	if err != nil {
		t.Fatal(err)
	}
	without := mustCreate(t, db, lr.ModelMF, "mf")

	if _, err := postgres.Migrate(ctx, url, nil); err != nil {
		t.Fatal(err)
	}
	format, got, err := db.ModelScorer(ctx, withScorer.ID)
	if err != nil || format != "neumf-v1" || !bytes.Equal(got, blob) {
		t.Fatalf("migrated scorer: format %q, %d bytes (equal %v), err %v", format, len(got), bytes.Equal(got, blob), err)
	}
	mv, err := db.ModelByID(ctx, withScorer.ID)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := json.Unmarshal(mv.Params, &p); err != nil || p["neumf_scorer"] != nil || p["trainer"] != "neumf" {
		t.Fatalf("params after the migration: %s (err %v), want the other keys without neumf_scorer", mv.Params, err)
	}
	if _, _, err := db.ModelScorer(ctx, without.ID); lr.ErrorCode(err) != lr.ENOTFOUND {
		t.Fatalf("version without a scorer: err %v, want not_found", err)
	}
}
