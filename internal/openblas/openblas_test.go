package openblas

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = rng.Float32()*2 - 1
	}
	return s
}

// TestSgemmMatchesGonum: every transpose combination, with leading
// dimensions larger than the rows, alpha and beta, agrees with gonum.
func TestSgemmMatchesGonum(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tA := range []blas.Transpose{blas.NoTrans, blas.Trans} {
		for _, tB := range []blas.Transpose{blas.NoTrans, blas.Trans} {
			m, n, k := 7, 5, 9
			ra, ca := m, k
			if tA == blas.Trans {
				ra, ca = k, m
			}
			rb, cb := k, n
			if tB == blas.Trans {
				rb, cb = n, k
			}
			lda, ldb, ldc := ca+2, cb+1, n+3
			a, b := randSlice(rng, ra*lda), randSlice(rng, rb*ldb)
			c1 := randSlice(rng, m*ldc)
			c2 := append([]float32(nil), c1...)
			Implementation{}.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 2, c1, ldc)
			gonum.Implementation{}.Sgemm(tA, tB, m, n, k, 0.5, a, lda, b, ldb, 2, c2, ldc)
			require.InDeltaSlice(t, c2, c1, 1e-4, "tA %c tB %c", tA, tB)

			da, db := make([]float64, len(a)), make([]float64, len(b))
			for i, v := range a {
				da[i] = float64(v)
			}
			for i, v := range b {
				db[i] = float64(v)
			}
			d1, d2 := make([]float64, m*ldc), make([]float64, m*ldc)
			Implementation{}.Dgemm(tA, tB, m, n, k, 1, da, lda, db, ldb, 0, d1, ldc)
			gonum.Implementation{}.Dgemm(tA, tB, m, n, k, 1, da, lda, db, ldb, 0, d2, ldc)
			require.InDeltaSlice(t, d2, d1, 1e-9)
		}
	}
}

// TestSgemmRejectsShortSlices: sizes that do not fit the slices panic in Go
// instead of letting C read past them.
func TestSgemmRejectsShortSlices(t *testing.T) {
	a, b, c := make([]float32, 6), make([]float32, 6), make([]float32, 4)
	require.Panics(t, func() { MulT(c, a, b, 2, 2, 4) }, "a is 2x3, not 2x4")
	require.Panics(t, func() { MulT(c[:3], a, b, 2, 2, 3) })
	require.NotPanics(t, func() { MulT(c, a, b, 2, 2, 3) })
	require.NotPanics(t, func() { MulT(nil, nil, nil, 0, 0, 0) })
	c = []float32{1, 2, 3, 4}
	MulT(c, nil, nil, 2, 2, 0)
	require.Equal(t, []float32{0, 0, 0, 0}, c, "k = 0 gives zeros")
}

func benchSgemm(b *testing.B, impl blas.Float32, m, n, k int) {
	rng := rand.New(rand.NewPCG(1, 2))
	x, y, z := randSlice(rng, m*k), randSlice(rng, n*k), make([]float32, m*n)
	b.ReportAllocs()
	for b.Loop() {
		impl.Sgemm(blas.NoTrans, blas.Trans, m, n, k, 1, x, k, y, k, 0, z, n)
	}
	b.ReportMetric(float64(2*m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkSgemm is the tracker's dense product (5000x256 by 256x50) on
// OpenBLAS, and gonum's pure Go as the peer.
func BenchmarkSgemm(b *testing.B) {
	b.Run("openblas", func(b *testing.B) { benchSgemm(b, Implementation{}, 5000, 50, 256) })
	b.Run("gonum", func(b *testing.B) { benchSgemm(b, gonum.Implementation{}, 5000, 50, 256) })
}
