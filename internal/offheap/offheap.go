// Package offheap allocates large, pointer-free arrays outside the Go heap,
// in anonymous memory mappings that are unmapped when their owner becomes
// unreachable.
//
// Why: the collector sets its next target from the heap that is live after
// a collection (GOGC=100: twice that). A replica's live heap is mostly the
// immutable arrays of its indexes and of the NeuMF scorer (about 1 KB per
// streamer); on the heap they let the request garbage grow by as much
// again before a collection, which doubles the resident memory under load.
// Outside the heap they count once, and the collector's target follows the
// small, dynamic part of the heap.
//
// The contract: a slice from Make is valid while its owner is reachable.
// The collector does not see pointers into the mapping, so a slice kept
// (in a variable, a struct, another goroutine) after the last use of its
// owner does not keep the memory mapped: code that reads such a slice must
// hold the owner until it is done (runtime.KeepAlive(owner) after the last
// read), and must never hand the slice to code that does not hold the
// owner (copy it instead). Element types hold no pointers.
package offheap

import (
	"math"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Plain are the element types a mapping may hold: no pointers.
type Plain interface {
	~int8 | ~uint8 | ~int16 | ~uint16 | ~int32 | ~uint32 | ~int64 | ~uint64 | ~float32 | ~float64
}

// minMapped is the size below which Make allocates on the Go heap: a
// mapping costs at least a page and a system call.
const minMapped = 64 << 10

var (
	mapped, mappings atomic.Int64
	peak             atomic.Int64 // the most mapped at once since ResetPeak
	regionsMu        sync.Mutex
	regions          = map[uintptr]uintptr{} // start -> size of each live mapping
)

// Mapped returns the bytes Make holds mapped now, and in how many mappings.
func Mapped() (bytes, count int64) { return mapped.Load(), mappings.Load() }

// Peak returns the most bytes Make held mapped at once since the last
// ResetPeak (or the start), to measure what a load holds transiently.
func Peak() int64 { return peak.Load() }

// ResetPeak makes Peak start again from what is mapped now.
func ResetPeak() { peak.Store(mapped.Load()) }

// notePeak raises peak to now when it is more.
func notePeak(now int64) {
	for {
		p := peak.Load()
		if now <= p || peak.CompareAndSwap(p, now) {
			return
		}
	}
}

// limitBase is the process's memory budget LimitMemory took from the
// runtime's limit (0: LimitMemory not called, or no limit set); limitMu
// orders the updates of the runtime's limit.
var (
	limitMu   sync.Mutex
	limitBase int64
)

// LimitMemory makes the Go runtime's soft memory limit (GOMEMLIMIT, or
// debug.SetMemoryLimit before the call) a budget for the whole process,
// mappings included: the runtime does not count them, so from now on its
// limit is that budget less the bytes mapped (never below a quarter of the
// budget), lowered and raised as mappings are made and released. Without a
// limit set it does nothing. Call it once, at start, before mapping.
func LimitMemory() {
	limitMu.Lock()
	defer limitMu.Unlock()
	if base := debug.SetMemoryLimit(-1); base > 0 && base != math.MaxInt64 {
		limitBase = base
		setLimitLocked()
	}
}

// setLimitLocked applies the budget less what is mapped (limitMu held).
func setLimitLocked() {
	if limitBase == 0 {
		return
	}
	debug.SetMemoryLimit(max(limitBase-mapped.Load(), limitBase/4))
}

func limitChanged() {
	limitMu.Lock()
	setLimitLocked()
	limitMu.Unlock()
}

// Contains reports whether addr lies in a mapping Make made that is not
// released yet (for tests and checks: it walks every mapping).
func Contains(addr uintptr) bool {
	regionsMu.Lock()
	defer regionsMu.Unlock()
	for start, size := range regions {
		if addr >= start && addr < start+size {
			return true
		}
	}
	return false
}

// Addr returns the address of s's first element, for Contains.
func Addr[E any](s []E) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(s))) }

// Make returns a zeroed slice of n elements. From 64 KiB on it lies outside
// the Go heap, in a mapping released when owner becomes unreachable (see the
// package contract); smaller slices, and every slice where anonymous
// mappings are not available, are ordinary Go allocations. owner must be a
// pointer to a heap object that does not itself sit in the slice. Safe for
// concurrent use. It panics, as make does, when the memory cannot be had,
// and when owner is of 16 bytes or less: the runtime may batch such small
// objects into one allocation, whose cleanups then need not ever run.
func Make[E Plain, O any](owner *O, n int) []E {
	if unsafe.Sizeof(*owner) <= 16 {
		panic("offheap: an owner must be larger than 16 bytes")
	}
	if n <= 0 {
		return nil
	}
	var e E
	size := uintptr(n) * unsafe.Sizeof(e)
	if size/unsafe.Sizeof(e) != uintptr(n) {
		panic("offheap: size overflows")
	}
	if size < minMapped {
		return make([]E, n)
	}
	b, ok := mapAnon(int(size))
	if !ok {
		return make([]E, n)
	}
	notePeak(mapped.Add(int64(size)))
	mappings.Add(1)
	regionsMu.Lock()
	regions[Addr(b)] = size
	regionsMu.Unlock()
	limitChanged()
	runtime.AddCleanup(owner, release, b)
	return unsafe.Slice((*E)(unsafe.Pointer(unsafe.SliceData(b))), n)
}

// Clone returns a copy of s made by Make.
func Clone[E Plain, O any](owner *O, s []E) []E {
	c := Make[E](owner, len(s))
	copy(c, s)
	return c
}

func release(b []byte) {
	regionsMu.Lock()
	delete(regions, Addr(b))
	regionsMu.Unlock()
	unmapAnon(b)
	mapped.Add(-int64(len(b)))
	mappings.Add(-1)
	limitChanged()
}
