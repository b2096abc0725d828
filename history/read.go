// Package history reads watch history exported from elsewhere (a data
// warehouse, a public log) from CSV or Parquet files, validates all of it,
// derives the streams when the files do not give them, and returns the
// rows `liverecall import-history` adds to the PostgreSQL history tables
// (postgres.ImportRows). Nothing here touches the database.
//
// Every row gets a key that does not depend on which file or export it came
// from, so importing the same history again, or an export overlapping an
// earlier one, adds only what is new: a watch session is its user, streamer
// and start; a gift its gift_id, or its user, streamer, time and rank among
// identical ones; a follow its user and streamer; a stream its stream_id, or
// its streamer and start.
package history

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/embed"
)

// File is one input file and what it holds. The format follows the name:
// .csv, or .parquet (.parq, .pq).
type File struct {
	Kind Kind
	Path string
}

// Problem is one thing wrong with the input: the file (base name), the line
// of a CSV file or the row of a Parquet file (0: the file as a whole or its
// header in Parquet), and what is wrong.
type Problem struct {
	File    string
	Line    int
	Parquet bool
	Msg     string
}

// String is "file:line: msg" for CSV, "file row N: msg" for Parquet and
// "file: msg" without a line.
func (p Problem) String() string {
	switch {
	case p.Line == 0:
		return p.File + ": " + p.Msg
	case p.Parquet:
		return fmt.Sprintf("%s row %d: %s", p.File, p.Line, p.Msg)
	default:
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
}

// MaxProblems is how many problems Problems keeps (all are counted).
const MaxProblems = 100

// Problems is the error Read returns when the input has problems: the first
// MaxProblems of them, in file and line order per file, and how many there
// are in each file.
type Problems struct {
	List   []Problem
	Total  int
	ByFile map[string]int
	files  []string // in the order first seen
}

func (e *Problems) add(p Problem) {
	if e.ByFile == nil {
		e.ByFile = map[string]int{}
	}
	if e.ByFile[p.File] == 0 {
		e.files = append(e.files, p.File)
	}
	e.ByFile[p.File]++
	e.Total++
	if len(e.List) < MaxProblems {
		e.List = append(e.List, p)
	}
}

// Error says how many problems there are and where, on one line.
func (e *Problems) Error() string {
	parts := make([]string, 0, len(e.files))
	for _, f := range e.files {
		parts = append(parts, fmt.Sprintf("%s %d", f, e.ByFile[f]))
	}
	s := "problems"
	if e.Total == 1 {
		s = "problem"
	}
	return fmt.Sprintf("%d %s in the input (%s); nothing written", e.Total, s, strings.Join(parts, ", "))
}

// readFile reads f's header and rows, calling row with the parsed header,
// the row's line (CSV) or row number (Parquet), and its cells. Problems with
// the file itself or its header go to probs and end the read of this file
// (false); an error is an I/O failure. progress, if not nil, is given the
// bytes read as they are read.
func readFile(f File, probs *Problems, progress func(int64), row func(h header, line int, cells []string)) error {
	name := filepath.Base(f.Path)
	switch strings.ToLower(filepath.Ext(f.Path)) {
	case ".csv":
		return readCSV(f, name, probs, progress, row)
	case ".parquet", ".parq", ".pq":
		var h header
		err := embed.ReadParquetTable(f.Path, func(cols []string) error {
			var hp []string
			h, hp = parseHeader(f.Kind, cols)
			for _, m := range hp {
				probs.add(Problem{File: name, Parquet: true, Msg: m})
			}
			if len(hp) > 0 {
				return errBadHeader
			}
			return nil
		}, func(n int, cells []string) error {
			row(h, n, cells)
			return nil
		})
		if errors.Is(err, errBadHeader) {
			return nil
		}
		if err != nil {
			if lr.ErrorCode(err) == lr.EINVALID {
				msg := strings.TrimPrefix(lr.ErrorMessage(err), name+": ")
				probs.add(Problem{File: name, Parquet: true, Msg: msg})
				return nil
			}
			return err
		}
		if progress != nil {
			if st, err := os.Stat(f.Path); err == nil {
				progress(st.Size())
			}
		}
		return nil
	default:
		probs.add(Problem{File: name, Msg: fmt.Sprintf("unsupported format %q (want .csv or .parquet)", filepath.Ext(f.Path))})
		return nil
	}
}

var errBadHeader = errors.New("bad header")

func readCSV(f File, name string, probs *Problems, progress func(int64), row func(h header, line int, cells []string)) error {
	fh, err := os.Open(f.Path)
	if err != nil {
		probs.add(Problem{File: name, Msg: err.Error()})
		return nil
	}
	defer fh.Close()
	var r io.Reader = fh
	if progress != nil {
		r = &countingReader{r: fh, fn: progress}
	}
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	cr.TrimLeadingSpace = true
	rec, err := cr.Read()
	if errors.Is(err, io.EOF) {
		probs.add(Problem{File: name, Msg: "empty file (want a header line naming the columns)"})
		return nil
	}
	if err != nil {
		return csvProblem(name, err, probs)
	}
	if len(rec) > 0 {
		rec[0] = strings.TrimPrefix(rec[0], "\ufeff") // a byte-order mark
	}
	h, hp := parseHeader(f.Kind, rec)
	for _, m := range hp {
		probs.add(Problem{File: name, Line: 1, Msg: m})
	}
	if len(hp) > 0 {
		return nil
	}
	width := len(rec)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return csvProblem(name, err, probs)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rec) != width {
			probs.add(Problem{File: name, Line: line, Msg: fmt.Sprintf("%d fields, want %d (as in the header)", len(rec), width)})
			continue
		}
		row(h, line, rec)
	}
}

// csvProblem records a CSV syntax error (which ends the file's read) as a
// problem, or returns an I/O error.
func csvProblem(name string, err error, probs *Problems) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		probs.add(Problem{File: name, Line: pe.Line, Msg: pe.Err.Error()})
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}

type countingReader struct {
	r  io.Reader
	fn func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		c.fn(int64(n))
	}
	return n, err
}
