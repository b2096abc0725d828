package index

import "golang.org/x/sys/cpu"

// hasVNNI selects the assembly kernel, and with it the 8-bit scan of the
// live matrix (without it the live matrix is scanned in float32 only).
var hasVNNI = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VNNI

// qdotVNNI is qdotGo in AVX-512 VNNI assembly (qdot_amd64.s). quads must be
// a multiple of 4; blocks, scales, bias and out hold nblocks blocks.
//
//go:noescape
func qdotVNNI(blocks *int8, scales *float32, bias *int32, nblocks, quads int, q *uint32, out, bmax *float32)

func qdot(data []int8, scales []float32, bias []int32, nb, quads int, qu []uint32, out, bmax []float32) {
	if !hasVNNI || quads%4 != 0 {
		qdotGo(data, scales, bias, nb, quads, qu, out, bmax)
		return
	}
	_ = data[nb*qBlock*4*quads-1]
	_ = scales[nb*qBlock-1]
	_ = bias[nb*qBlock-1]
	_ = out[nb*qBlock-1]
	_ = qu[quads-1]
	_ = bmax[nb-1]
	qdotVNNI(&data[0], &scales[0], &bias[0], nb, quads, &qu[0], &out[0], &bmax[0])
}
