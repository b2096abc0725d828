package embed_test

import (
	"bytes"
	"math"
	"strings"
	"testing"

	"github.com/liverecall/liverecall/embed"
)

// FuzzReadRatings: any file is read or refused with an error naming the
// file (and, for a bad line, the line) — never a panic; what is read has
// non-negative ids.
func FuzzReadRatings(f *testing.F) {
	for _, s := range []string{"0\t1\t5\t978300760\n1\t2\t3\n", "0\t1\n", "a\tb\n", "-1\t2\t1\n", "0 1 1\n", "\n\n0\t1\t1\t1\t1\n", "0\t99999999999999999999\t1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := embed.ReadRatings(bytes.NewReader(b), "ratings.txt")
		if err != nil {
			if !strings.Contains(err.Error(), "ratings.txt") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for _, it := range got {
			if it.User < 0 || it.Item < 0 {
				t.Fatalf("negative id read from %q: %+v", b, it)
			}
		}
	})
}

// FuzzReadVectorsCSV: any file is read into finite vectors of the asked
// dimension with unique ids, or refused with an error naming the file.
func FuzzReadVectorsCSV(f *testing.F) {
	for _, s := range []string{"id,v0,v1\n1,0.5,1\n2,-1,2\n", "1,0.5,1\n", "1,NaN,1\n", "1,0.5\n", "1,1,1\n1,2,2\n", "x,1,1\n", "1,1e40,1\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		vf, err := embed.ReadVectorsCSV(bytes.NewReader(b), "users.csv", 2)
		if err != nil {
			if !strings.Contains(err.Error(), "users.csv") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		seen := map[int64]bool{}
		for _, r := range vf.Rows {
			if len(r.Vec) != 2 || seen[r.ID] {
				t.Fatalf("%q: row %+v (dim or duplicate)", b, r)
			}
			seen[r.ID] = true
			for _, x := range r.Vec {
				if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
					t.Fatalf("%q: non-finite value accepted", b)
				}
			}
		}
	})
}
