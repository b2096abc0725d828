#include "textflag.h"

// func qdotAVX2(blocks *int8, scales *float32, nblocks, pairs int, q *int32, out, bmax *float32)
//
// For each block of 8 rows: for each pair of dimensions, sign-extend the 16
// bytes (8 rows × 2 values) to int16, multiply-add pairwise with the query's
// int16 pair broadcast to every lane (VPMADDWD), accumulate in int32 (four
// accumulators, 4 pairs per iteration), then convert to float32 and multiply
// by the rows' scales; also store each block's largest score in bmax.
TEXT ·qdotAVX2(SB), NOSPLIT, $0-56
	MOVQ blocks+0(FP), SI
	MOVQ scales+8(FP), R10
	MOVQ nblocks+16(FP), CX
	MOVQ pairs+24(FP), DX
	MOVQ q+32(FP), BX
	MOVQ out+40(FP), DI
	MOVQ bmax+48(FP), R11

block:
	TESTQ CX, CX
	JZ    done
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	MOVQ  BX, R8
	MOVQ  DX, R9

pair:
	VPMOVSXBW    (SI), Y4
	VPBROADCASTD (R8), Y5
	VPMADDWD     Y5, Y4, Y4
	VPADDD       Y4, Y0, Y0
	VPMOVSXBW    16(SI), Y6
	VPBROADCASTD 4(R8), Y7
	VPMADDWD     Y7, Y6, Y6
	VPADDD       Y6, Y1, Y1
	VPMOVSXBW    32(SI), Y8
	VPBROADCASTD 8(R8), Y9
	VPMADDWD     Y9, Y8, Y8
	VPADDD       Y8, Y2, Y2
	VPMOVSXBW    48(SI), Y10
	VPBROADCASTD 12(R8), Y11
	VPMADDWD     Y11, Y10, Y10
	VPADDD       Y10, Y3, Y3
	ADDQ         $64, SI
	ADDQ         $16, R8
	SUBQ         $4, R9
	JNZ          pair

	VPADDD    Y1, Y0, Y0
	VPADDD    Y3, Y2, Y2
	VPADDD    Y2, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VMULPS    (R10), Y0, Y0
	VMOVUPS   Y0, (DI)
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X1
	VPERMILPS    $0x4E, X1, X2
	VMAXPS       X2, X1, X1
	VPERMILPS    $0xB1, X1, X2
	VMAXPS       X2, X1, X1
	VMOVSS       X1, (R11)
	ADDQ         $4, R11
	ADDQ      $32, R10
	ADDQ      $32, DI
	DECQ      CX
	JMP       block

done:
	VZEROUPPER
	RET
