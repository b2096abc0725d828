package embed

import (
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"

	lr "github.com/liverecall/liverecall"
)

// NegativeSampler draws a negative item for a positive interaction. The
// trainer calls it from one goroutine, in a fixed order, with its own seeded
// rng, so a deterministic sampler keeps training deterministic.
type NegativeSampler interface {
	Negative(rng *rand.Rand, pos Interaction) int32
}

// uniformSampler draws uniformly among the items the user never interacted
// with (the NCF paper's sampler).
type uniformSampler struct {
	nItems int
	seen   [][]int32 // sorted, per user
}

func (s *uniformSampler) Negative(rng *rand.Rand, pos Interaction) int32 {
	for tries := 0; ; tries++ {
		j := int32(rng.IntN(s.nItems))
		if _, found := slices.BinarySearch(s.seen[pos.User], j); !found || tries > 100 {
			return j
		}
	}
}

// NeuMFConfig holds the hyper-parameters of NeuMF (He et al., WWW 2017).
type NeuMFConfig struct {
	Dim     int     // GMF factors: the dimension of the retrieval vectors
	Layers  []int   // MLP layer widths; Layers[0] is the input (2 × the MLP embedding size)
	Epochs  int     // passes over the positives
	Batch   int     // samples (positives and negatives) per Adam step
	Neg     int     // sampled negatives per positive
	LR      float64 // Adam step size
	Reg     float64 // L2 on the GMF embedding rows a batch touches
	RegMLP  float64 // L2 on the MLP embedding rows a batch touches (every phase)
	InitStd float64 // std of the initial embeddings
	Seed    uint64
	Workers int // goroutines per batch; 0 means GOMAXPROCS
	// Pretrain, if set, starts the GMF tower from implicit ALS factors
	// trained with this configuration (its Dim is set to Dim): the paper's
	// pre-training, with ALS standing in for a separately trained GMF.
	Pretrain *ALSConfig
	// PretrainScale multiplies the output weights over the GMF tower when
	// it starts from ALS, so that the initial logit is scale·⟨x_u, y_i⟩.
	PretrainScale float64
	// Sampler draws negatives; nil means uniform among the user's unseen items.
	// For live data, pass one drawing among streamers live at pos.Time.
	Sampler NegativeSampler
	// PretrainGMF is the number of epochs the output layer of the GMF model
	// (weights over the GMF tower and a bias) is fitted alone on the frozen
	// GMF embeddings (the ALS factors when Pretrain is set), so that its
	// logits are calibrated like a GMF model trained with the log loss
	// before they are fused with the MLP model's; 0 skips it.
	PretrainGMF int
	// PretrainMLP is the number of epochs the MLP model (the MLP tower with
	// its own output weights and bias; the GMF tower left out) is trained
	// alone: the paper's MLP pre-training; 0 skips it. The two models are
	// then fused (see Alpha) and NeuMF trained for Epochs with fresh Adam
	// state.
	PretrainMLP int
	// PretrainLR is the Adam step size of both pre-training phases; 0 means
	// LR.
	PretrainLR float64
	// Alpha weighs the pre-trained models in the fused output layer, as in
	// the paper: weights α·h_GMF over the GMF tower, (1−α)·h_MLP over the
	// MLP tower, bias α·b_GMF + (1−α)·b_MLP, so the fused logit starts as
	// the same mix of the two models' logits. Used only with PretrainMLP.
	Alpha float64
	// Progress, if set, is called after each epoch (pre-training included:
	// epochs = PretrainGMF + PretrainMLP + Epochs) from the training
	// goroutine.
	Progress func(epoch, epochs int)
	trace    tracer // tests only
	// OnEpoch, if set, is called after each NeuMF epoch (not the
	// pre-training ones) with the mean loss; an error stops training and is
	// returned.
	OnEpoch func(epoch int, loss float64) error
}

