// Package userstore serves the user side of the models — each user's MF
// vector, NCF vector and NeuMF MLP embedding under the serving versions —
// from a shared store (PostgreSQL) through an in-process cache of active
// users, so that a replica's memory does not grow with the user base.
//
// SKELETON: the types and method set are the contract the rest of the
// service codes against; the implementation below is a placeholder (an
// unbounded map, one query per miss) to be replaced by the bounded cache,
// batched and deduplicated lookups.
package userstore

import (
	"context"
	"sync"

	lr "github.com/liverecall/liverecall"
)

// Versions are the model versions a request is served with, by their
// embedding_models ids; 0 means no version of that kind serves.
type Versions struct{ MF, NCF int64 }

// Row is what the store holds of one user under Versions. A nil slice means
// the version has no such vector for the user (an unknown user has a Row
// with every slice nil).
type Row struct {
	Versions Versions
	MF       []float32 // the MF version's user vector
	NCF      []float32 // the NCF version's user (retrieval) vector
	MLP      []float32 // the NCF version's NeuMF user MLP embedding, if stored
}

// Known says whether the row holds any vector.
func (r Row) Known() bool { return r.MF != nil || r.NCF != nil }

// Vector returns the row's vector of kind (nil when none).
func (r Row) Vector(kind lr.ModelKind) []float32 {
	switch kind {
	case lr.ModelMF:
		return r.MF
	case lr.ModelNCF:
		return r.NCF
	}
	return nil
}

// Source is the shared store (postgres.DB).
type Source interface {
	// UserRows calls fn for each stored user row of users under any of
	// models (embedding_models ids). mlp is nil when the row has none.
	UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error
}

// Config configures a Store.
type Config struct {
	Source Source
	// MaxBytes bounds the cache (its rows' estimated size). i17-serve: the
	// serving path sets it from --user-cache-bytes; the skeleton ignores it.
	MaxBytes int64
}

// Stats describes the cache.
type Stats struct {
	Entries  int   // rows held
	Bytes    int64 // their estimated size
	MaxBytes int64 // Config.MaxBytes
}

// Stats returns the cache's size now. i17-serve: the status and metrics
// read it; the skeleton estimates the bytes from the vectors' lengths.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Entries: len(s.m), MaxBytes: s.cfg.MaxBytes}
	for _, r := range s.m {
		st.Bytes += int64(4 * (len(r.MF) + len(r.NCF) + len(r.MLP)))
	}
	return st
}

// Store is the cache in front of Source. Safe for concurrent use.
type Store struct {
	cfg Config
	mu  sync.Mutex
	m   map[key]Row
}

type key struct {
	v Versions
	u lr.UserID
}

// New returns a Store over cfg.Source.
func New(cfg Config) (*Store, error) {
	return &Store{cfg: cfg, m: map[key]Row{}}, nil
}

// Cached returns u's row under v if the cache holds it; it never does I/O.
func (s *Store) Cached(u lr.UserID, v Versions) (Row, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[key{v, u}]
	return r, ok
}

// Fetch returns u's row under v, from the cache or the Source. ctx bounds
// the caller's wait.
func (s *Store) Fetch(ctx context.Context, u lr.UserID, v Versions) (Row, error) {
	if r, ok := s.Cached(u, v); ok {
		return r, nil
	}
	row := Row{Versions: v}
	var models []int64
	for _, id := range []int64{v.MF, v.NCF} {
		if id != 0 {
			models = append(models, id)
		}
	}
	if len(models) > 0 {
		err := s.cfg.Source.UserRows(ctx, models, []int64{int64(u)}, func(model, user int64, vec, mlp []float32) error {
			if model == v.MF {
				row.MF = vec
			}
			if model == v.NCF {
				row.NCF, row.MLP = vec, mlp
			}
			return nil
		})
		if err != nil {
			return Row{Versions: v}, err
		}
	}
	s.mu.Lock()
	s.m[key{v, u}] = row
	s.mu.Unlock()
	return row, nil
}
