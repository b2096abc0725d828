package main

import (
	"math"
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
)

// The NCF versions' scorer, decoded as a replica decodes it, scores a user
// given by the rows the platform stores exactly as the whole synthetic
// NeuMF (users included) scores them, and its streamer side is the stored
// streamer vectors.
func TestSyntheticNeuMFIsConsistent(t *testing.T) {
	const dim, nUsers = 16, 7
	p := &platform{streamers: 23, dim: dim}
	nmf := newSynthNeuMF(dim, ncfSeed)
	blob, err := p.ncfScorer(nmf)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := embed.DecodeScorer(embed.ScorerFormat, blob)
	if err != nil {
		t.Fatal(err)
	}
	e := nmf.mlpDim()
	if g, m := sc.UserDims(); sc.HoldsUsers() || g != dim || m != e || len(sc.StreamIDs) != p.streamers {
		t.Fatalf("decoded scorer: holds users %v, user dims %d, %d, %d streamers; want false, %d, %d, %d", sc.HoldsUsers(), g, m, len(sc.StreamIDs), dim, e, p.streamers)
	}

	g := newVecGen(dim)
	streamers := make([]lr.Embedding, p.streamers)
	genRows(g, nmf, false, vecSeed(lr.ModelNCF, lr.SideStreamer), 1, streamers, make([]float32, p.streamers*dim), nil)
	users := make([]lr.Embedding, nUsers)
	genRows(g, nmf, true, vecSeed(lr.ModelNCF, lr.SideUser), 1, users, make([]float32, nUsers*dim), make([]float32, nUsers*e))
	pg := make([]float32, nUsers*dim)
	fillChunk(g, vecSeed(lr.ModelNCF, lr.SideUser), 1, nUsers, pg) // the users' GMF embeddings p_u

	whole := &embed.NeuMF{NUsers: nUsers, NItems: p.streamers, Dim: dim, Layers: nmf.layers, PG: pg, QG: sc.Model.QG,
		QM: sc.Model.QM, Dense: nmf.dense}
	for i, s := range streamers {
		if s.ID != sc.StreamIDs[i] || !slices.Equal(s.Vec, sc.Model.QG[i*dim:(i+1)*dim]) {
			t.Fatalf("streamer %d: the scorer's GMF embedding is not the stored vector", s.ID)
		}
	}
	for _, u := range users {
		whole.PM = append(whole.PM, u.MLP...)
	}
	retrieval, _ := whole.RetrievalVectors()
	for ui, u := range users {
		if !slices.Equal(u.Vec, retrieval[ui*dim:(ui+1)*dim]) {
			t.Fatalf("user %d: stored vector is not the retrieval vector hG ⊙ p_u", u.ID)
		}
		for si, s := range streamers {
			got, ok := sc.ScoreFor(u.Vec, u.MLP, s.ID)
			want := whole.Score(ui, si)
			if !ok || math.Abs(float64(got-want)) > 1e-4*max(1, math.Abs(float64(want))) {
				t.Fatalf("user %d, streamer %d: scorer gives %v (ok %v) from the rows, the whole model %v", u.ID, s.ID, got, ok, want)
			}
		}
	}
	// The MLP tower counts: another user's MLP embedding changes the score.
	a, _ := sc.ScoreFor(users[0].Vec, users[0].MLP, 1)
	b, _ := sc.ScoreFor(users[0].Vec, users[1].MLP, 1)
	if a == b {
		t.Fatalf("the score does not depend on the user's MLP embedding (%v)", a)
	}
}