// DefaultNeuMFConfig returns the tuned defaults, the same on every dataset:
// 64 GMF factors, MLP 64→32→16, 4 negatives, batches of 256, Adam at 3e-4
// for 6 epochs, the GMF tower started from implicit ALS with λ=100, α=8
// (output weights 2), no MLP pre-training.
//
// Tuned on validation splits carved out of the training files
// (Dataset.ValidationSplit; NDCG@10, lastfm the mean of 3 splits, ml-1m one):
//   - the ALS start: λ=100, α=8 beats the ALS model's own defaults (λ=50,
//     α=4) as a start on both, although worse as a model on ml-1m (.5840
//     against .5931): after 6 epochs lastfm .6002 against .5966, ml-1m .5942
//     against .5934. Without an ALS start, 20 epochs at 1e-3 reached HR@10
//     .786 on lastfm against .838 with it.
//   - epochs, from the ALS start: lastfm .5935 .5964 .6002 .6016 .6025 after
//     4…8; ml-1m .5965 .5954 .5942 .5926 after 4…7. 6 and 7 give the best
//     mean of the two (.5972, .5971); 6 is cheaper.
//   - the paper's MLP pre-training (PretrainMLP: the MLP model alone with
//     Adam, the GMF model's output layer fitted on the ALS factors, fused at
//     α=0.5) lowers both: lastfm .5964 (3 epochs at 1e-3) and .5924 (6 at
//     3e-3, MLP L2 1e-3, α=0.8) against .6002; ml-1m .5946 (3 MLP epochs
//     then 2) against .5965 in the same time. The MLP model alone peaks
//     near .51 on lastfm against ALS's .59, and the fused model inherits
//     its over-confident logits, so it is off.
//   - no gain, or not worth the time: 6 or 8 negatives (+.002 on lastfm,
//     1.5–2× the time), Adam at 1e-3 (.575), L2 1e-3 on the embeddings
//     (.559), weighting positives by their log play count (.5945 both).
func DefaultNeuMFConfig() NeuMFConfig {
	als := DefaultALSConfig()
	als.Reg, als.Alpha = 100, 8
	return NeuMFConfig{Dim: 64, Layers: []int{64, 32, 16}, Epochs: 6, Batch: 256, Neg: 4,
		LR: 0.0003, InitStd: 0.01, Seed: 1, Pretrain: &als, PretrainScale: 2,
		PretrainLR: 0.001, Alpha: 0.5}
}

// NeuMF is a trained NeuMF model: a GMF tower (user ⊙ item embeddings) and
// an MLP tower (ReLU layers over the concatenated user and item embeddings)
// fused by one logistic output unit. It is read-only after training and safe
// for concurrent use.
type NeuMF struct {
	NUsers, NItems int
	Dim            int   // GMF factors
	Layers         []int // MLP widths, Layers[0] = 2·MLP embedding size
	PG, QG         []float32
	PM, QM         []float32 // QG and QM of a decoded scorer lie outside the Go heap, valid while the NeuMF is reachable (internal/offheap)
	// Dense holds every dense parameter: for l = 1..len(Layers)-1 the weights
	// W_l (Layers[l] × Layers[l-1], row-major) then the bias b_l; then the
	// output weights over the GMF vector (Dim), over the last MLP layer, and
	// the output bias.
	Dense []float32

	pool sync.Pool
}

// mlpDim is the size of the MLP embedding of a user or an item.
func (m *NeuMF) mlpDim() int { return m.Layers[0] / 2 }

// offsets of the dense parameters.
type layout struct {
	w, b   []int // per layer l (index l-1)
	hG, hM int
	bias   int
	size   int
}

func newLayout(dim int, layers []int) layout {
	var lo layout
	off := 0
	for l := 1; l < len(layers); l++ {
		lo.w = append(lo.w, off)
		off += layers[l] * layers[l-1]
		lo.b = append(lo.b, off)
		off += layers[l]
	}
	lo.hG = off
	off += dim
	lo.hM = off
	off += layers[len(layers)-1]
	lo.bias = off
	lo.size = off + 1
	return lo
}

// scratch holds one goroutine's forward and backward buffers.
type scratch struct {
	phi []float32   // GMF product
	z   [][]float32 // activations, z[0] = MLP input
	a   [][]float32 // pre-activations of layers 1..
	dz  [][]float32
}

func newScratch(dim int, layers []int) *scratch {
	s := &scratch{phi: make([]float32, dim)}
	for _, w := range layers {
		s.z = append(s.z, make([]float32, w))
		s.a = append(s.a, make([]float32, w))
		s.dz = append(s.dz, make([]float32, w))
	}
	return s
}

// userCache holds, during training, the user half of the first MLP layer
// for a run of samples of one user (a positive and its negatives): the
// product W1[:, :e]·pm_u is computed once, and the gradients through it are
// summed over the run and applied once by flushUser.
type userCache struct {
	valid bool
	part  []float32 // W1[:, :e]·pm_u
	daSum []float32 // Σ over the run of dloss/da1
}

