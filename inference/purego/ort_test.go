//go:build cgo

package purego

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// Tolerance is the largest difference allowed between this runtime's and
// ONNX Runtime's outputs, relative to the output's scale (max(1, max|y|)).
// Both compute in float32 but sum in different orders (and ORT fuses
// operators), so they differ by float32 rounding: about 1e-6 relative.
// YOLOX-nano, 113 convolutions deep, drifts further: 3e-4.
const (
	Tolerance     = 1e-4
	YOLOTolerance = 3e-4
)

// compareORT runs the model at path in both runtimes on the same random
// input and checks every output agrees within Tolerance.
func compareORT(t *testing.T, path string, batch int, tol float64, o Options) {
	t.Helper()
	orttest.Init(t)
	s, err := ort.Open(path, ort.SessionOptions{IntraOpThreads: 1, BatchSize: batch, InputShapes: o.InputShapes})
	require.NoError(t, err)
	defer s.Close()
	o.BatchSize = batch
	m, err := Load(path, o)
	require.NoError(t, err)
	defer m.Close()

	require.Len(t, m.Inputs(), len(s.Inputs()))
	require.Len(t, m.Outputs(), len(s.Outputs()))
	for i, in := range s.Inputs() {
		require.Equal(t, in.Shape, m.Inputs()[i].Shape, "input %s", in.Name)
		fillRandom(s.Input(i), uint64(i+1))
		copy(m.Input(i), s.Input(i))
	}
	require.NoError(t, s.Run())
	for range 2 { // twice: the second run reuses the machine's buffers
		require.NoError(t, m.Run())
	}
	for i, out := range s.Outputs() {
		require.Equal(t, out.Shape, m.Outputs()[i].Shape, "output %s", out.Name)
		want, got := s.Output(i), m.Output(i)
		scale := max(1, maxAbs(want))
		d := maxDiff(want, got)
		t.Logf("%s %v: max |diff| %.3g, scale %.3g", out.Name, out.Shape, d, scale)
		require.LessOrEqual(t, d, tol*scale, "output %s", out.Name)
	}
}

func TestMatchesORT(t *testing.T) {
	for _, tc := range []struct {
		name  string
		path  func(t *testing.T) string
		batch int
		tol   float64
		opts  Options
	}{
		{"centernet", func(t *testing.T) string { return writeModel(t, centerNet(128)) }, 1, Tolerance, Options{}},
		{"centernet_gorgonia_ops", func(t *testing.T) string { return writeModel(t, centerNet(128)) }, 1, Tolerance, Options{gorgoniaOps: true}},
		{"unet_batch2", func(t *testing.T) string { return writeModel(t, uNet(64)) }, 2, Tolerance, Options{}},
		{"embedder_batch3", func(t *testing.T) string { return writeModel(t, embedder()) }, 3, Tolerance, Options{}},
		{"yolox_nano", func(t *testing.T) string { return shareddata.Path(t, "models/yolox_nano_416.onnx") }, 1, YOLOTolerance, Options{}},
		{"person_detector_192", func(t *testing.T) string { return shareddata.Path(t, "models/person_detector_192.onnx") }, 1, Tolerance, Options{}},
		{"ultraface_rfb_320", func(t *testing.T) string { return shareddata.Path(t, "models/ultraface_rfb_320.onnx") }, 1, Tolerance, Options{}},
		{"person_reid_0248", func(t *testing.T) string { return shareddata.Path(t, "models/person_reid_0248.onnx") }, 1, Tolerance, Options{}},
		{"person_reid_0287", func(t *testing.T) string { return shareddata.Path(t, "models/person_reid_0287.onnx") }, 1, Tolerance, Options{}},
		{"nanodet_m_320", func(t *testing.T) string { return shareddata.Path(t, "models/nanodet_m_320.onnx") }, 1, Tolerance, Options{}},
		{"selfie_segmentation", func(t *testing.T) string {
			return shareddata.Path(t, "models/selfie_segmentation_landscape.onnx")
		}, 1, Tolerance, Options{}},
		{"fastestdet_352", func(t *testing.T) string { return shareddata.Path(t, "models/fastestdet_352.onnx") }, 1, Tolerance, Options{}},
		{"bodypix_any_size", func(t *testing.T) string { return shareddata.Path(t, "models/bodypix_mnv1_050_s16.onnx") }, 1, Tolerance,
			Options{InputShapes: map[string][]int64{"input": {0, 257, 353, 3}}}},
	} {
		t.Run(tc.name, func(t *testing.T) { compareORT(t, tc.path(t), tc.batch, tc.tol, tc.opts) })
	}
}

// BenchmarkRun times one Run of the CenterNet-style model at 128x128 and
// of YOLOX-nano at 416x416 in this runtime and in ONNX Runtime (one
// intra-op thread), on the same input; run with -cpu 1 so gonum's SGEMM
// uses one goroutine too. The purego lines report their time as a
// multiple of ONNX Runtime's (x_ort). purego_gorgonia_ops uses gorgonia's
// Conv2d, Rectify and Concat instead of the Go kernels.
func BenchmarkRun(b *testing.B) {
	orttest.Init(b)
	for _, tc := range []struct {
		name string
		path func(b *testing.B) string
	}{
		{"centernet_128", func(b *testing.B) string { return writeModel(b, centerNet(128)) }},
		{"yolox_nano_416", func(b *testing.B) string { return shareddata.Path(b, "models/yolox_nano_416.onnx") }},
	} {
		b.Run(tc.name, func(b *testing.B) { benchmarkRun(b, tc.path(b)) })
	}
}

func benchmarkRun(b *testing.B, path string) {
	s, err := ort.Open(path, ort.SessionOptions{IntraOpThreads: 1})
	require.NoError(b, err)
	defer s.Close()
	fillRandom(s.Input(0), 1)

	var ortNs float64
	b.Run("ort", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Run(); err != nil {
				b.Fatal(err)
			}
		}
		ortNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, v := range []struct {
		name string
		o    Options
	}{{"purego", Options{}}, {"purego_gorgonia_ops", Options{gorgoniaOps: true}}} {
		m, err := Load(path, v.o)
		require.NoError(b, err)
		copy(m.Input(0), s.Input(0))
		b.Run(v.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := m.Run(); err != nil {
					b.Fatal(err)
				}
			}
			if ortNs > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/ortNs, "x_ort")
			}
		})
		require.NoError(b, m.Close())
	}
}
