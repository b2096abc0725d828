//go:build !amd64

package index

const hasVNNI = false

func qdot(data []int8, scales []float32, bias []int32, nb, quads int, qu []uint32, out, bmax []float32) {
	qdotGo(data, scales, bias, nb, quads, qu, out, bmax)
}
