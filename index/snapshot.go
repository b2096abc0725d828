package index

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	lr "github.com/liverecall/liverecall"
	"github.com/liverecall/liverecall/internal/offheap"
)

// Snapshot file format (little-endian), version snapshotFormat:
//
//	magic "LRIX" | format u32 | kind, version (u16 length + bytes) | model id i64 |
//	dim, M, M0, efSearch, maxLevel, entry u32 | n, upper u64 |
//	self-check recall f64 | build ns i64 |
//	profile length u32 | profile (JSON of Profile; length 0: none) |
//	streamer ids [n]i64 | vectors [n*(dim+1)]f32 | levels [n]u8 |
//	layer 0 [n*(M0+1)]u32 | upper offsets [n]i64 | upper [upper]u32 |
//	CRC-32C of all the above u32
//
// Ordinals are not stored: they are process-local, so a load maps the
// streamer ids through the current Ordinals. Format 1 also held the
// version's user vectors; they are read from the user store now, so a
// format-1 snapshot is refused (and the index rebuilt from the store).
// Format 2 had no profile: it still loads, and its index plans by the
// fixed threshold until the next build measures one.
const (
	snapshotMagic  = "LRIX"
	snapshotFormat = 3
	// maxProfileBytes bounds the profile section (a few kilobytes).
	maxProfileBytes = 1 << 16
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WriteSnapshot writes x to path atomically (a temporary file renamed over
// path). x is only read.
func WriteSnapshot(path string, x *Index) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// The graph's arrays live as long as x (see Graph): hold it until
	// they are written.
	defer runtime.KeepAlive(x)
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	w := &binWriter{w: bw}
	g := x.graph
	w.bytes([]byte(snapshotMagic))
	w.u32(snapshotFormat)
	w.str(string(x.Model.Kind))
	w.str(x.Model.Version)
	w.put(x.Model.ID)
	for _, v := range []int{g.dim, g.m, g.m0, g.efSearch, g.maxLevel, int(g.entry)} {
		w.u32(uint32(v))
	}
	for _, v := range []int{g.n, len(g.upper)} {
		w.put(uint64(v))
	}
	w.put(x.Recall)
	w.put(int64(x.BuiltIn))
	var prof []byte
	if x.profile != nil {
		if prof, err = json.Marshal(x.profile); err != nil {
			return err
		}
	}
	w.u32(uint32(len(prof)))
	w.bytes(prof)
	w.put(x.ids)
	w.put(fileRows{g.vecs, g.dim, g.stride})
	w.put(g.levels)
	w.put(g.layer0)
	w.put(g.upperOff)
	w.put(g.upper)
	if w.err != nil {
		return w.err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := binary.Write(f, binary.LittleEndian, crc.Sum32()); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// ReadSnapshot loads the snapshot at path if it holds model version mv
// (same id, kind, version label and dimension) in the current format with
// a valid checksum; otherwise it returns an error saying why. Streamer ids
// are mapped through ords. params supplies only the default EfSearch.
func ReadSnapshot(path string, mv lr.ModelVersion, ords *lr.Ordinals, params Params, exactThreshold int) (*Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() < 8 {
		return nil, fmt.Errorf("snapshot %s: truncated (%d bytes)", path, fi.Size())
	}
	crc := crc32.New(castagnoli)
	r := &binReader{r: bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, fi.Size()-4), crc), 1<<20)}
	magic := r.bytes(4)
	format := r.u32()
	if r.err == nil && string(magic) == snapshotMagic && format == 1 {
		return nil, fmt.Errorf("snapshot %s is format 1, which held user vectors (now read from the user store); format %d is current", path, snapshotFormat)
	}
	if r.err == nil && (string(magic) != snapshotMagic || format < 2 || format > snapshotFormat) {
		return nil, fmt.Errorf("snapshot %s: not a format-2 or -%d index snapshot (magic %q, format %d)", path, snapshotFormat, magic, format)
	}
	kind, version := r.str(), r.str()
	var id int64
	r.get(&id)
	var hdr [6]uint32
	for i := range hdr {
		hdr[i] = r.u32()
	}
	var n, upper uint64
	r.get(&n)
	r.get(&upper)
	if r.err != nil {
		return nil, fmt.Errorf("snapshot %s: header: %w", path, r.err)
	}
	dim := int(hdr[0])
	if id != mv.ID || kind != string(mv.Kind) || version != mv.Version || dim != mv.Dim {
		return nil, fmt.Errorf("snapshot %s holds %s/%s (id %d, dim %d), active is %s/%s (id %d, dim %d)",
			path, kind, version, id, dim, mv.Kind, mv.Version, mv.ID, mv.Dim)
	}
	m, m0 := int(hdr[1]), int(hdr[2])
	if n > 1<<31 || upper > 1<<40 || m > 1<<10 {
		return nil, fmt.Errorf("snapshot %s: inconsistent header (n %d, upper %d, M %d)", path, n, upper, m)
	}
	// Bound the sizes by the file size before allocating.
	need := n*8 + n*uint64(dim+1)*4 + n + n*uint64(m0+1)*4 + n*8 + upper*4
	if m <= 0 || m0 != 2*m || dim <= 0 || need > uint64(fi.Size()) || hdr[5] >= uint32(max(n, 1)) {
		return nil, fmt.Errorf("snapshot %s: inconsistent header (n %d, dim %d, M %d, M0 %d)", path, n, dim, m, m0)
	}
	x := &Index{Model: mv}
	r.get(&x.Recall)
	var built int64
	r.get(&built)
	x.BuiltIn = time.Duration(built)
	var prof *Profile
	if format >= 3 {
		pn := r.u32()
		if r.err == nil && (pn > maxProfileBytes || uint64(pn) > uint64(fi.Size())) {
			return nil, fmt.Errorf("snapshot %s: profile of %d bytes", path, pn)
		}
		if b := r.bytes(int(pn)); r.err == nil && pn > 0 {
			prof = new(Profile)
			if err := json.Unmarshal(b, prof); err != nil {
				return nil, fmt.Errorf("snapshot %s: profile: %w", path, err)
			}
			if err := prof.check(); err != nil {
				return nil, fmt.Errorf("snapshot %s: profile: %w", path, err)
			}
		}
	}
	g := &Graph{n: int(n), dim: dim, stride: dim, bdim: dim, m: m, m0: m0, efSearch: int(hdr[3]), maxLevel: int(hdr[4]), entry: hdr[5]}
	if params.EfSearch > 0 {
		g.efSearch = params.EfSearch
	}
	x.ids = make([]int64, n)
	g.vecs = offheap.Make[float32](g, int(n*uint64(g.stride)))
	g.levels = offheap.Make[uint8](g, int(n))
	g.layer0 = offheap.Make[uint32](g, int(n*uint64(m0+1)))
	g.upperOff = offheap.Make[int64](g, int(n))
	g.upper = offheap.Make[uint32](g, int(upper))
	for _, dst := range []any{x.ids, fileRows{g.vecs, dim, dim}, g.levels, g.layer0, g.upperOff, g.upper} {
		r.get(dst)
	}
	if r.err != nil {
		return nil, fmt.Errorf("snapshot %s: body: %w", path, r.err)
	}
	if _, err := r.r.Peek(1); err != io.EOF {
		return nil, fmt.Errorf("snapshot %s: trailing bytes before the checksum", path)
	}
	var sum uint32
	if err := binary.Read(f, binary.LittleEndian, &sum); err != nil {
		return nil, fmt.Errorf("snapshot %s: checksum: %w", path, err)
	}
	if sum != crc.Sum32() {
		return nil, fmt.Errorf("snapshot %s: checksum mismatch (file %08x, computed %08x): corrupt", path, sum, crc.Sum32())
	}
	// Structural checks: links and offsets in range, so a bad file cannot
	// make a search panic.
	for _, l := range g.levels {
		if int(l) >= maxLevels {
			return nil, fmt.Errorf("snapshot %s: level %d out of range", path, l)
		}
	}
	// Searches start at the entry on the top level: it must be there.
	if g.maxLevel < 0 || g.maxLevel >= maxLevels || (g.n > 0 && int(g.levels[g.entry]) != g.maxLevel) {
		return nil, fmt.Errorf("snapshot %s: top level %d does not match the entry node", path, g.maxLevel)
	}
	for i := range g.n {
		if err := g.checkNode(uint32(i)); err != nil {
			return nil, fmt.Errorf("snapshot %s: %w", path, err)
		}
	}
	g.labels = make([]uint32, n)
	for i, sid := range x.ids {
		g.labels[i] = ords.Ordinal(lr.StreamerID(sid))
	}
	y := assemble(mv, g, x.ids, exactThreshold, params.withDefaults().RecallTarget)
	y.Recall, y.BuiltIn = x.Recall, x.BuiltIn
	y.setProfile(prof)
	return y, nil
}

