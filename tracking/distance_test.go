package tracking

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// randomFeatures returns n L2-normalised random features of length dim.
func randomFeatures(rng *rand.Rand, n, dim int) []float32 {
	f := make([]float32, n*dim)
	for i := range f {
		f[i] = float32(rng.NormFloat64())
	}
	for i := 0; i < n; i++ {
		NormalizeL2(f[i*dim : (i+1)*dim])
	}
	return f
}

// naiveCosine is Deep SORT's _nn_cosine_distance in float64 with explicit
// normalisation: 1 - cos, minimum over each track's gallery.
func naiveCosine(gallery []float32, counts []int, dets []float32, nDets, dim int) []float64 {
	out := make([]float64, len(counts)*nDets)
	row := 0
	norm := func(v []float32) float64 {
		var s float64
		for _, x := range v {
			s += float64(x) * float64(x)
		}
		return math.Sqrt(s)
	}
	for t, n := range counts {
		for d := 0; d < nDets; d++ {
			dv := dets[d*dim : (d+1)*dim]
			best := math.Inf(1)
			for g := 0; g < n; g++ {
				gv := gallery[(row+g)*dim : (row+g+1)*dim]
				var dot float64
				for i := range gv {
					dot += float64(gv[i]) * float64(dv[i])
				}
				best = math.Min(best, 1-dot/(norm(gv)*norm(dv)))
			}
			out[t*nDets+d] = best
		}
		row += n
	}
	return out
}

func TestCosineDistanceMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	cd := NewCosineDistance(nil)
	var dst []float64
	for trial := 0; trial < 20; trial++ {
		nt, nDets, dim := rng.IntN(8), rng.IntN(9), 1+rng.IntN(300)
		counts := make([]int, nt)
		total := 0
		for i := range counts {
			counts[i] = 1 + rng.IntN(12)
			total += counts[i]
		}
		gallery := randomFeatures(rng, total, dim)
		dets := randomFeatures(rng, nDets, dim)
		if nt > 0 && nDets > 0 {
			// An exact copy of a detection in a gallery gives distance 0.
			copy(gallery[:dim], dets[:dim])
		}
		var err error
		dst, err = cd.Compute(dst, gallery, counts, dets, nDets, dim)
		require.NoError(t, err)
		want := naiveCosine(gallery, counts, dets, nDets, dim)
		require.Len(t, dst, len(want))
		for i := range want {
			require.InDelta(t, want[i], dst[i], 1e-5, "trial %d entry %d", trial, i)
		}
		if nt > 0 && nDets > 0 {
			require.InDelta(t, 0, dst[0], 1e-6)
		}
	}
}

func TestCosineDistanceLargeBands(t *testing.T) {
	// Sizes beyond one 192x64 band, so that the serial banding and gonum's
	// parallel path are both exercised.
	rng := rand.New(rand.NewPCG(4, 2))
	counts := []int{150, 1, 100, 37}
	gallery := randomFeatures(rng, 288, 33)
	dets := randomFeatures(rng, 70, 33)
	want := naiveCosine(gallery, counts, dets, 70, 33)
	for _, mm := range []MatMul{GonumMatMul{}, GonumMatMul{Parallel: true}} {
		got, err := NewCosineDistance(mm).Compute(nil, gallery, counts, dets, 70, 33)
		require.NoError(t, err)
		require.Len(t, got, len(want))
		for i := range want {
			require.InDelta(t, want[i], got[i], 1e-5, "%T %v entry %d", mm, mm, i)
		}
	}
}

func TestCosineDistanceEdgeCases(t *testing.T) {
	cd := NewCosineDistance(GonumMatMul{})
	dets := []float32{1, 0, 0, 1}
	gallery := []float32{0, 1}
	dst, err := cd.Compute(nil, gallery, []int{0, 1}, dets, 2, 2)
	require.NoError(t, err)
	require.True(t, math.IsInf(dst[0], 1))
	require.True(t, math.IsInf(dst[1], 1))
	require.InDelta(t, 1, dst[2], 1e-7)
	require.InDelta(t, 0, dst[3], 1e-7)

	_, err = cd.Compute(nil, gallery, []int{2}, dets, 2, 2)
	require.Error(t, err)
	_, err = cd.Compute(nil, gallery, []int{-1}, dets, 2, 2)
	require.Error(t, err)
	_, err = cd.Compute(nil, gallery, []int{1}, dets, 3, 2)
	require.Error(t, err)
	_, err = cd.Compute(nil, gallery, []int{1}, dets, -1, 2)
	require.Error(t, err)

	dst, err = cd.Compute(nil, gallery, []int{1}, nil, 0, 2)
	require.NoError(t, err)
	require.Empty(t, dst)
}

func TestNormalizeL2(t *testing.T) {
	v := []float32{3, 4}
	NormalizeL2(v)
	require.InDelta(t, 0.6, v[0], 1e-7)
	require.InDelta(t, 0.8, v[1], 1e-7)
	z := []float32{0, 0}
	NormalizeL2(z)
	require.Equal(t, []float32{0, 0}, z)
}

// deepSORTSize is the per-frame appearance product of the issue: 50 tracks
// with 100 gallery features each against 50 detections, 256-d features.
const (
	benchTracks  = 50
	benchGallery = 100
	benchDets    = 50
	benchDim     = 256
)

func benchCosine(b *testing.B) (*CosineDistance, []float32, []int, []float32) {
	rng := rand.New(rand.NewPCG(1, 1))
	counts := make([]int, benchTracks)
	for i := range counts {
		counts[i] = benchGallery
	}
	return NewCosineDistance(nil), randomFeatures(rng, benchTracks*benchGallery, benchDim), counts, randomFeatures(rng, benchDets, benchDim)
}

func TestCosineDistanceNoAllocs(t *testing.T) {
	cd, gallery, counts, dets := benchCosine(nil)
	counts = counts[:5]
	dst := make([]float64, len(counts)*benchDets)
	allocs := testing.AllocsPerRun(5, func() {
		dst, _ = cd.Compute(dst, gallery, counts, dets, benchDets, benchDim)
	})
	require.Zero(t, allocs)
}

// BenchmarkCosineDistance is the product (50 galleries of 100
// times 50 detections, 256-d: 64 M multiply-adds) on each MatMul: the
// default (OpenBLAS with cgo), gonum serial and gonum parallel.
func BenchmarkCosineDistance(b *testing.B) {
	for _, mm := range []struct {
		name string
		mm   MatMul
	}{{"default", nil}, {"gonum", GonumMatMul{}}, {"gonum-parallel", GonumMatMul{Parallel: true}}} {
		b.Run(mm.name, func(b *testing.B) {
			_, gallery, counts, dets := benchCosine(b)
			cd := NewCosineDistance(mm.mm)
			dst := make([]float64, benchTracks*benchDets)
			b.ReportAllocs()
			for b.Loop() {
				dst, _ = cd.Compute(dst, gallery, counts, dets, benchDets, benchDim)
			}
		})
	}
}

func TestGonumMatMulDegenerate(t *testing.T) {
	dst := []float32{7, 7}
	GonumMatMul{}.MulT(dst, nil, nil, 1, 2, 0)
	require.Equal(t, []float32{0, 0}, dst)
	GonumMatMul{}.MulT(nil, nil, nil, 0, 2, 3) // must not panic
}
