// Package offheaptest is the tests' helper for memory mapped by
// internal/offheap: waiting for mappings to be released.
package offheaptest

import (
	"runtime"
	"testing"
	"time"

	"github.com/liverecall/liverecall/internal/offheap"
)

// WaitReleased runs the collector until none of addrs lies in a live
// mapping (a mapping is released by a cleanup after the collection that
// finds its owner unreachable), and fails tb after 10 seconds, saying
// how many of them, what (e.g. "arrays of the dropped index"), are still
// mapped.
func WaitReleased(tb testing.TB, what string, addrs ...uintptr) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		held := 0
		for _, a := range addrs {
			if offheap.Contains(a) {
				held++
			}
		}
		if held == 0 {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d %s still mapped after 10 s", held, len(addrs), what)
		}
		runtime.Gosched()
	}
}
