package embed

import (
	"bufio"
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

// Interaction is one implicit-feedback observation over dense, 0-based ids:
// a user interacted with an item with some strength (a play count, watch
// seconds, or 1). Time is an opaque ordering key (Unix seconds where known).
type Interaction struct {
	User, Item int32
	Value      float32
	Time       int64
}

// TestCase is one leave-one-out evaluation case: the held-out positive item
// of a user and the negatives it is ranked against.
type TestCase struct {
	User      int32
	Pos       int32
	Negatives []int32
}

// Dataset is a training set plus its leave-one-out test cases, in the layout
// of the NCF paper's files (He et al. 2017). NUsers and NItems cover every id
// seen in any of the files.
type Dataset struct {
	Name   string
	NUsers int
	NItems int
	Train  []Interaction
	Test   []TestCase
}

// maxID bounds dense ids read from files so that a corrupt line cannot make
// the trainers allocate gigabytes.
const maxID = 1 << 26

func lineErr(file string, line int, format string, args ...any) error {
	return lr.Errorf(lr.EINVALID, "%s:%d: %s", file, line, fmt.Sprintf(format, args...))
}

func parseID(file string, line int, what, s string) (int32, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 || v >= maxID {
		return 0, lineErr(file, line, "%s id %q is not an integer in [0, %d)", what, s, maxID)
	}
	return int32(v), nil
}

// scanLines calls fn with each non-blank line's fields and its 1-based number.
func scanLines(r io.Reader, file string, fn func(line int, fields []string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	n := 0
	for sc.Scan() {
		n++
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if err := fn(n, f); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return lr.Errorf(lr.EINVALID, "%s:%d: %v", file, n+1, err)
	}
	return nil
}

// ReadRatings reads a `user item value [timestamp]` file (tab or space
// separated) such as *.train.rating or *.test.rating. name is used in errors,
// which name the file and the 1-based line. A missing value column means 1; a
// value must be finite and non-negative.
func ReadRatings(r io.Reader, name string) ([]Interaction, error) {
	var out []Interaction
	err := scanLines(r, name, func(line int, f []string) error {
		if len(f) < 2 {
			return lineErr(name, line, "want at least 2 columns (user item), got %d", len(f))
		}
		u, err := parseID(name, line, "user", f[0])
		if err != nil {
			return err
		}
		it, err := parseID(name, line, "item", f[1])
		if err != nil {
			return err
		}
		x := Interaction{User: u, Item: it, Value: 1}
		if len(f) >= 3 {
			v, err := strconv.ParseFloat(f[2], 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				return lineErr(name, line, "value %q is not a finite non-negative number", f[2])
			}
			x.Value = float32(v)
		}
		if len(f) >= 4 {
			ts, err := strconv.ParseInt(f[3], 10, 64)
			if err != nil {
				return lineErr(name, line, "timestamp %q is not an integer", f[3])
			}
			x.Time = ts
		}
		out = append(out, x)
		return nil
	})
	return out, err
}

// ReadNegatives reads a *.test.negative file: each line is `(user,item)`
// followed by negative item ids.
func ReadNegatives(r io.Reader, name string) ([]TestCase, error) {
	var out []TestCase
	err := scanLines(r, name, func(line int, f []string) error {
		head := f[0]
		if !strings.HasPrefix(head, "(") || !strings.HasSuffix(head, ")") || strings.Count(head, ",") != 1 {
			return lineErr(name, line, "first column %q is not (user,item)", head)
		}
		us, is, _ := strings.Cut(head[1:len(head)-1], ",")
		u, err := parseID(name, line, "user", us)
		if err != nil {
			return err
		}
		pos, err := parseID(name, line, "item", is)
		if err != nil {
			return err
		}
		if len(f) < 2 {
			return lineErr(name, line, "no negative items")
		}
		tc := TestCase{User: u, Pos: pos, Negatives: make([]int32, 0, len(f)-1)}
		for _, s := range f[1:] {
			it, err := parseID(name, line, "negative item", s)
			if err != nil {
				return err
			}
			tc.Negatives = append(tc.Negatives, it)
		}
		out = append(out, tc)
		return nil
	})
	return out, err
}

func readFile[T any](path string, read func(io.Reader, string) (T, error)) (T, error) {
	f, err := os.Open(path)
	if err != nil {
		var zero T
		return zero, lr.Errorf(lr.EINVALID, "%v", err)
	}
	defer f.Close()
	return read(f, filepath.Base(path))
}

// LoadNCF reads an NCF-format dataset: the training file, the test file
// (one held-out positive per user) and the negatives file (the same cases
// with their sampled negatives, line for line). It checks that the test and
// negatives files agree and that every user has at most one test case.
func LoadNCF(trainPath, testPath, negPath string) (*Dataset, error) {
	train, err := readFile(trainPath, ReadRatings)
	if err != nil {
		return nil, err
	}
	test, err := readFile(testPath, ReadRatings)
	if err != nil {
		return nil, err
	}
	cases, err := readFile(negPath, ReadNegatives)
	if err != nil {
		return nil, err
	}
	if len(train) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "%s: no interactions", filepath.Base(trainPath))
	}
	if len(cases) == 0 {
		return nil, lr.Errorf(lr.EINVALID, "%s: no test cases", filepath.Base(negPath))
	}
	if len(test) != len(cases) {
		return nil, lr.Errorf(lr.EINVALID, "%s has %d lines but %s has %d", filepath.Base(testPath), len(test), filepath.Base(negPath), len(cases))
	}
	seen := map[int32]bool{}
	for i, tc := range cases {
		if test[i].User != tc.User || test[i].Item != tc.Pos {
			return nil, lr.Errorf(lr.EINVALID, "%s:%d: (%d,%d) does not match %s line %d (%d %d)",
				filepath.Base(negPath), i+1, tc.User, tc.Pos, filepath.Base(testPath), i+1, test[i].User, test[i].Item)
		}
		if seen[tc.User] {
			return nil, lr.Errorf(lr.EINVALID, "%s:%d: user %d has a second test case", filepath.Base(negPath), i+1, tc.User)
		}
		seen[tc.User] = true
	}
	d := &Dataset{Name: strings.TrimSuffix(filepath.Base(trainPath), ".train.rating"), Train: train, Test: cases}
	d.NUsers, d.NItems = bounds(train, cases)
	return d, nil
}

