#include "textflag.h"

// func dotRowsAVX2(q, base *float32, ids *uint32, n, rowBytes, dim int, out *float32, next *uint32)
//
// out[i] = q · row(ids[i]) for i < n, where row(id) starts rowBytes*id bytes
// after base and q and every row hold dim floats (dim a multiple of 16).
// Rows are fetched from memory at random: while row i is summed, row i+4 is
// prefetched (every cache line it touches), so the loads of several rows
// overlap instead of each waiting for the last. next, when not nil, is
// prefetched too (three cache lines from it): the caller's next link list.
TEXT ·dotRowsAVX2(SB), NOSPLIT, $0-64
	MOVQ q+0(FP), SI
	MOVQ base+8(FP), DI
	MOVQ ids+16(FP), BX
	MOVQ n+24(FP), CX
	MOVQ rowBytes+32(FP), R8
	MOVQ dim+40(FP), R9
	MOVQ out+48(FP), DX
	MOVQ next+56(FP), AX
	TESTQ AX, AX
	JZ   nonext
	PREFETCHT0 (AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 128(AX)
nonext:
	SHLQ $2, R9                  // R9 = dim in bytes
	TESTQ CX, CX
	JZ   done

	// Prefetch rows 0..3 (those that exist).
	XORQ R12, R12
pro:
	CMPQ R12, CX
	JGE  prodone
	CMPQ R12, $4
	JGE  prodone
	MOVL (BX)(R12*4), AX
	IMULQ R8, AX
	ADDQ DI, AX
	XORQ R10, R10
proline:
	PREFETCHT0 (AX)(R10*1)
	ADDQ $64, R10
	CMPQ R10, R9
	JLT  proline
	PREFETCHT0 -4(AX)(R9*1)
	INCQ R12
	JMP  pro
prodone:

	XORQ R12, R12                // i
row:
	// Prefetch row i+4.
	LEAQ 4(R12), R13
	CMPQ R13, CX
	JGE  nopf
	MOVL (BX)(R13*4), AX
	IMULQ R8, AX
	ADDQ DI, AX
	XORQ R10, R10
pfline:
	PREFETCHT0 (AX)(R10*1)
	ADDQ $64, R10
	CMPQ R10, R9
	JLT  pfline
	PREFETCHT0 -4(AX)(R9*1)
nopf:
	// Row i.
	MOVL (BX)(R12*4), AX
	IMULQ R8, AX
	ADDQ DI, AX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ R10, R10
sum:
	VMOVUPS (SI)(R10*1), Y2
	VMOVUPS 32(SI)(R10*1), Y3
	VFMADD231PS (AX)(R10*1), Y2, Y0
	VFMADD231PS 32(AX)(R10*1), Y3, Y1
	ADDQ $64, R10
	CMPQ R10, R9
	JLT  sum
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	MOVSS X0, (DX)(R12*4)
	INCQ R12
	CMPQ R12, CX
	JLT  row
	VZEROUPPER
done:
	RET