// forward computes the logit of (u, i), leaving the activations in s. uc,
// if not nil, caches the user half of the first layer (see userCache).
func (m *NeuMF) forward(lo *layout, u, i int, s *scratch, uc *userCache) float32 {
	d, e := m.Dim, m.mlpDim()
	pg, qg := m.PG[u*d:(u+1)*d], m.QG[i*d:(i+1)*d]
	for f := range s.phi {
		s.phi[f] = pg[f] * qg[f]
	}
	copy(s.z[0][:e], m.PM[u*e:(u+1)*e])
	copy(s.z[0][e:], m.QM[i*e:(i+1)*e])
	L := len(m.Layers)
	for l := 1; l < L; l++ {
		in, out := m.Layers[l-1], m.Layers[l]
		W := m.Dense[lo.w[l-1] : lo.w[l-1]+in*out]
		b := m.Dense[lo.b[l-1] : lo.b[l-1]+out]
		x, a, z := s.z[l-1], s.a[l], s.z[l]
		if l == 1 && uc != nil {
			if !uc.valid {
				for j := 0; j < out; j++ {
					uc.part[j] = dot(W[j*in:j*in+e], x[:e])
				}
				uc.valid = true
			}
			for j := 0; j < out; j++ {
				v := b[j] + uc.part[j] + dot(W[j*in+e:(j+1)*in], x[e:])
				a[j] = v
				z[j] = max(v, 0)
			}
			continue
		}
		for j := 0; j < out; j++ {
			v := b[j] + dot(W[j*in:(j+1)*in], x)
			a[j] = v
			z[j] = max(v, 0)
		}
	}
	hG := m.Dense[lo.hG : lo.hG+d]
	hM := m.Dense[lo.hM : lo.hM+m.Layers[L-1]]
	return dot(hG, s.phi) + dot(hM, s.z[L-1]) + m.Dense[lo.bias]
}

// backward accumulates the gradient of the loss with respect to the logit
// (g) into dDense, and writes the gradients of the four embedding rows of
// (u, i) into dpg, dqg (len Dim) and dpm, dqm (len mlpDim). It uses the
// activations forward left in s.
//
// With uc, the first layer's gradients through the user half are summed in
// uc.daSum instead (dpm gets zeros) until flushUser applies them.
func (m *NeuMF) backward(lo *layout, u, i int, g float32, s *scratch, uc *userCache, dDense, dpg, dqg, dpm, dqm []float32) {
	d := m.Dim
	L := len(m.Layers)
	pg, qg := m.PG[u*d:(u+1)*d], m.QG[i*d:(i+1)*d]
	hG := m.Dense[lo.hG : lo.hG+d]
	dhG := dDense[lo.hG : lo.hG+d]
	for f := 0; f < d; f++ {
		dhG[f] += g * s.phi[f]
		t := g * hG[f]
		dpg[f] = t * qg[f]
		dqg[f] = t * pg[f]
	}
	last := m.Layers[L-1]
	hM := m.Dense[lo.hM : lo.hM+last]
	dhM := dDense[lo.hM : lo.hM+last]
	zL, dzL := s.z[L-1], s.dz[L-1]
	for j := 0; j < last; j++ {
		dhM[j] += g * zL[j]
		dzL[j] = g * hM[j]
	}
	dDense[lo.bias] += g
	for l := L - 1; l >= 1; l-- {
		in, out := m.Layers[l-1], m.Layers[l]
		W := m.Dense[lo.w[l-1] : lo.w[l-1]+in*out]
		dW := dDense[lo.w[l-1] : lo.w[l-1]+in*out]
		db := dDense[lo.b[l-1] : lo.b[l-1]+out]
		a, dz, x, dx := s.a[l], s.dz[l], s.z[l-1], s.dz[l-1]
		clear(dx)
		if l == 1 && uc != nil {
			e := m.mlpDim()
			for j := 0; j < out; j++ {
				if a[j] <= 0 {
					continue
				}
				gj := dz[j]
				db[j] += gj
				uc.daSum[j] += gj
				row, drow := W[j*in+e:(j+1)*in], dW[j*in+e:(j+1)*in]
				row, xx, dxx := row[:len(drow)], x[e:e+len(drow)], dx[e:e+len(drow)]
				for k := range drow {
					drow[k] += gj * xx[k]
					dxx[k] += gj * row[k]
				}
			}
			continue
		}
		for j := 0; j < out; j++ {
			if a[j] <= 0 {
				continue
			}
			gj := dz[j]
			db[j] += gj
			row, drow := W[j*in:(j+1)*in], dW[j*in:(j+1)*in]
			row, xx, dxx := row[:len(drow)], x[:len(drow)], dx[:len(drow)]
			for k := range drow {
				drow[k] += gj * xx[k]
				dxx[k] += gj * row[k]
			}
		}
	}
	e := m.mlpDim()
	copy(dpm, s.dz[0][:e])
	copy(dqm, s.dz[0][e:])
}

// flushUser applies the summed first-layer gradients of a run of samples of
// user u (see userCache): into dDense for W1's user half and into dpm.
func (m *NeuMF) flushUser(lo *layout, u int, uc *userCache, dDense, dpm []float32) {
	if len(m.Layers) < 2 || !uc.valid {
		uc.valid = false
		return
	}
	e, in := m.mlpDim(), m.Layers[0]
	pm := m.PM[u*e : (u+1)*e]
	W := m.Dense[lo.w[0]:]
	dW := dDense[lo.w[0]:]
	for j, g := range uc.daSum {
		if g == 0 {
			continue
		}
		row, drow := W[j*in:j*in+e], dW[j*in:j*in+e]
		dp := dpm[:e]
		for k := range drow {
			drow[k] += g * pm[k]
			dp[k] += g * row[k]
		}
	}
	clear(uc.daSum)
	uc.valid = false
}

