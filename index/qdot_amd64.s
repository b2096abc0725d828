#include "textflag.h"

// func qdotVNNI(blocks *int8, scales *float32, bias *int32, nblocks, quads int, q *uint32, out, bmax *float32)
//
// For each block of 16 rows: for each group of 4 dimensions, multiply the
// query's 4 unsigned bytes (broadcast to every lane) with the 64 signed bytes
// of the block's 16 rows and add each lane's 4 products to its int32 sum
// (VPDPBUSD; four accumulators, 4 groups per iteration). Then subtract the
// rows' biases, convert to float32, multiply by the rows' scales, store the
// 16 scores and the largest of them in bmax.
TEXT ·qdotVNNI(SB), NOSPLIT, $0-64
	MOVQ blocks+0(FP), SI
	MOVQ scales+8(FP), R10
	MOVQ bias+16(FP), R12
	MOVQ nblocks+24(FP), CX
	MOVQ quads+32(FP), DX
	MOVQ q+40(FP), BX
	MOVQ out+48(FP), DI
	MOVQ bmax+56(FP), R11

block:
	TESTQ  CX, CX
	JZ     done
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	MOVQ   BX, R8
	MOVQ   DX, R9

quad:
	VPBROADCASTD (R8), Z4
	VPDPBUSD     (SI), Z4, Z0
	VPBROADCASTD 4(R8), Z5
	VPDPBUSD     64(SI), Z5, Z1
	VPBROADCASTD 8(R8), Z6
	VPDPBUSD     128(SI), Z6, Z2
	VPBROADCASTD 12(R8), Z7
	VPDPBUSD     192(SI), Z7, Z3
	ADDQ         $256, SI
	ADDQ         $16, R8
	SUBQ         $4, R9
	JNZ          quad

	VPADDD        Z1, Z0, Z0
	VPADDD        Z3, Z2, Z2
	VPADDD        Z2, Z0, Z0
	VPSUBD        (R12), Z0, Z0
	VCVTDQ2PS     Z0, Z0
	VMULPS        (R10), Z0, Z0
	VMOVUPS       Z0, (DI)
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y1
	VEXTRACTF128  $1, Y1, X2
	VMAXPS        X2, X1, X2
	VPERMILPS     $0x4E, X2, X3
	VMAXPS        X3, X2, X2
	VPERMILPS     $0xB1, X2, X3
	VMAXPS        X3, X2, X2
	VMOVSS        X2, (R11)
	ADDQ          $4, R11
	ADDQ          $64, R10
	ADDQ          $64, R12
	ADDQ          $64, DI
	DECQ          CX
	JMP           block

done:
	VZEROUPPER
	RET
