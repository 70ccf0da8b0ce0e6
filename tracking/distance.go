package tracking

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// MatMul multiplies float32 matrices. Implementations may use any BLAS.
type MatMul interface {
	// MulT sets dst (m x n) to a (m x k) times the transpose of b (n x k),
	// all dense and row-major. The slices hold at least m*n, m*k and n*k
	// elements.
	MulT(dst, a, b []float32, m, n, k int)
}

// GonumMatMul is a [MatMul] on gonum's pure Go blas32 (Sgemm); it builds
// with CGO_ENABLED=0. By default it runs on the calling goroutine and does
// not allocate: it feeds gonum bands too small to be parallelised.
type GonumMatMul struct {
	// Parallel lets gonum split large products across goroutines (all
	// finished when MulT returns), which allocates about 160 times per
	// 50x100x50x256 product and did not help on a busy 2-core machine.
	Parallel bool
}

// serialRows is the largest row band for which gonum's Sgemm stays serial
// for bands of at most 64 columns (fewer than minParBlock = 4 blocks of 64x64).
const serialRows = 3 * 64

// MulT implements [MatMul].
func (g GonumMatMul) MulT(dst, a, b []float32, m, n, k int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		clear(dst[:m*n])
		return
	}
	if g.Parallel {
		gemmNT(dst, a, b, m, n, k)
		return
	}
	// Split into bands of rows of a and of b (columns of dst) small enough
	// that gonum does not start goroutines.
	for j0 := 0; j0 < n; j0 += 64 {
		nb := min(64, n-j0)
		for i0 := 0; i0 < m; i0 += serialRows {
			mb := min(serialRows, m-i0)
			blas32.Gemm(blas.NoTrans, blas.Trans, 1,
				blas32.General{Rows: mb, Cols: k, Stride: k, Data: a[i0*k : (i0+mb)*k]},
				blas32.General{Rows: nb, Cols: k, Stride: k, Data: b[j0*k : (j0+nb)*k]},
				0,
				blas32.General{Rows: mb, Cols: nb, Stride: n, Data: dst[i0*n+j0 : (i0+mb-1)*n+j0+nb]})
		}
	}
}

func gemmNT(dst, a, b []float32, m, n, k int) {
	blas32.Gemm(blas.NoTrans, blas.Trans, 1,
		blas32.General{Rows: m, Cols: k, Stride: k, Data: a[:m*k]},
		blas32.General{Rows: n, Cols: k, Stride: k, Data: b[:n*k]},
		0,
		blas32.General{Rows: m, Cols: n, Stride: n, Data: dst[:m*n]})
}

// NormalizeL2 scales v to unit Euclidean length in place. A zero or
// non-finite vector is left unchanged.
func NormalizeL2(v []float32) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	if !(s > 0) || math.IsInf(s, 0) {
		return
	}
	inv := float32(1 / math.Sqrt(s))
	for i := range v {
		v[i] *= inv
	}
}

// CosineDistance computes Deep SORT's nearest-neighbour cosine distance
// (nn_matching._nn_cosine_distance) between track galleries and detection
// features. It reuses a scratch buffer, so after the first call of a given
// size it does not allocate; it is not safe for concurrent use.
type CosineDistance struct {
	mm      MatMul
	scratch []float32
}

// NewCosineDistance returns a CosineDistance using mm for the matrix
// product; nil means OpenBLAS when built with cgo, else [GonumMatMul].
func NewCosineDistance(mm MatMul) *CosineDistance {
	if mm == nil {
		mm = defaultMatMul()
	}
	return &CosineDistance{mm: mm}
}

// Compute fills dst (len(counts) x nDets, row-major) with, for each track t
// and detection d, the minimum over the track's gallery features g of
// 1 - g·d. gallery holds the gallery features of all tracks one after the
// other, counts[t] rows of dim for track t; dets holds nDets rows of dim.
// All features must already be L2-normalised (see [NormalizeL2]), as the
// cosine is then a dot product. A track with an empty gallery gets +Inf,
// which [Assigner.Solve] treats as gated. dst is grown if too short and
// returned.
func (c *CosineDistance) Compute(dst []float64, gallery []float32, counts []int, dets []float32, nDets, dim int) ([]float64, error) {
	if nDets < 0 || dim < 0 {
		return dst, fmt.Errorf("cosine distance: negative size (%d detections, dim %d)", nDets, dim)
	}
	total := 0
	for t, n := range counts {
		if n < 0 {
			return dst, fmt.Errorf("cosine distance: track %d has negative gallery size %d", t, n)
		}
		total += n
	}
	if len(gallery) < total*dim {
		return dst, fmt.Errorf("cosine distance: gallery has %d values, want %d x %d", len(gallery), total, dim)
	}
	if len(dets) < nDets*dim {
		return dst, fmt.Errorf("cosine distance: detections have %d values, want %d x %d", len(dets), nDets, dim)
	}
	nt := len(counts)
	if cap(dst) < nt*nDets {
		dst = make([]float64, nt*nDets)
	}
	dst = dst[:nt*nDets]
	if nt == 0 || nDets == 0 {
		return dst, nil
	}
	if cap(c.scratch) < total*nDets {
		c.scratch = make([]float32, total*nDets)
	}
	dots := c.scratch[:total*nDets]
	c.mm.MulT(dots, gallery, dets, total, nDets, dim)

	row := 0
	for t, n := range counts {
		out := dst[t*nDets : (t+1)*nDets]
		if n == 0 {
			for d := range out {
				out[d] = math.Inf(1)
			}
			continue
		}
		// Max dot product over the gallery, i.e. min distance.
		best := dots[row*nDets : (row+1)*nDets]
		for g := 1; g < n; g++ {
			r := dots[(row+g)*nDets : (row+g+1)*nDets]
			for d, v := range r {
				// Skip NaN so one bad feature cannot poison a track.
				if v > best[d] || best[d] != best[d] {
					best[d] = v
				}
			}
		}
		for d, v := range best {
			out[d] = 1 - float64(v)
		}
		row += n
	}
	return dst, nil
}
