package index

import (
	"context"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
	"github.com/liverecall/liverecall/internal/offheap/offheaptest"
)

// graphArrays returns the addresses of g's vectors and layer-0 links, and
// fails unless both lie outside the Go heap.
func graphArrays(t *testing.T, g *Graph) []uintptr {
	t.Helper()
	addrs := []uintptr{offheap.Addr(g.vecs), offheap.Addr(g.layer0)}
	for i, a := range addrs {
		if !offheap.Contains(a) {
			t.Fatalf("the graph's %s (%d KB) are on the Go heap", []string{"vectors", "layer-0 links"}[i], 4*len(g.vecs)>>10)
		}
	}
	return addrs
}

// The graph's vectors and links of a built index and of one read from a
// snapshot lie outside the Go heap and are released when the index is
// dropped.
func TestGraphArraysOutsideTheHeap(t *testing.T) {
	x, _ := newTestIndex(t, 4000, 32, 100)
	built := graphArrays(t, x.graph)
	path := filepath.Join(t.TempDir(), "mf.lrix")
	if err := WriteSnapshot(path, x); err != nil {
		t.Fatal(err)
	}
	y, err := ReadSnapshot(path, x.Model, lr.NewOrdinals(), Params{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	loaded := graphArrays(t, y.graph)
	y = nil
	offheaptest.WaitReleased(t, "arrays of the dropped snapshot index", loaded...)
	for _, a := range built {
		if !offheap.Contains(a) {
			t.Fatal("dropping the snapshot's index released the built one's arrays")
		}
	}
	runtime.KeepAlive(x)
	x = nil
	offheaptest.WaitReleased(t, "arrays of the dropped built index", built...)
}

// Searches, vector copies and dot products on indexes that are being
// replaced and collected at the same time always read mapped memory and
// give the same answers (run with -race: a read of a released mapping is a
// fault).
func TestSearchWhileIndexesAreReplacedAndCollected(t *testing.T) {
	x, s := newTestIndex(t, 3000, 16, 100)
	path := filepath.Join(t.TempDir(), "mf.lrix")
	if err := WriteSnapshot(path, x); err != nil {
		t.Fatal(err)
	}
	q := s.Query(0)
	wantGraph := x.SearchWith(StrategyHNSW, q, 10, 0, nil)
	wantExact := x.SearchWith(StrategyExact, q, 10, 0, nil)
	ords := []uint32{0, 3, 6, 9, 3 * 2999}
	wantVec, _ := x.StreamerVector(3)
	var cur atomic.Pointer[Index]
	cur.Store(x)
	x = nil
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			out, ok := make([]float32, len(ords)), make([]bool, len(ords))
			for {
				select {
				case <-stop:
					return
				default:
				}
				ix := cur.Load()
				if got := ix.SearchWith(StrategyHNSW, q, 10, 0, nil); !slices.Equal(got, wantGraph) {
					t.Errorf("graph search: %v, want %v", got, wantGraph)
					return
				}
				if got, _, _ := ix.Search(context.Background(), q, 10, 0, &bitset{bits: make([]bool, 3*3000), n: 3000}); len(got) != 0 {
					t.Errorf("search of an empty allowed set: %v", got)
					return
				}
				if got := ix.SearchWith(StrategyExact, q, 10, 0, nil); !slices.Equal(got, wantExact) {
					t.Errorf("exact scan: %v, want %v", got, wantExact)
					return
				}
				v, _ := ix.StreamerVector(3)
				ix.Dots(q, ords, out, ok)
				if !slices.Equal(v, wantVec) || !ok[0] || !ok[4] {
					t.Errorf("vector %v want %v, dots ok %v", v, wantVec, ok)
					return
				}
			}
		})
	}
	for range 20 {
		y, err := ReadSnapshot(path, cur.Load().Model, identityOrdinals(3000), Params{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		cur.Store(y)
		runtime.GC()
	}
	close(stop)
	wg.Wait()
}

// identityOrdinals gives streamer 1000+i the ordinal 3i, as newTestIndex.
func identityOrdinals(n int) *lr.Ordinals {
	o := lr.NewOrdinals()
	for i := range 3 * n {
		sid := lr.StreamerID(1<<40 + i)
		if i%3 == 0 {
			sid = lr.StreamerID(1000 + i/3)
		}
		o.Ordinal(sid)
	}
	return o
}
