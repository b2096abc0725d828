package postgres

import (
	"context"
	"encoding/json"
	"errors"

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

// RerankModelByVersion returns the reranker version labelled version
// (any status), or ENOTFOUND.
func (db *DB) RerankModelByVersion(ctx context.Context, version string) (RerankModel, error) {
	var m RerankModel
	var status string
	err := db.Pool.QueryRow(ctx, `SELECT id, version, status, weights, metrics FROM rerank_models WHERE version = $1`, version).
		Scan(&m.ID, &m.Version, &status, &m.Weights, &m.Metrics)
	m.Status = lr.ModelStatus(status)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, lr.Errorf(lr.ENOTFOUND, "rerank version %s not found", version)
	}
	return m, db.wrap("postgres.RerankModelByVersion", err)
}
