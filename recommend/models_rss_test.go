package recommend_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
	"github.com/liverecall/liverecall/internal/offheap"
	"github.com/liverecall/liverecall/postgres"
	"github.com/liverecall/liverecall/postgres/pgtest"
	"github.com/liverecall/liverecall/recommend"
)

// Loading a scorer from PostgreSQL decodes it as it streams in: at no
// moment does the replica hold the stored bytes whole beside the decoded
// tables (before, a 1M-streamer load mapped its 374 MiB of stored bytes and
// then its tables: a transient of the blob's size, the replica's peak).
func TestLoadNCFStreamsTheStoredScorer(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Open(t)
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelNCF, Version: "stream", Dim: 64})
	if err != nil {
		t.Fatal(err)
	}
	const n = 50_000 // ~19 MB stored
	if err := db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, rssScorer(t, n)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	m := recommend.NewModels(recommend.ModelsConfig{Store: db, Ordinals: lr.NewOrdinals(),
		Serving: func(k lr.ModelKind) string {
			if k == lr.ModelNCF {
				return "stream"
			}
			return ""
		}})
	before, _ := offheap.Mapped()
	offheap.ResetPeak()
	m.LoadNCF(ctx)
	if m.NCF() == nil {
		t.Fatal("scorer not loaded")
	}
	after, _ := offheap.Mapped()
	tables := int64(n * (64 + 32 + 32) * 4) // QG, QM and the precomputed first layer
	if after-before < tables {
		t.Fatalf("the loaded scorer maps %d bytes, want its tables' %d", after-before, tables)
	}
	if peak := offheap.Peak() - before; peak > after-before+(1<<20) {
		t.Fatalf("the load mapped %d bytes at its peak, %d more than the loaded scorer keeps (the stored bytes held whole?)", peak, peak-(after-before))
	}
	runtime.KeepAlive(m)
}

// TestNCFLoadPeakRSS measures what loading the active NCF version's NeuMF
// scorer from PostgreSQL costs a replica in resident memory: the stored
// scorer of LIVERECALL_SCORER_RSS streamers (dim 64, layers 64-32-16, as
// bench-scale's) is loaded by LoadNCF in a fresh process (this test binary
// run again), which reports its resident memory before, its peak (VmHWM)
// and after, and the mapped bytes (internal/offheap). A measurement, not a
// check: skipped unless the variable is set, e.g.
//
//	LIVERECALL_SCORER_RSS=1000000 go test -count=1 -run TestNCFLoadPeakRSS -v ./recommend/
func TestNCFLoadPeakRSS(t *testing.T) {
	if u := os.Getenv("LIVERECALL_SCORER_RSS_CHILD"); u != "" {
		rssChild(t, u)
		return
	}
	n, _ := strconv.Atoi(os.Getenv("LIVERECALL_SCORER_RSS"))
	if n <= 0 {
		t.Skip("a measurement: set LIVERECALL_SCORER_RSS to a number of streamers")
	}
	ctx := context.Background()
	db, url := pgtest.OpenURL(t)
	mv, err := db.CreateModelVersion(ctx, lr.ModelVersion{Kind: lr.ModelNCF, Version: "rss", Dim: 64})
	if err != nil {
		t.Fatal(err)
	}
	blob := rssScorer(t, n)
	if err := db.PutModelScorer(ctx, mv.ID, embed.ScorerFormat, blob); err != nil {
		t.Fatal(err)
	}
	size := len(blob)
	blob = nil
	if _, err := db.ActivateModel(ctx, mv.ID); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNCFLoadPeakRSS$", "-test.v")
	cmd.Env = append(os.Environ(), "LIVERECALL_SCORER_RSS_CHILD="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "rss:") {
			t.Logf("%d streamers, stored scorer %.0f MiB; %s", n, float64(size)/(1<<20), strings.TrimSpace(l))
		}
	}
}

// rssScorer encodes a neumf-v2 scorer of n streamers with finite, varied
// weights.
func rssScorer(t *testing.T, n int) []byte {
	m := &embed.NeuMF{NItems: n, Dim: 64, Layers: []int{64, 32, 16}, QG: make([]float32, n*64), QM: make([]float32, n*32)}
	m.Dense = make([]float32, 64*32+32+32*16+16+64+16+1) // the layout of 64-32-16 at dim 64
	for i := range m.QG {
		m.QG[i] = float32(i%13) * 0.01
	}
	for i := range m.QM {
		m.QM[i] = float32(i%11) * 0.01
	}
	for i := range m.Dense {
		m.Dense[i] = float32(i%5) * 0.02
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	b, err := embed.NewIDScorer(m, nil, ids).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rssChild loads the scorer and prints its memory figures.
func rssChild(t *testing.T, url string) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mv, err := db.ActiveModel(ctx, lr.ModelNCF)
	if err != nil {
		t.Fatal(err)
	}
	m := recommend.NewModels(recommend.ModelsConfig{Store: db, Ordinals: lr.NewOrdinals(),
		Serving: func(k lr.ModelKind) string {
			if k == lr.ModelNCF {
				return mv.Version
			}
			return ""
		}})
	runtime.GC()
	before := procStatus(t, "VmRSS")
	start := time.Now()
	m.LoadNCF(ctx)
	took := time.Since(start)
	if m.NCF() == nil {
		t.Fatal("scorer not loaded")
	}
	peak, after := procStatus(t, "VmHWM"), procStatus(t, "VmRSS")
	mapped, _ := offheap.Mapped()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	fmt.Printf("rss: before %d MiB, peak %d MiB (+%d), after %d MiB; mapped %d MiB; heap objects %d MiB, allocated %d MiB in all; load %s\n",
		before>>20, peak>>20, (peak-before)>>20, after>>20, mapped>>20, s[0].Value.Uint64()>>20, s[1].Value.Uint64()>>20, took.Round(time.Millisecond))
	runtime.KeepAlive(m)
}

// procStatus returns a field of /proc/self/status in bytes.
func procStatus(t *testing.T, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
