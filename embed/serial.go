package embed

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"

	lr "github.com/liverecall/liverecall"
)

// scorerMagic starts a serialized IDScorer (version 1).
const scorerMagic = "LRNEUMF1"

// MarshalBinary encodes the full NeuMF scorer (ids, every weight) as
// little-endian binary, for storing with a model version.
func (s *IDScorer) MarshalBinary() ([]byte, error) {
	m := s.Model
	var b bytes.Buffer
	b.WriteString(scorerMagic)
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	w(int64(m.NUsers))
	w(int64(m.NItems))
	w(int64(m.Dim))
	w(int64(len(m.Layers)))
	for _, l := range m.Layers {
		w(int64(l))
	}
	w(s.UserIDs)
	w(s.StreamIDs)
	for _, t := range [][]float32{m.PG, m.QG, m.PM, m.QM, m.Dense} {
		w(t)
	}
	return b.Bytes(), nil
}

// UnmarshalIDScorer decodes what MarshalBinary wrote, checking sizes and
// that every weight is finite.
func UnmarshalIDScorer(data []byte) (*IDScorer, error) {
	bad := func(what string) error { return lr.Errorf(lr.EINVALID, "NeuMF scorer: %s", what) }
	if !bytes.HasPrefix(data, []byte(scorerMagic)) {
		return nil, bad("not a version-1 scorer (bad magic)")
	}
	r := bytes.NewReader(data[len(scorerMagic):])
	var hdr [4]int64
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return nil, bad("truncated header")
	}
	nu, ni, dim, nl := hdr[0], hdr[1], hdr[2], hdr[3]
	if nu < 0 || ni < 0 || dim <= 0 || dim > 4096 || nl < 1 || nl > 16 || nu > 1<<31 || ni > 1<<31 {
		return nil, bad("implausible header")
	}
	layers := make([]int64, nl)
	if err := binary.Read(r, binary.LittleEndian, layers); err != nil {
		return nil, bad("truncated layers")
	}
	m := &NeuMF{NUsers: int(nu), NItems: int(ni), Dim: int(dim)}
	for _, l := range layers {
		if l <= 0 || l > 1<<16 {
			return nil, bad("implausible layer width")
		}
		m.Layers = append(m.Layers, int(l))
	}
	if m.Layers[0]%2 != 0 {
		return nil, bad("odd MLP input width")
	}
	e := int64(m.Layers[0] / 2)
	lo := newLayout(m.Dim, m.Layers)
	need := 8*(nu+ni) + 4*(nu*dim+ni*dim+nu*e+ni*e+int64(lo.size))
	if int64(r.Len()) != need {
		return nil, bad("size does not match its header")
	}
	s := &IDScorer{UserIDs: make([]int64, nu), StreamIDs: make([]int64, ni)}
	m.PG, m.QG = make([]float32, nu*dim), make([]float32, ni*dim)
	m.PM, m.QM = make([]float32, nu*e), make([]float32, ni*e)
	m.Dense = make([]float32, lo.size)
	for _, v := range []any{s.UserIDs, s.StreamIDs, m.PG, m.QG, m.PM, m.QM, m.Dense} {
		if err := binary.Read(r, binary.LittleEndian, v); err != nil && err != io.EOF {
			return nil, bad("truncated body")
		}
	}
	for _, t := range [][]float32{m.PG, m.QG, m.PM, m.QM, m.Dense} {
		for _, v := range t {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return nil, bad("non-finite weight")
			}
		}
	}
	out := NewIDScorer(m, s.UserIDs, s.StreamIDs)
	if len(out.user) != len(s.UserIDs) || len(out.streamer) != len(s.StreamIDs) {
		return nil, bad("duplicate ids")
	}
	return out, nil
}

// ScorerFormat names the encoding of MarshalBinary where a scorer is
// stored (postgres.DB.PutModelScorer).
const ScorerFormat = "neumf-v1"

// DecodeScorer decodes a stored scorer of the given format. It returns an
// EINVALID error for a format it does not know and for bytes that
// UnmarshalIDScorer refuses.
func DecodeScorer(format string, data []byte) (*IDScorer, error) {
	if format != ScorerFormat {
		return nil, lr.Errorf(lr.EINVALID, "NeuMF scorer: unknown format %q (want %q)", format, ScorerFormat)
	}
	return UnmarshalIDScorer(data)
}
