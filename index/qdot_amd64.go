package index

import "golang.org/x/sys/cpu"

// hasAVX2 selects the assembly kernel; tests switch it off to compare.
var hasAVX2 = cpu.X86.HasAVX2

// qdotAVX2 is qdotGo in AVX2 assembly (qdot_amd64.s). pairs must be a
// multiple of 4; blocks, scales and out hold nblocks blocks.
//
//go:noescape
func qdotAVX2(blocks *int8, scales *float32, nblocks, pairs int, q *int32, out, bmax *float32)

func qdot(data []int8, scales []float32, nb, pairs int, qp []int32, out, bmax []float32) {
	if !hasAVX2 || pairs%4 != 0 {
		qdotGo(data, scales, nb, pairs, qp, out, bmax)
		return
	}
	_ = data[nb*qBlock*2*pairs-1]
	_ = scales[nb*qBlock-1]
	_ = out[nb*qBlock-1]
	_ = qp[pairs-1]
	_ = bmax[nb-1]
	qdotAVX2(&data[0], &scales[0], nb, pairs, &qp[0], &out[0], &bmax[0])
}