func bounds(train []Interaction, cases []TestCase) (nu, ni int) {
	for _, x := range train {
		nu = max(nu, int(x.User)+1)
		ni = max(ni, int(x.Item)+1)
	}
	for _, tc := range cases {
		nu = max(nu, int(tc.User)+1)
		ni = max(ni, int(tc.Pos)+1)
		for _, it := range tc.Negatives {
			ni = max(ni, int(it)+1)
		}
	}
	return nu, ni
}

// ErrNoDatasets is returned by DatasetDir when the shared benchmark datasets
// are not on this machine.
var ErrNoDatasets = errors.New("shared datasets not found: expected ../shared/datasets next to the repository root (the folder holding go.mod)")

// DatasetDir finds the shared benchmark datasets: it walks up from the
// working directory to the folder holding go.mod and returns
// <that>/../shared/datasets if it exists, else ErrNoDatasets.
func DatasetDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			ds := filepath.Join(dir, "..", "shared", "datasets")
			if st, err := os.Stat(ds); err == nil && st.IsDir() {
				return filepath.Clean(ds), nil
			}
			return "", ErrNoDatasets
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoDatasets
		}
		dir = parent
	}
}

// LoadNamed loads the NCF-format dataset name (e.g. "ml-1m", "lastfm") from
// dir.
func LoadNamed(dir, name string) (*Dataset, error) {
	p := filepath.Join(dir, name)
	return LoadNCF(p+".train.rating", p+".test.rating", p+".test.negative")
}
