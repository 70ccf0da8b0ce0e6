//go:build !cgo

package openblas

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// SetThreads does nothing without cgo.
func SetThreads(int) {}

// Threads is 1 without cgo.
func Threads() int { return 1 }

// Implementation is gonum's BLAS when built without cgo.
type Implementation struct {
	gonum.Implementation
}

// MulT sets dst (m x n) to a (m x k) times the transpose of b (n x k).
func MulT(dst, a, b []float32, m, n, k int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(dst[:m*n])
		return
	}
	Implementation{}.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, a, k, b, k, 0, dst, n)
}
