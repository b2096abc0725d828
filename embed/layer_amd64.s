#include "textflag.h"

// func layerFMA(dst, src, wT, b *float32, n, pin, pout int)
//
// For each of n rows r: dst[r] = max(0, b + Σ_c src[r][c]·wT[c]), 8 output
// columns at a time; the sum over c runs in four accumulators (c mod 4) so
// that consecutive multiply-adds do not wait on each other. pin % 4 == 0,
// pout % 8 == 0, n > 0.
TEXT ·layerFMA(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ wT+16(FP), DX
	MOVQ b+24(FP), R8
	MOVQ n+32(FP), R9
	MOVQ pin+40(FP), R10
	MOVQ pout+48(FP), R12
	SHLQ $2, R12              // bytes in a row of wT and of dst
	VXORPS Y15, Y15, Y15

row:
	XORQ BX, BX               // byte offset of the column chunk

chunk:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	LEAQ   (DX)(BX*1), AX     // &wT[0][chunk]
	MOVQ   SI, CX             // &src[r][0]
	MOVQ   R10, R13

inner:
	VBROADCASTSS (CX), Y4
	VFMADD231PS  (AX), Y4, Y0
	ADDQ         R12, AX
	VBROADCASTSS 4(CX), Y5
	VFMADD231PS  (AX), Y5, Y1
	ADDQ         R12, AX
	VBROADCASTSS 8(CX), Y6
	VFMADD231PS  (AX), Y6, Y2
	ADDQ         R12, AX
	VBROADCASTSS 12(CX), Y7
	VFMADD231PS  (AX), Y7, Y3
	ADDQ         R12, AX
	ADDQ         $16, CX
	SUBQ         $4, R13
	JNZ          inner

	VADDPS  Y1, Y0, Y0
	VADDPS  Y3, Y2, Y2
	VADDPS  Y2, Y0, Y0
	VADDPS  (R8)(BX*1), Y0, Y0
	VMAXPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)(BX*1)
	ADDQ    $32, BX
	CMPQ    BX, R12
	JLT     chunk

	LEAQ (SI)(R10*4), SI
	ADDQ R12, DI
	DECQ R9
	JNZ  row

	VZEROUPPER
	RET
