package index

import "github.com/viterin/vek/vek32"

// dotRows sets out[i] to q's dot product with row ids[i] of vecs (rows of
// stride floats, the first len(q) of each used), for i < len(ids). On amd64
// with AVX2 and FMA, when len(q) is a multiple of 16, one assembly call
// scores them all and prefetches the rows ahead of the sums (a beam search
// scores a node's neighbours together, and their rows lie anywhere in
// memory); elsewhere it is vek32.Dot per row. The two may differ in the last
// bits of a score (their sums are ordered differently). next, if not nil,
// is prefetched (the assembly only): the link list the caller reads next.
func dotRows(q, vecs []float32, stride int, ids []uint32, out []float32, next *uint32) {
	out = out[:len(ids)]
	if len(ids) == 0 {
		return
	}
	d := len(q)
	if hasDotRows && d%16 == 0 && d > 0 {
		n := len(vecs) / stride
		for _, id := range ids {
			if int(id) >= n {
				panic("index: dotRows: row out of range")
			}
		}
		dotRowsAVX2(&q[0], &vecs[0], &ids[0], len(ids), stride*4, d, &out[0], next)
		return
	}
	for i, id := range ids {
		o := int(id) * stride
		out[i] = vek32.Dot(q, vecs[o:o+d])
	}
}
