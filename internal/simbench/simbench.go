// Package simbench holds what the benchmarks on the simulated world
// (cmd/bench-quality, cmd/bench-experiments) share: the simulated history
// as training data (History) and trained models handed to the index and
// the user store as PostgreSQL would hand them (Store).
package simbench

import (
	"cmp"
	"context"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/sim"
)

// History plays w from start to end and returns its events in order (to
// replay into the live state) and the history-table rows as training
// data: streams, watch sessions, gifts, and the follows active at end.
func History(ctx context.Context, w *sim.World, start, end time.Time) ([]lr.Event, embed.History, error) {
	var evs []lr.Event
	var h embed.History
	hist := &sim.History{
		Stream: func(r sim.StreamRecord) error {
			h.Streams = append(h.Streams, embed.Stream{Streamer: int64(r.Streamer), Start: r.Started, End: r.Ended})
			return nil
		},
		Watch: func(r sim.WatchRecord) error {
			h.Watches = append(h.Watches, embed.Watch{User: int64(r.User), Streamer: int64(r.Streamer), At: r.Started, Seconds: float64(r.Seconds)})
			return nil
		},
		Gift: func(r sim.GiftRecord) error {
			h.Gifts = append(h.Gifts, embed.Gift{User: int64(r.User), Streamer: int64(r.Streamer), At: r.At, Amount: r.Amount})
			return nil
		},
	}
	if _, err := w.Run(ctx, start, end, func(e lr.Event) error {
		evs = append(evs, e)
		return hist.Add(e)
	}, nil); err != nil {
		return nil, h, err
	}
	err := hist.Flush(func(f sim.FollowRecord) error {
		if f.Active {
			h.Follows = append(h.Follows, embed.Follow{User: int64(f.User), Streamer: int64(f.Streamer), At: f.Created})
		}
		return nil
	})
	return evs, h, err
}

// Store hands trained models to an index manager (index.Store) and to
// the user store (userstore.Source), as PostgreSQL would: each model of
// Models is the active version of its kind, labelled KIND-bench, with
// the embedding_models id IDs[kind]. Add a model with Put (its vectors
// sorted by id, the order PostgreSQL streams them in).
type Store struct {
	Models map[lr.ModelKind]*embed.LiveModel
	IDs    map[lr.ModelKind]int64
	// UserMLP: UserRows hands out the users' NeuMF MLP embeddings too
	// (else none, as for an imported version).
	UserMLP bool
}

// NewStore returns an empty Store with the ids 1 for MF and 2 for NCF.
func NewStore(userMLP bool) *Store {
	return &Store{Models: map[lr.ModelKind]*embed.LiveModel{}, IDs: map[lr.ModelKind]int64{lr.ModelMF: 1, lr.ModelNCF: 2}, UserMLP: userMLP}
}

// Put sorts m's vectors by id and makes m the model of kind.
func (s *Store) Put(kind lr.ModelKind, m *embed.LiveModel) {
	for _, side := range [][]lr.Embedding{m.Users, m.Streamers} {
		slices.SortFunc(side, func(a, b lr.Embedding) int { return cmp.Compare(a.ID, b.ID) })
	}
	s.Models[kind] = m
}

func (s *Store) side(id int64, side lr.EmbeddingSide) []lr.Embedding {
	for k, v := range s.IDs {
		if v != id {
			continue
		}
		if m := s.Models[k]; m != nil {
			if side == lr.SideUser {
				return m.Users
			}
			return m.Streamers
		}
	}
	return nil
}

// ActiveModel is index.Store's.
func (s *Store) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	m, ok := s.Models[kind]
	if !ok {
		return lr.ModelVersion{}, lr.Errorf(lr.ENOTFOUND, "no %s model trained for the benchmark", kind)
	}
	return lr.ModelVersion{ID: s.IDs[kind], Kind: kind, Version: string(kind) + "-bench", Dim: m.Dim, Status: lr.StatusActive}, nil
}

// CountEmbeddings is index.Store's.
func (s *Store) CountEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide) (int64, error) {
	return int64(len(s.side(id, side))), nil
}

// StreamEmbeddings is index.Store's: the vectors in id order.
func (s *Store) StreamEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide, fn func(int64, []float32) error) error {
	for _, e := range s.side(id, side) {
		if err := fn(e.ID, e.Vec); err != nil {
			return err
		}
	}
	return nil
}

// SampleUserEmbeddings is index.Store's: the first n users' vectors.
func (s *Store) SampleUserEmbeddings(ctx context.Context, id int64, n int) ([][]float32, error) {
	users := s.side(id, lr.SideUser)
	out := make([][]float32, 0, min(n, len(users)))
	for _, e := range users[:min(n, len(users))] {
		out = append(out, e.Vec)
	}
	return out, nil
}

// UserRows is userstore.Source's.
func (s *Store) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	for _, id := range models {
		rows := s.side(id, lr.SideUser)
		for _, u := range users {
			i, ok := slices.BinarySearchFunc(rows, u, func(e lr.Embedding, u int64) int { return cmp.Compare(e.ID, u) })
			if !ok {
				continue
			}
			var mlp []float32
			if s.UserMLP {
				mlp = rows[i].MLP
			}
			if err := fn(id, u, rows[i].Vec, mlp); err != nil {
				return err
			}
		}
	}
	return nil
}
