package embed

import (
	"bytes"
	"encoding/binary"
	"io"
	"runtime"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// The stored formats of a NeuMF scorer (postgres.DB.PutModelScorer).
const (
	// ScorerFormat is what MarshalBinary writes: the streamer side and the
	// dense weights only. A user's weights are stored with the user's
	// vector (lr.Embedding.MLP beside Vec), and the scorer scores a user
	// given by them (IDScorer.ScoreOrdinalsFor), so its size does not grow
	// with the users.
	ScorerFormat = "neumf-v2"
	// ScorerFormatV1 is the legacy format (MarshalBinaryV1), which also
	// holds every user's id and weights (~0.5 KB per user). Versions
	// trained before neumf-v2 have it; it still decodes.
	ScorerFormatV1 = "neumf-v1"
)

// The magic bytes that start each format.
const (
	scorerMagicV1 = "LRNEUMF1"
	scorerMagicV2 = "LRNEUMF2"
)

// MarshalBinary encodes the scorer in ScorerFormat (the streamer ids and
// weights and the dense weights, no user) as little-endian binary, for
// storing with a model version.
func (s *IDScorer) MarshalBinary() ([]byte, error) {
	defer runtime.KeepAlive(s) // its streamer tables may lie outside the heap (see UnmarshalIDScorer)
	m := s.Model
	var b bytes.Buffer
	b.WriteString(scorerMagicV2)
	w := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	w(int64(m.NItems))
	w(int64(m.Dim))
	w(int64(len(m.Layers)))
	for _, l := range m.Layers {
		w(int64(l))
	}
	w(s.StreamIDs)
	for _, t := range [][]float32{m.QG, m.QM, m.Dense} {
		w(t)
	}
	return b.Bytes(), nil
}

// MarshalBinaryV1 encodes the full scorer, users included, in the legacy
// ScorerFormatV1: for tests and tools that must produce what older
// versions stored.
func (s *IDScorer) MarshalBinaryV1() ([]byte, error) {
	defer runtime.KeepAlive(s)
	m := s.Model
	var b bytes.Buffer
	b.WriteString(scorerMagicV1)
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

// UnmarshalIDScorer decodes what MarshalBinary or MarshalBinaryV1 wrote
// (told apart by their magic bytes), checking sizes, that ids are unique and
// that every weight is finite. A scorer decoded from the current format
// holds no user (HoldsUsers is false).
func UnmarshalIDScorer(data []byte) (*IDScorer, error) {
	var users bool
	switch {
	case bytes.HasPrefix(data, []byte(scorerMagicV2)):
	case bytes.HasPrefix(data, []byte(scorerMagicV1)):
		users = true
	default:
		return nil, badScorer("not a NeuMF scorer (bad magic)")
	}
	r := bytes.NewReader(data[len(scorerMagicV2):])
	var nu int64
	if users {
		if err := binary.Read(r, binary.LittleEndian, &nu); err != nil {
			return nil, badScorer("truncated header")
		}
	}
	var hdr [3]int64
	if err := binary.Read(r, binary.LittleEndian, &hdr); err != nil {
		return nil, badScorer("truncated header")
	}
	ni, dim, nl := hdr[0], hdr[1], hdr[2]
	if nu < 0 || ni < 0 || dim <= 0 || dim > 4096 || nl < 1 || nl > 16 || nu > 1<<31 || ni > 1<<31 {
		return nil, badScorer("implausible header")
	}
	layers := make([]int64, nl)
	if err := binary.Read(r, binary.LittleEndian, layers); err != nil {
		return nil, badScorer("truncated layers")
	}
	m := &NeuMF{NUsers: int(nu), NItems: int(ni), Dim: int(dim)}
	for _, l := range layers {
		if l <= 0 || l > 1<<16 {
			return nil, badScorer("implausible layer width")
		}
		m.Layers = append(m.Layers, int(l))
	}
	if m.Layers[0]%2 != 0 {
		return nil, badScorer("odd MLP input width")
	}
	e := int64(m.Layers[0] / 2)
	lo := newLayout(m.Dim, m.Layers)
	need := 8*(nu+ni) + 4*(nu*dim+ni*dim+nu*e+ni*e+int64(lo.size))
	if int64(r.Len()) != need {
		return nil, badScorer("size does not match its header")
	}
	userIDs, streamIDs := make([]int64, nu), make([]int64, ni)
	m.PG, m.PM = make([]float32, nu*dim), make([]float32, nu*e)
	// The streamer tables, the bulk of a serving scorer (~0.4 KB per
	// streamer at dim 64), lie outside the Go heap for as long as m (see
	// internal/offheap: the collector's target does not double them).
	m.QG, m.QM = offheap.Make[float32](m, int(ni*dim)), offheap.Make[float32](m, int(ni*e))
	m.Dense = make([]float32, lo.size)
	body := []any{streamIDs, m.QG, m.QM, m.Dense}
	if users {
		body = []any{userIDs, streamIDs, m.PG, m.QG, m.PM, m.QM, m.Dense}
	}
	for _, v := range body {
		if err := readChunked(r, v); err != nil {
			return nil, badScorer("truncated body")
		}
	}
	for _, t := range [][]float32{m.PG, m.QG, m.PM, m.QM, m.Dense} {
		if !finite32(t) {
			return nil, badScorer("non-finite weight")
		}
	}
	out := NewIDScorer(m, userIDs, streamIDs)
	if len(out.user) != len(userIDs) || len(out.streamer) != len(streamIDs) {
		return nil, badScorer("duplicate ids")
	}
	return out, nil
}

// readChunked reads v, a slice of int64 or float32, from r in pieces of
// 64 KiB, so that decoding a table does not allocate a buffer of its size.
func readChunked(r io.Reader, v any) error {
	const chunk = 16 << 10
	var err error
	switch t := v.(type) {
	case []int64:
		for i := 0; i < len(t) && err == nil; i += chunk {
			err = binary.Read(r, binary.LittleEndian, t[i:min(i+chunk, len(t))])
		}
	case []float32:
		for i := 0; i < len(t) && err == nil; i += chunk {
			err = binary.Read(r, binary.LittleEndian, t[i:min(i+chunk, len(t))])
		}
	default:
		panic("readChunked: unsupported type")
	}
	return err
}

func badScorer(what string) error { return lr.Errorf(lr.EINVALID, "NeuMF scorer: %s", what) }

// DecodeScorer decodes a stored scorer of the given format (ScorerFormat or
// the legacy ScorerFormatV1). It returns an EINVALID error for a format it
// does not know, for bytes of another format than the one named, and for
// bytes that UnmarshalIDScorer refuses.
func DecodeScorer(format string, data []byte) (*IDScorer, error) {
	var magic string
	switch format {
	case ScorerFormat:
		magic = scorerMagicV2
	case ScorerFormatV1:
		magic = scorerMagicV1
	default:
		return nil, lr.Errorf(lr.EINVALID, "NeuMF scorer: unknown format %q (want %q or %q)", format, ScorerFormat, ScorerFormatV1)
	}
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, badScorer("bytes are not of the named format " + format)
	}
	return UnmarshalIDScorer(data)
}
