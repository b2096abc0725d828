package index

import "github.com/viterin/vek/vek32"

// Dot returns the dot product of a and b (equal lengths) with the same SIMD
// kernel the index scores with, so callers above the index (recall) score
// candidates exactly as a search would.
func Dot(a, b []float32) float32 { return vek32.Dot(a, b) }
