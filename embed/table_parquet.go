package embed

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	lr "github.com/liverecall/liverecall"
)

// This file gives the rest of liverecall (the history import) flat Parquet
// tables as text cells, so that parquet-go stays imported by this package
// alone (docs/DESIGN.md, "Dependencies at the edges").

// ReadParquetTable reads a flat Parquet file (top-level columns only, no
// lists or nested groups) row by row. header is called once with the column
// names in file order; row is called for each row with its 1-based number
// and one text cell per column, in header order: integers in decimal,
// floating point in the shortest form that reads back exactly, booleans as
// true/false, byte arrays as they are, TIMESTAMP columns (any unit) and
// legacy INT96 timestamps in RFC 3339 (UTC, nanoseconds when present), and
// a null as the empty string. cells is reused between calls. An error from
// header or row stops the read and is returned as is; a file that is not
// Parquet, or not flat, is an EINVALID error naming the file.
func ReadParquetTable(path string, header func(cols []string) error, row func(n int, cells []string) error) (err error) {
	name := filepath.Base(path)
	fh, err := os.Open(path)
	if err != nil {
		return lr.Errorf(lr.EINVALID, "%v", err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return lr.Errorf(lr.EINVALID, "%v", err)
	}
	pf, err := parquet.OpenFile(fh, st.Size())
	if err != nil {
		return lr.Errorf(lr.EINVALID, "%s: not a Parquet file: %v", name, err)
	}
	paths := pf.Schema().Columns()
	cols := make([]string, len(paths))
	conv := make([]func(parquet.Value) string, len(paths))
	for i, p := range paths {
		if len(p) != 1 {
			return lr.Errorf(lr.EINVALID, "%s: column %q is nested; want a flat table of plain columns", name, joinPath(p))
		}
		leaf, _ := pf.Schema().Lookup(p...)
		if leaf.MaxRepetitionLevel > 0 {
			return lr.Errorf(lr.EINVALID, "%s: column %q is a list; want a flat table of plain columns", name, p[0])
		}
		cols[i] = p[0]
		conv[i] = cellFormatter(leaf.Node.Type())
	}
	if err := header(cols); err != nil {
		return err
	}
	defer func() { // a file parquet-go cannot decode panics in some versions
		if p := recover(); p != nil {
			err = lr.Errorf(lr.EINVALID, "%s: unreadable: %v", name, p)
		}
	}()
	r := parquet.NewReader(pf)
	defer r.Close()
	buf := make([]parquet.Row, 256)
	cells := make([]string, len(cols))
	n := 0
	for {
		k, rerr := r.ReadRows(buf)
		for _, rw := range buf[:k] {
			n++
			clear(cells)
			for _, v := range rw {
				if c := v.Column(); c >= 0 && c < len(cells) && !v.IsNull() {
					cells[c] = conv[c](v)
				}
			}
			if err := row(n, cells); err != nil {
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return nil
		}
		if rerr != nil {
			return lr.Errorf(lr.EINVALID, "%s: row %d: %v", name, n+1, rerr)
		}
	}
}

func joinPath(p []string) string {
	s := ""
	for i, x := range p {
		if i > 0 {
			s += "."
		}
		s += x
	}
	return s
}

// cellFormatter returns how a value of column type t is written as text.
func cellFormatter(t parquet.Type) func(parquet.Value) string {
	if lt := t.LogicalType(); lt != nil {
		if ts, ok := lt.Value.(*format.TimestampType); ok {
			unit := time.Millisecond
			switch ts.Unit.Value.(type) {
			case *format.MicroSeconds:
				unit = time.Microsecond
			case *format.NanoSeconds:
				unit = time.Nanosecond
			}
			return func(v parquet.Value) string {
				return time.Unix(0, 0).Add(time.Duration(v.Int64()) * unit).UTC().Format(time.RFC3339Nano)
			}
		}
	}
	switch t.Kind() {
	case parquet.Boolean:
		return func(v parquet.Value) string { return strconv.FormatBool(v.Boolean()) }
	case parquet.Int32:
		return func(v parquet.Value) string { return strconv.FormatInt(int64(v.Int32()), 10) }
	case parquet.Int64:
		return func(v parquet.Value) string { return strconv.FormatInt(v.Int64(), 10) }
	case parquet.Float:
		return func(v parquet.Value) string { return strconv.FormatFloat(float64(v.Float()), 'g', -1, 32) }
	case parquet.Double:
		return func(v parquet.Value) string { return strconv.FormatFloat(v.Double(), 'g', -1, 64) }
	case parquet.Int96:
		// Legacy (Spark, Hive) timestamps: nanoseconds of the day, then
		// the Julian day.
		return func(v parquet.Value) string {
			x := v.Int96()
			nanos := int64(uint64(x[1])<<32 | uint64(x[0]))
			days := int64(x[2]) - 2440588 // Julian day of 1970-01-01
			return time.Unix(days*86400, nanos).UTC().Format(time.RFC3339Nano)
		}
	default:
		return func(v parquet.Value) string { return string(v.ByteArray()) }
	}
}

// ParquetColumn names a column of WriteParquetTable and its type: "string",
// "int64", "double", "bool", "timestamp_ms" or "timestamp_us" (TIMESTAMP,
// adjusted to UTC). Every column is optional (nullable).
type ParquetColumn struct {
	Name, Type string
}

// WriteParquetTable writes rows as a flat Parquet file at path, one value
// per column in cols order: string, int64 (or int), float64, bool, or
// time.Time for a timestamp column; nil is a null. It is what the tests of
// the history import (and anyone making such a file in Go) use.
func WriteParquetTable(path string, cols []ParquetColumn, rows [][]any) error {
	g := parquet.Group{}
	for _, c := range cols {
		var n parquet.Node
		switch c.Type {
		case "string":
			n = parquet.String()
		case "int64":
			n = parquet.Int(64)
		case "double":
			n = parquet.Leaf(parquet.DoubleType)
		case "bool":
			n = parquet.Leaf(parquet.BooleanType)
		case "timestamp_ms":
			n = parquet.Timestamp(parquet.Millisecond)
		case "timestamp_us":
			n = parquet.Timestamp(parquet.Microsecond)
		default:
			return fmt.Errorf("WriteParquetTable: column %s: unknown type %q", c.Name, c.Type)
		}
		g[c.Name] = parquet.Optional(n)
	}
	schema := parquet.NewSchema("history", g)
	index := map[string]int{}
	for i, p := range schema.Columns() {
		index[p[0]] = i
	}
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	w := parquet.NewWriter(fh, schema)
	out := make([]parquet.Row, 0, len(rows))
	for _, r := range rows {
		if len(r) != len(cols) {
			return fmt.Errorf("WriteParquetTable: a row has %d values for %d columns", len(r), len(cols))
		}
		rw := make(parquet.Row, len(cols))
		for k, c := range cols {
			ci := index[c.Name]
			var v parquet.Value
			switch x := r[k].(type) {
			case nil:
				rw[ci] = parquet.NullValue().Level(0, 0, ci)
				continue
			case string:
				v = parquet.ByteArrayValue([]byte(x))
			case int64:
				v = parquet.Int64Value(x)
			case int:
				v = parquet.Int64Value(int64(x))
			case float64:
				v = parquet.DoubleValue(x)
			case bool:
				v = parquet.BooleanValue(x)
			case time.Time:
				if c.Type == "timestamp_us" {
					v = parquet.Int64Value(x.UnixMicro())
				} else {
					v = parquet.Int64Value(x.UnixMilli())
				}
			default:
				return fmt.Errorf("WriteParquetTable: column %s: unsupported value %T", c.Name, x)
			}
			rw[ci] = v.Level(0, 1, ci)
		}
		out = append(out, rw)
	}
	if _, err := w.WriteRows(out); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return fh.Close()
}
