package augment

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/training/dataset"
)

// stats returns the mean of each channel and of the luma, the luma's
// standard deviation, and the mean spread max(RGB)-min(RGB) (a saturation
// measure).
func stats(img *image.RGBA) (mean [3]float64, luma, lumaStd, spread float64) {
	var sq float64
	n := 0
	for i := 0; i < len(img.Pix); i += 4 {
		r, g, b := float64(img.Pix[i]), float64(img.Pix[i+1]), float64(img.Pix[i+2])
		mean[0] += r
		mean[1] += g
		mean[2] += b
		y := wr*r + wg*g + wb*b
		luma += y
		sq += y * y
		spread += max(r, g, b) - min(r, g, b)
		n++
	}
	for c := range mean {
		mean[c] /= float64(n)
	}
	luma /= float64(n)
	return mean, luma, math.Sqrt(sq/float64(n) - luma*luma), spread / float64(n)
}

// colorOnly warps s 1:1 (no geometry) with the given colour factors.
func colorOnly(t *testing.T, s dataset.Sample, bright, contr, sat, hue float64) *image.RGBA {
	t.Helper()
	b := s.Image.Bounds()
	tr := LetterboxTransform(b.Dx(), b.Dy(), b.Dx(), b.Dy())
	ph := photoParams{color: true, bright: bright, contr: contr, sat: sat, hue: hue}
	var w warper
	return w.warp(s, tr, DefaultConfig(), &ph).Image
}

func TestColourMatrix(t *testing.T) {
	s := paintedSample(320, 180)
	// Keep values mid-range so that clamping does not bend the stats.
	for i := 0; i < len(s.Image.Pix); i += 4 {
		for c := range 3 {
			s.Image.Pix[i+c] = 64 + s.Image.Pix[i+c]/2
		}
	}
	m0, l0, sd0, sp0 := stats(s.Image)

	same := colorOnly(t, s, 1, 1, 1, 0)
	require.Equal(t, s.Image.Pix, same.Pix, "identity factors change nothing")

	_, l, _, _ := stats(colorOnly(t, s, 1.3, 1, 1, 0))
	require.InDelta(t, 1.3*l0, l, 0.5, "brightness scales the mean")
	_, l, _, _ = stats(colorOnly(t, s, 0.7, 1, 1, 0))
	require.InDelta(t, 0.7*l0, l, 0.5)

	_, l, sd, _ := stats(colorOnly(t, s, 1, 1.4, 1, 0))
	require.InDelta(t, 1.4*sd0, sd, 0.05*sd0, "contrast scales the spread about the mean")
	require.InDelta(t, l0, l, 1, "contrast keeps the mean")
	_, _, sd, _ = stats(colorOnly(t, s, 1, 0.6, 1, 0))
	require.InDelta(t, 0.6*sd0, sd, 0.05*sd0)

	_, l, _, sp := stats(colorOnly(t, s, 1, 1, 0, 0))
	require.Less(t, sp, 1.0, "saturation 0 leaves grey")
	require.InDelta(t, l0, l, 0.5, "saturation keeps luma")
	_, _, _, sp = stats(colorOnly(t, s, 1, 1, 1.3, 0))
	require.InDelta(t, 1.3*sp0, sp, 0.05*sp0)

	// A third of a turn sends red towards green or blue and keeps luma
	// close; the grey axis does not move.
	m, l, _, _ := stats(colorOnly(t, s, 1, 1, 1, 1.0/3))
	require.InDelta(t, l0, l, 2)
	require.Less(t, m[0], m0[0]-5, "red mean drops")
	grey := paintedSample(32, 16)
	for i := range grey.Image.Pix {
		if i%4 != 3 {
			grey.Image.Pix[i] = 100
		}
	}
	g := colorOnly(t, grey, 1, 1, 1, 0.2)
	for i := 0; i < len(g.Pix); i += 4 {
		require.InDelta(t, 100, int(g.Pix[i]), 1)
		require.InDelta(t, 100, int(g.Pix[i+1]), 1)
		require.InDelta(t, 100, int(g.Pix[i+2]), 1)
	}
}

