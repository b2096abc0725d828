package rerank_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/live"
	"github.com/liverecall/liverecall/recall"
	"github.com/liverecall/liverecall/rerank"
)

// benchPage is a request of 100 candidates of varied features, by a user
// with some history and follows.
func benchPage() ([]recall.Candidate, *rerank.Context) { return benchPageSeed(21) }

func benchPageSeed(seed uint64) ([]recall.Candidate, *rerank.Context) {
	rng := rand.New(rand.NewPCG(seed, 21))
	chans := recall.Channels
	cands := make([]recall.Candidate, 100)
	for i := range cands {
		c := cand(i+1, string(rune('a'+i%12)), float32(rng.NormFloat64()), rng.IntN(5000), chans[rng.IntN(len(chans))])
		c.HasMF = rng.IntN(4) > 0
		c.NCFScore, c.HasNCF = float32(rng.NormFloat64()), rng.IntN(3) > 0
		c.Features.Viewers5mAgo = rng.IntN(5000)
		c.Features.Gifts5m, c.Features.GiftValue5m, c.Features.UniqueGifters30m = rng.IntN(20), rng.Float64()*100, rng.IntN(30)
		c.Features.Age = time.Duration(rng.IntN(300)) * time.Minute
		cands[i] = c
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	ctx := &rerank.Context{User: 7, Now: now}
	for i := 0; i < 40; i++ {
		ctx.History = append(ctx.History, live.Watch{StreamerID: lr.StreamerID(rng.IntN(120) + 1), JoinedAt: now.Add(-time.Duration(rng.IntN(72)) * time.Hour)})
	}
	for i := 0; i < 10; i++ {
		ctx.Follows = append(ctx.Follows, lr.StreamerID(rng.IntN(120)+1))
	}
	return cands, ctx
}

// benchForest is a model of 4 heads × trees trees × 31 leaves (200: the
// size the issue names), trained (no early stopping) on the bench page's own feature
// vectors (and those of 59 pages like it) with labels that depend on them
// and noise, so the splits fall where the served features are.
func benchForest(b *testing.B, ntrees int) *rerank.Forest {
	rng := rand.New(rand.NewPCG(22, 22))
	var samples []rerank.Sample
	for page := uint64(0); page < 60; page++ {
		cands, ctx := benchPageSeed(21 + page)
		for _, c := range cands {
			x := rerank.Features(c, ctx)
			z := x[0] + x[2] - 0.3*x[4] + x[10] + rng.NormFloat64()
			samples = append(samples, rerank.Sample{X: x, Label: z > 0.5, WatchSeconds: 300 * max(z, 0),
				Gift: z+rng.NormFloat64() > 1.5, Follow: z+rng.NormFloat64() > 1.2})
		}
	}
	m, err := rerank.TrainTrees(samples, nil, rerank.GBDTConfig{Seed: 1, Trees: ntrees, MaxLeaves: 31, MinChildWeight: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	trees, leaves := 0, 0
	for _, h := range m.Heads {
		trees += len(h.Trees)
		for _, t := range h.Trees {
			for _, f := range t.Feature {
				if f < 0 {
					leaves++
				}
			}
		}
	}
	b.Logf("forest: %d heads, %d trees, %.1f leaves per tree", len(m.Heads), trees, float64(leaves)/float64(trees))
	f, err := rerank.Compile(m)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// benchRank times Rank of 100 candidates (k 20) call by call and reports
// the median and the p99 (wall clock), and the thread's CPU time per call
// (which a machine busy with other work inflates less).
func benchRank(b *testing.B, m rerank.Model) {
	cands, ctx := benchPage()
	rerank.Release(rerank.Rank(cands, m, ctx, 20))
	lat := make([]time.Duration, 0, b.N)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		items := rerank.Rank(cands, m, ctx, 20)
		lat = append(lat, time.Since(t0))
		rerank.Release(items)
	}
	b.StopTimer()
	b.ReportMetric(float64((threadCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

func BenchmarkRank100Logistic(b *testing.B) { benchRank(b, rerank.DefaultWeights()) }

// BenchmarkRank100GBDT: 4 heads of 50 and of 200 trees.
func BenchmarkRank100GBDT(b *testing.B) {
	for _, n := range []int{50, 200} {
		b.Run(fmt.Sprintf("trees=4x%d", n), func(b *testing.B) { benchRank(b, benchForest(b, n)) })
	}
}

// threadCPU is the CPU time the calling OS thread has used.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
