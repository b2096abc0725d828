package liverecall

import (
	"sync"
	"sync/atomic"
)

// Ordinals maps sparse streamer ids to dense uint32 ordinals, 0, 1, 2, ... in
// order of first sight. The mapping only grows: an ordinal, once given, means
// the same streamer for the life of the process, so the live bitmap (live/)
// and every index build (index/) can share it. It is safe for concurrent use:
// Lookup takes a read lock, ID none (every request resolves a hundred
// ordinals, and a read lock's shared counter bounces between cores).
type Ordinals struct {
	mu   sync.RWMutex
	byID map[StreamerID]uint32
	ids  []StreamerID
	// view is ids as last published. An ordinal's id never changes and
	// ids only grows, so a reader of an older view reads a valid prefix.
	view atomic.Pointer[[]StreamerID]
}

// NewOrdinals returns an empty mapping.
func NewOrdinals() *Ordinals {
	return &Ordinals{byID: make(map[StreamerID]uint32)}
}

// Ordinal returns id's ordinal, assigning the next one if id is new.
func (o *Ordinals) Ordinal(id StreamerID) uint32 {
	o.mu.RLock()
	ord, ok := o.byID[id]
	o.mu.RUnlock()
	if ok {
		return ord
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if ord, ok := o.byID[id]; ok {
		return ord
	}
	ord = uint32(len(o.ids))
	o.byID[id] = ord
	o.ids = append(o.ids, id)
	v := o.ids
	o.view.Store(&v)
	return ord
}

// Lookup returns id's ordinal and true, or false if id was never seen.
func (o *Ordinals) Lookup(id StreamerID) (uint32, bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	ord, ok := o.byID[id]
	return ord, ok
}

// ID returns the streamer id of ord and true, or false if ord was never given.
func (o *Ordinals) ID(ord uint32) (StreamerID, bool) {
	v := o.view.Load()
	if v == nil || int(ord) >= len(*v) {
		return 0, false
	}
	return (*v)[ord], true
}

// IDs writes the streamer id of each of ords to out, and to ok whether the
// ordinal was ever given (out[i] is then 0). It is ID for many ordinals:
// the loads do not depend on each other, so their cache misses overlap
// (ordinals scattered over a million streamers mostly miss).
func (o *Ordinals) IDs(ords []uint32, out []StreamerID, ok []bool) {
	var v []StreamerID
	if p := o.view.Load(); p != nil {
		v = *p
	}
	out, ok = out[:len(ords)], ok[:len(ords)]
	for i, ord := range ords {
		if int(ord) < len(v) {
			out[i], ok[i] = v[ord], true
		} else {
			out[i], ok[i] = 0, false
		}
	}
}

// Len returns how many ordinals have been given.
func (o *Ordinals) Len() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.ids)
}
