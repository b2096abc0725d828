package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
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
	err = db.ReadModelScorer(ctx, modelID, func(f string, size int64, r io.Reader) error {
		format, data = f, make([]byte, size)
		_, err := io.ReadFull(r, data)
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return format, data, nil
}

// ReadModelScorer is ModelScorer for a caller that decodes as it reads: it
// calls fn with the scorer's format, its recorded size and a reader of its
// bytes that streams the stored chunks as they come from PostgreSQL, so
// that neither side holds the whole scorer (hundreds of megabytes at a
// million streamers) beside what is decoded from it; r is valid only until
// fn returns. The size and SHA-256 are checked at the end: r's last Read
// returns an EINTERNAL error instead of io.EOF when they do not match (r
// returns its errors as they are: fn should return them unwrapped). When fn
// returns nil, ReadModelScorer reads what fn left and returns that error,
// in which case what fn decoded must be discarded. It returns ENOTFOUND,
// without calling fn, when the version has no scorer; else fn's error or
// r's.
func (db *DB) ReadModelScorer(ctx context.Context, modelID int64, fn func(format string, size int64, r io.Reader) error) error {
	const op = "postgres.ModelScorer"
	rows, err := db.Pool.Query(ctx, `SELECT s.format, s.size, s.sha256, c.data
		FROM model_scorers s LEFT JOIN model_scorer_chunks c USING (model_id)
		WHERE s.model_id = $1 ORDER BY c.seq`, modelID)
	if err != nil {
		return lr.E(op, lr.EINTERNAL, err)
	}
	defer rows.Close()
	r := &scorerReader{rows: rows, modelID: modelID, hash: sha256.New(),
		// Each chunk is read straight from the row's bytes when they come
		// in binary (bytea's bytes as they are), instead of through a copy
		// of its own.
		binary: len(rows.FieldDescriptions()) == 4 && rows.FieldDescriptions()[3].Format == pgx.BinaryFormatCode}
	var format string
	if err := r.next(&format); err != nil {
		if err == io.EOF {
			return lr.Errorf(lr.ENOTFOUND, "model version id %d has no stored scorer", modelID)
		}
		return err
	}
	if r.size < 0 || r.size > maxScorerBytes {
		return lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: recorded size %d", modelID, r.size)
	}
	if err := fn(format, r.size, r); err != nil {
		return err
	}
	// What fn left, and the final check.
	_, err = io.Copy(io.Discard, r)
	return err
}

// scorerReader reads the chunks of a stored scorer (ReadModelScorer).
type scorerReader struct {
	rows    pgx.Rows
	modelID int64
	binary  bool
	size    int64  // recorded
	sum     []byte // recorded SHA-256
	hash    hash.Hash
	n       int64  // bytes of chunks seen
	chunk   []byte // the current chunk's unread bytes
	err     error  // sticky: io.EOF at a checked end
}

// next moves to the next row (format is scanned into the first time),
// adding its chunk to the count and the hash; io.EOF after the last.
func (r *scorerReader) next(format *string) error {
	const op = "postgres.ModelScorer"
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return lr.E(op, lr.EINTERNAL, err)
		}
		return io.EOF
	}
	var f string
	if format == nil {
		format = &f
	}
	r.chunk = nil
	if r.binary {
		if err := r.rows.Scan(format, &r.size, &r.sum, nil); err != nil {
			return lr.E(op, lr.EINTERNAL, err)
		}
		r.chunk = r.rows.RawValues()[3] // nil for the LEFT JOIN's NULL: no chunk
	} else if err := r.rows.Scan(format, &r.size, &r.sum, &r.chunk); err != nil {
		return lr.E(op, lr.EINTERNAL, err)
	}
	if r.n+int64(len(r.chunk)) > r.size {
		return lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: chunks exceed its recorded size %d", r.modelID, r.size)
	}
	r.n += int64(len(r.chunk))
	r.hash.Write(r.chunk)
	return nil
}

// Read reads the scorer's bytes; at the end, io.EOF when they match the
// recorded size and SHA-256, an EINTERNAL error when they do not.
func (r *scorerReader) Read(p []byte) (int, error) {
	for len(r.chunk) == 0 && r.err == nil {
		if err := r.next(nil); err == io.EOF {
			if got := r.hash.Sum(nil); r.n != r.size || !bytes.Equal(got, r.sum) {
				r.err = lr.Errorf(lr.EINTERNAL, "scorer of model version id %d is corrupt: %d bytes read, %d recorded, or its SHA-256 differs", r.modelID, r.n, r.size)
			} else {
				r.err = io.EOF
			}
		} else if err != nil {
			r.err = err
		}
	}
	if len(r.chunk) == 0 {
		return 0, r.err
	}
	k := copy(p, r.chunk)
	r.chunk = r.chunk[k:]
	return k, nil
}

// maxScorerBytes bounds the recorded size of a scorer read (a larger one is
// corrupt): 64 GiB.
const maxScorerBytes = 64 << 30
