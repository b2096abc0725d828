package embed

import (
	"strings"
	"testing"
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
