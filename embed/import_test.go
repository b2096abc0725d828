package embed

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"

	lr "github.com/liverecall/liverecall"
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

// Parquet layouts of the wrong column types, for
// TestReadVectorsParquetColumnTypes.
type (
	pqStringID struct {
		ID       string    `parquet:"id"`
		Features []float32 `parquet:"features,list"`
	}
	pqBoolID struct {
		ID  bool      `parquet:"id"`
		Vec []float64 `parquet:"vec,list"`
	}
	pqStringValues struct {
		ID       int64    `parquet:"id"`
		Features []string `parquet:"features,list"`
	}
	pqScalarVec struct {
		ID  int64   `parquet:"id"`
		Vec float64 `parquet:"vec"`
	}
	pqListID struct {
		ID       []int64   `parquet:"id,list"`
		Features []float32 `parquet:"features,list"`
	}
	pqInt64Vec struct {
		ID  int64   `parquet:"id"`
		Vec []int64 `parquet:"vec,list"`
	}
)

// A column of the wrong type is refused before any row is read, with a
// message naming the column and what it should hold in Parquet's terms,
// never the library's conversion error or Go's (strconv.ParseInt), and is
// never converted silently (a boolean id read as 1, a scalar vector read
// as empty).
func TestReadVectorsParquetColumnTypes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rows any) string {
		t.Helper()
		p := filepath.Join(dir, name)
		var err error
		switch r := rows.(type) {
		case []pqStringID:
			err = parquet.WriteFile(p, r)
		case []pqBoolID:
			err = parquet.WriteFile(p, r)
		case []pqStringValues:
			err = parquet.WriteFile(p, r)
		case []pqScalarVec:
			err = parquet.WriteFile(p, r)
		case []pqListID:
			err = parquet.WriteFile(p, r)
		case []pqInt64Vec:
			err = parquet.WriteFile(p, r)
		}
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		path, want string
	}{
		{write("string-id.parquet", []pqStringID{{"x", []float32{1, 2}}}), "string-id.parquet: column `id` holds strings or bytes; want an integer column"},
		{write("bool-id.parquet", []pqBoolID{{true, []float64{1, 2}}}), "bool-id.parquet: column `id` holds booleans; want an integer column"},
		{write("string-values.parquet", []pqStringValues{{1, []string{"a", "b"}}}), "string-values.parquet: column `features` holds strings or bytes; want a list of numbers (float or double)"},
		{write("scalar-vec.parquet", []pqScalarVec{{1, 2}}), "scalar-vec.parquet: column `vec` is not a list (one value per row); want a list of numbers (float or double)"},
		{write("list-id.parquet", []pqListID{{[]int64{1}, []float32{1, 2}}}), "list-id.parquet: column `id` is a list; want an integer column"},
	} {
		_, err := ReadVectorsFile(tc.path, 0)
		if err == nil || lr.ErrorCode(err) != lr.EINVALID || lr.ErrorMessage(err) != tc.want {
			t.Errorf("%s: err = %v, want %q", filepath.Base(tc.path), err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "strconv") {
			t.Errorf("%s: the message names Go's parser: %v", filepath.Base(tc.path), err)
		}
	}
	// Integers in the vector's list are numbers too.
	f, err := ReadVectorsFile(write("int-vec.parquet", []pqInt64Vec{{3, []int64{1, 2}}}), 0)
	if err != nil || len(f.Rows) != 1 || f.Rows[0].ID != 3 || f.Rows[0].Vec[1] != 2 {
		t.Errorf("int64 list: %+v, %v", f, err)
	}
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
