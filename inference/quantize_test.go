package inference

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// TestQuantizeAndChoose quantizes YOLOX-nano on frames of the reference
// clip, then loads the bundle: both variants are measured, and the one
// served is the fastest allowed by the accuracy bound.
func TestQuantizeAndChoose(t *testing.T) {
	orttest.Init(t)
	reg := Registry{Root: t.TempDir()}
	b, err := reg.Import(shareddata.Path(t, "models/yolox_nano_416.onnx"), "yolox", "det")
	require.NoError(t, err)
	q, err := NewQuantizer(b, QuantizeOptions{CalibFrames: 6, HoldoutFrames: 4, Threads: 1})
	require.NoError(t, err)
	defer q.Close()
	frames, err := decode.ReadFrames(shareddata.Path(t, "video/vtest_h264.mp4"), 0, 50, 100, 150, 200, 250, 300, 350, 400, 450)
	require.NoError(t, err)
	for i, f := range frames {
		done, err := q.Add(f)
		require.NoError(t, err)
		require.Equal(t, i == len(frames)-1, done)
		f.Release()
	}
	res, err := q.Finish()
	require.NoError(t, err)
	require.Equal(t, INT8, res.Variant.Precision)
	require.Equal(t, "f1_vs_fp32", res.Variant.Accuracy.Metric)
	require.Equal(t, 4, res.Variant.Accuracy.Frames)
	require.Greater(t, res.Variant.Accuracy.Value, 0.5, "int8 finds most of what fp32 finds")
	t.Logf("int8: %d nodes quantized, F1 vs fp32 %.3f", res.Report.QuantizedNodes, res.Variant.Accuracy.Value)

	b, err = reg.Resolve("det")
	require.NoError(t, err)
	require.Len(t, b.Variants, 2)
	dev, err := ParseDevice("cpu", 1)
	require.NoError(t, err)
	load := func(o ModelOptions) ModelStatus {
		o.Name, o.Device, o.MaxBatch = "det", dev, 1
		m, err := LoadModel(b, o)
		require.NoError(t, err)
		defer m.Close()
		return m.Status()
	}

	// A tight bound keeps fp32 without timing int8.
	st := load(ModelOptions{MaxAccuracyLoss: 0.001})
	require.Equal(t, "fp32", st.Variant)
	require.Contains(t, st.Variants[1].Skipped, "accuracy loss")

	// A loose one times both and serves the faster.
	st = load(ModelOptions{MaxAccuracyLoss: 1})
	require.Positive(t, st.Variants[0].MeanMS)
	require.Positive(t, st.Variants[1].MeanMS)
	fastest := "fp32"
	if st.Variants[1].MeanMS < st.Variants[0].MeanMS {
		fastest = "int8"
	}
	require.Equal(t, fastest, st.Variant)
	t.Logf("yolox_nano_416 on 1 thread: fp32 %.2f ms, int8 %.2f ms", st.Variants[0].MeanMS, st.Variants[1].MeanMS)

	// A forced variant is served as configured. The int8 variant takes
	// uint8 input, quantized by the pre-processor with the variant's input
	// scale and zero point, and still finds the people of frame 300.
	v, _ := b.Variant("int8")
	require.Positive(t, v.InputScale)
	s, err := ort.Open(b.Path(v), ort.SessionOptions{})
	require.NoError(t, err)
	require.Equal(t, "uint8", s.Inputs()[0].Type)
	require.NoError(t, s.Close())
	m, err := LoadModel(b, ModelOptions{Name: "det", Device: dev, MaxBatch: 1, Variant: "int8"})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, "int8", m.Status().Variant)
	require.Equal(t, "not the configured variant", m.Status().Variants[0].Skipped)
	dets, err := m.Infer(context.Background(), frame300(t))
	require.NoError(t, err)
	require.GreaterOrEqual(t, count(dets)["person"], 7, "int8 detections %v", count(dets))
}
