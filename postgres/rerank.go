package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// RerankModel is a stored reranker version.
type RerankModel struct {
	ID      int64
	Version string
	Status  lr.ModelStatus
	Weights json.RawMessage
	Metrics json.RawMessage
	// CreatedAt and ActivatedAt (nil: never activated) are filled by
	// ListRerankModels only.
	CreatedAt   time.Time
	ActivatedAt *time.Time
}

// CreateRerankModel stores a staged reranker version.
func (db *DB) CreateRerankModel(ctx context.Context, version string, weights, metrics json.RawMessage) (RerankModel, error) {
	var m RerankModel
	var status string
	err := db.Pool.QueryRow(ctx, `INSERT INTO rerank_models (version, weights, metrics) VALUES ($1, $2, $3)
		RETURNING id, version, status, weights, metrics`, version, []byte(weights), jsonOrEmpty(metrics)).
		Scan(&m.ID, &m.Version, &status, &m.Weights, &m.Metrics)
	m.Status = lr.ModelStatus(status)
	if isUniqueViolation(err) {
		return m, lr.Errorf(lr.ECONFLICT, "rerank version %s already exists", version)
	}
	return m, lr.E("postgres.CreateRerankModel", lr.EINTERNAL, err)
}

// ActivateRerankModel makes id the active reranker and retires the previous one.
func (db *DB) ActivateRerankModel(ctx context.Context, id int64) error {
	return pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM rerank_models WHERE id = $1)`, id).Scan(&exists); err != nil {
			return lr.E("postgres.ActivateRerankModel", lr.EINTERNAL, err)
		}
		if !exists {
			return lr.Errorf(lr.ENOTFOUND, "rerank version id %d not found", id)
		}
		if _, err := tx.Exec(ctx, `UPDATE rerank_models SET status = 'retired', retired_at = now() WHERE status = 'active' AND id <> $1`, id); err != nil {
			return lr.E("postgres.ActivateRerankModel", lr.EINTERNAL, err)
		}
		_, err := tx.Exec(ctx, `UPDATE rerank_models SET status = 'active', activated_at = now(), retired_at = NULL WHERE id = $1`, id)
		return lr.E("postgres.ActivateRerankModel", lr.EINTERNAL, err)
	})
}

// ActiveRerankModel returns the active reranker, or ENOTFOUND when none is.
func (db *DB) ActiveRerankModel(ctx context.Context) (RerankModel, error) {
	var m RerankModel
	var status string
	err := db.Pool.QueryRow(ctx, `SELECT id, version, status, weights, metrics FROM rerank_models WHERE status = 'active'`).
		Scan(&m.ID, &m.Version, &status, &m.Weights, &m.Metrics)
	m.Status = lr.ModelStatus(status)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no active rerank model")
	}
	return m, lr.E("postgres.ActiveRerankModel", lr.EINTERNAL, err)
}

// ListRerankModels returns the reranker versions, newest first, without
// their weights.
func (db *DB) ListRerankModels(ctx context.Context) ([]RerankModel, error) {
	rows, err := db.Pool.Query(ctx, `SELECT id, version, status, metrics, created_at, activated_at FROM rerank_models ORDER BY id DESC`)
	if err != nil {
		return nil, db.wrap("postgres.ListRerankModels", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RerankModel, error) {
		var m RerankModel
		var status string
		err := r.Scan(&m.ID, &m.Version, &status, &m.Metrics, &m.CreatedAt, &m.ActivatedAt)
		m.Status = lr.ModelStatus(status)
		return m, err
	})
	return out, db.wrap("postgres.ListRerankModels", err)
}

// RerankModelByVersion returns the reranker version (without its
// weights), or ENOTFOUND.
func (db *DB) RerankModelByVersion(ctx context.Context, version string) (RerankModel, error) {
	var m RerankModel
	var status string
	err := db.Pool.QueryRow(ctx, `SELECT id, version, status, metrics FROM rerank_models WHERE version = $1`, version).
		Scan(&m.ID, &m.Version, &status, &m.Metrics)
	m.Status = lr.ModelStatus(status)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no rerank version %q", version)
	}
	return m, db.wrap("postgres.RerankModelByVersion", err)
}

// PreviousRerankModel returns the reranker version that was active before
// the current one (the most recently retired, as PreviousModel), or
// ENOTFOUND.
func (db *DB) PreviousRerankModel(ctx context.Context) (RerankModel, error) {
	var m RerankModel
	var status string
	err := db.Pool.QueryRow(ctx, `SELECT id, version, status, metrics FROM rerank_models
		WHERE status = 'retired' ORDER BY retired_at DESC NULLS LAST, id DESC LIMIT 1`).
		Scan(&m.ID, &m.Version, &status, &m.Metrics)
	m.Status = lr.ModelStatus(status)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "no rerank version was active before the current one: nothing to roll back to")
	}
	return m, db.wrap("postgres.PreviousRerankModel", err)
}
