package offheap

import (
	"runtime"
	"runtime/debug"
	"sync"
	"testing"
	"time"
)

type owner struct {
	v []float32
}

// waitMapped runs the collector until Mapped reports want bytes (cleanups
// run on their own goroutine after the collection that finds the owner
// unreachable), failing after a few seconds.
func waitMapped(t *testing.T, want int64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		if got, _ := Mapped(); got == want {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("mapped bytes %d, want %d", got, want)
		}
		runtime.Gosched()
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// A large slice from Make is not on the Go heap, is zeroed and writable,
// and its mapping is released once its owner is unreachable.
func TestMakeOutsideTheHeapReleasedWithOwner(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no anonymous mappings: Make falls back to the heap")
	}
	base, _ := Mapped()
	ResetPeak()
	const n = 16 << 20 // 64 MiB of float32
	h0 := heapAlloc()
	o := &owner{}
	o.v = Make[float32](o, n)
	if len(o.v) != n || cap(o.v) != n {
		t.Fatalf("len %d cap %d, want %d", len(o.v), cap(o.v), n)
	}
	for i := range o.v {
		if o.v[i] != 0 {
			t.Fatalf("element %d is %v, not zero", i, o.v[i])
		}
		o.v[i] = float32(i)
	}
	if h1 := heapAlloc(); h1 > h0+(4<<20) {
		t.Fatalf("the Go heap grew by %d bytes for a 64 MiB slice from Make", h1-h0)
	}
	if got, _ := Mapped(); got != base+4*n {
		t.Fatalf("mapped %d bytes, want %d", got-base, 4*n)
	}
	if p := Peak(); p != base+4*n {
		t.Fatalf("peak %d bytes over the base, want %d", p-base, 4*n)
	}
	var sum float64
	for i := 0; i < n; i += 4096 {
		sum += float64(o.v[i])
	}
	if sum == 0 {
		t.Fatal("the writes did not stick")
	}
	runtime.KeepAlive(o)
	o = nil
	waitMapped(t, base)
	if p := Peak(); p != base+4*n {
		t.Fatalf("after the release the peak is %d bytes over the base, want %d (the most mapped at once)", p-base, 4*n)
	}
	ResetPeak()
	if p := Peak(); p != base {
		t.Fatalf("ResetPeak left %d bytes over the base", p-base)
	}
}

// Small slices are ordinary allocations: no mapping.
func TestMakeSmallOnHeap(t *testing.T) {
	_, c0 := Mapped()
	o := &owner{}
	o.v = Make[float32](o, 1000)
	if len(o.v) != 1000 {
		t.Fatalf("len %d", len(o.v))
	}
	if _, c := Mapped(); c != c0 {
		t.Fatalf("a 4 KB slice was mapped (%d mappings, was %d)", c, c0)
	}
	if Make[uint32](o, 0) != nil {
		t.Fatal("Make of 0 elements is not nil")
	}
	c := Clone(o, []uint32{1, 2, 3})
	if len(c) != 3 || c[2] != 3 {
		t.Fatalf("Clone: %v", c)
	}
}

// Readers that hold the owner while they read may run while other owners
// come and go and are collected (run with -race).
func TestConcurrentOwners(t *testing.T) {
	base, _ := Mapped()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				o := &owner{}
				o.v = Make[float32](o, 64<<10)
				for i := range o.v {
					o.v[i] = float32(r)
				}
				var done sync.WaitGroup
				for j := 0; j < 2; j++ {
					done.Add(1)
					go func() {
						defer done.Done()
						for _, x := range o.v {
							if x != float32(r) {
								t.Errorf("read %v, want %v", x, r)
								return
							}
						}
						runtime.KeepAlive(o)
					}()
				}
				done.Wait()
				runtime.GC()
			}
		}()
	}
	wg.Wait()
	waitMapped(t, base)
}

// With LimitMemory, the runtime's memory limit is the budget less what is
// mapped, and comes back when the mapping is released.
func TestLimitMemoryCountsMappings(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" || runtime.GOOS == "js" || runtime.GOOS == "wasip1" {
		t.Skip("no anonymous mappings")
	}
	prev := debug.SetMemoryLimit(1 << 30)
	t.Cleanup(func() {
		limitMu.Lock()
		limitBase = 0
		limitMu.Unlock()
		debug.SetMemoryLimit(prev)
	})
	waitMapped(t, 0)
	LimitMemory()
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("limit %d with nothing mapped, want %d", got, 1<<30)
	}
	o := &owner{}
	o.v = Make[float32](o, 16<<20) // 64 MiB
	if got := debug.SetMemoryLimit(-1); got != 1<<30-64<<20 {
		t.Fatalf("limit %d MiB with 64 MiB mapped, want %d MiB", got>>20, (1<<30-64<<20)>>20)
	}
	big := &owner{}
	big.v = Make[float32](big, 200<<20) // 800 MiB: the limit stops at a quarter of the budget
	if got := debug.SetMemoryLimit(-1); got != 1<<28 {
		t.Fatalf("limit %d MiB with 864 MiB mapped, want the floor of 256 MiB", got>>20)
	}
	runtime.KeepAlive(o)
	runtime.KeepAlive(big)
	o, big = nil, nil
	waitMapped(t, 0)
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Fatalf("limit %d after the mappings were released, want %d", got, 1<<30)
	}
}

// A tiny owner is refused: its cleanup might never run.
func TestMakeRefusesTinyOwners(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("Make with a one-byte owner did not panic")
		}
	}()
	Make[float32](new(byte), 1<<20)
}
