package index

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/synth"
)

// liveOf returns the version after prev (nil: the first) whose live
// ordinals are the 3i of the i with in[i].
func liveOf(prev *testLive, in []bool) *testLive {
	var chs []liveChange
	for i, on := range in {
		if on != (prev != nil && prev.Contains(uint32(3*i))) {
			chs = append(chs, liveChange{uint32(3 * i), on})
		}
	}
	return prev.next(chs...)
}

func share(n int, frac float64, seed uint64) []bool {
	return randomAllowed(n, frac, seed).bits
}

// The self-check records a recall table per accepted share and ef that is
// sane (in [0, 1], rising with ef up to sampling noise, high at the widest
// beam on low-rank data), times for every cell and scan, and a plan that
// meets the target with the smallest ef that reached it.
func TestSelfCheckRecordsARecallTable(t *testing.T) {
	const n, dim = 3000, 16
	defer func(v int) { sweepFilteredFrom = v }(sweepFilteredFrom)
	sweepFilteredFrom = 1000 // measure the filtered graph of this small index
	x, s := newTestIndex(t, n, dim, 0)
	users := make([][]float32, 50)
	for i := range users {
		users[i] = s.Query(i)
	}
	rec := SelfCheck(x, users, 0, 10)
	prof := x.profile
	if prof == nil || prof.Queries != 50 || !slices.Equal(prof.Efs, []int{16, 32, 64, 128, 256}) || !slices.Equal(prof.Shares, sweepShares) {
		t.Fatalf("profile %+v", prof)
	}
	if err := prof.check(); err != nil {
		t.Fatal(err)
	}
	for si, row := range prof.Recall {
		for e := range row {
			if e > 0 && row[e] < row[e-1]-0.03 {
				t.Errorf("share %v: recall falls from %.3f at ef %d to %.3f at ef %d", prof.Shares[si], row[e-1], prof.Efs[e-1], row[e], prof.Efs[e])
			}
			if prof.GraphUs[si][e] <= 0 {
				t.Errorf("share %v ef %d: %v µs", prof.Shares[si], prof.Efs[e], prof.GraphUs[si][e])
			}
		}
		if row[len(row)-1] < 0.95 || (len(row) < len(prof.Efs) && row[len(row)-1] != 1) {
			t.Errorf("share %v: recall %v: not 0.95 at the widest ef measured, or stopped before 1", prof.Shares[si], row)
		}
	}
	if prof.FullScanUs <= 0 || !slices.Equal(prof.LiveRows, []int{n}) || prof.LiveExactUs[0] <= 0 {
		t.Fatalf("scan times: full %v, live %v %v", prof.FullScanUs, prof.LiveRows, prof.LiveExactUs)
	}
	if hasVNNI && (len(prof.LiveInt8Us) != 1 || prof.Int8Recall < 0.95) {
		t.Fatalf("8-bit scan: %v µs, recall %v", prof.LiveInt8Us, prof.Int8Recall)
	}
	st := x.Planner()
	if st.Mode != "measured" || st.RecallTarget != DefaultRecallTarget || len(st.Rows) != len(sweepShares) {
		t.Fatalf("planner %+v", st)
	}
	for si, r := range st.Rows {
		e := slices.Index(prof.Efs, r.Ef)
		if e < 0 || e >= len(prof.Recall[si]) || prof.Recall[si][e] < DefaultRecallTarget || (e > 0 && prof.Recall[si][e-1] >= DefaultRecallTarget) {
			t.Fatalf("row %+v: not the smallest ef reaching %.2f in %v", r, DefaultRecallTarget, prof.Recall[si])
		}
	}
	if rec != st.Rows[0].Recall || rec < DefaultRecallTarget {
		t.Fatalf("self-check recall %v, row %+v", rec, st.Rows[0])
	}
}

// fakeProfile is a measured profile with made-up figures: the planner's
// choices are tested against it, not against timings.
func fakeProfile() *Profile {
	return &Profile{
		Queries: 100,
		Efs:     []int{16, 32, 64, 128, 256},
		Shares:  []float64{1, 0.5, 0.3, 0.2, 0.1},
		Recall: [][]float64{
			{0.80, 0.91, 0.96, 0.99, 1},
			{0.70, 0.85, 0.93, 0.97, 0.99},
			{0.60, 0.80, 0.90, 0.96, 0.98},
			{0.50, 0.70, 0.85, 0.92, 0.94}, // never 0.95
			{0.40, 0.60, 0.80, 0.90, 0.97},
		},
		GraphUs: [][]float64{
			{10, 15, 25, 45, 80},
			{20, 30, 50, 90, 160},
			{30, 45, 75, 135, 240},
			{40, 60, 100, 180, 320},
			{50, 75, 125, 225, 400},
		},
		FullScanUs:  1000,
		LiveRows:    []int{1000, 10000},
		LiveExactUs: []float64{5, 100}, // 0.01 µs per row beyond 1000 rows
		LiveInt8Us:  []float64{4, 50},
	}
}

