// Package recalltest has an exact-scan recall.Index for tests of the
// packages above the index (recall, api). The real index is tested against
// exact search in index/, so exact search is the reference these tests need.
package recalltest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/recall"
)

// ExactIndex holds vectors per kind and searches them exhaustively. Set
// Delay or Failing to make Search slow or fail. Safe for concurrent use.
type ExactIndex struct {
	mu       sync.RWMutex
	users    map[lr.ModelKind]map[lr.UserID][]float32
	items    map[lr.ModelKind]map[uint32][]float32
	versions map[lr.ModelKind]string
	Delay    time.Duration
	Failing  bool
}

// New returns an empty index.
func New() *ExactIndex {
	return &ExactIndex{users: map[lr.ModelKind]map[lr.UserID][]float32{}, items: map[lr.ModelKind]map[uint32][]float32{}, versions: map[lr.ModelKind]string{}}
}

// SetVersion sets the version label reported for kind.
func (x *ExactIndex) SetVersion(kind lr.ModelKind, v string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.versions[kind] = v
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

func (x *ExactIndex) UserVector(kind lr.ModelKind, u lr.UserID) ([]float32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, ok := x.users[kind][u]
	return v, ok
}

func (x *ExactIndex) StreamerVector(kind lr.ModelKind, ord uint32) ([]float32, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	v, ok := x.items[kind][ord]
	return v, ok
}

func (x *ExactIndex) Version(kind lr.ModelKind) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.versions[kind]
}

// Dots is recall.Index's batch dot product, vector by vector.
func (x *ExactIndex) Dots(kind lr.ModelKind, q []float32, ords []uint32, out []float32, ok []bool) {
	for j, ord := range ords {
		sv, found := x.StreamerVector(kind, ord)
		out[j], ok[j] = 0, found && len(sv) == len(q)
		if ok[j] {
			out[j] = index.Dot(q, sv)
		}
	}
}

// SearchPrecise is Search: every search here is an exact float scan.
func (x *ExactIndex) SearchPrecise(ctx context.Context, kind lr.ModelKind, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
	return x.Search(ctx, kind, q, k, allowed)
}

// Search scores every allowed vector; ties break by ordinal.
func (x *ExactIndex) Search(ctx context.Context, kind lr.ModelKind, q []float32, k int, allowed recall.Allowed) ([]recall.Hit, error) {
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
