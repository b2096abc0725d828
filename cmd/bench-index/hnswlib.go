package main

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/liverecall/liverecall/index"
	"github.com/liverecall/liverecall/internal/synth"
)

// The reference C++ HNSW, hnswlib (Debian's python3-hnswlib, `make tools`),
// is driven through hnswlib_ref.py: the vectors and the exact answers are
// written to a temporary file, the script builds hnswlib on them (space
// "ip", M 16, efConstruction 64, every core) and answers one ef per line
// (all queries, one at a time, one thread). Without python3 and hnswlib the
// rows say "not installed".

//go:embed hnswlib_ref.py
var hnswlibScript []byte

// refEfs is the ef sweep of the recall-vs-µs curve.
var refEfs = []int{16, 24, 32, 40, 48, 64, 80, 96, 128, 192, 256}

type hnswlibRef struct {
	dir   string
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Scanner
	build float64
	rss   int64 // resident-set growth over init_index and add_items, bytes
}

// python returns an interpreter that imports hnswlib and numpy, or "".
// Debian's /usr/bin/python3 comes first: a python3 earlier on PATH (pyenv)
// does not see Debian's packages.
func python() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import hnswlib, numpy").Run() == nil {
			return p
		}
	}
	return ""
}

// startHnswlib writes s and want to a file and starts the script on it; it
// returns once hnswlib is built. nil, nil when hnswlib is not installed.
func startHnswlib(s *synth.Set, nq int, want [][]index.Hit) (*hnswlibRef, error) {
	py := python()
	if py == "" {
		return nil, nil
	}
	dir, err := os.MkdirTemp("", "bench-index-hnswlib")
	if err != nil {
		return nil, err
	}
	r := &hnswlibRef{dir: dir}
	script := filepath.Join(dir, "hnswlib_ref.py")
	if err := os.WriteFile(script, hnswlibScript, 0o644); err != nil {
		r.close()
		return nil, err
	}
	data := filepath.Join(dir, "vectors.bin")
	f, err := os.Create(data)
	if err != nil {
		r.close()
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	binary.Write(w, binary.LittleEndian, []int32{int32(s.N), int32(nq), dim, k})
	binary.Write(w, binary.LittleEndian, s.Base)
	binary.Write(w, binary.LittleEndian, s.Queries[:nq*dim])
	ids := make([]int32, 0, nq*k)
	for _, hs := range want[:nq] {
		for j := range k {
			id := int32(-1)
			if j < len(hs) {
				id = int32(hs[j].Ord)
			}
			ids = append(ids, id)
		}
	}
	binary.Write(w, binary.LittleEndian, ids)
	if err := w.Flush(); err != nil {
		f.Close()
		r.close()
		return nil, err
	}
	f.Close()
	r.cmd = exec.Command(py, script, data)
	r.cmd.Stderr = os.Stderr
	if r.in, err = r.cmd.StdinPipe(); err != nil {
		r.close()
		return nil, err
	}
	stdout, err := r.cmd.StdoutPipe()
	if err != nil {
		r.close()
		return nil, err
	}
	r.out = bufio.NewScanner(stdout)
	if err := r.cmd.Start(); err != nil {
		r.close()
		return nil, err
	}
	if !r.out.Scan() {
		r.close()
		return nil, fmt.Errorf("hnswlib_ref.py: no ready line")
	}
	if _, err := fmt.Sscanf(r.out.Text(), "ready %f %d", &r.build, &r.rss); err != nil {
		r.close()
		return nil, fmt.Errorf("hnswlib_ref.py: %q: %v", r.out.Text(), err)
	}
	return r, nil
}

// measure searches every query at ef: recall@k, wall and CPU µs per query.
func (r *hnswlibRef) measure(ef int) (rec, us, cpu float64, err error) {
	if _, err := fmt.Fprintf(r.in, "%d\n", ef); err != nil {
		return 0, 0, 0, err
	}
	if !r.out.Scan() {
		return 0, 0, 0, fmt.Errorf("hnswlib_ref.py: no answer for ef %d", ef)
	}
	var e int
	if _, err := fmt.Sscanf(r.out.Text(), "%d %f %f %f", &e, &rec, &us, &cpu); err != nil || e != ef {
		return 0, 0, 0, fmt.Errorf("hnswlib_ref.py: %q for ef %d", r.out.Text(), ef)
	}
	return rec, us, cpu, nil
}

// measureCPU is measure (main.go) on a locked OS thread, adding the
// thread's CPU µs per query.
func measureCPU(nq int, want [][]index.Hit, fn func(i int) []uint32) (rec, us, cpu float64) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var c0, c1 unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &c0)
	rec, us = measure(nq, want, fn)
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &c1)
	return rec, us, float64(c1.Nano()-c0.Nano()) / 1e3 / float64(nq)
}