// Score returns the logit of user and item (σ of it is the predicted
// probability of an interaction); unknown ids give -MaxFloat32. Safe for
// concurrent use.
func (m *NeuMF) Score(user, item int) float32 {
	if user < 0 || user >= m.NUsers || item < 0 || item >= m.NItems {
		return -math.MaxFloat32
	}
	lo, s := m.get()
	defer m.pool.Put(s)
	return m.forward(&lo, user, item, s, nil)
}

func (m *NeuMF) get() (layout, *scratch) {
	lo := newLayout(m.Dim, m.Layers)
	if s, ok := m.pool.Get().(*scratch); ok {
		return lo, s
	}
	return lo, newScratch(m.Dim, m.Layers)
}

// ScoreItems implements Scorer with the full NeuMF logit.
func (m *NeuMF) ScoreItems(user int32, items []int32, out []float32) {
	lo, s := m.get()
	defer m.pool.Put(s)
	for k, it := range items {
		if user < 0 || int(user) >= m.NUsers || it < 0 || int(it) >= m.NItems {
			out[k] = -math.MaxFloat32
			continue
		}
		out[k] = m.forward(&lo, int(user), int(it), s, nil)
	}
}

// RetrievalVectors returns the GMF vectors for an inner-product index: each
// user's GMF embedding multiplied element-wise by the output weights over the
// GMF tower, and each item's GMF embedding, so that ⟨user, item⟩ is exactly
// the GMF part of the logit. Both are fresh row-major copies (NUsers×Dim,
// NItems×Dim).
func (m *NeuMF) RetrievalVectors() (users, items []float32) {
	lo := newLayout(m.Dim, m.Layers)
	hG := m.Dense[lo.hG : lo.hG+m.Dim]
	users = make([]float32, len(m.PG))
	for u := 0; u < m.NUsers; u++ {
		for f := 0; f < m.Dim; f++ {
			users[u*m.Dim+f] = m.PG[u*m.Dim+f] * hG[f]
		}
	}
	return users, slices.Clone(m.QG)
}

// adam is Adam state for one parameter slice.
type adam struct {
	m, v []float32
}

func newAdam(n int) adam { return adam{make([]float32, n), make([]float32, n)} }

// adamStep applies one Adam update to p[lo:hi] from g[lo:hi] (with L2 reg
// added), given the bias-corrected step size.
func (a *adam) step(p, g []float32, lo, hi int, lrT, reg float32) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	pm, pv := a.m[lo:hi], a.v[lo:hi]
	p, g = p[lo:hi], g[lo:hi]
	pm, pv, g = pm[:len(p)], pv[:len(p)], g[:len(p)]
	for k := range p {
		gk := g[k] + reg*p[k]
		pm[k] = b1*pm[k] + (1-b1)*gk
		pv[k] = b2*pv[k] + (1-b2)*gk*gk
		p[k] -= lrT * pm[k] / (float32(math.Sqrt(float64(pv[k]))) + eps)
	}
}

// validate checks the NeuMF configuration.
func (c *NeuMFConfig) validate() error {
	if c.Dim <= 0 || c.Dim > 4096 {
		return lr.Errorf(lr.EINVALID, "NeuMF: dim must be in [1, 4096], got %d", c.Dim)
	}
	if len(c.Layers) < 1 || c.Layers[0] < 2 || c.Layers[0]%2 != 0 {
		return lr.Errorf(lr.EINVALID, "NeuMF: layers must start with an even input width ≥ 2, got %v", c.Layers)
	}
	for _, w := range c.Layers {
		if w <= 0 {
			return lr.Errorf(lr.EINVALID, "NeuMF: layer widths must be positive, got %v", c.Layers)
		}
	}
	if c.Epochs <= 0 || c.Batch <= 0 || c.Neg < 0 || c.LR <= 0 || c.Reg < 0 {
		return lr.Errorf(lr.EINVALID, "NeuMF: epochs, batch and lr must be positive, neg and reg non-negative")
	}
	if c.PretrainGMF < 0 || c.PretrainMLP < 0 || c.PretrainLR < 0 || c.Alpha < 0 || c.Alpha > 1 || c.RegMLP < 0 {
		return lr.Errorf(lr.EINVALID, "NeuMF: pre-training epochs, lr and MLP reg must be non-negative and alpha in [0, 1]")
	}
	return nil
}

