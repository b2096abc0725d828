package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// UserRows calls fn for each stored user vector of users under any of
// models (embedding_models ids); mlp is always nil here.
//
// SKELETON (i17-serve): a placeholder so the serving path can run over
// userstore.Store on this branch; the user-store branch owns the real
// UserRows (prepared statement, NeuMF MLP rows) and replaces this file.
func (db *DB) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	const op = "postgres.UserRows"
	rows, err := db.Pool.Query(ctx, `SELECT model_id, user_id, vec FROM user_embeddings WHERE model_id = ANY($1) AND user_id = ANY($2)`, models, users)
	if err != nil {
		return db.wrap(op, err)
	}
	defer rows.Close()
	var model, user int64
	var vec []float32
	_, err = pgx.ForEachRow(rows, []any{&model, &user, &vec}, func() error {
		v := vec
		vec = nil
		return fn(model, user, v, nil)
	})
	return db.wrap(op, err)
}