func (g *Graph) checkNode(v uint32) error {
	lv := int(g.levels[v])
	if lv > g.maxLevel {
		return fmt.Errorf("node %d: level %d above the top %d", v, lv, g.maxLevel)
	}
	if lv > 0 {
		off := g.upperOff[v]
		if off < 0 || off+int64(lv*(g.m+1)) > int64(len(g.upper)) {
			return fmt.Errorf("node %d: upper offset %d out of range", v, off)
		}
	}
	for l := 0; l <= lv; l++ {
		var c, nrep uint32
		if l == 0 {
			c = g.layer0[int(v)*(g.m0+1)]
			c, nrep = c&(1<<repairShift-1), c>>repairShift
		} else {
			c = g.upper[int(g.upperOff[v])+(l-1)*(g.m+1)]
		}
		if int(c) > g.maxLinks(l) || nrep > c {
			return fmt.Errorf("node %d layer %d: %d links (%d repair)", v, l, c, nrep)
		}
		for _, nb := range g.links(v, l) {
			if int(nb) >= g.n || int(g.levels[nb]) < l {
				return fmt.Errorf("node %d layer %d: bad link %d", v, l, nb)
			}
		}
	}
	return nil
}

type binWriter struct {
	w   io.Writer
	err error
}

// put writes a fixed-size value or a slice (big slices in chunks, so no
// full-size second buffer is made).
func (w *binWriter) put(v any) {
	if w.err != nil {
		return
	}
	const chunk = 1 << 16
	switch s := v.(type) {
	case []float32:
		w.err = writeChunks(w.w, s, chunk)
	case fileRows:
		w.err = s.write(w.w, chunk)
	case []uint32:
		w.err = writeChunks(w.w, s, chunk)
	case []int64:
		w.err = writeChunks(w.w, s, chunk)
	default:
		w.err = binary.Write(w.w, binary.LittleEndian, v)
	}
}

