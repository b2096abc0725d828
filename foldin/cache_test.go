package foldin

import (
	"container/list"
	"runtime"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
)

// TestCacheBytesPerVector: a held folded vector of 64 dimensions costs
// at most what Config.MaxUsers documents (200 bytes plus 4 per dimension),
// measured on the Go heap over 20,000 of them.
func TestCacheBytesPerVector(t *testing.T) {
	const n, dim = 20_000, 64
	c := &cache{max: n, byUser: map[lr.UserID]*list.Element{}, lru: list.New(), model: 1}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	at := time.Now()
	for u := 0; u < n; u++ {
		c.put(lr.UserID(u), lr.FoldedVector{Model: 1, Vec: make([]float32, dim), At: at, Expires: at, Streams: 1, Watches: 1})
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per folded vector of %d dimensions", per, dim)
	if per > 200+4*dim {
		t.Fatalf("%.0f bytes per folded vector, more than the documented %d", per, 200+4*dim)
	}
	runtime.KeepAlive(c)
}
