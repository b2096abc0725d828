package embed

import (
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/parquet-go/parquet-go"

	lr "github.com/liverecall/liverecall"
)

// Parquet layouts accepted by ReadVectorsParquet: Spark ML's ALS factors
// (id, features) and liverecall's own (id, vec). The id may be any integer
// type and the vector a list of float or double; they are converted.
type (
	pqFeatures struct {
		ID       int64     `parquet:"id"`
		Features []float32 `parquet:"features,list"`
	}
	pqVec struct {
		ID  int64     `parquet:"id"`
		Vec []float32 `parquet:"vec,list"`
	}
)

// ReadVectorsParquet reads embeddings from a Parquet file with an integer
// column `id` and a list column `features` (Spark ALS) or `vec`. It
// validates like ReadVectorsCSV; errors name the file and the 1-based row
// (reported as the line).
func ReadVectorsParquet(path string, dim int) (*VectorFile, error) {
	name := filepath.Base(path)
	fh, err := os.Open(path)
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "%v", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "%v", err)
	}
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		return nil, lr.Errorf(lr.EINVALID, "%s: not a Parquet file: %v", name, err)
	}
	field := func(col string) parquet.Field {
		for _, f := range pf.Schema().Fields() {
			if f.Name() == col {
				return f
			}
		}
		return nil
	}
	id := field("id")
	if id == nil {
		return nil, lr.Errorf(lr.EINVALID, "%s: no `id` column (want id and features, or id and vec)", name)
	}
	if err := checkPQColumn(name, "id", id, false); err != nil {
		return nil, err
	}
	v := &vectorValidator{f: &VectorFile{Name: name, Dim: dim}, seen: map[int64]int{}}
	switch {
	case field("features") != nil:
		if err := checkPQColumn(name, "features", field("features"), true); err != nil {
			return nil, err
		}
		err = readPQ(pf, name, v, func(r pqFeatures) (int64, []float32) { return r.ID, r.Features })
	case field("vec") != nil:
		if err := checkPQColumn(name, "vec", field("vec"), true); err != nil {
			return nil, err
		}
		err = readPQ(pf, name, v, func(r pqVec) (int64, []float32) { return r.ID, r.Vec })
	default:
		return nil, lr.Errorf(lr.EINVALID, "%s: no `features` or `vec` list column", name)
	}
	if err != nil {
		return nil, err
	}
	if len(v.f.Rows) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "%s: no vectors", name)
	}
	return v.f, nil
}

// checkPQColumn refuses, before any row is read, a column the reader would
// otherwise convert with a message in the Parquet library's and Go's terms
// (strconv.ParseInt, "invalid conversion between parquet values") or
// silently (a boolean id, a scalar where a list belongs): the id must be a
// plain integer column, the vector a list of numbers.
func checkPQColumn(file, col string, f parquet.Node, list bool) error {
	n, repeated := f, f.Repeated()
	for !n.Leaf() {
		fs := n.Fields()
		if len(fs) != 1 {
			return lr.Errorf(lr.EINVALID, "%s: column `%s` is a group of %d fields; want %s", file, col, len(fs), pqWant(col, list))
		}
		n = fs[0]
		repeated = repeated || n.Repeated()
	}
	kind := n.Type().Kind()
	switch {
	case !list && repeated:
		return lr.Errorf(lr.EINVALID, "%s: column `%s` is a list; want %s", file, col, pqWant(col, list))
	case list && !repeated:
		return lr.Errorf(lr.EINVALID, "%s: column `%s` is not a list (one value per row); want %s", file, col, pqWant(col, list))
	case kind == parquet.Int32 || kind == parquet.Int64, list && (kind == parquet.Float || kind == parquet.Double):
		return nil
	}
	return lr.Errorf(lr.EINVALID, "%s: column `%s` holds %s; want %s", file, col, pqKindName(kind), pqWant(col, list))
}

func pqWant(col string, list bool) string {
	if list {
		return "a list of numbers (float or double)"
	}
	return "an integer column"
}

// pqKindName names a Parquet physical type for a person.
func pqKindName(k parquet.Kind) string {
	switch k {
	case parquet.Boolean:
		return "booleans"
	case parquet.Int32, parquet.Int64:
		return "integers"
	case parquet.Int96:
		return "96-bit integers (timestamps)"
	case parquet.Float, parquet.Double:
		return "floating-point numbers"
	}
	return "strings or bytes"
}

func readPQ[T any](pf *parquet.File, name string, v *vectorValidator, get func(T) (int64, []float32)) (err error) {
	defer func() { // a schema parquet-go cannot convert panics in some versions
		if p := recover(); p != nil {
			err = lr.Errorf(lr.EINVALID, "%s: unreadable columns: %v", name, p)
		}
	}()
	r := parquet.NewGenericReader[T](pf)
	defer r.Close()
	buf := make([]T, 1024)
	row := 0
	for {
		n, rerr := r.Read(buf)
		for _, x := range buf[:n] {
			row++
			id, vec := get(x)
			if err := v.add(id, vec, row); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return lr.Errorf(lr.EINVALID, "%s: row %d: %v", name, row+1, rerr)
		}
	}
}

// vectorValidator applies the checks shared by every input format.
type vectorValidator struct {
	f    *VectorFile
	seen map[int64]int
}

func (v *vectorValidator) add(id int64, vec []float32, line int) error {
	f := v.f
	if f.Dim == 0 {
		if len(vec) == 0 {
			return lineErr(f.Name, line, "id %d has an empty vector", id)
		}
		f.Dim = len(vec)
	}
	if len(vec) != f.Dim {
		return lineErr(f.Name, line, "id %d has %d values, want dimension %d", id, len(vec), f.Dim)
	}
	if prev, dup := v.seen[id]; dup {
		return lineErr(f.Name, line, "duplicate id %d (first on line %d)", id, prev)
	}
	for k, x := range vec {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return lineErr(f.Name, line, "id %d: value %d is %v (not finite)", id, k+1, x)
		}
	}
	v.seen[id] = line
	f.Rows = append(f.Rows, lr.Embedding{ID: id, Vec: vec})
	f.Lines = append(f.Lines, line)
	return nil
}