func writeChunks[T float32 | uint32 | int64](w io.Writer, s []T, chunk int) error {
	for len(s) > 0 {
		n := min(chunk, len(s))
		if err := binary.Write(w, binary.LittleEndian, s[:n]); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}
func (w *binWriter) u32(v uint32) { w.put(v) }
func (w *binWriter) bytes(b []byte) {
	if w.err == nil {
		_, w.err = w.w.Write(b)
	}
}
func (w *binWriter) str(s string) {
	w.put(uint16(len(s)))
	w.bytes([]byte(s))
}

type binReader struct {
	r   *bufio.Reader
	err error
}

// get reads into a pointer to a fixed-size value or a slice, in chunks so
// that big slices do not need a second full-size buffer.
func (r *binReader) get(v any) {
	if r.err != nil {
		return
	}
	const chunk = 1 << 16
	switch s := v.(type) {
	case []float32:
		r.err = readChunks(r.r, s, chunk)
	case fileRows:
		r.err = s.read(r.r, chunk)
	case []uint32:
		r.err = readChunks(r.r, s, chunk)
	case []int64:
		r.err = readChunks(r.r, s, chunk)
	case []uint8:
		_, r.err = io.ReadFull(r.r, s)
	default:
		r.err = binary.Read(r.r, binary.LittleEndian, v)
	}
	if errors.Is(r.err, io.EOF) {
		r.err = io.ErrUnexpectedEOF
	}
}

func readChunks[T float32 | uint32 | int64](r io.Reader, s []T, chunk int) error {
	for len(s) > 0 {
		n := min(chunk, len(s))
		if err := binary.Read(r, binary.LittleEndian, s[:n]); err != nil {
			return err
		}
		s = s[n:]
	}
	return nil
}

func (r *binReader) u32() uint32 {
	var v uint32
	r.get(&v)
	return v
}
func (r *binReader) bytes(n int) []byte {
	b := make([]byte, n)
	if r.err == nil {
		_, r.err = io.ReadFull(r.r, b)
	}
	return b
}
func (r *binReader) str() string {
	var n uint16
	r.get(&n)
	return string(r.bytes(int(n)))
}

// fileRows is a graph's vectors (rows of stride floats, dim used) as the
// file holds them: rows of dim+1 floats, the last the augmented component
// when the graph has one (stride dim+1), else 0. A graph without
// augmentation keeps rows of dim floats in memory, so a row of dim 64
// fills four cache lines instead of five.
type fileRows struct {
	vecs        []float32
	dim, stride int
}

func (f fileRows) write(w io.Writer, chunk int) error {
	if f.stride == f.dim+1 {
		return writeChunks(w, f.vecs, chunk)
	}
	rows := max(1, chunk/(f.dim+1))
	buf := make([]float32, 0, rows*(f.dim+1))
	for o := 0; o < len(f.vecs); o += f.stride {
		buf = append(buf, f.vecs[o:o+f.dim]...)
		buf = append(buf, 0)
		if len(buf) == cap(buf) || o+f.stride >= len(f.vecs) {
			if err := binary.Write(w, binary.LittleEndian, buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	return nil
}

func (f fileRows) read(r io.Reader, chunk int) error {
	rows := max(1, chunk/(f.dim+1))
	buf := make([]float32, rows*(f.dim+1))
	for o := 0; o < len(f.vecs); {
		nr := min(rows, (len(f.vecs)-o)/f.stride)
		b := buf[:nr*(f.dim+1)]
		if err := binary.Read(r, binary.LittleEndian, b); err != nil {
			return err
		}
		for i := range nr {
			copy(f.vecs[o:o+f.dim], b[i*(f.dim+1):])
			o += f.stride
		}
	}
	return nil
}
