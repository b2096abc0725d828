package recommend_test

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"runtime/metrics"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/recommend"
)

// blobStore serves one NCF version whose scorer it encodes anew at each
// call, so that nothing but LoadNCF holds the blob.
type blobStore struct {
	items int
	calls int
}

func (s *blobStore) ActiveModel(context.Context, lr.ModelKind) (lr.ModelVersion, error) {
	return lr.ModelVersion{ID: 7, Kind: lr.ModelNCF, Version: "big", Dim: 64}, nil
}

func (s *blobStore) ModelScorer(context.Context, int64) (string, []byte, error) {
	s.calls++
	m := &embed.NeuMF{NItems: s.items, Dim: 64, Layers: []int{64, 32, 16}, QG: make([]float32, s.items*64), QM: make([]float32, s.items*32)}
	m.Dense = make([]float32, 64*32+32+32*16+16+64+16+1) // the layout of 64-32-16 at dim 64
	for i := range m.QG {
		m.QG[i] = float32(i%7) * 0.01
	}
	ids := make([]int64, s.items)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	b, err := embed.NewIDScorer(m, nil, ids).MarshalBinary()
	return embed.ScorerFormat, b, err
}

func (s *blobStore) ReadModelScorer(ctx context.Context, id int64, fn func(string, int64, io.Reader) error) error {
	f, b, err := s.ModelScorer(ctx, id)
	if err != nil {
		return err
	}
	return fn(f, int64(len(b)), bytes.NewReader(b))
}

func heapGoal() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// Loading a scorer leaves the collector's target set by the live heap, not
// by the heap that held the blob it was decoded from: the blob is collected
// at once, and the decoded tables are outside the heap.
func TestLoadNCFLeavesNoBlobInTheHeapGoal(t *testing.T) {
	st := &blobStore{items: 200_000} // a blob of ~78 MB
	ords := lr.NewOrdinals()
	m := recommend.NewModels(recommend.ModelsConfig{Store: st, Ordinals: ords,
		Serving: func(k lr.ModelKind) string {
			if k == lr.ModelNCF {
				return "big"
			}
			return ""
		}})
	m.LoadNCF(context.Background())
	if m.NCF() == nil || st.calls != 1 {
		t.Fatalf("scorer not loaded (%d calls)", st.calls)
	}
	blob := int64(st.items * (64 + 32 + 2) * 4)
	if goal := heapGoal(); int64(goal) > blob/2 {
		t.Fatalf("after loading a %d MB scorer the heap goal is %d MB: the blob (or the tables) set it", blob>>20, goal>>20)
	}
	runtime.KeepAlive(m)
}