// With a target the graph meets, searches take the graph at the smallest
// ef that met it (for their share), and their answer is the graph's at
// that ef; a share where no ef meets it is scanned exactly.
func TestPlannerUsesTheChosenEf(t *testing.T) {
	const n, dim, k = 4000, 16, 10
	x, s := newTestIndex(t, n, dim, 0)
	x.target = 0.95
	x.setProfile(fakeProfile())
	x.planner.int8 = false
	for _, tc := range []struct {
		frac float64
		live bool
		want Strategy
		ef   int
	}{
		{1, false, StrategyHNSW, 64},    // no filter: 0.96 at ef 64; 1.2 × 25 µs < 1000 µs
		{0.6, false, StrategyHNSW, 128}, // row 0.5: 0.97 at ef 128; 1.2 × 90 µs < a scan of every vector
		{0.6, true, StrategyExact, 0},   // the live matrix: 2400 rows, 19 µs < 1.2 × 90 µs
		{0.35, true, StrategyExact, 0},  // row 0.3: 1400 rows, 9 µs < 1.2 × 135 µs
		{0.25, false, StrategyExact, 0}, // row 0.2: 0.95 is never reached
		{0.05, false, StrategyExact, 0}, // under 10%: always scanned
	} {
		var allowed Allowed
		if tc.frac < 1 {
			ls := liveOf(nil, share(n, tc.frac, 5))
			x.SetLive(ls)
			allowed = ls
			if !tc.live {
				allowed = struct{ Allowed }{ls} // not taken for the live set
			}
		}
		st, ef := x.PlanEf(allowed)
		if st != tc.want || ef != tc.ef {
			t.Fatalf("%.0f%% allowed (live %v): %s at ef %d, want %s at ef %d", tc.frac*100, tc.live, st, ef, tc.want, tc.ef)
		}
		for i := range 5 {
			got, gst, err := x.Search(context.Background(), s.Query(i), k, 0, allowed)
			if gst == StrategyLiveInt8 && tc.want == StrategyExact && tc.live {
				// The live matrix's 8-bit scan with exact rescoring.
				if r := recallAt(got, brute(s, s.Query(i), k, allowed)); r < 0.9 {
					t.Fatalf("query %d: 8-bit scan recall %v", i, r)
				}
				continue
			}
			if err != nil || gst != tc.want {
				t.Fatalf("search: %s, %v", gst, err)
			}
			if tc.want == StrategyHNSW && !slices.Equal(got, x.graph.Search(s.Query(i), k, tc.ef, allowed)) {
				t.Fatalf("query %d: the answer is not the graph's at ef %d", i, tc.ef)
			}
			if tc.want == StrategyExact && !slices.Equal(got, brute(s, s.Query(i), k, allowed)) {
				t.Fatalf("query %d: the scan is not exact", i)
			}
		}
	}
}

// The choice between the graph and the scan follows the measured costs:
// with the same recall table, a live set is scanned up to the count where
// the scan's estimated time reaches graphMargin times the graph's, and
// searched in the graph above; a filter that is not the live set costs a
// scan of every vector.
func TestPlannerFollowsMeasuredCosts(t *testing.T) {
	p := newPlanner(fakeProfile(), 0.9)
	p.int8 = false
	// Row 0.3: recall 0.9 at ef 64, 75 µs: the scan costs 5 + 95·(c-1000)/9000
	// µs (1000 < c ≤ 10000), so break-even at 1.2·75 = 90 µs: c ≈ 9053.
	const n = 30000
	for _, tc := range []struct {
		card int
		live bool
		want Strategy
		ef   int
	}{
		{9000, true, StrategyExact, 0},
		{9050, true, StrategyExact, 0},
		{9060, true, StrategyHNSW, 64},
		{9000, false, StrategyHNSW, 64}, // a scan of every vector: 1000 µs
		{2999, true, StrategyExact, 0},  // under 10%
		{-1, false, StrategyHNSW, 32},   // no filter: 0.91 at ef 32
	} {
		st, ef := p.choose(tc.card, n, tc.live)
		if st != tc.want || ef != tc.ef {
			t.Errorf("%d allowed (live %v): %s at ef %d, want %s at ef %d", tc.card, tc.live, st, ef, tc.want, tc.ef)
		}
	}
	// The 8-bit scan's times serve from qscanMin rows when it is used.
	p.int8 = true
	if got := p.liveScanUs(10000); got != 50 {
		t.Fatalf("8-bit scan of 10000 rows: %v µs, want 50", got)
	}
	if got := p.liveScanUs(20000); got != 100 {
		t.Fatalf("8-bit scan of 20000 rows: %v µs, want 100 (the largest size's rate)", got)
	}
	// A scan cheaper than the graph without any filter (a small index).
	prof := fakeProfile()
	prof.FullScanUs = 15 // ≤ 1.2 × 15 µs at ef 32
	if st, _ := newPlanner(prof, 0.9).choose(-1, 3000, false); st != StrategyExact {
		t.Fatalf("unfiltered with a 15 µs scan: %s", st)
	}
}

