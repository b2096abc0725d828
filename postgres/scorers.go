package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"runtime"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// scorerChunk is the largest piece of a scorer written in one row: far
// below bytea's 1 GB, small enough that neither side holds a huge value.
const scorerChunk = 4 << 20

// PutModelScorer stores data, the NeuMF scorer of model version modelID
// encoded as format (opaque here; e.g. embed.ScorerFormat), replacing any
// scorer stored for it before. It writes in one transaction, chunks with
// COPY, and only while the version is staged: call it after the vectors and
// before ActivateModel, so that an active version has its scorer from the
// moment it is active and never changes under the replicas reading it. It
// returns ENOTFOUND when the version does not exist and ECONFLICT when it is
// not staged. data is not retained.
func (db *DB) PutModelScorer(ctx context.Context, modelID int64, format string, data []byte) error {
	const op = "postgres.PutModelScorer"
	if format == "" {
		return lr.Errorf(lr.EINVALID, "model version id %d: scorer format is empty", modelID)
	}
	sum := sha256.Sum256(data)
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var status string
		// FOR UPDATE: ActivateModel locks the same row, so a version cannot
		// be activated half-way through its scorer.
		err := tx.QueryRow(ctx, `SELECT status FROM embedding_models WHERE id = $1 FOR UPDATE`, modelID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return lr.Errorf(lr.ENOTFOUND, "model version id %d not found", modelID)
		}
		if err != nil {
			return err
		}
		if lr.ModelStatus(status) != lr.StatusStaged {
			return lr.Errorf(lr.ECONFLICT, "model version id %d is %s: a scorer is written only to a staged version", modelID, status)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM model_scorers WHERE model_id = $1`, modelID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO model_scorers (model_id, format, size, sha256) VALUES ($1, $2, $3, $4)`,
			modelID, format, int64(len(data)), sum[:]); err != nil {
			return err
		}
		n := max(1, (len(data)+scorerChunk-1)/scorerChunk) // an empty scorer is one empty chunk
		seq := 0
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"model_scorer_chunks"}, []string{"model_id", "seq", "data"},
			pgx.CopyFromFunc(func() ([]any, error) {
				if seq == n {
					return nil, nil
				}
				lo := seq * scorerChunk
				row := []any{modelID, int32(seq), data[lo:min(lo+scorerChunk, len(data))]}
				seq++
				return row, nil
			}))
		return err
	})
	if lr.ErrorCode(err) == lr.EINTERNAL {
		return lr.E(op, lr.EINTERNAL, err)
	}
	return err
}

// ModelScorer returns the format and bytes of the scorer stored for model
// version modelID. It returns ENOTFOUND when the version has none (an
// imported version, an MF version, or no such version) and EINTERNAL when
// the stored chunks do not add up to the recorded size and SHA-256. It reads
// in one statement, so a concurrent PutModelScorer is seen whole or not at
// all. The returned slice is the caller's.
func (db *DB) ModelScorer(ctx context.Context, modelID int64) (format string, data []byte, err error) {
	return db.readScorer(ctx, modelID, func(size int64) []byte { return make([]byte, size) })
}

// ReadModelScorer is ModelScorer for a caller that decodes the bytes at
// once: it calls fn with them, outside the Go heap (internal/offheap), so
// that a scorer of hundreds of megabytes never sets the collector's target;
// data is valid only until fn returns (fn must copy what it keeps). It
// returns ModelScorer's errors, or fn's.
func (db *DB) ReadModelScorer(ctx context.Context, modelID int64, fn func(format string, data []byte) error) error {
	owner := &scorerBuffer{}
	format, data, err := db.readScorer(ctx, modelID, func(size int64) []byte {
		owner.data = offheap.Make[byte](owner, int(size))
		return owner.data
	})
	if err != nil {
		return err
	}
	err = fn(format, data)
	runtime.KeepAlive(owner) // data is released once owner is unreachable
	return err
}

// scorerBuffer owns the mapping ReadModelScorer reads a scorer into.
type scorerBuffer struct{ data []byte }

// maxScorerBytes bounds the recorded size of a scorer read (a larger one is
// corrupt): 64 GiB.
const maxScorerBytes = 64 << 30

// readScorer reads a stored scorer into the slice alloc makes of its
// recorded size (see ModelScorer).
func (db *DB) readScorer(ctx context.Context, modelID int64, alloc func(size int64) []byte) (format string, data []byte, err error) {
	const op = "postgres.ModelScorer"
	rows, err := db.Pool.Query(ctx, `SELECT s.format, s.size, s.sha256, c.data
		FROM model_scorers s LEFT JOIN model_scorer_chunks c USING (model_id)
		WHERE s.model_id = $1 ORDER BY c.seq`, modelID)
	if err != nil {
		return "", nil, lr.E(op, lr.EINTERNAL, err)
	}
	defer rows.Close()
	var size int64
	var sum []byte
	found := false
	n := 0
	// Each chunk is copied straight from the row's bytes when they come in
	// binary (bytea's bytes as they are), instead of through a copy of its
	// own: a scorer is hundreds of megabytes.
	binaryChunks := len(rows.FieldDescriptions()) == 4 && rows.FieldDescriptions()[3].Format == pgx.BinaryFormatCode
	for rows.Next() {
		var chunk []byte
		if binaryChunks {
			if err := rows.Scan(&format, &size, &sum, nil); err != nil {
				return "", nil, lr.E(op, lr.EINTERNAL, err)
			}
			chunk = rows.RawValues()[3] // nil for the LEFT JOIN's NULL: no chunk
		} else if err := rows.Scan(&format, &size, &sum, &chunk); err != nil {
			return "", nil, lr.E(op, lr.EINTERNAL, err)
		}
		if !found {
			found = true
			if size < 0 || size > maxScorerBytes {
				return "", nil, lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: recorded size %d", modelID, size)
			}
			data = alloc(size)
		}
		if int64(n+len(chunk)) > size {
			return "", nil, lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: chunks exceed its recorded size %d", modelID, size)
		}
		n += copy(data[n:], chunk)
	}
	if err := rows.Err(); err != nil {
		return "", nil, lr.E(op, lr.EINTERNAL, err)
	}
	if !found {
		return "", nil, lr.Errorf(lr.ENOTFOUND, "model version id %d has no stored scorer", modelID)
	}
	if got := sha256.Sum256(data[:n]); int64(n) != size || !bytes.Equal(got[:], sum) {
		return "", nil, lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: %d bytes read, %d recorded, or its SHA-256 differs", modelID, n, size)
	}
	return format, data, nil
}
