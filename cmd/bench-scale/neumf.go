package main

import (
	"context"
	"math"
	"math/rand/v2"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/postgres"
)

// mlpStd is the standard deviation of the synthetic users' and streamers'
// NeuMF MLP embeddings.
const mlpStd = 0.3

// synthNeuMF is the dense part of the NCF versions' synthetic NeuMF (the
// project's default architecture, embed.DefaultNeuMFConfig's layers): random
// MLP weights, the output weights over the GMF tower (hG) and over the MLP
// tower. The embeddings are generated per chunk: a user's GMF embedding p_u
// by the platform's vector generator (user_embeddings.vec is its retrieval
// vector hG ⊙ p_u, as embed.NeuMF.RetrievalVectors gives) and its MLP
// embedding N(0, mlpStd²) (user_embeddings.mlp); a streamer's GMF embedding
// is its stored vector.
type synthNeuMF struct {
	dim    int
	layers []int
	dense  []float32
	hG     []float32 // the output weights over the GMF tower
}

// newSynthNeuMF draws the dense weights from seed: Glorot-uniform weights,
// zero biases, hG uniform in [0.5, 1.5] (so that the retrieval vectors keep
// the GMF embeddings' structure).
func newSynthNeuMF(dim int, seed uint64) *synthNeuMF {
	layers := embed.DefaultNeuMFConfig().Layers
	rng := rand.New(rand.NewPCG(seed, 11))
	s := &synthNeuMF{dim: dim, layers: layers}
	// embed.NeuMF.Dense's layout: per layer W_l (out × in) then b_l, then
	// hG (dim), hM (the last width), the output bias. (UnmarshalIDScorer
	// refuses a blob whose sizes disagree with its header.)
	glorot := func(n, fanIn, fanOut int) {
		lim := math.Sqrt(6 / float64(fanIn+fanOut))
		for k := 0; k < n; k++ {
			s.dense = append(s.dense, float32((rng.Float64()*2-1)*lim))
		}
	}
	for l := 1; l < len(layers); l++ {
		in, out := layers[l-1], layers[l]
		glorot(in*out, in, out)
		s.dense = append(s.dense, make([]float32, out)...)
	}
	hG := len(s.dense)
	for f := 0; f < dim; f++ {
		s.dense = append(s.dense, float32(0.5+rng.Float64()))
	}
	last := layers[len(layers)-1]
	glorot(last, dim+last, 1)
	s.dense = append(s.dense, 0)
	s.hG = s.dense[hG : hG+dim]
	return s
}

// mlpDim is the size of a user's or a streamer's MLP embedding.
func (s *synthNeuMF) mlpDim() int { return s.layers[0] / 2 }

// fillMLP fills v with an MLP embedding.
func fillMLP(rng *rand.Rand, v []float32) {
	for k := range v {
		v[k] = float32(rng.NormFloat64() * mlpStd)
	}
}

// scorer encodes the NeuMF scorer of streamers (ids 1…n, GMF embeddings qg,
// n × dim, as stored) in embed.ScorerFormat, with MLP embeddings drawn from
// seed.
func (s *synthNeuMF) scorer(qg []float32, seed uint64) ([]byte, error) {
	n := len(qg) / s.dim
	e := s.mlpDim()
	m := &embed.NeuMF{NItems: n, Dim: s.dim, Layers: s.layers, QG: qg, QM: make([]float32, n*e), Dense: s.dense}
	fillMLP(rand.New(rand.NewPCG(seed, 13)), m.QM)
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	return embed.NewIDScorer(m, nil, ids).MarshalBinary()
}

// ncfOracle returns what the NeuMF of NCF version mv (of this platform)
// scores a user with a streamer: its stored scorer, decoded as a replica
// decodes it, given the user's row regenerated as the load wrote it.
func ncfOracle(ctx context.Context, db *postgres.DB, mv lr.ModelVersion) (func(user, streamer int64) (float32, bool), error) {
	format, blob, err := db.ModelScorer(ctx, mv.ID)
	if err != nil {
		return nil, err
	}
	sc, err := embed.DecodeScorer(format, blob)
	if err != nil {
		return nil, err
	}
	nmf := newSynthNeuMF(mv.Dim, ncfSeed)
	g := newVecGen(mv.Dim)
	rows := make([]lr.Embedding, chunkRows)
	flat, mlp := make([]float32, chunkRows*mv.Dim), make([]float32, chunkRows*nmf.mlpDim())
	return func(user, streamer int64) (float32, bool) {
		if user < 1 {
			return 0, false
		}
		lo := int(user-1)/chunkRows*chunkRows + 1
		n := int(user) - lo + 1
		genRows(g, nmf, true, vecSeed(lr.ModelNCF, lr.SideUser), lo, rows[:n], flat, mlp)
		return sc.ScoreFor(rows[n-1].Vec, rows[n-1].MLP, streamer)
	}, nil
}
