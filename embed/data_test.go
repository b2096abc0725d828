package embed

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
)

func TestReadRatingsErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"one column", "0\t1\t1\n2\n", "x.rating:2: want at least 2 columns"},
		{"bad user", "0\t1\n\nu\t3\n", "x.rating:3: user id \"u\""},
		{"negative item", "0\t-1\t1\n", "x.rating:1: item id \"-1\""},
		{"nan value", "0\t1\t1\n1\t1\tNaN\n", "x.rating:2: value \"NaN\""},
		{"negative value", "0\t1\t-3\n", "x.rating:1: value \"-3\""},
		{"bad timestamp", "0\t1\t1\tyesterday\n", "x.rating:1: timestamp"},
		{"huge id", "99999999999\t1\n", "x.rating:1: user id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRatings(strings.NewReader(tc.in), "x.rating")
			if err == nil || !strings.Contains(err.Error(), tc.want) || lr.ErrorCode(err) != lr.EINVALID {
				t.Fatalf("err = %v, want it to contain %q (code invalid)", err, tc.want)
			}
		})
	}
	got, err := ReadRatings(strings.NewReader("0 1\n3\t2\t7.5\t42\n"), "x")
	if err != nil {
		t.Fatal(err)
	}
	want := []Interaction{{0, 1, 1, 0}, {3, 2, 7.5, 42}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestReadNegatives(t *testing.T) {
	got, err := ReadNegatives(strings.NewReader("(0,5)\t1\t2\n(1,7)\t3\n"), "n")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].User != 1 || got[1].Pos != 7 || len(got[0].Negatives) != 2 || got[0].Negatives[1] != 2 {
		t.Fatalf("got %+v", got)
	}
	for in, want := range map[string]string{
		"(0,5)\t1\n0,5\t1\n":  "n:2: first column",
		"(0,5)\n":             "n:1: no negative items",
		"(0,5)\t1\t2\tzz\n":   "n:1: negative item id \"zz\"",
		"(0,5,6)\t1\t2\tzz\n": "n:1: first column",
	} {
		if _, err := ReadNegatives(strings.NewReader(in), "n"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", in, err, want)
		}
	}
}

func TestLoadNCFChecksFilesAgree(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tr := write("d.train.rating", "0\t0\t1\t0\n0\t1\t1\t0\n1\t2\t1\t0\n")
	te := write("d.test.rating", "0\t2\t1\t0\n1\t0\t1\t0\n")
	ne := write("d.test.negative", "(0,2)\t3\n(1,0)\t1\n")
	d, err := LoadNCF(tr, te, ne)
	if err != nil {
		t.Fatal(err)
	}
	if d.NUsers != 2 || d.NItems != 4 || len(d.Train) != 3 || len(d.Test) != 2 || d.Name != "d" {
		t.Fatalf("got %+v", d)
	}
	bad := write("bad.test.negative", "(0,2)\t3\n(1,1)\t1\n")
	if _, err := LoadNCF(tr, te, bad); err == nil || !strings.Contains(err.Error(), "bad.test.negative:2") {
		t.Fatalf("mismatch: err = %v", err)
	}
	empty := write("e.train.rating", "\n")
	if _, err := LoadNCF(empty, te, ne); err == nil || !strings.Contains(err.Error(), "no interactions") {
		t.Fatalf("empty: err = %v", err)
	}
	if _, err := LoadNCF(filepath.Join(dir, "missing"), te, ne); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing: err = %v", err)
	}
}

// constScorer scores every item the same.
type constScorer float32

func (c constScorer) ScoreItems(_ int32, _ []int32, out []float32) {
	for i := range out {
		out[i] = float32(c)
	}
}

// tableScorer scores item i as s[i].
type tableScorer []float32

func (s tableScorer) ScoreItems(_ int32, items []int32, out []float32) {
	for i, it := range items {
		out[i] = s[it]
	}
}

func TestPessimisticRank(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		pos  float32
		negs []float32
		want int
	}{
		{1, []float32{0, 0, 0}, 0},
		{1, []float32{1, 0, 2}, 2}, // the tie counts against the positive
		{1, []float32{1, 1, 1}, 3},
		{nan, []float32{0, 1}, 2},
		{1, []float32{nan, 2}, 1},
		{0, nil, 0},
	} {
		if got := PessimisticRank(tc.pos, tc.negs); got != tc.want {
			t.Errorf("PessimisticRank(%v, %v) = %d, want %d", tc.pos, tc.negs, got, tc.want)
		}
	}
}

