package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	lr "github.com/liverecall/liverecall"
)

// ReloadChannel is the LISTEN/NOTIFY channel on which an activation is announced.
// The payload is a JSON object {"kind":..., "id":..., "version":...}.
const ReloadChannel = "liverecall_reload"

// ExperimentsChannel is the LISTEN/NOTIFY channel on which every change of
// an experiment (created, started, paused, stopped) is announced, in the
// transaction that makes it. The payload is a JSON object
// {"id":..., "name":..., "status":...}; replicas re-read
// ServingExperiments on each.
const ExperimentsChannel = "liverecall_experiments"

const modelColumns = `id, kind, version, dim, status, metrics, params, created_at, activated_at`

func scanModel(row pgx.Row) (lr.ModelVersion, error) {
	var m lr.ModelVersion
	var kind, status string
	err := row.Scan(&m.ID, &kind, &m.Version, &m.Dim, &status, &m.Metrics, &m.Params, &m.CreatedAt, &m.ActivatedAt)
	m.Kind, m.Status = lr.ModelKind(kind), lr.ModelStatus(status)
	return m, err
}

// CreateModelVersion inserts a staged version of kind with the given version
// label, dim, metrics and params (nil means {}). The label must be unique per kind.
func (db *DB) CreateModelVersion(ctx context.Context, mv lr.ModelVersion) (lr.ModelVersion, error) {
	const op = "postgres.CreateModelVersion"
	if _, err := lr.ParseModelKind(string(mv.Kind)); err != nil {
		return lr.ModelVersion{}, err
	}
	if mv.Dim <= 0 {
		return lr.ModelVersion{}, lr.Errorf(lr.EINVALID, "model version %q: dim must be positive, got %d", mv.Version, mv.Dim)
	}
	row := db.Pool.QueryRow(ctx, `INSERT INTO embedding_models (kind, version, dim, metrics, params)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+modelColumns,
		string(mv.Kind), mv.Version, mv.Dim, jsonOrEmpty(mv.Metrics), jsonOrEmpty(mv.Params))
	out, err := scanModel(row)
	if isUniqueViolation(err) {
		return lr.ModelVersion{}, lr.Errorf(lr.ECONFLICT, "model version %s/%s already exists", mv.Kind, mv.Version)
	}
	if err != nil {
		return lr.ModelVersion{}, lr.E(op, lr.EINTERNAL, err)
	}
	return out, nil
}

// ModelByID returns the version with id, or an ENOTFOUND error.
func (db *DB) ModelByID(ctx context.Context, id int64) (lr.ModelVersion, error) {
	m, err := scanModel(db.Pool.QueryRow(ctx, `SELECT `+modelColumns+` FROM embedding_models WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "model version id %d not found", id)
	}
	return m, lr.E("postgres.ModelByID", lr.EINTERNAL, err)
}

// ModelByVersion returns the version of kind labelled version, or an
// ENOTFOUND error.
func (db *DB) ModelByVersion(ctx context.Context, kind lr.ModelKind, version string) (lr.ModelVersion, error) {
	m, err := scanModel(db.Pool.QueryRow(ctx, `SELECT `+modelColumns+` FROM embedding_models WHERE kind = $1 AND version = $2`, string(kind), version))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no %s model version %q", kind, version)
	}
	return m, db.wrap("postgres.ModelByVersion", err)
}

// ActiveModel returns the active version of kind, or an ENOTFOUND error when
// none is active.
func (db *DB) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	m, err := scanModel(db.Pool.QueryRow(ctx, `SELECT `+modelColumns+` FROM embedding_models WHERE kind = $1 AND status = 'active'`, string(kind)))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no active %s model", kind)
	}
	return m, db.wrap("postgres.ActiveModel", err)
}

// ListModels returns the versions of kind, newest first.
func (db *DB) ListModels(ctx context.Context, kind lr.ModelKind) ([]lr.ModelVersion, error) {
	rows, err := db.Pool.Query(ctx, `SELECT `+modelColumns+` FROM embedding_models WHERE kind = $1 ORDER BY id DESC`, string(kind))
	if err != nil {
		return nil, lr.E("postgres.ListModels", lr.EINTERNAL, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lr.ModelVersion, error) { return scanModel(r) })
	return out, lr.E("postgres.ListModels", lr.EINTERNAL, err)
}

