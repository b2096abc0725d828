package simbench

import (
	"context"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/sim"
)

// History's rows are the sim.History records of the events it returns.
func TestHistoryOfATinyWorld(t *testing.T) {
	w, err := sim.New(sim.Config{Seed: 3, Users: 200, Streamers: 30, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	evs, h, err := History(context.Background(), w, start, start.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[lr.EventType]int{}
	for i, e := range evs {
		counts[e.Type]++
		if i > 0 && e.TS.Before(evs[i-1].TS) {
			t.Fatalf("event %d out of order", i)
		}
	}
	if len(h.Watches) == 0 || len(h.Streams) == 0 || len(h.Streams) > counts[lr.EventStreamStarted] ||
		len(h.Watches) > counts[lr.EventViewerJoined] || len(h.Gifts) != counts[lr.EventGiftSent] || len(h.Follows) > counts[lr.EventFollowCreated] {
		t.Fatalf("history %d streams, %d watches, %d gifts, %d follows from %v", len(h.Streams), len(h.Watches), len(h.Gifts), len(h.Follows), counts)
	}
}

// Store serves a model's vectors in id order and the user rows of the
// model's id, with the MLP embedding only when asked to.
func TestStore(t *testing.T) {
	ctx := context.Background()
	for _, withMLP := range []bool{false, true} {
		s := NewStore(withMLP)
		s.Put(lr.ModelNCF, &embed.LiveModel{Dim: 1,
			Users:     []lr.Embedding{{ID: 9, Vec: []float32{9}, MLP: []float32{-9}}, {ID: 2, Vec: []float32{2}, MLP: []float32{-2}}},
			Streamers: []lr.Embedding{{ID: 5, Vec: []float32{5}}, {ID: 1, Vec: []float32{1}}}})
		if mv, err := s.ActiveModel(ctx, lr.ModelNCF); err != nil || mv.ID != 2 || mv.Version != "ncf-bench" {
			t.Fatalf("active ncf: %+v %v", mv, err)
		}
		if _, err := s.ActiveModel(ctx, lr.ModelMF); lr.ErrorCode(err) != lr.ENOTFOUND {
			t.Fatalf("active mf: %v, want ENOTFOUND", err)
		}
		var ids []int64
		if err := s.StreamEmbeddings(ctx, 2, lr.SideStreamer, func(id int64, _ []float32) error { ids = append(ids, id); return nil }); err != nil || len(ids) != 2 || ids[0] != 1 {
			t.Fatalf("streamers %v %v", ids, err)
		}
		if n, _ := s.CountEmbeddings(ctx, 1, lr.SideUser); n != 0 {
			t.Fatalf("mf users: %d", n)
		}
		var got []float32
		if err := s.UserRows(ctx, []int64{1, 2}, []int64{2, 3, 9}, func(model, user int64, vec, mlp []float32) error {
			got = append(got, vec...)
			got = append(got, mlp...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		want := []float32{2, 9}
		if withMLP {
			want = []float32{2, -2, 9, -9}
		}
		if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Fatalf("UserMLP %v: rows %v, want %v", withMLP, got, want)
		}
	}
}
