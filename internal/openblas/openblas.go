//go:build cgo

package openblas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// SetThreads sets how many threads OpenBLAS may use for one product (its
// default is one per core).
func SetThreads(n int) { C.openblas_set_num_threads(C.int(n)) }

// Threads reports how many threads OpenBLAS uses for one product.
func Threads() int { return int(C.openblas_get_num_threads()) }

// Implementation is gonum's BLAS with Sgemm and Dgemm on OpenBLAS. The zero
// value is ready to use and safe for concurrent use.
type Implementation struct {
	gonum.Implementation
}

var (
	_ blas.Float32 = Implementation{}
	_ blas.Float64 = Implementation{}
)

func trans(t blas.Transpose) (C.enum_CBLAS_TRANSPOSE, bool) {
	switch t {
	case blas.NoTrans:
		return C.CblasNoTrans, false
	case blas.Trans, blas.ConjTrans:
		return C.CblasTrans, true
	}
	panic(fmt.Sprintf("openblas: bad transpose %q", rune(t)))
}

// checkGemm panics, as gonum does, when the sizes do not fit the slices, so
// that C never reads or writes outside them.
func checkGemm(tA, tB bool, m, n, k, lda, lenA, ldb, lenB, ldc, lenC int) {
	rowsA, colsA := m, k
	if tA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if tB {
		rowsB, colsB = n, k
	}
	switch {
	case m < 0 || n < 0 || k < 0:
		panic(fmt.Sprintf("openblas: gemm: negative size %dx%dx%d", m, n, k))
	case lda < max(1, colsA) || ldb < max(1, colsB) || ldc < max(1, n):
		panic(fmt.Sprintf("openblas: gemm: bad leading dimensions %d, %d, %d", lda, ldb, ldc))
	case rowsA > 0 && colsA > 0 && lenA < (rowsA-1)*lda+colsA:
		panic("openblas: gemm: short A")
	case rowsB > 0 && colsB > 0 && lenB < (rowsB-1)*ldb+colsB:
		panic("openblas: gemm: short B")
	case m > 0 && n > 0 && lenC < (m-1)*ldc+n:
		panic("openblas: gemm: short C")
	}
}

// Sgemm computes c = alpha * op(a) * op(b) + beta * c, row-major, as
// [blas.Float32] specifies.
func (Implementation) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, isTA := trans(tA)
	tb, isTB := trans(tB)
	checkGemm(isTA, isTB, m, n, k, lda, len(a), ldb, len(b), ldc, len(c))
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k), C.float(alpha),
		(*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// Dgemm computes c = alpha * op(a) * op(b) + beta * c, row-major, as
// [blas.Float64] specifies.
func (Implementation) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	ta, isTA := trans(tA)
	tb, isTB := trans(tB)
	checkGemm(isTA, isTB, m, n, k, lda, len(a), ldb, len(b), ldc, len(c))
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	C.cblas_dgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k), C.double(alpha),
		(*C.double)(unsafe.Pointer(&a[0])), C.blasint(lda), (*C.double)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.double(beta), (*C.double)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// MulT sets dst (m x n) to a (m x k) times the transpose of b (n x k), all
// dense and row-major (the tracker's MatMul).
func MulT(dst, a, b []float32, m, n, k int) {
	Implementation{}.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, max(k, 1), b, max(k, 1), 0, dst, max(n, 1))
}
