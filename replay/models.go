package replay

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
)

// train fits the models on the history before cfg.HoldoutFrom (trainW are
// the watches started before it): a watch still running at the cut-off
// counts its seconds up to it only, and gifts and follows count when
// before it. It returns the vectors as a store for the index manager and
// the user store, and the NeuMF scorer when "ncf" was asked for.
func train(ctx context.Context, h *History, trainW []Watch, cfg Config) (*memStore, *embed.IDScorer, error) {
	eh := &embed.History{}
	cut := cfg.HoldoutFrom
	for _, w := range trainW {
		end := w.End
		if end.IsZero() || end.After(cut) {
			end = cut
		}
		eh.Watches = append(eh.Watches, embed.Watch{User: int64(w.User), Streamer: int64(w.Streamer), At: w.Start, Seconds: end.Sub(w.Start).Seconds()})
	}
	// One held-out watch so that the split has one (the training job's own
	// evaluation is not used here).
	eh.Watches = append(eh.Watches, embed.Watch{User: -1, Streamer: -1, At: cut})
	for _, g := range h.Gifts {
		if g.At.Before(cut) {
			eh.Gifts = append(eh.Gifts, embed.Gift{User: int64(g.User), Streamer: int64(g.Streamer), At: g.At, Amount: g.Amount})
		}
	}
	for _, f := range h.Follows {
		if f.At.Before(cut) {
			eh.Follows = append(eh.Follows, embed.Follow{User: int64(f.User), Streamer: int64(f.Streamer), At: f.At})
		}
	}
	for _, s := range h.Streams {
		if s.Start.Before(cut) {
			end := s.End
			if !end.IsZero() && end.After(cut) {
				end = cut
			}
			eh.Streams = append(eh.Streams, embed.Stream{Streamer: int64(s.Streamer), Start: s.Start, End: end})
		}
	}
	store := &memStore{}
	var scorer *embed.IDScorer
	for i, name := range cfg.Models {
		lc := embed.DefaultLiveConfig(lr.ModelMF)
		if cfg.Train != nil {
			lc = *cfg.Train
		}
		lc.Cutoff, lc.EvalMax, lc.FullEvalMax = cut, 1, 1
		switch name {
		case "als":
			lc.Kind = lr.ModelMF
		case "ncf":
			lc.Kind = lr.ModelNCF
		default:
			return nil, nil, lr.Errorf(lr.EINVALID, "replay: unknown model %q (want als or ncf)", name)
		}
		m, err := embed.TrainLive(ctx, eh, lc)
		if err != nil {
			return nil, nil, fmt.Errorf("replay: training %s on the history before %s: %w", name, cut.Format("2006-01-02T15:04:05Z07:00"), err)
		}
		// The manager reads vectors in id order, as Postgres streams them.
		for _, side := range [][]lr.Embedding{m.Users, m.Streamers} {
			slices.SortFunc(side, func(a, b lr.Embedding) int { return cmp.Compare(a.ID, b.ID) })
		}
		// Stored as the training job stores a version: created at the
		// cut-off, with the hyper-parameters a fold-in solves with.
		params, _ := json.Marshal(map[string]float64{"reg": lc.ALS.Reg, "alpha": lc.ALS.Alpha, "eps": lc.ALS.Eps})
		store.models = append(store.models, storedModel{id: int64(i + 1), kind: lc.Kind, m: m, created: cut, params: params})
		if m.Scorer != nil {
			scorer = m.Scorer
		}
	}
	return store, scorer, nil
}

// memStore holds the trained vectors for the index manager (index.Store)
// and the user store (userstore.Source), as PostgreSQL would.
type memStore struct{ models []storedModel }

type storedModel struct {
	id      int64
	kind    lr.ModelKind
	m       *embed.LiveModel
	created time.Time
	params  json.RawMessage
}

func (s *memStore) kinds() []lr.ModelKind {
	var out []lr.ModelKind
	for _, m := range s.models {
		out = append(out, m.kind)
	}
	return out
}

func (s *memStore) byKind(kind lr.ModelKind) *storedModel {
	for i := range s.models {
		if s.models[i].kind == kind {
			return &s.models[i]
		}
	}
	return nil
}

func (s *memStore) byID(id int64) *storedModel {
	for i := range s.models {
		if s.models[i].id == id {
			return &s.models[i]
		}
	}
	return nil
}

// id is kind's model id, 0 when it was not trained.
func (s *memStore) id(kind lr.ModelKind) int64 {
	if m := s.byKind(kind); m != nil {
		return m.id
	}
	return 0
}

// users returns whether a user has a vector in the kind's model (false
// for every user when it was not trained).
func (s *memStore) users(kind lr.ModelKind) func(lr.UserID) bool {
	m := s.byKind(kind)
	return func(u lr.UserID) bool {
		if m == nil {
			return false
		}
		_, ok := slices.BinarySearchFunc(m.m.Users, int64(u), func(e lr.Embedding, u int64) int { return cmp.Compare(e.ID, u) })
		return ok
	}
}

func (s *memStore) side(id int64, side lr.EmbeddingSide) []lr.Embedding {
	m := s.byID(id)
	if m == nil {
		return nil
	}
	if side == lr.SideUser {
		return m.m.Users
	}
	return m.m.Streamers
}

func (s *memStore) ActiveModel(ctx context.Context, kind lr.ModelKind) (lr.ModelVersion, error) {
	m := s.byKind(kind)
	if m == nil {
		return lr.ModelVersion{}, lr.Errorf(lr.ENOTFOUND, "no %s model trained for the replay", kind)
	}
	return lr.ModelVersion{ID: m.id, Kind: kind, Version: string(kind) + "-replay", Dim: m.m.Dim, Status: lr.StatusActive,
		CreatedAt: m.created, Params: m.params}, nil
}

func (s *memStore) CountEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide) (int64, error) {
	return int64(len(s.side(id, side))), nil
}

func (s *memStore) StreamEmbeddings(ctx context.Context, id int64, side lr.EmbeddingSide, fn func(int64, []float32) error) error {
	for _, e := range s.side(id, side) {
		if err := fn(e.ID, e.Vec); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) SampleUserEmbeddings(ctx context.Context, id int64, n int) ([][]float32, error) {
	users := s.side(id, lr.SideUser)
	out := make([][]float32, 0, min(n, len(users)))
	for _, e := range users[:min(n, len(users))] {
		out = append(out, e.Vec)
	}
	return out, nil
}

func (s *memStore) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	for _, id := range models {
		rows := s.side(id, lr.SideUser)
		for _, u := range users {
			i, ok := slices.BinarySearchFunc(rows, u, func(e lr.Embedding, u int64) int { return cmp.Compare(e.ID, u) })
			if !ok {
				continue
			}
			if err := fn(id, u, slices.Clone(rows[i].Vec), slices.Clone(rows[i].MLP)); err != nil {
				return err
			}
		}
	}
	return nil
}