// newNeuMF allocates a model with initial weights drawn from rng: embeddings
// N(0, InitStd²), dense weights Glorot-uniform, biases 0.
func newNeuMF(nUsers, nItems int, cfg NeuMFConfig, rng *rand.Rand) *NeuMF {
	e := cfg.Layers[0] / 2
	m := &NeuMF{NUsers: nUsers, NItems: nItems, Dim: cfg.Dim, Layers: slices.Clone(cfg.Layers),
		PG: make([]float32, nUsers*cfg.Dim), QG: make([]float32, nItems*cfg.Dim),
		PM: make([]float32, nUsers*e), QM: make([]float32, nItems*e)}
	for _, t := range [][]float32{m.PG, m.QG, m.PM, m.QM} {
		for k := range t {
			t[k] = float32(rng.NormFloat64() * cfg.InitStd)
		}
	}
	lo := newLayout(cfg.Dim, cfg.Layers)
	m.Dense = make([]float32, lo.size)
	uniform := func(dst []float32, fanIn, fanOut int) {
		lim := math.Sqrt(6 / float64(fanIn+fanOut))
		for k := range dst {
			dst[k] = float32((rng.Float64()*2 - 1) * lim)
		}
	}
	for l := 1; l < len(cfg.Layers); l++ {
		in, out := cfg.Layers[l-1], cfg.Layers[l]
		uniform(m.Dense[lo.w[l-1]:lo.w[l-1]+in*out], in, out)
	}
	last := cfg.Layers[len(cfg.Layers)-1]
	uniform(m.Dense[lo.hG:lo.hG+cfg.Dim+last], cfg.Dim+last, 1)
	return m
}

// sample is one training example.
type sample struct {
	u, i  int32
	label float32
}

// TrainNeuMF fits NeuMF with binary cross-entropy on each positive and Neg
// sampled negatives per epoch, mini-batches of Batch samples and Adam (lazy
// on embedding rows: only rows a batch touches are updated). Each batch is
// split between Workers goroutines; gradients are reduced in a fixed order,
// so a seed gives one result whatever the scheduling. Duplicate (user, item)
// rows count once. The phases, each optional but the last: the GMF tower
// from ALS (Pretrain), the GMF model's output layer alone (PretrainGMF),
// the MLP model alone and the fusion (PretrainMLP), then NeuMF (Epochs).
// It returns an EINVALID error for bad input and when the loss stops being
// finite in any phase, and ctx's error when ctx ends (checked between
// epochs).
func TrainNeuMF(ctx context.Context, train []Interaction, nUsers, nItems int, cfg NeuMFConfig) (*NeuMF, error) {
	if err := checkTrain(train, nUsers, nItems, cfg.Dim); err != nil {
		return nil, err
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	seen := userItems(train, nUsers)
	pos := positives(train)
	sampler := cfg.Sampler
	if sampler == nil {
		sampler = &uniformSampler{nItems: nItems, seen: seen}
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9cf))
	m := newNeuMF(nUsers, nItems, cfg, rng)
	lo := newLayout(cfg.Dim, cfg.Layers)
	if cfg.Pretrain != nil {
		ac := *cfg.Pretrain
		ac.Dim, ac.Progress = cfg.Dim, nil
		mf, err := TrainALS(ctx, train, nUsers, nItems, ac)
		if err != nil {
			return nil, err
		}
		copy(m.PG, mf.User)
		copy(m.QG, mf.Item)
		for f := 0; f < cfg.Dim; f++ {
			m.Dense[lo.hG+f] = float32(cfg.PretrainScale)
		}
	}
	total, done := cfg.PretrainGMF+cfg.PretrainMLP+cfg.Epochs, 0
	// epochs runs n epochs of t, checking the loss after each.
	epochs := func(t *nmfTrainer, n int, phase string, onEpoch func(int, float64) error) error {
		batch := make([]sample, 0, cfg.Batch+1+cfg.Neg)
		for ep := 0; ep < n; ep++ {
			if err := ctx.Err(); err != nil {
				return err
			}
			loss := t.epoch(pos, sampler, rng, batch)
			if math.IsNaN(loss) || math.IsInf(loss, 0) || !finite32(m.Dense) {
				return lr.Errorf(lr.EINVALID, "NeuMF diverged: loss %v after %sepoch %d (lower the learning rate)", loss, phase, ep+1)
			}
			if onEpoch != nil {
				if err := onEpoch(ep+1, loss); err != nil {
					return err
				}
			}
			cfg.trace.at(phase+"epoch "+strconv.Itoa(ep+1), m)
			done++
			if cfg.Progress != nil {
				cfg.Progress(done, total)
			}
		}
		return nil
	}
	pc := cfg // the pre-training phases' settings
	if cfg.PretrainLR > 0 {
		pc.LR = cfg.PretrainLR
	}
	if cfg.PretrainGMF > 0 {
		// The GMF model's output layer alone, on the frozen GMF embeddings:
		// the MLP tower is left out of the logit.
		hM := slices.Clone(m.Dense[lo.hM:lo.bias])
		if err := epochs(newNmfTrainer(m, pc, gmfHead), cfg.PretrainGMF, "GMF pre-training ", nil); err != nil {
			return nil, err
		}
		copy(m.Dense[lo.hM:lo.bias], hM)
		cfg.trace.at("gmf", m)
	}
	if cfg.PretrainMLP > 0 {
		// The MLP model alone: the output weights over the GMF tower are
		// held at zero and the MLP model has its own bias.
		hG := slices.Clone(m.Dense[lo.hG : lo.hG+cfg.Dim])
		bG := m.Dense[lo.bias]
		clear(m.Dense[lo.hG : lo.hG+cfg.Dim])
		m.Dense[lo.bias] = 0
		if err := epochs(newNmfTrainer(m, pc, mlpTower), cfg.PretrainMLP, "MLP pre-training ", nil); err != nil {
			return nil, err
		}
		cfg.trace.at("mlp", m)
		fuseTowers(m, &lo, hG, bG, cfg.Alpha)
		cfg.trace.at("fused", m)
	}
	if err := epochs(newNmfTrainer(m, cfg, bothTowers), cfg.Epochs, "", cfg.OnEpoch); err != nil {
		return nil, err
	}
	return m, nil
}

