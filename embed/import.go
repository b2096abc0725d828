package embed

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	lr "github.com/liverecall/liverecall"
)

// VectorFile is a validated set of embeddings read from a file: unique ids,
// one dimension, finite values. Lines[k] is the 1-based line of Rows[k].
type VectorFile struct {
	Name  string
	Dim   int
	Rows  []lr.Embedding
	Lines []int
}

// Line returns the line of id in the file, or 0.
func (f *VectorFile) Line(id int64) int {
	for k, r := range f.Rows {
		if r.ID == id {
			return f.Lines[k]
		}
	}
	return 0
}

// ReadVectorsCSV reads embeddings produced elsewhere (Spark ALS, PyTorch) as
// CSV: one record per id, `id,v1,...,vd`. A first record whose id field is
// not an integer is a header. dim 0 takes the dimension from the first
// record. Every problem is an EINVALID error naming the file and line: a
// malformed id or value, a record of another dimension, NaN or ±Inf, an id
// seen before (with the line where), an empty file.
func ReadVectorsCSV(r io.Reader, name string, dim int) (*VectorFile, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	f := &VectorFile{Name: name, Dim: dim}
	seen := map[int64]int{}
	first := true
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// FieldPos is only valid for a record Read returned: a parse
			// error carries its own line.
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, lineErr(name, pe.Line, "%v", pe.Err)
			}
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		id, err := strconv.ParseInt(strings.TrimSpace(rec[0]), 10, 64)
		if err != nil {
			if first {
				first = false
				continue // header
			}
			return nil, lineErr(name, line, "id %q is not an integer", rec[0])
		}
		first = false
		if f.Dim == 0 {
			f.Dim = len(rec) - 1
			if f.Dim <= 0 {
				return nil, lineErr(name, line, "no vector values after the id")
			}
		}
		if len(rec)-1 != f.Dim {
			return nil, lineErr(name, line, "id %d has %d values, want dimension %d", id, len(rec)-1, f.Dim)
		}
		if prev, dup := seen[id]; dup {
			return nil, lineErr(name, line, "duplicate id %d (first on line %d)", id, prev)
		}
		seen[id] = line
		vec := make([]float32, f.Dim)
		for k, s := range rec[1:] {
			v, err := strconv.ParseFloat(strings.TrimSpace(s), 32)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, lineErr(name, line, "id %d: value %d %q is not a number", id, k+1, s)
			}
			if math.IsNaN(v) || math.IsInf(float64(float32(v)), 0) {
				return nil, lineErr(name, line, "id %d: value %d is %v (not finite)", id, k+1, s)
			}
			vec[k] = float32(v)
		}
		f.Rows = append(f.Rows, lr.Embedding{ID: id, Vec: vec})
		f.Lines = append(f.Lines, line)
	}
	if len(f.Rows) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "%s: no vectors", name)
	}
	return f, nil
}

// ReadVectorsFile reads path as CSV (ReadVectorsCSV) or, for a .parquet
// file, Parquet (ReadVectorsParquet); errors name the file's base name.
func ReadVectorsFile(path string, dim int) (*VectorFile, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "%v", err)
	}
	defer fh.Close()
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".csv", ".txt", "":
		return ReadVectorsCSV(fh, filepath.Base(path), dim)
	case ".parquet", ".parq", ".pq":
		return ReadVectorsParquet(path, dim)
	default:
		return nil, lr.Errorf(lr.EINVALID, "%s: unsupported format %q (want .csv or .parquet)", filepath.Base(path), ext)
	}
}