// On hard data (iid uniform 64-d, a sparse graph) no swept ef reaches a
// recall target of 0.999: the planner scans exactly — every vector
// without a filter, the live matrix with the live set — and the answers
// are exact (recall 1.0), where the graph at the default ef is not.
func TestUnreachableTargetScansExactly(t *testing.T) {
	const n, dim, k = 5000, 64, 10
	defer func(v int) { sweepFilteredFrom = v }(sweepFilteredFrom)
	sweepFilteredFrom = 1000
	s, err := synth.Generate("uniform", n, 60, dim, 9)
	if err != nil {
		t.Fatal(err)
	}
	ids, ords := make([]int64, n), make([]uint32, n)
	for i := range n {
		ids[i], ords[i] = int64(1000+i), uint32(3*i)
	}
	x, err := New(context.Background(), lr.ModelVersion{ID: 2, Kind: lr.ModelMF, Version: "iid", Dim: dim}, ids, ords, s.Base,
		Params{Seed: 1, M: 4, EfConstruction: 16, RecallTarget: 0.999}, 0)
	if err != nil {
		t.Fatal(err)
	}
	users := make([][]float32, 40)
	for i := range users {
		users[i] = s.Query(i)
	}
	rec := SelfCheck(x, users, 0, k)
	st := x.Planner()
	// The self-check reports the recall searches are served with: 1.
	if st.Rows[0].Ef != 0 || rec != 1 || len(x.profile.Recall[0]) != len(x.profile.Efs) || st.Rows[0].Recall != x.profile.Recall[0][len(x.profile.Efs)-1] || st.Rows[0].Recall >= 0.999 {
		t.Fatalf("row %+v, self-check recall %v: want the target unreached at every ef (recall %v)", st.Rows[0], rec, x.profile.Recall[0])
	}
	if x.profile.Recall[0][0] > 0.9 {
		t.Fatalf("recall %.3f at ef 16: the data is not hard", x.profile.Recall[0][0])
	}
	ls := liveOf(nil, share(n, 0.5, 3))
	x.SetLive(ls)
	graphSum := 0.0
	for i := 40; i < 60; i++ {
		q := s.Query(i)
		for _, allowed := range []Allowed{nil, ls} {
			got, gst, err := x.Search(context.Background(), q, k, 0, allowed)
			if err != nil || gst == StrategyHNSW {
				t.Fatalf("search: %s, %v", gst, err)
			}
			want := brute(s, q, k, allowed)
			if r := recallAt(got, want); r != 1 {
				t.Fatalf("query %d (%s): recall %v", i, gst, r)
			}
		}
		graphSum += recallAt(x.SearchWith(StrategyHNSW, q, k, 0, nil), brute(s, q, k, nil))
	}
	if graphSum/20 >= 0.999 {
		t.Fatalf("the graph at the default ef has recall %v: the test shows nothing", graphSum/20)
	}
}

// The profile travels in the snapshot (format 3); a format-2 snapshot
// (no profile) still loads and plans by the threshold.
func TestSnapshotKeepsTheProfile(t *testing.T) {
	x, s := newTestIndex(t, 1500, 16, 100)
	x.target = 0.95
	x.setProfile(fakeProfile())
	path := filepath.Join(t.TempDir(), "mf.lrix")
	if err := WriteSnapshot(path, x); err != nil {
		t.Fatal(err)
	}
	y, err := ReadSnapshot(path, x.Model, lr.NewOrdinals(), Params{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(y.Planner(), x.Planner()) {
		t.Fatalf("planner after load %+v\nbefore %+v", y.Planner(), x.Planner())
	}
	// The same file in format 2: no profile section.
	b, _ := os.ReadFile(path)
	at := 4 + 4 + 2 + len("mf") + 2 + len("t1") + 8 + 6*4 + 2*8 + 8 + 8
	pn := int(binary.LittleEndian.Uint32(b[at:]))
	old := slices.Concat(b[:at], b[at+4+pn:len(b)-4])
	binary.LittleEndian.PutUint32(old[4:], 2)
	old = binary.LittleEndian.AppendUint32(old, crc32.Checksum(old, castagnoli))
	p2 := filepath.Join(t.TempDir(), "old.lrix")
	if err := os.WriteFile(p2, old, 0o644); err != nil {
		t.Fatal(err)
	}
	z, err := ReadSnapshot(p2, x.Model, lr.NewOrdinals(), Params{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if st := z.Planner(); st.Mode != "threshold" || st.Threshold != 100 || st.Profile != nil {
		t.Fatalf("format 2: planner %+v", st)
	}
	if _, _, err := z.Search(context.Background(), s.Query(0), 10, 0, nil); err != nil {
		t.Fatal(err)
	}
	// A damaged profile (checksum made good again) is refused.
	bad := slices.Clone(b[:len(b)-4])
	copy(bad[at+4:], `{"queries":1,"efs":[16],"shares":[0.5]`)
	bad = binary.LittleEndian.AppendUint32(bad, crc32.Checksum(bad, castagnoli))
	p3 := filepath.Join(t.TempDir(), "bad.lrix")
	if err := os.WriteFile(p3, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSnapshot(p3, x.Model, lr.NewOrdinals(), Params{}, 100); err == nil {
		t.Fatal("a damaged profile was accepted")
	}
}
