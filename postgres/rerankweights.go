package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	lr "github.com/liverecall/liverecall"
)

// RerankWeights returns the stored JSON of the reranker version labelled
// version (any status: the versions experiments name are often staged), or
// ENOTFOUND.
func (db *DB) RerankWeights(ctx context.Context, version string) ([]byte, error) {
	var w []byte
	err := db.Pool.QueryRow(ctx, `SELECT weights FROM rerank_models WHERE version = $1`, version).Scan(&w)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, lr.Errorf(lr.ENOTFOUND, "rerank version %s not found", version)
	}
	return w, db.wrap("postgres.RerankWeights", err)
}