func (r *hnswlibRef) close() {
	if r.in != nil {
		r.in.Close()
	}
	if r.cmd != nil && r.cmd.Process != nil {
		r.cmd.Wait()
	}
	os.RemoveAll(r.dir)
}

// hnswlibRows prints hnswlib's rows beside ours in a run (one round) and
// returns its build seconds and bytes per vector (0, 0 without it).
func hnswlibRows(s *synth.Set, nq int, want [][]index.Hit) (build, bytesPerVector float64) {
	r, err := startHnswlib(s, nq, want)
	switch {
	case err != nil:
		fmt.Printf("%-28s %8s   error: %v\n", "hnswlib (C++ reference)", "", err)
		return 0, 0
	case r == nil:
		fmt.Printf("%-28s %8s   not installed (python3-hnswlib, make tools)\n", "hnswlib (C++ reference)", "")
		return 0, 0
	}
	defer r.close()
	fmt.Printf("%-28s %8s %10s %10s   build %.1fs (M 16, efConstruction 64, space ip), %.0f B/vector (RSS growth of its process over init_index+add_items)\n",
		"hnswlib (C++ reference)", "", "", "", r.build, float64(r.rss)/float64(s.N))
	for _, ef := range []int{16, 32, 64, 96, 128, 256} {
		rec, us, _, err := r.measure(ef)
		if err != nil {
			fmt.Printf("%-28s %8d   error: %v\n", "hnswlib (C++ reference)", ef, err)
			break
		}
		fmt.Printf("%-28s %8d %10.4f %10.1f\n", "hnswlib (C++ reference)", ef, rec, us)
	}
	return r.build, float64(r.rss) / float64(s.N)
}

