//go:build !amd64

package embed

const hasFMA = false

func layer(dst, src, wT, b []float32, pin, pout int) { layerGo(dst, src, wT, b, pin, pout) }
