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
}

func TestOrdinalsConcurrent(t *testing.T) {
	o := NewOrdinals()
	var wg sync.WaitGroup
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
