package embed

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
)

func TestReadVectorsCSV(t *testing.T) {
	f, err := ReadVectorsCSV(strings.NewReader("id,f0,f1\n7,0.5,-1\n9, 1e-3 ,2\n"), "u.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dim != 2 || len(f.Rows) != 2 || f.Rows[1].ID != 9 || f.Rows[1].Vec[0] != 1e-3 || f.Line(9) != 3 || f.Line(8) != 0 {
		t.Fatalf("got %+v", f)
	}
	for _, tc := range []struct {
		name, in string
		dim      int
		want     string
	}{
		{"nan", "1,0.5,1\n2,NaN,1\n", 0, "u.csv:2: id 2: value 1 is NaN (not finite)"},
		{"inf", "1,0.5,1\n2,1,+Inf\n", 0, "u.csv:2: id 2: value 2"},
		{"overflow", "1,0.5,1\n2,1,1e39\n", 0, "u.csv:2: id 2: value 2"},
		{"short row", "id,a,b\n1,0.5,1\n2,1\n", 0, "u.csv:3: id 2 has 1 values, want dimension 2"},
		{"wrong dim", "1,0.5,1\n", 3, "u.csv:1: id 1 has 2 values, want dimension 3"},
		{"duplicate", "1,0.5,1\n2,1,1\n1,2,2\n", 0, "u.csv:3: duplicate id 1 (first on line 1)"},
		{"bad id", "1,0.5,1\nx,1,1\n", 0, "u.csv:2: id \"x\" is not an integer"},
		{"bad value", "1,0.5,zz\n", 0, "u.csv:1: id 1: value 2 \"zz\""},
		{"empty", "id,a\n", 0, "u.csv: no vectors"},
		{"no values", "1\n", 0, "u.csv:1: no vector values"},
		{"bad quote", "1,\"0.5,1\n", 0, "u.csv:1:"},
	} {
		if _, err := ReadVectorsCSV(strings.NewReader(tc.in), "u.csv", tc.dim); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

type pqSpark struct {
	ID       int32     `parquet:"id"`
	Features []float64 `parquet:"features,list"`
}

func TestReadVectorsParquet(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "items.parquet")
	if err := parquet.WriteFile(good, []pqSpark{{1, []float64{1, 2}}, {5, []float64{3, 4.5}}}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadVectorsFile(good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if f.Dim != 2 || len(f.Rows) != 2 || f.Rows[1].ID != 5 || f.Rows[1].Vec[1] != 4.5 {
		t.Fatalf("got %+v", f)
	}
	for name, rows := range map[string][]pqSpark{
		"nan.parquet":   {{1, []float64{1, 2}}, {2, []float64{math.NaN(), 1}}},
		"dup.parquet":   {{1, []float64{1, 2}}, {1, []float64{1, 1}}},
		"short.parquet": {{1, []float64{1, 2}}, {2, []float64{1}}},
	} {
		p := filepath.Join(dir, name)
		if err := parquet.WriteFile(p, rows); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadVectorsFile(p, 0); err == nil || !strings.Contains(err.Error(), name+":2: ") {
			t.Errorf("%s: err = %v, want it to name row 2", name, err)
		}
	}
	if _, err := ReadVectorsFile(good, 3); err == nil || !strings.Contains(err.Error(), "want dimension 3") {
		t.Errorf("dim mismatch: %v", err)
	}
	notPQ := filepath.Join(dir, "x.parquet")
	os.WriteFile(notPQ, []byte("hello"), 0o644)
	if _, err := ReadVectorsFile(notPQ, 0); err == nil || !strings.Contains(err.Error(), "not a Parquet file") {
		t.Errorf("garbage: %v", err)
	}
}
