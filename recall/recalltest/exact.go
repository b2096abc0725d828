// Package recalltest has an exact-scan recall.Index for tests of the
// packages above the index (recall, api). The real index is tested against
// exact search in index/, so exact search is the reference these tests need.
package recalltest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/userstore"
)

// ExactIndex holds vectors per kind and searches them exhaustively. Set
// Delay or Failing to make Search slow or fail. It is also the user store
// of its user vectors (recall.UserVectors): every user is cached unless
// Cold is set, and then Fetch takes FetchDelay (or until its ctx ends) and
// fails with FetchErr if set. Set the knobs before use. Safe for
// concurrent use.
type ExactIndex struct {
	mu       sync.RWMutex
	users    map[lr.ModelKind]map[lr.UserID][]float32
	items    map[lr.ModelKind]map[uint32][]float32
	versions map[lr.ModelKind]lr.ModelVersion
	nextID   int64
	Delay    time.Duration
	Failing  bool

	Cold       bool
	FetchDelay time.Duration
	FetchErr   error
	// Fetching counts the Fetch calls that have not returned yet.
	Fetching atomic.Int64
}

// New returns an empty index.
func New() *ExactIndex {
	return &ExactIndex{users: map[lr.ModelKind]map[lr.UserID][]float32{}, items: map[lr.ModelKind]map[uint32][]float32{},
		versions: map[lr.ModelKind]lr.ModelVersion{}}
}

// SetVersion makes v (a label) kind's serving version, with a new model id.
func (x *ExactIndex) SetVersion(kind lr.ModelKind, v string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.nextID++
	x.versions[kind] = lr.ModelVersion{ID: x.nextID, Kind: kind, Version: v}
}

// Model returns kind's version (ID 0 before SetVersion).
func (x *ExactIndex) Model(kind lr.ModelKind) lr.ModelVersion {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.versions[kind]
}

// serves reports whether model (0: any) is kind's version.
func (x *ExactIndex) serves(kind lr.ModelKind, model int64) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return model == 0 || x.versions[kind].ID == model
}

// Cached returns u's row under v unless Cold is set.
func (x *ExactIndex) Cached(u lr.UserID, v userstore.Versions) (userstore.Row, bool) {
	if x.Cold {
		return userstore.Row{}, false
	}
	return x.row(u, v), true
}

// Fetch returns u's row under v after FetchDelay (ctx's error if it ends
// first), or FetchErr.
func (x *ExactIndex) Fetch(ctx context.Context, u lr.UserID, v userstore.Versions) (userstore.Row, error) {
	x.Fetching.Add(1)
	defer x.Fetching.Add(-1)
	if err := x.fetchWait(ctx); err != nil {
		return userstore.Row{Versions: v}, err
	}
	return x.row(u, v), nil
}

// fetchWait waits FetchDelay (ctx's error if it ends first) and returns
// FetchErr.
func (x *ExactIndex) fetchWait(ctx context.Context) error {
	if x.FetchDelay > 0 {
		t := time.NewTimer(x.FetchDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return x.FetchErr
}

// UserRows makes x the Source of a userstore.Store (the store a replica
// runs, whose misses recall waits for without a goroutine): the users'
// vectors of the versions models names, after FetchDelay (ctx's error if
// it ends first), or FetchErr. Each call counts in Fetching while it runs.
func (x *ExactIndex) UserRows(ctx context.Context, models []int64, users []int64, fn func(model, user int64, vec, mlp []float32) error) error {
	x.Fetching.Add(1)
	defer x.Fetching.Add(-1)
	if err := x.fetchWait(ctx); err != nil {
		return err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	for _, m := range models {
		for _, kind := range []lr.ModelKind{lr.ModelMF, lr.ModelNCF} {
			if x.versions[kind].ID != m {
				continue
			}
			for _, u := range users {
				if v := x.users[kind][lr.UserID(u)]; v != nil {
					if err := fn(m, u, append([]float32(nil), v...), nil); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// row is u's row under v: the vectors of the kinds whose version v names.
func (x *ExactIndex) row(u lr.UserID, v userstore.Versions) userstore.Row {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := userstore.Row{Versions: v}
	if v.MF != 0 && v.MF == x.versions[lr.ModelMF].ID {
		r.MF = x.users[lr.ModelMF][u]
	}
	if v.NCF != 0 && v.NCF == x.versions[lr.ModelNCF].ID {
		r.NCF = x.users[lr.ModelNCF][u]
	}
	return r
}

// AddUser stores u's vector under kind.
func (x *ExactIndex) AddUser(kind lr.ModelKind, u lr.UserID, v []float32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.users[kind] == nil {
		x.users[kind] = map[lr.UserID][]float32{}
	}
	x.users[kind][u] = v
}

// AddStreamer stores the vector of the streamer with ordinal ord under kind.
func (x *ExactIndex) AddStreamer(kind lr.ModelKind, ord uint32, v []float32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.items[kind] == nil {
		x.items[kind] = map[uint32][]float32{}
	}
	x.items[kind][ord] = v
}

func (x *ExactIndex) StreamerVector(kind lr.ModelKind, model int64, ord uint32) ([]float32, bool) {
	if !x.serves(kind, model) {
		return nil, false
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, ok := x.items[kind][ord]
	return v, ok
}

// HasStreamer is recall.Index's existence check.
func (x *ExactIndex) HasStreamer(kind lr.ModelKind, model int64, ord uint32) bool {
	_, ok := x.StreamerVector(kind, model, ord)
	return ok
}

// Dots is recall.Index's batch dot product, vector by vector.
func (x *ExactIndex) Dots(kind lr.ModelKind, model int64, q []float32, ords []uint32, out []float32, ok []bool) {
	for j, ord := range ords {
		sv, found := x.StreamerVector(kind, model, ord)
		out[j], ok[j] = 0, found && len(sv) == len(q)
		if ok[j] {
			out[j] = index.Dot(q, sv)
		}
	}
}

// SearchPrecise is Search: every search here is an exact float scan.
func (x *ExactIndex) SearchPrecise(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
	return x.Search(ctx, kind, model, q, k, allowed)
}

// Search scores every allowed vector; ties break by ordinal.
// A pinned model that is not kind's version is EUNAVAILABLE, as
// index.Manager says of a version that no longer serves.
func (x *ExactIndex) Search(ctx context.Context, kind lr.ModelKind, model int64, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
	if x.Delay > 0 {
		select {
		case <-time.After(x.Delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if x.Failing {
		return nil, fmt.Errorf("index exploded")
	}
	if !x.serves(kind, model) {
		return nil, lr.Errorf(lr.EUNAVAILABLE, "%s model version %d no longer serves", kind, model)
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var hits []recall.Hit
	for ord, v := range x.items[kind] {
		if allowed != nil && !allowed.Contains(ord) { // nil: every streamer, as index.Index
			continue
		}
		var s float32
		for i := range v {
			s += v[i] * q[i]
		}
		hits = append(hits, recall.Hit{Ord: ord, Score: s})
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].Score != hits[j].Score {
			return hits[i].Score > hits[j].Score
		}
		return hits[i].Ord < hits[j].Ord
	})
	if len(hits) > k {
		hits = hits[:k]
	}
	return hits, nil
}