func flat(w, h int, v uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = v
		if i%4 == 3 {
			img.Pix[i] = 255
		}
	}
	return img
}

func TestNoise(t *testing.T) {
	img := flat(256, 256, 128)
	addNoise(img, 8, rand.New(rand.NewPCG(1, 2)))
	m, _, _, _ := stats(img)
	var sq float64
	for i := 0; i < len(img.Pix); i += 4 {
		for c := range 3 {
			d := float64(img.Pix[i+c]) - 128
			sq += d * d
		}
	}
	std := math.Sqrt(sq / float64(len(img.Pix)/4*3))
	require.InDelta(t, 8, std, 0.3)
	for c := range 3 {
		require.InDelta(t, 128, m[c], 0.2)
	}
}

func totalVariation(img *image.RGBA) float64 {
	var tv float64
	for i := 4; i < len(img.Pix); i++ {
		if i%4 != 3 {
			tv += math.Abs(float64(img.Pix[i]) - float64(img.Pix[i-4]))
		}
	}
	return tv
}

func TestBlur(t *testing.T) {
	s := paintedSample(320, 180)
	addNoise(s.Image, 20, rand.New(rand.NewPCG(3, 3)))
	m0, _, _, _ := stats(s.Image)
	tv0 := totalVariation(s.Image)
	var sc blurScratch
	gaussianBlur(s.Image, 1, &sc)
	m, _, _, _ := stats(s.Image)
	for c := range 3 {
		require.InDelta(t, m0[c], m[c], 0.5, "blur keeps the mean")
	}
	require.Less(t, totalVariation(s.Image), tv0/2, "blur removes detail")

	img := flat(40, 30, 77)
	gaussianBlur(img, 2.5, &sc)
	require.Equal(t, flat(40, 30, 77).Pix, img.Pix, "weights sum to one")
}

func TestJPEG(t *testing.T) {
	s := paintedSample(320, 180)
	addNoise(s.Image, 10, rand.New(rand.NewPCG(4, 4)))
	before := append([]byte(nil), s.Image.Pix...)
	m0, _, _, _ := stats(s.Image)
	var ph photo
	require.NoError(t, ph.jpeg(s.Image, 30))
	changed := 0
	for i := range before {
		if before[i] != s.Image.Pix[i] {
			changed++
		}
	}
	require.Greater(t, changed, len(before)/2)
	m, _, _, _ := stats(s.Image)
	for c := range 3 {
		require.InDelta(t, m0[c], m[c], 3)
	}
	for i := 3; i < len(s.Image.Pix); i += 4 {
		require.Equal(t, uint8(255), s.Image.Pix[i])
	}
}

// TestPhotometricKeepsGeometry: with every photometric change on and the
// geometry fixed to a letterbox, labels match Letterbox's exactly.
func TestPhotometricKeepsGeometry(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FlipProb, cfg.CropProb, cfg.Translate, cfg.MaxRotateDeg = 0, 0, 0, 0
	cfg.ScaleMin, cfg.ScaleMax = 1, 1
	cfg.MinVisible, cfg.MinSide = 0, 0
	cfg.NoiseProb, cfg.BlurProb, cfg.JPEGProb = 1, 1, 1
	a, err := New(cfg)
	require.NoError(t, err)
	s := synthSample(t, 8, 12)
	ref, refT, err := Letterbox(s, 384, 224)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(9, 9))
	for range 4 {
		out, tr, err := a.Apply(s, rng, 384, 224)
		require.NoError(t, err)
		require.Equal(t, refT.A, tr.A)
		require.InDelta(t, refT.F, tr.F, 1e-9)
		require.Equal(t, ref.Objects, out.Objects)
		require.Equal(t, ref.Segmentation, out.Segmentation)
		require.NotEqual(t, ref.Image.Pix, out.Image.Pix)
	}
}
