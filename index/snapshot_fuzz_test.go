package index

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	lr "github.com/liverecall/liverecall"
)

// FuzzReadSnapshot feeds ReadSnapshot corrupted snapshots whose checksum is
// made valid again, so corruption reaches the parser and the index it
// builds: a snapshot is refused with an error or loads into an index that
// answers searches — never a panic, never a huge allocation.
func FuzzReadSnapshot(f *testing.F) {
	const n, dim = 60, 4
	mv := lr.ModelVersion{ID: 5, Kind: lr.ModelMF, Version: "fz", Dim: dim}
	rng := rand.New(rand.NewPCG(1, 2))
	vecs := make([]float32, n*dim)
	for i := range vecs {
		vecs[i] = float32(rng.NormFloat64())
	}
	ids, ords := make([]int64, n), make([]uint32, n)
	o := lr.NewOrdinals()
	for i := range ids {
		ids[i] = int64(i + 1)
		ords[i] = o.Ordinal(lr.StreamerID(ids[i]))
	}
	x, err := New(context.Background(), mv, ids, ords, vecs, Params{Seed: 1, Workers: 1}, 0)
	if err != nil {
		f.Fatal(err)
	}
	SelfCheck(x, nil, 20, 10) // the snapshot holds a measured profile
	dir := f.TempDir()
	if err := WriteSnapshot(filepath.Join(dir, "seed"), x); err != nil {
		f.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(dir, "seed"))
	if err != nil {
		f.Fatal(err)
	}
	body := good[:len(good)-4]
	f.Add(body, uint(0), byte(0))
	f.Add(body, uint(40), byte(0xff))
	f.Add(body, uint(110), byte('1')) // in the profile's JSON
	f.Add(body, uint(len(body)/2), byte(7))
	f.Add(body[:len(body)/3], uint(0), byte(0))
	f.Fuzz(func(t *testing.T, b []byte, at uint, xor byte) {
		b = append([]byte(nil), b...)
		if len(b) > 0 {
			b[int(at%uint(len(b)))] ^= xor
		}
		sum := crc32.Checksum(b, castagnoli)
		b = binary.LittleEndian.AppendUint32(b, sum)
		path := filepath.Join(t.TempDir(), "snap")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSnapshot(path, mv, lr.NewOrdinals(), Params{}, 0)
		if err != nil {
			return
		}
		q := []float32{1, -1, 0.5, 2}
		for _, k := range []int{1, 10} {
			got.SearchWith(StrategyHNSW, q, k, 16, nil)
			got.SearchWith(StrategyExact, q, k, 16, nil)
		}
	})
}
