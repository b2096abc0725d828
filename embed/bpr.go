package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"

	lr "github.com/liverecall/liverecall"
)

// BPRConfig holds the hyper-parameters of BPR matrix factorization (Rendle
// et al., UAI 2009): SGD on the pairwise loss -ln σ(x_ui − x_uj) with one
// uniformly sampled negative j per observed (u, i).
type BPRConfig struct {
	Dim     int
	Epochs  int     // each epoch draws as many triples as there are positives
	LR      float64 // SGD step
	Reg     float64 // L2 on the factors touched by a step
	InitStd float64
	Seed    uint64
	// Progress, if set, is called after each epoch from the training goroutine.
	Progress func(epoch, epochs int)
}

// DefaultBPRConfig returns the tuned defaults.
func DefaultBPRConfig() BPRConfig {
	return BPRConfig{Dim: 64, Epochs: 40, LR: 0.05, Reg: 0.005, InitStd: 0.1, Seed: 1}
}

// BPR is a trained BPR model: score = ⟨user, item⟩ + item bias. The bias is
// folded into the vectors as one extra dimension (user side 1), so MF.Dim is
// Dim+1 and the dot product is the whole score.
type BPR = MF

// userItems returns each user's distinct items, sorted.
func userItems(train []Interaction, nUsers int) [][]int32 {
	out := make([][]int32, nUsers)
	for _, x := range train {
		out[x.User] = append(out[x.User], x.Item)
	}
	for u := range out {
		slices.Sort(out[u])
		out[u] = slices.Compact(out[u])
	}
	return out
}

// TrainBPR fits BPR-MF by sequential SGD (single goroutine, so a seed gives
// one result). Errors as TrainALS.
func TrainBPR(ctx context.Context, train []Interaction, nUsers, nItems int, cfg BPRConfig) (*MF, error) {
	if err := checkTrain(train, nUsers, nItems, cfg.Dim); err != nil {
		return nil, err
	}
	if cfg.Epochs <= 0 || cfg.LR <= 0 || cfg.Reg < 0 {
		return nil, lr.Errorf(lr.EINVALID, "BPR: epochs and lr must be positive, reg non-negative")
	}
	seen := userItems(train, nUsers)
	for u, items := range seen {
		if len(items) >= nItems {
			return nil, lr.Errorf(lr.EINVALID, "BPR: user %d interacted with every item; no negative to sample", u)
		}
	}
	k := cfg.Dim
	d := k + 1 // last column: item bias (user side fixed at 1)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xb9))
	U := make([]float32, nUsers*d)
	V := make([]float32, nItems*d)
	for u := 0; u < nUsers; u++ {
		for f := 0; f < k; f++ {
			U[u*d+f] = float32(rng.NormFloat64() * cfg.InitStd)
		}
		U[u*d+k] = 1
	}
	for i := 0; i < nItems; i++ {
		for f := 0; f < k; f++ {
			V[i*d+f] = float32(rng.NormFloat64() * cfg.InitStd)
		}
	}
	lrate, reg := float32(cfg.LR), float32(cfg.Reg)
	for ep := 0; ep < cfg.Epochs; ep++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for s := 0; s < len(train); s++ {
			x := train[rng.IntN(len(train))]
			u := int(x.User)
			i := int(x.Item)
			var j int
			for {
				j = rng.IntN(nItems)
				if _, found := slices.BinarySearch(seen[u], int32(j)); !found {
					break
				}
			}
			uu, vi, vj := U[u*d:u*d+k], V[i*d:(i+1)*d], V[j*d:(j+1)*d]
			xuij := dot(uu, vi[:k]) - dot(uu, vj[:k]) + vi[k] - vj[k]
			g := float32(1 / (1 + math.Exp(float64(xuij)))) // σ(-x)
			for f := 0; f < k; f++ {
				wu, wi, wj := uu[f], vi[f], vj[f]
				uu[f] += lrate * (g*(wi-wj) - reg*wu)
				vi[f] += lrate * (g*wu - reg*wi)
				vj[f] += lrate * (-g*wu - reg*wj)
			}
			vi[k] += lrate * (g - reg*vi[k])
			vj[k] += lrate * (-g - reg*vj[k])
		}
		if !finite32(U) || !finite32(V) {
			return nil, lr.Errorf(lr.EINVALID, "BPR diverged: factors are not finite after epoch %d (lower the learning rate)", ep+1)
		}
		if cfg.Progress != nil {
			cfg.Progress(ep+1, cfg.Epochs)
		}
	}
	return &MF{Dim: d, NUsers: nUsers, NItems: nItems, User: U, Item: V}, nil
}

func finite32(xs []float32) bool {
	for _, v := range xs {
		if v != v || v > math.MaxFloat32 || v < -math.MaxFloat32 {
			return false
		}
	}
	return true
}