// PreviousModel returns the version of kind that was active before the
// current one: the one an activation retired most recently (what a
// rollback activates again), or ENOTFOUND when no version of kind was ever
// retired. After a rollback, the version rolled back from is the previous
// one: two rollbacks in a row come back to where they started.
func (db *DB) PreviousModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	m, err := scanModel(db.Pool.QueryRow(ctx, `SELECT `+modelColumns+` FROM embedding_models
		WHERE kind = $1 AND status = 'retired' ORDER BY retired_at DESC NULLS LAST, id DESC LIMIT 1`, string(kind)))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no %s version was active before the current one: nothing to roll back to", kind)
	}
	return m, db.wrap("postgres.PreviousModel", err)
}

// ActivateModel makes the staged or retired version id the active one of its
// kind, retires the previously active one, and notifies ReloadChannel, all in
// one transaction: replicas hear of it only once it is committed. Activating
// the already-active version is a no-op that still notifies.
func (db *DB) ActivateModel(ctx context.Context, id int64) (lr.ModelVersion, error) {
	const op = "postgres.ActivateModel"
	var out lr.ModelVersion
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		m, err := scanModel(tx.QueryRow(ctx, `SELECT `+modelColumns+` FROM embedding_models WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return lr.Errorf(lr.ENOTFOUND, "model version id %d not found", id)
		}
		if err != nil {
			return err
		}
		// Serialise activations of one kind so two jobs cannot interleave.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('liverecall.activate.' || $1))`, string(m.Kind)); err != nil {
			return err
		}
		if m.Status != lr.StatusActive {
			if _, err := tx.Exec(ctx, `UPDATE embedding_models SET status = 'retired', retired_at = now()
				WHERE kind = $1 AND status = 'active'`, string(m.Kind)); err != nil {
				return err
			}
			if m, err = scanModel(tx.QueryRow(ctx, `UPDATE embedding_models SET status = 'active', activated_at = now(), retired_at = NULL
				WHERE id = $1 RETURNING `+modelColumns, id)); err != nil {
				return err
			}
		}
		payload, _ := json.Marshal(map[string]any{"kind": m.Kind, "id": m.ID, "version": m.Version})
		if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, ReloadChannel, string(payload)); err != nil {
			return err
		}
		out = m
		return nil
	})
	if lr.ErrorCode(err) == lr.EINTERNAL {
		return out, lr.E(op, lr.EINTERNAL, err)
	}
	return out, err
}

// table returns the embedding table and id column for side.
func table(side lr.EmbeddingSide) (string, string, error) {
	switch side {
	case lr.SideUser:
		return "user_embeddings", "user_id", nil
	case lr.SideStreamer:
		return "streamer_embeddings", "streamer_id", nil
	}
	return "", "", lr.Errorf(lr.EINVALID, "unknown embedding side %q", side)
}

// CopyEmbeddings bulk-loads rows into model version modelID with COPY (binary
// protocol: float32 values arrive bit-identical). User rows' MLP (an NCF
// user's NeuMF MLP embedding) goes to user_embeddings.mlp, NULL where nil;
// streamer rows have none (EINVALID). It does not validate the vectors;
// callers validate before writing. It returns the rows written.
func (db *DB) CopyEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide, rows []lr.Embedding) (int64, error) {
	tbl, col, err := table(side)
	if err != nil {
		return 0, err
	}
	cols := []string{"model_id", col, "vec"}
	mlp := false
	for _, r := range rows {
		if r.MLP != nil {
			mlp = true
			break
		}
	}
	if mlp {
		if side != lr.SideUser {
			return 0, lr.Errorf(lr.EINVALID, "model version id %d: %s rows have no MLP embedding", modelID, side)
		}
		cols = append(cols, "mlp")
	}
	i := 0
	n, err := db.Pool.CopyFrom(ctx, pgx.Identifier{tbl}, cols,
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= len(rows) {
				return nil, nil
			}
			r := rows[i]
			i++
			if mlp {
				return []any{modelID, r.ID, r.Vec, r.MLP}, nil
			}
			return []any{modelID, r.ID, r.Vec}, nil
		}))
	if isUniqueViolation(err) {
		return n, lr.Errorf(lr.EINVALID, "model version id %d: duplicate %s id in embeddings", modelID, side)
	}
	return n, lr.E("postgres.CopyEmbeddings", lr.EINTERNAL, err)
}

