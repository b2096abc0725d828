package postgres

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// userRowsSQL reads the rows of a batch of users under a few versions.
// Both arrays bind to the primary key (model_id, user_id), so the plan is
// one index probe per (model, user) pair whatever the table's size.
const userRowsSQL = `SELECT model_id, user_id, vec, mlp FROM user_embeddings
	WHERE model_id = ANY($1) AND user_id = ANY($2)`

// UserRows calls fn for each row of user_embeddings whose model is one of
// models and whose user is one of users, in no particular order; a user
// without a row under a model is simply not reported. mlp is nil when the
// row has none (MF versions, NCF versions written without it). fn owns vec
// and mlp. An error from fn stops the read and is returned as is; a lost
// connection is lr.EUNAVAILABLE, any other failure lr.EINTERNAL. Empty
// models or users return nil without a query.
//
// It is one statement with both lists as array parameters. pgx's default
// exec mode (QueryExecModeCacheStatement) prepares it on each connection the
// first time that connection runs it and reuses the prepared statement from
// then on, so a lookup costs one round trip of Bind/Execute, not a parse and
// plan. The arrays come back in binary and are decoded straight into
// []float32 (one allocation per vector).
func (db *DB) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	const op = "postgres.UserRows"
	if len(models) == 0 || len(users) == 0 {
		return nil
	}
	rows, err := db.Pool.Query(ctx, userRowsSQL, models, users)
	if err != nil {
		return db.wrap(op, err)
	}
	defer rows.Close()
	binaryVecs := len(rows.FieldDescriptions()) == 4 &&
		rows.FieldDescriptions()[2].Format == pgx.BinaryFormatCode &&
		rows.FieldDescriptions()[3].Format == pgx.BinaryFormatCode
	for rows.Next() {
		var model, user int64
		var vec, mlp []float32
		if binaryVecs {
			raw := rows.RawValues()
			if len(raw[0]) != 8 || len(raw[1]) != 8 {
				return db.wrap(op, fmt.Errorf("user_embeddings: unexpected id encoding"))
			}
			model, user = int64(binary.BigEndian.Uint64(raw[0])), int64(binary.BigEndian.Uint64(raw[1]))
			if vec, err = decodeFloat4Array(raw[2]); err == nil {
				mlp, err = decodeFloat4Array(raw[3])
			}
			if err != nil {
				return db.wrap(op, fmt.Errorf("user_embeddings model %d user %d: %w", model, user, err))
			}
		} else if err := rows.Scan(&model, &user, &vec, &mlp); err != nil {
			return db.wrap(op, err)
		}
		if err := fn(model, user, vec, mlp); err != nil {
			return err
		}
	}
	return db.wrap(op, rows.Err())
}

// decodeFloat4Array decodes a one-dimensional real[] in PostgreSQL's binary
// array format (ndim, has-null flag, element type, then per dimension its
// length and lower bound, then each element as a length and its bytes). A
// NULL array (raw == nil) is a nil slice; an empty array an empty one.
func decodeFloat4Array(raw []byte) ([]float32, error) {
	if raw == nil {
		return nil, nil
	}
	if len(raw) < 12 {
		return nil, fmt.Errorf("real[] of %d bytes", len(raw))
	}
	ndim := binary.BigEndian.Uint32(raw[0:])
	if elem := binary.BigEndian.Uint32(raw[8:]); elem != pgtype.Float4OID {
		return nil, fmt.Errorf("array of type oid %d, want real", elem)
	}
	switch ndim {
	case 0:
		return []float32{}, nil
	case 1:
	default:
		return nil, fmt.Errorf("real[] of %d dimensions, want 1", ndim)
	}
	if len(raw) < 20 {
		return nil, fmt.Errorf("real[] of %d bytes", len(raw))
	}
	n := int(binary.BigEndian.Uint32(raw[12:]))
	body := raw[20:]
	if n < 0 || len(body) != n*8 {
		return nil, fmt.Errorf("real[] of %d elements in %d bytes", n, len(body))
	}
	out := make([]float32, n)
	for i := range out {
		e := body[i*8:]
		if l := int32(binary.BigEndian.Uint32(e)); l != 4 {
			return nil, fmt.Errorf("real[] element %d: NULL or %d bytes", i, l)
		}
		out[i] = math.Float32frombits(binary.BigEndian.Uint32(e[4:]))
	}
	return out, nil
}
