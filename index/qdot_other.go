//go:build !amd64

package index

const hasAVX2 = false

func qdot(data []int8, scales []float32, nb, pairs int, qp []int32, out, bmax []float32) {
	qdotGo(data, scales, nb, pairs, qp, out, bmax)
}