// curve is `bench-index -curve N`: the recall-vs-µs curve of our graph and
// hnswlib's on the same n low-rank vectors, ef 16…256, in rounds that
// alternate the two (each round measures every ef of both, the order of
// the two flipping each round); medians per ef. The machine may be
// shared, so the ratios are the figures to read.
func curve(n, nq, rounds int) {
	s, err := synth.Generate("lowrank", n, nq, dim, 2026)
	if err != nil {
		panic(err)
	}
	fmt.Printf("recall-vs-µs curve: lowrank, n %d, dim %d, k %d, %d queries, %d rounds, GOMAXPROCS %d\n", n, dim, k, nq, rounds, runtime.GOMAXPROCS(0))
	want := truth(s, nq)
	t0 := time.Now()
	g, err := index.Build(context.Background(), s.Base, dim, nil, index.Params{Seed: 1})
	if err != nil {
		panic(err)
	}
	fmt.Printf("ours: build %.1fs (M 16, M0 32, efConstruction 64)\n", time.Since(t0).Seconds())
	ref, err := startHnswlib(s, nq, want)
	if err != nil {
		panic(err)
	}
	if ref == nil {
		fmt.Println("hnswlib: not installed (python3-hnswlib, make tools)")
	} else {
		defer ref.close()
		fmt.Printf("hnswlib: build %.1fs (M 16, efConstruction 64, space ip)\n", ref.build)
	}
	type obs struct{ rec, us, cpu []float64 }
	ours := make([]obs, len(refEfs))
	theirs := make([]obs, len(refEfs))
	for round := range rounds {
		for i, ef := range refEfs {
			runOurs := func() {
				rec, us, cpu := measureCPU(nq, want, func(q int) []uint32 { return ords(g.Search(s.Query(q), k, ef, nil)) })
				ours[i].rec, ours[i].us, ours[i].cpu = append(ours[i].rec, rec), append(ours[i].us, us), append(ours[i].cpu, cpu)
			}
			runRef := func() {
				if ref == nil {
					return
				}
				rec, us, cpu, err := ref.measure(ef)
				if err != nil {
					panic(err)
				}
				theirs[i].rec, theirs[i].us, theirs[i].cpu = append(theirs[i].rec, rec), append(theirs[i].us, us), append(theirs[i].cpu, cpu)
			}
			if round%2 == 0 {
				runOurs()
				runRef()
			} else {
				runRef()
				runOurs()
			}
		}
	}
	runtime.KeepAlive(g)
	fmt.Println("\nµs per query: thread CPU time (wall time in brackets), medians over rounds; ratio = ours/hnswlib on CPU time")
	fmt.Printf("%6s %12s %18s %12s %18s %8s\n", "ef", "ours recall", "ours µs", "hnswlib rec", "hnswlib µs", "ratio")
	firstOurs, firstRef := -1, -1
	for i, ef := range refEfs {
		or, oc, ou := median(ours[i].rec), median(ours[i].cpu), median(ours[i].us)
		if firstOurs < 0 && or >= 0.95 {
			firstOurs = i
		}
		if ref == nil {
			fmt.Printf("%6d %12.4f %8.1f (%7.1f) %12s %18s %8s\n", ef, or, oc, ou, "-", "-", "-")
			continue
		}
		hr, hc, hu := median(theirs[i].rec), median(theirs[i].cpu), median(theirs[i].us)
		if firstRef < 0 && hr >= 0.95 {
			firstRef = i
		}
		fmt.Printf("%6d %12.4f %8.1f (%7.1f) %12.4f %8.1f (%7.1f) %8.2f\n", ef, or, oc, ou, hr, hc, hu, oc/hc)
	}
	if firstOurs >= 0 && firstRef >= 0 {
		oc, hc := median(ours[firstOurs].cpu), median(theirs[firstRef].cpu)
		fmt.Printf("\nrecall@10 ≥ 0.95: ours at ef %d in %.1f µs CPU, hnswlib at ef %d in %.1f µs CPU: ours/hnswlib %.2f\n",
			refEfs[firstOurs], oc, refEfs[firstRef], hc, oc/hc)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// builds is `bench-index -build N`: our graph's build (index.Build, every
// core) and hnswlib's (add_items, every core) on the same N vectors of
// each data set, one after the other, with their memory per vector (ours:
// heap and mappings; hnswlib: its process's RSS growth).
func builds(n int, kinds []string) {
	fmt.Printf("build: n %d, dim %d, GOMAXPROCS %d (ours M 16, M0 32, efConstruction 64; hnswlib M 16, efConstruction 64, space ip, %d threads)\n", n, dim, runtime.GOMAXPROCS(0), runtime.NumCPU())
	for _, kind := range kinds {
		s, err := synth.Generate(kind, n, 1, dim, 2026)
		if err != nil {
			panic(err)
		}
		before := heap()
		t0 := time.Now()
		g, err := index.Build(context.Background(), s.Base, dim, nil, index.Params{Seed: 1})
		if err != nil {
			panic(err)
		}
		bt := time.Since(t0).Seconds()
		bpv := float64(heap()-before) / float64(n)
		runtime.KeepAlive(g)
		g = nil
		fmt.Printf("%-8s ours:    build %6.1fs, %4.0f B/vector (heap and mappings)\n", kind, bt, bpv)
		ref, err := startHnswlib(s, 0, nil)
		switch {
		case err != nil:
			fmt.Printf("%-8s hnswlib: error: %v\n", kind, err)
		case ref == nil:
			fmt.Printf("%-8s hnswlib: not installed (python3-hnswlib, make tools)\n", kind)
		default:
			fmt.Printf("%-8s hnswlib: build %6.1fs, %4.0f B/vector (RSS growth over init_index+add_items); ours/hnswlib %.2f\n", kind, ref.build, float64(ref.rss)/float64(n), bt/ref.build)
			ref.close()
		}
	}
}
