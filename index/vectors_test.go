package index_test

import (
	"context"
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/postgres/pgtest"
)

// StreamerVectors yields every streamer vector of the pinned version, the
// same the per-streamer lookup gives, with the version (its params and
// creation time, which the fold-in reads), and refuses a version that no
// longer serves.
func TestStreamerVectorsOfAVersion(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	ords := lr.NewOrdinals()
	m, _, _ := newManager(t, db, index.Config{Ordinals: ords})
	v1 := seedVersion(t, db, "v1", 300, 5, 1, nil)
	activate(t, db, v1)
	if _, err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	mv, vecs, err := m.StreamerVectors(lr.ModelMF, v1.ID)
	if err != nil || mv.ID != v1.ID || mv.CreatedAt.IsZero() {
		t.Fatalf("StreamerVectors: %+v %v", mv, err)
	}
	got := slices.Collect(vecs)
	if len(got) != 300 {
		t.Fatalf("%d vectors, want 300", len(got))
	}
	for id := int64(100); id < 400; id++ {
		ord, _ := ords.Lookup(lr.StreamerID(id))
		v, ok := m.StreamerVector(lr.ModelMF, v1.ID, ord)
		if !ok || !slices.ContainsFunc(got, func(g []float32) bool { return slices.Equal(g, v) }) {
			t.Fatalf("streamer %d's vector is not among those yielded", id)
		}
	}
	if _, _, err := m.StreamerVectors(lr.ModelMF, v1.ID+100); lr.ErrorCode(err) != lr.EUNAVAILABLE {
		t.Fatalf("a version that does not serve: %v, want unavailable", err)
	}
}
