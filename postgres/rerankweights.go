package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// RerankWeights returns the stored JSON and the status of the reranker
// version labelled version (any status: the versions experiments name are
// often staged), or ENOTFOUND.
func (db *DB) RerankWeights(ctx context.Context, version string) ([]byte, lr.ModelStatus, error) {
	var w []byte
	var status string
	err := db.Pool.QueryRow(ctx, `SELECT weights, status FROM rerank_models WHERE version = $1`, version).Scan(&w, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", lr.Errorf(lr.ENOTFOUND, "rerank version %s not found", version)
	}
	return w, lr.ModelStatus(status), db.wrap("postgres.RerankWeights", err)
}
