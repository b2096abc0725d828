package index

import "golang.org/x/sys/cpu"

var hasDotRows = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// dotRowsAVX2 is dotRows in AVX2/FMA assembly (dotrows_amd64.s); dim must
// be a multiple of 16.
//
//go:noescape
func dotRowsAVX2(q, base *float32, ids *uint32, n, rowBytes, dim int, out *float32, next *uint32)
