package embed

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/liverecall/liverecall/internal/offheap"
	"github.com/liverecall/liverecall/internal/offheap/offheaptest"
)

// A decoded scorer's streamer tables (GMF and MLP embeddings, and the
// Inference's precomputed first layer) lie outside the Go heap, score as
// the model they were encoded from, and are released with the scorer.
func TestDecodedScorerStreamerTablesOutsideTheHeap(t *testing.T) {
	cfg := DefaultNeuMFConfig()
	cfg.InitStd = 0.3
	const items = 2000 // 2000 × 64 floats: 512 KB per table
	m := newNeuMF(2, items, cfg, rand.New(rand.NewPCG(9, 9)))
	ids := make([]int64, items)
	for i := range ids {
		ids[i] = int64(100 + i)
	}
	src := NewIDScorer(m, []int64{1, 2}, ids)
	uG, pm, _ := src.UserRow(1)
	b, err := src.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	s, err := UnmarshalIDScorer(b)
	if err != nil {
		t.Fatal(err)
	}
	s.Prepare()
	addrs := []uintptr{offheap.Addr(s.Model.QG), offheap.Addr(s.Model.QM), offheap.Addr(s.inf.itemP)}
	for i, a := range addrs {
		if !offheap.Contains(a) {
			t.Fatalf("the decoded scorer's %s is on the Go heap", []string{"QG", "QM", "itemP"}[i])
		}
	}
	for _, id := range []int64{100, 1100, 2099} {
		got, ok1 := s.ScoreFor(uG, pm, id)
		want, ok2 := src.ScoreFor(uG, pm, id)
		if !ok1 || !ok2 || got != want {
			t.Fatalf("streamer %d: decoded %v (%v), encoded %v (%v)", id, got, ok1, want, ok2)
		}
	}
	if !slices.Equal(s.Model.QG, m.QG) {
		t.Fatal("decoded QG differs")
	}
	runtime.KeepAlive(s)
	s = nil
	offheaptest.WaitReleased(t, "tables of the dropped scorer", addrs...)
}
