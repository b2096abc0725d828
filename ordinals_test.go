package liverecall

import (
	"sync"
	"testing"
)

func TestOrdinalsDenseAndStable(t *testing.T) {
	o := NewOrdinals()
	ids := []StreamerID{900, 5, 900, 77, 5}
	want := []uint32{0, 1, 0, 2, 1}
	for i, id := range ids {
		if got := o.Ordinal(id); got != want[i] {
			t.Fatalf("Ordinal(%d) = %d, want %d", id, got, want[i])
		}
	}
	if o.Len() != 3 {
		t.Fatalf("Len = %d, want 3", o.Len())
	}
	if id, ok := o.ID(2); !ok || id != 77 {
		t.Fatalf("ID(2) = %d,%v", id, ok)
	}
	if _, ok := o.ID(3); ok {
		t.Fatal("ID(3) should be unknown")
	}
	if _, ok := o.Lookup(1234); ok {
		t.Fatal("Lookup of an unseen id should miss")
	}
	// IDs agrees with ID, for given and never-given ordinals alike.
	ords := []uint32{2, 3, 0, 1, 99, 2}
	out, ok := make([]StreamerID, len(ords)), make([]bool, len(ords))
	for i := range out {
		out[i], ok[i] = 12345, true // overwritten either way
	}
	o.IDs(ords, out, ok)
	for i, ord := range ords {
		id, known := o.ID(ord)
		if out[i] != id || ok[i] != known {
			t.Fatalf("IDs[%d] (ordinal %d) = %d,%v; ID gives %d,%v", i, ord, out[i], ok[i], id, known)
		}
	}
	NewOrdinals().IDs([]uint32{0}, out, ok) // nothing given yet
	if ok[0] || out[0] != 0 {
		t.Fatalf("IDs on an empty mapping = %d,%v", out[0], ok[0])
	}
}

func TestOrdinalsConcurrent(t *testing.T) {
	o := NewOrdinals()
	var wg sync.WaitGroup
	// Readers of ID (lock-free) while ordinals are being given: every
	// ordinal they can see resolves to the id Lookup gives it.
	stop := make(chan struct{})
	var rwg sync.WaitGroup
	for g := 0; g < 2; g++ {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				for ord := uint32(0); ; ord++ {
					id, ok := o.ID(ord)
					if !ok {
						break
					}
					if back, ok := o.Lookup(id); !ok || back != ord {
						t.Errorf("ID(%d) = %d, but Lookup(%d) = %d %v", ord, id, id, back, ok)
						return
					}
				}
			}
		}()
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				o.Ordinal(StreamerID(i))
			}
		}()
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	if o.Len() != 1000 {
		t.Fatalf("Len = %d, want 1000", o.Len())
	}
	seen := make(map[uint32]bool)
	for i := 0; i < 1000; i++ {
		ord, _ := o.Lookup(StreamerID(i))
		if seen[ord] || ord >= 1000 {
			t.Fatalf("ordinal %d given twice or out of range", ord)
		}
		seen[ord] = true
	}
}