// tracer, in tests, sees the model after each training phase.
type tracer func(phase string, m *NeuMF)

func (t tracer) at(phase string, m *NeuMF) {
	if t != nil {
		t(phase, m)
	}
}

// fuseTowers sets the output layer of m, holding the MLP model, from the
// GMF model's output weights hG and bias bG as the paper does: the weights
// over the GMF tower become α·hG, those over the MLP tower (1−α) times the
// MLP model's, and the bias the same mix of the two biases.
func fuseTowers(m *NeuMF, lo *layout, hG []float32, bG float32, alpha float64) {
	a := float32(alpha)
	for f, v := range hG {
		m.Dense[lo.hG+f] = a * v
	}
	for j := lo.hM; j < lo.bias; j++ {
		m.Dense[j] *= 1 - a
	}
	m.Dense[lo.bias] = a*bG + (1-a)*m.Dense[lo.bias]
}

// epoch runs one pass over the positives, each with Neg sampled negatives,
// in shuffled mini-batches, and returns the mean loss per sample. batch is
// scratch space.
func (t *nmfTrainer) epoch(pos []Interaction, sampler NegativeSampler, rng *rand.Rand, batch []sample) float64 {
	cfg := t.cfg
	per := 1 + cfg.Neg
	rng.Shuffle(len(pos), func(a, b int) { pos[a], pos[b] = pos[b], pos[a] })
	var lossSum float64
	var n int
	for k, x := range pos {
		batch = append(batch, sample{x.User, x.Item, 1})
		for j := 0; j < cfg.Neg; j++ {
			batch = append(batch, sample{x.User, sampler.Negative(rng, x), 0})
		}
		if len(batch)+per > cfg.Batch || k == len(pos)-1 {
			lossSum += t.step(batch)
			n += len(batch)
			batch = batch[:0]
		}
	}
	return lossSum / float64(n)
}

// positives returns the distinct (user, item) pairs of train, in order of
// first appearance.
func positives(train []Interaction) []Interaction {
	var pos []Interaction
	seen := map[[2]int32]bool{}
	for _, x := range train {
		if k := [2]int32{x.User, x.Item}; !seen[k] {
			seen[k] = true
			pos = append(pos, x)
		}
	}
	return pos
}

// nmfTrainer holds the optimiser state and per-worker buffers.
type nmfTrainer struct {
	m      *NeuMF
	cfg    NeuMFConfig
	lo     layout
	t      int // Adam steps taken
	towers towers

	workers []*nmfWorker
	// gradient of the embedding rows, per sample of the batch
	gpg, gqg, gpm, gqm []float32
	// gradient accumulators over whole tables, zeroed after use
	accPG, accQG, accPM, accQM []float32
	touchedU, touchedI         []int32
	markU, markI               []bool
	dense                      []float32 // reduced dense gradient
	optDense                   adam
	optPG, optQG, optPM, optQM adam
}

type nmfWorker struct {
	s     *scratch
	uc    *userCache
	dense []float32
	loss  float64
}

// towers says which parts of NeuMF a trainer fits.
type towers int

const (
	// bothTowers fits the whole model.
	bothTowers towers = iota
	// mlpTower fits the MLP model alone: its embeddings, layers, the output
	// weights over it and the bias; the output weights over the GMF tower
	// must be zero and stay so, and the GMF embeddings are not updated.
	mlpTower
	// gmfHead fits the output layer of the GMF model alone: the output
	// weights over the GMF tower and the bias, a logistic regression on the
	// element-wise products of the frozen GMF embeddings. The MLP tower is
	// neither computed nor updated (as if its output weights were zero).
	gmfHead
)

