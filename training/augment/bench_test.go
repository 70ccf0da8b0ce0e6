package augment

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/training/dataset"
)

// Benchmarks: a 1280x720 synth picture with 8 people and cars (masks,
// keypoints, class map) to a 384x224 network input.
func BenchmarkApply(b *testing.B) {
	s := synthSample(b, 8, 30)
	heavy := DefaultConfig()
	heavy.NoiseProb, heavy.BlurProb, heavy.JPEGProb = 1, 1, 1
	for _, bc := range []struct {
		name string
		cfg  Config
	}{
		{"default", DefaultConfig()},
		{"geometry", geometryOnly(DefaultConfig())},
		{"all-photometric", heavy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, err := New(bc.cfg)
			require.NoError(b, err)
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := a.Apply(s, rng, 384, 224); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("letterbox", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Letterbox(s, 384, 224); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkLetterboxVsPrep compares Letterbox (picture, class map, masks,
// boxes, keypoints) with inference/prep's Fill of the picture alone, the
// peer that feeds the models at inference.
func BenchmarkLetterboxVsPrep(b *testing.B) {
	s := synthSample(b, 8, 30)
	bd := s.Image.Bounds()
	f := frame.Frame{Width: bd.Dx(), Height: bd.Dy(), Format: frame.PixelFormatRGB24}
	f.Strides[0] = 3 * bd.Dx()
	f.Planes[0] = make([]byte, 3*bd.Dx()*bd.Dy())
	for i := range bd.Dx() * bd.Dy() {
		copy(f.Planes[0][3*i:3*i+3], s.Image.Pix[4*i:4*i+3])
	}
	b.Run("augment", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Letterbox(s, 384, 224); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("augment-picture-only", func(b *testing.B) {
		img := dataset.Sample{Image: s.Image}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := Letterbox(img, 384, 224); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("prep", func(b *testing.B) {
		spec := prep.Spec{Width: 384, Height: 224, Layout: prep.NCHW, Color: prep.RGB, Resize: prep.Letterbox, Pad: DefaultPad}
		dst := make([]float32, 384*224*3)
		var p prep.Preparer
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.Fill(dst, &f, spec); err != nil {
				b.Fatal(err)
			}
		}
	})
}
