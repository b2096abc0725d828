package index

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	lr "github.com/liverecall/liverecall"
)

func TestSnapshotRoundTripAndDamage(t *testing.T) {
	x, s := newTestIndex(t, 1500, 16, 100)
	x.Recall = 0.97
	path := filepath.Join(t.TempDir(), "mf.lrix")
	if err := WriteSnapshot(path, x); err != nil {
		t.Fatal(err)
	}
	// A fresh Ordinals maps the same streamer ids to different ordinals;
	// results must name the same streamers.
	ords := lr.NewOrdinals()
	ords.Ordinal(999999) // shift every ordinal by one
	y, err := ReadSnapshot(path, x.Model, ords, Params{}, 100)
	if err != nil {
		t.Fatal(err)
	}
	if y.Len() != x.Len() || y.Recall != 0.97 || y.Dim() != x.Dim() {
		t.Fatalf("loaded %d vectors, recall %v, dim %d", y.Len(), y.Recall, y.Dim())
	}
	for i := range 20 {
		q := s.Query(i)
		a, _, _ := x.Search(context.Background(), q, 10, 0, nil)
		b, _, _ := y.Search(context.Background(), q, 10, 0, nil)
		if len(a) != len(b) {
			t.Fatalf("query %d: %d vs %d hits", i, len(a), len(b))
		}
		for j := range a {
			ida := x.ids[x.nodeOf[a[j].Ord]]
			idb := y.ids[y.nodeOf[b[j].Ord]]
			if ida != idb || a[j].Score != b[j].Score {
				t.Fatalf("query %d hit %d: streamer %d (%v) before, %d (%v) after", i, j, ida, a[j].Score, idb, b[j].Score)
			}
		}
	}
	good, _ := os.ReadFile(path)
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		mv     func(lr.ModelVersion) lr.ModelVersion
		want   string
	}{
		{"flipped byte", func(b []byte) []byte { b[len(b)/3] ^= 1; return b }, nil, "checksum mismatch"},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }, nil, "inconsistent header"},
		{"cut before checksum", func(b []byte) []byte { return b[:len(b)-3] }, nil, "checksum"},
		{"tiny", func(b []byte) []byte { return b[:3] }, nil, "truncated"},
		{"bad magic", func(b []byte) []byte { copy(b, "XXXX"); return b }, nil, "not a format-2 or -3 index snapshot"},
		// A format from a later release is refused cleanly (rebuilt).
		{"format 4", func(b []byte) []byte { b[4] = 4; return b }, nil, "format 4)"},
		// Format 1 also held the user vectors: refused, so the index is
		// rebuilt (the manager logs why).
		{"format 1", func(b []byte) []byte { b[4] = 1; return b }, nil, "format 1, which held user vectors"},
		{"other version", nil, func(m lr.ModelVersion) lr.ModelVersion { m.ID, m.Version = 9, "t9"; return m }, "active is mf/t9 (id 9"},
		{"other dim", nil, func(m lr.ModelVersion) lr.ModelVersion { m.Dim = 8; return m }, "dim 8)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.lrix")
			b := slices.Clone(good)
			if tc.damage != nil {
				b = tc.damage(b)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			mv := x.Model
			if tc.mv != nil {
				mv = tc.mv(mv)
			}
			_, err := ReadSnapshot(p, mv, lr.NewOrdinals(), Params{}, 100)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want containing %q", err, tc.want)
			}
		})
	}
}