func TestMetricsHandComputed(t *testing.T) {
	// Ranks 0, 2, 7 and 12: HR@1 = 1/4, HR@5 = 2/4, HR@10 = 3/4;
	// NDCG@10 = (1 + 1/log2(4) + 1/log2(9)) / 4.
	m := MetricsFromRanks([]int{0, 2, 7, 12})
	want := Metrics{HR1: .25, HR5: .5, HR10: .75,
		NDCG1: .25, NDCG5: (1 + .5) / 4, NDCG10: (1 + .5 + 1/math.Log2(9)) / 4, N: 4}
	for _, c := range [][2]float64{{m.HR1, want.HR1}, {m.HR5, want.HR5}, {m.HR10, want.HR10},
		{m.NDCG1, want.NDCG1}, {m.NDCG5, want.NDCG5}, {m.NDCG10, want.NDCG10}} {
		if math.Abs(c[0]-c[1]) > 1e-12 {
			t.Fatalf("got %+v, want %+v", m, want)
		}
	}
	if z := MetricsFromRanks(nil); z != (Metrics{}) {
		t.Fatalf("empty = %+v", z)
	}
}

func TestEvaluateLOO(t *testing.T) {
	cases := []TestCase{
		{User: 0, Pos: 0, Negatives: []int32{1, 2, 3}}, // item 0 best: rank 0
		{User: 1, Pos: 2, Negatives: []int32{0, 1, 3}}, // item 2 ties item 1, below 0: rank 2
	}
	s := tableScorer{3, 1, 1, 0}
	m := EvaluateLOO(s, cases)
	if m.N != 2 || m.HR1 != .5 || m.HR10 != 1 || math.Abs(m.NDCG10-(1+.5)/2) > 1e-12 {
		t.Fatalf("got %+v", m)
	}
	// A constant model must score zero on every metric with pessimistic ties.
	many := []TestCase{{User: 0, Pos: 0, Negatives: []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}}
	if m := EvaluateLOO(constScorer(1), many); m.HR10 != 0 || m.NDCG10 != 0 {
		t.Fatalf("constant model: %+v", m)
	}
}

func TestItemPopAndValidationSplit(t *testing.T) {
	train := []Interaction{{0, 0, 1, 0}, {1, 0, 1, 0}, {1, 1, 1, 0}, {2, 0, 1, 0}, {2, 1, 1, 0}, {2, 2, 1, 0}}
	p := TrainItemPop(train, 4)
	out := make([]float32, 3)
	p.ScoreItems(0, []int32{0, 2, 3}, out)
	if out[0] != 3 || out[1] != 1 || out[2] != 0 {
		t.Fatalf("pop scores %v", out)
	}
	d := &Dataset{NUsers: 3, NItems: 40, Train: train}
	v := d.ValidationSplit(1, 5)
	if len(v.Test) != 2 || len(v.Train) != len(train)-2 {
		t.Fatalf("split: %d cases, %d train rows", len(v.Test), len(v.Train))
	}
	for _, tc := range v.Test {
		if len(tc.Negatives) != 5 {
			t.Fatalf("case %+v", tc)
		}
		for _, x := range v.Train {
			if x.User == tc.User && x.Item == tc.Pos {
				t.Fatalf("held-out item %d of user %d is still in train", tc.Pos, tc.User)
			}
		}
		for _, n := range tc.Negatives {
			for _, x := range train {
				if x.User == tc.User && x.Item == n {
					t.Fatalf("negative %d was a training item of user %d", n, tc.User)
				}
			}
		}
	}
}

// datasets returns the shared dataset folder or skips the test.
func datasets(t testing.TB) string {
	t.Helper()
	dir, err := DatasetDir()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	return dir
}

func TestItemPopOnPublishedSplits(t *testing.T) {
	dir := datasets(t)
	for _, tc := range []struct {
		name     string
		hr, ndcg float64 // published ItemPop
	}{{"lastfm", .6628, .3862}, {"ml-1m", .4535, .2542}} {
		d, err := LoadNamed(dir, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		m := EvaluateLOO(TrainItemPop(d.Train, d.NItems), d.Test)
		t.Logf("%s ItemPop: HR@10 %.4f NDCG@10 %.4f (published %.4f / %.4f)", tc.name, m.HR10, m.NDCG10, tc.hr, tc.ndcg)
		if math.Abs(m.HR10-tc.hr) > .01 || math.Abs(m.NDCG10-tc.ndcg) > .01 {
			t.Errorf("%s ItemPop HR@10 %.4f NDCG@10 %.4f, published %.4f / %.4f", tc.name, m.HR10, m.NDCG10, tc.hr, tc.ndcg)
		}
	}
}