// newNmfTrainer returns a trainer of the given towers of m with fresh Adam
// state.
func newNmfTrainer(m *NeuMF, cfg NeuMFConfig, tw towers) *nmfTrainer {
	t := &nmfTrainer{m: m, cfg: cfg, lo: newLayout(m.Dim, m.Layers), towers: tw}
	t.init()
	return t
}

func (t *nmfTrainer) init() {
	m, cfg := t.m, t.cfg
	w := cfg.Workers
	if w <= 0 {
		w = runtime.GOMAXPROCS(0)
	}
	w = max(1, min(w, cfg.Batch/8))
	for k := 0; k < w; k++ {
		uc := &userCache{}
		if len(m.Layers) > 1 {
			uc.part, uc.daSum = make([]float32, m.Layers[1]), make([]float32, m.Layers[1])
		}
		t.workers = append(t.workers, &nmfWorker{s: newScratch(m.Dim, m.Layers), uc: uc, dense: make([]float32, t.lo.size)})
	}
	e := m.mlpDim()
	bmax := cfg.Batch + cfg.Neg + 1
	t.gpg, t.gqg = make([]float32, bmax*m.Dim), make([]float32, bmax*m.Dim)
	t.gpm, t.gqm = make([]float32, bmax*e), make([]float32, bmax*e)
	t.accPG, t.accQG = make([]float32, len(m.PG)), make([]float32, len(m.QG))
	t.accPM, t.accQM = make([]float32, len(m.PM)), make([]float32, len(m.QM))
	t.markU, t.markI = make([]bool, m.NUsers), make([]bool, m.NItems)
	t.dense = make([]float32, t.lo.size)
	t.optDense = newAdam(t.lo.size)
	t.optPG, t.optQG = newAdam(len(m.PG)), newAdam(len(m.QG))
	t.optPM, t.optQM = newAdam(len(m.PM)), newAdam(len(m.QM))
}

// run computes the forward and backward pass of batch[lo:hi] on worker w.
func (t *nmfTrainer) run(w *nmfWorker, batch []sample, lo, hi int, inv float32) {
	m := t.m
	d, e := m.Dim, m.mlpDim()
	clear(w.dense)
	w.loss = 0
	if t.towers == gmfHead {
		t.runGMFHead(w, batch, lo, hi, inv)
		return
	}
	uc := w.uc
	if len(m.Layers) < 2 {
		uc = nil
	}
	first := lo // first sample of the current run of one user
	for k := lo; k < hi; k++ {
		sm := batch[k]
		if uc != nil && k > lo && sm.u != batch[k-1].u {
			m.flushUser(&t.lo, int(batch[first].u), uc, w.dense, t.gpm[first*e:(first+1)*e])
			first = k
		}
		z := m.forward(&t.lo, int(sm.u), int(sm.i), w.s, uc)
		l, g := logLoss(z, sm.label, inv)
		w.loss += l
		m.backward(&t.lo, int(sm.u), int(sm.i), g, w.s, uc, w.dense,
			t.gpg[k*d:(k+1)*d], t.gqg[k*d:(k+1)*d], t.gpm[k*e:(k+1)*e], t.gqm[k*e:(k+1)*e])
	}
	if uc != nil && hi > lo {
		m.flushUser(&t.lo, int(batch[first].u), uc, w.dense, t.gpm[first*e:(first+1)*e])
	}
}

// runGMFHead is run for the gmfHead phase: the logit is ⟨hG, p_u ⊙ q_i⟩ + b
// and only the gradients of hG and b are computed.
func (t *nmfTrainer) runGMFHead(w *nmfWorker, batch []sample, lo, hi int, inv float32) {
	m := t.m
	d := m.Dim
	hG := m.Dense[t.lo.hG : t.lo.hG+d]
	dhG := w.dense[t.lo.hG : t.lo.hG+d]
	phi := w.s.phi[:d]
	for k := lo; k < hi; k++ {
		sm := batch[k]
		pg, qg := m.PG[int(sm.u)*d:int(sm.u+1)*d], m.QG[int(sm.i)*d:int(sm.i+1)*d]
		for f := range phi {
			phi[f] = pg[f] * qg[f]
		}
		z := dot(hG, phi) + m.Dense[t.lo.bias]
		l, g := logLoss(z, sm.label, inv)
		w.loss += l
		w.dense[t.lo.bias] += g
		for f := range phi {
			dhG[f] += g * phi[f]
		}
	}
}

