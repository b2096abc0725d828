package embed

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
)

// A flat table reads back as text cells in file order: integers, doubles,
// booleans, strings, timestamps in RFC 3339 (UTC), nulls as "".
func TestParquetTableRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "t.parquet")
	ts := time.Date(2026, 3, 1, 20, 0, 0, 250e6, time.UTC)
	cols := []ParquetColumn{{Name: "a", Type: "int64"}, {Name: "b", Type: "double"}, {Name: "c", Type: "bool"},
		{Name: "d", Type: "string"}, {Name: "e", Type: "timestamp_ms"}, {Name: "f", Type: "timestamp_us"}}
	if err := WriteParquetTable(p, cols, [][]any{{int64(-3), 2.5, true, "x,y", ts, ts.Add(time.Microsecond)}, {nil, nil, nil, nil, nil, nil}}); err != nil {
		t.Fatal(err)
	}
	var header []string
	var rows [][]string
	if err := ReadParquetTable(p, func(c []string) error { header = append([]string{}, c...); return nil },
		func(n int, cells []string) error {
			if n != len(rows)+1 {
				t.Errorf("row number %d, want %d", n, len(rows)+1)
			}
			rows = append(rows, append([]string{}, cells...))
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"a", "b", "c", "d", "e", "f"}; !reflect.DeepEqual(header, want) {
		t.Errorf("header %v, want %v", header, want)
	}
	want := [][]string{{"-3", "2.5", "true", "x,y", "2026-03-01T20:00:00.25Z", "2026-03-01T20:00:00.250001Z"}, {"", "", "", "", "", ""}}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows %q, want %q", rows, want)
	}
}

// A list column is refused, naming it.
func TestParquetTableRefusesLists(t *testing.T) {
	p := filepath.Join(t.TempDir(), "l.parquet")
	type row struct {
		ID  int64     `parquet:"id"`
		Vec []float32 `parquet:"vec,list"`
	}
	if err := parquet.WriteFile(p, []row{{1, []float32{1}}}); err != nil {
		t.Fatal(err)
	}
	err := ReadParquetTable(p, func([]string) error { return nil }, func(int, []string) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "l.parquet: column \"vec") {
		t.Errorf("err %v, want the list column named", err)
	}
}
