package embed

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
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
	return readIDScorer(bytes.NewReader(data), int64(len(data)), "", "")
}

// readIDScorer decodes a scorer of size bytes from r (UnmarshalIDScorer),
// of the format whose magic bytes are magic, named format ("": either). It reads r in
// pieces straight into the scorer's tables, so that a caller streaming
// the stored bytes (ReadScorer) never holds them whole beside the decoded
// tables. r's errors other than an early end are returned as they are.
func readIDScorer(r io.Reader, size int64, magic, format string) (*IDScorer, error) {
	d := &scorerDecoder{r: r}
	var got [len(scorerMagicV2)]byte
	if _, err := io.ReadFull(r, got[:]); err != nil {
		return nil, d.fail(err, "not a NeuMF scorer (bad magic)")
	}
	d.n = int64(len(got))
	var users bool
	switch string(got[:]) {
	case scorerMagicV2:
	case scorerMagicV1:
		users = true
	default:
		return nil, badScorer("not a NeuMF scorer (bad magic)")
	}
	if magic != "" && string(got[:]) != magic {
		return nil, badScorer("bytes are not of the named format " + format)
	}
	var nu [1]int64
	if users {
		if err := d.int64s(nu[:]); err != nil {
			return nil, d.fail(err, "truncated header")
		}
	}
	var hdr [3]int64
	if err := d.int64s(hdr[:]); err != nil {
		return nil, d.fail(err, "truncated header")
	}
	ni, dim, nl := hdr[0], hdr[1], hdr[2]
	if nu := nu[0]; nu < 0 || ni < 0 || dim <= 0 || dim > 4096 || nl < 1 || nl > 16 || nu > 1<<31 || ni > 1<<31 {
		return nil, badScorer("implausible header")
	}
	layers := make([]int64, nl)
	if err := d.int64s(layers); err != nil {
		return nil, d.fail(err, "truncated layers")
	}
	m := &NeuMF{NUsers: int(nu[0]), NItems: int(ni), Dim: int(dim)}
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
	need := 8*(nu[0]+ni) + 4*(nu[0]*dim+ni*dim+nu[0]*e+ni*e+int64(lo.size))
	if size-d.n != need {
		return nil, badScorer("size does not match its header")
	}
	userIDs, streamIDs := make([]int64, nu[0]), make([]int64, ni)
	m.PG, m.PM = make([]float32, nu[0]*dim), make([]float32, nu[0]*e)
	// The streamer tables, the bulk of a serving scorer (~0.4 KB per
	// streamer at dim 64), lie outside the Go heap for as long as m (see
	// internal/offheap: the collector's target does not double them).
	m.QG, m.QM = offheap.Make[float32](m, int(ni*dim)), offheap.Make[float32](m, int(ni*e))
	m.Dense = make([]float32, lo.size)
	ids, tables := [][]int64{streamIDs}, [][]float32{m.QG, m.QM, m.Dense}
	if users {
		ids, tables = [][]int64{userIDs, streamIDs}, [][]float32{m.PG, m.QG, m.PM, m.QM, m.Dense}
	}
	for _, v := range ids {
		if err := d.int64s(v); err != nil {
			return nil, d.fail(err, "truncated body")
		}
	}
	for _, t := range tables {
		if err := d.float32s(t); err != nil {
			return nil, d.fail(err, "truncated body")
		}
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

// scorerDecoder reads little-endian tables from r through one 64 KiB
// buffer (a table is never read into a buffer of its size).
type scorerDecoder struct {
	r   io.Reader
	n   int64 // bytes read
	buf []byte
}

// fail is the error of a read that failed: what as an EINVALID error for
// an early end, r's own error otherwise (e.g. the store's checksum).
func (d *scorerDecoder) fail(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return badScorer(what)
	}
	return err
}

// fill reads the next n (≤ 64 KiB) bytes into d.buf.
func (d *scorerDecoder) fill(n int) ([]byte, error) {
	if d.buf == nil {
		d.buf = make([]byte, 64<<10)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, err
	}
	d.n += int64(n)
	return b, nil
}

// int64s reads len(dst) int64s into dst.
func (d *scorerDecoder) int64s(dst []int64) error {
	for len(dst) > 0 {
		k := min(len(dst), 8<<10)
		b, err := d.fill(8 * k)
		if err != nil {
			return err
		}
		for i := range dst[:k] {
			dst[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
		}
		dst = dst[k:]
	}
	return nil
}

// float32s reads len(dst) float32s into dst.
func (d *scorerDecoder) float32s(dst []float32) error {
	for len(dst) > 0 {
		k := min(len(dst), 16<<10)
		b, err := d.fill(4 * k)
		if err != nil {
			return err
		}
		for i := range dst[:k] {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		dst = dst[k:]
	}
	return nil
}

func badScorer(what string) error { return lr.Errorf(lr.EINVALID, "NeuMF scorer: %s", what) }

// DecodeScorer decodes a stored scorer of the given format (ScorerFormat or
// the legacy ScorerFormatV1). It returns an EINVALID error for a format it
// does not know, for bytes of another format than the one named, and for
// bytes that UnmarshalIDScorer refuses.
func DecodeScorer(format string, data []byte) (*IDScorer, error) {
	return ReadScorer(format, int64(len(data)), bytes.NewReader(data))
}

// ReadScorer is DecodeScorer reading the scorer's size bytes from r as it
// decodes (postgres.DB.ReadModelScorer streams them), straight into the
// scorer's tables: it never holds the encoded scorer whole, only a 64 KiB
// piece of it. It reads exactly size bytes, unless it stops at an error;
// r's errors other than an early end (io.EOF, io.ErrUnexpectedEOF) are
// returned as they are.
func ReadScorer(format string, size int64, r io.Reader) (*IDScorer, error) {
	var magic string
	switch format {
	case ScorerFormat:
		magic = scorerMagicV2
	case ScorerFormatV1:
		magic = scorerMagicV1
	default:
		return nil, lr.Errorf(lr.EINVALID, "NeuMF scorer: unknown format %q (want %q or %q)", format, ScorerFormat, ScorerFormatV1)
	}
	return readIDScorer(r, size, magic, format)
}