// softplus is log(1 + e^x), computed without overflow.
// logLoss is the logistic loss of logit z for label y (0 or 1),
// -y log σ(z) - (1-y) log(1-σ(z)), and its derivative σ(z) - y scaled by inv.
func logLoss(z, y, inv float32) (float64, float32) {
	p := 1 / (1 + math.Exp(-float64(z)))
	loss := softplus(float64(z))
	if y > 0 {
		loss = softplus(-float64(z))
	}
	return loss, float32(p-float64(y)) * inv
}

func softplus(x float64) float64 {
	if x > 30 {
		return x
	}
	return math.Log1p(math.Exp(x))
}

// step trains on one batch and returns its summed loss.
func (t *nmfTrainer) step(batch []sample) float64 {
	m := t.m
	n := len(batch)
	inv := float32(1) / float32(n)
	nw := len(t.workers)
	if nw == 1 {
		t.run(t.workers[0], batch, 0, n, inv)
	} else {
		var wg sync.WaitGroup
		for k, w := range t.workers {
			lo, hi := k*n/nw, (k+1)*n/nw
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.run(w, batch, lo, hi, inv)
			}()
		}
		wg.Wait()
	}
	var loss float64
	copy(t.dense, t.workers[0].dense)
	loss = t.workers[0].loss
	for _, w := range t.workers[1:] {
		for k, v := range w.dense {
			t.dense[k] += v
		}
		loss += w.loss
	}
	// Adam with bias correction folded into the step size.
	t.t++
	const b1, b2 = 0.9, 0.999
	lrT := float32(t.cfg.LR * math.Sqrt(1-math.Pow(b2, float64(t.t))) / (1 - math.Pow(b1, float64(t.t))))
	d, e := m.Dim, m.mlpDim()
	gmf, mlp := t.towers != mlpTower, t.towers != gmfHead
	gmfEmb := t.towers == bothTowers
	if gmf {
		t.optDense.step(m.Dense, t.dense, t.lo.hG, t.lo.hG+d, lrT, 0)
	}
	if mlp {
		t.optDense.step(m.Dense, t.dense, 0, t.lo.hG, lrT, 0)
		t.optDense.step(m.Dense, t.dense, t.lo.hM, t.lo.bias, lrT, 0)
	}
	t.optDense.step(m.Dense, t.dense, t.lo.bias, t.lo.size, lrT, 0)
	if t.towers == gmfHead {
		return loss
	}
	// Embedding rows: sum per row in sample order, then one lazy Adam step
	// per touched row; users and items in parallel (disjoint tables).
	reg, regM := float32(t.cfg.Reg), float32(t.cfg.RegMLP)
	users := func() {
		for k, sm := range batch {
			u := int(sm.u)
			if !t.markU[u] {
				t.markU[u] = true
				t.touchedU = append(t.touchedU, sm.u)
			}
			if gmfEmb {
				addTo(t.accPG[u*d:(u+1)*d], t.gpg[k*d:(k+1)*d])
			}
			if mlp {
				addTo(t.accPM[u*e:(u+1)*e], t.gpm[k*e:(k+1)*e])
			}
		}
		for _, u := range t.touchedU {
			u := int(u)
			if gmfEmb {
				t.optPG.step(m.PG, t.accPG, u*d, (u+1)*d, lrT, reg)
			}
			if mlp {
				t.optPM.step(m.PM, t.accPM, u*e, (u+1)*e, lrT, regM)
			}
			clear(t.accPG[u*d : (u+1)*d])
			clear(t.accPM[u*e : (u+1)*e])
			t.markU[u] = false
		}
	}
	items := func() {
		for k, sm := range batch {
			i := int(sm.i)
			if !t.markI[i] {
				t.markI[i] = true
				t.touchedI = append(t.touchedI, sm.i)
			}
			if gmfEmb {
				addTo(t.accQG[i*d:(i+1)*d], t.gqg[k*d:(k+1)*d])
			}
			if mlp {
				addTo(t.accQM[i*e:(i+1)*e], t.gqm[k*e:(k+1)*e])
			}
		}
		for _, i := range t.touchedI {
			i := int(i)
			if gmfEmb {
				t.optQG.step(m.QG, t.accQG, i*d, (i+1)*d, lrT, reg)
			}
			if mlp {
				t.optQM.step(m.QM, t.accQM, i*e, (i+1)*e, lrT, regM)
			}
			clear(t.accQG[i*d : (i+1)*d])
			clear(t.accQM[i*e : (i+1)*e])
			t.markI[i] = false
		}
	}
	if nw == 1 {
		users()
		items()
	} else {
		done := make(chan struct{})
		go func() { items(); close(done) }()
		users()
		<-done
	}
	t.touchedU, t.touchedI = t.touchedU[:0], t.touchedI[:0]
	return loss
}

func addTo(dst, src []float32) {
	src = src[:len(dst)]
	for k, v := range src {
		dst[k] += v
	}
}
