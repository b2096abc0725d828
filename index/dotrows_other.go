//go:build !amd64

package index

const hasDotRows = false

func dotRowsAVX2(q, base *float32, ids *uint32, n, rowBytes, dim int, out *float32, next *uint32) {
	panic("index: dotRowsAVX2 without amd64")
}
