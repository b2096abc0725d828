package embed

import "golang.org/x/sys/cpu"

// hasFMA selects layerFMA for the NeuMF hidden layers at serving time.
var hasFMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// layerFMA is layerGo in AVX2 assembly (layer_amd64.s) for pin a multiple
// of 4 and pout a multiple of 8: for each of n rows, dst = max(0, b +
// src·wT), with fused multiply-adds (so the last bits can differ from
// layerGo's).
//
//go:noescape
func layerFMA(dst, src, wT, b *float32, n, pin, pout int)

// layer computes dst = relu(src·wT + b) for the rows of src (see layerGo).
func layer(dst, src, wT, b []float32, pin, pout int) {
	n := len(src) / pin
	if !hasFMA || n == 0 || pin%4 != 0 || pout%8 != 0 {
		layerGo(dst, src, wT, b, pin, pout)
		return
	}
	_, _, _ = dst[n*pout-1], wT[pin*pout-1], b[pout-1] // bounds, once
	layerFMA(&dst[0], &src[0], &wT[0], &b[0], n, pin, pout)
}