// StreamEmbeddings calls fn for every vector of side in model version modelID,
// in id order, without holding the whole result in memory. fn owns vec. An
// error from fn stops the stream and is returned as is.
func (db *DB) StreamEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide, fn func(id int64, vec []float32) error) error {
	tbl, col, err := table(side)
	if err != nil {
		return err
	}
	rows, err := db.Pool.Query(ctx, fmt.Sprintf(`SELECT %s, vec FROM %s WHERE model_id = $1 ORDER BY %s`, col, tbl, col), modelID)
	if err != nil {
		return db.wrap("postgres.StreamEmbeddings", err)
	}
	defer rows.Close()
	var id int64
	for rows.Next() {
		var vec []float32
		if err := rows.Scan(&id, &vec); err != nil {
			return db.wrap("postgres.StreamEmbeddings", err)
		}
		if err := fn(id, vec); err != nil {
			return err
		}
	}
	return db.wrap("postgres.StreamEmbeddings", rows.Err())
}

// CountEmbeddings returns how many vectors of side model version modelID holds.
func (db *DB) CountEmbeddings(ctx context.Context, modelID int64, side lr.EmbeddingSide) (int64, error) {
	tbl, _, err := table(side)
	if err != nil {
		return 0, err
	}
	var n int64
	err = db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+tbl+` WHERE model_id = $1`, modelID).Scan(&n)
	return n, db.wrap("postgres.CountEmbeddings", err)
}

// SampleUserEmbeddings returns up to n user vectors of model version
// modelID, picked at random without reading the table: n random starting
// points between the version's lowest and highest user id (two reads of
// the primary key), each taking the first user at or after it (one index
// probe each). Users after a wide gap in the ids are likelier picks, and a
// user may come twice; for a self-check that is random enough. The points
// are seeded by modelID, so a version's sample is the same on every load.
// None when the version has no user vectors.
func (db *DB) SampleUserEmbeddings(ctx context.Context, modelID int64, n int) ([][]float32, error) {
	const op = "postgres.SampleUserEmbeddings"
	if n <= 0 {
		return nil, nil
	}
	var lo, hi *int64
	err := db.Pool.QueryRow(ctx, `SELECT min(user_id), max(user_id) FROM user_embeddings WHERE model_id = $1`, modelID).Scan(&lo, &hi)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	if lo == nil || hi == nil {
		return nil, nil
	}
	r := rand.New(rand.NewPCG(uint64(modelID), 2))
	starts := make([]int64, n)
	for i := range starts {
		starts[i] = *lo + r.Int64N(*hi-*lo+1)
	}
	rows, err := db.Pool.Query(ctx, `SELECT e.vec FROM unnest($2::bigint[]) AS s(start)
		CROSS JOIN LATERAL (SELECT vec FROM user_embeddings
			WHERE model_id = $1 AND user_id >= s.start ORDER BY user_id LIMIT 1) e`, modelID, starts)
	if err != nil {
		return nil, db.wrap(op, err)
	}
	defer rows.Close()
	out := make([][]float32, 0, n)
	for rows.Next() {
		var vec []float32
		if err := rows.Scan(&vec); err != nil {
			return nil, db.wrap(op, err)
		}
		out = append(out, vec)
	}
	return out, db.wrap(op, rows.Err())
}

func jsonOrEmpty(b json.RawMessage) []byte {
	if len(b) == 0 {
		return []byte("{}")
	}
	return b
}

func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}
