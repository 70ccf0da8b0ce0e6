//go:build cgo

package quant

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/internal/shareddata"
)

const yoloSize = 416

// yoloxInputs returns n letterboxed vtest.avi frames (BGR 0..255, pad 114,
// as YOLOX's preproc) from frame first, every step-th.
func yoloxInputs(tb testing.TB, first, step, n int) [][]float32 {
	var in [][]float32
	for _, img := range frames(tb, first, step, n, yoloSize, 312, true) {
		in = append(in, planar(img, 1))
	}
	return in
}

// quantizedYOLOX calibrates yolox_nano_416 on 12 frames spread over the
// clip (0, 70, …, 770: the nearest to the tested frame 300 is 50 frames,
// 5 s, away) with the 99.999th percentile and writes its int8 variant.
func quantizedYOLOX(tb testing.TB) (string, string, *Report) {
	tb.Helper()
	orttest.Init(tb)
	fp32 := shareddata.Path(tb, "models/yolox_nano_416.onnx")
	m, err := onnx.Read(fp32)
	require.NoError(tb, err)
	c, err := NewCalibrator(m, CalibratorOptions{SessionOptions: ort.SessionOptions{IntraOpThreads: 2}})
	require.NoError(tb, err)
	defer c.Close()
	for _, in := range yoloxInputs(tb, 0, 70, 12) {
		require.NoError(tb, c.Add(in))
	}
	ranges, err := c.Ranges(Percentile, 99.999)
	require.NoError(tb, err)
	q, rep, err := Quantize(m, ranges, Options{})
	require.NoError(tb, err)
	return fp32, writeModel(tb, q, "yolox_int8.onnx"), rep
}

// persons decodes YOLOX's raw output with Vigil's decoder (score 0.3,
// class-aware NMS at 0.45) and keeps the persons, in input pixels.
func persons(tb testing.TB, out []float32) []frame.Detection {
	dec, err := decoders.New("yolox", decoders.Options{InputW: yoloSize, InputH: yoloSize, ScoreThreshold: 0.3})
	require.NoError(tb, err)
	identity := prep.Transform{ScaleX: 1, ScaleY: 1, SrcW: yoloSize, SrcH: yoloSize}
	dets, err := dec.Decode(nil, []decoders.Tensor{{Name: "output", Shape: []int64{1, 3549, 85}, Data: out}}, 0, identity)
	require.NoError(tb, err)
	var p []frame.Detection
	for _, d := range dets {
		if d.Class == 0 {
			p = append(p, d)
		}
	}
	return p
}

func TestYOLOX(t *testing.T) {
	fp32, int8, rep := quantizedYOLOX(t)
	t.Logf("report: quantized %d %v, float %d %v, opset %d -> %d, inputs %v, heads %v",
		rep.QuantizedNodes, rep.ByOp, rep.FloatNodes, rep.FloatByOp, rep.OpsetFrom, rep.Opset, rep.Inputs, rep.Heads)
	require.Equal(t, int64(11), rep.OpsetFrom)
	require.Equal(t, int64(13), rep.Opset)
	// Heads: 3 strides x (reg, obj, cls convolutions, 2 sigmoids, concat,
	// reshape) + the final concat and transpose.
	require.Len(t, rep.Heads, 3*7+2)

	ops, g := optimised(t, int8)
	t.Logf("optimised int8 graph: %v", ops)
	require.Equal(t, map[string]int{"QLinearConv": 104, "QLinearMul": 104, "QLinearSigmoid": 104, "QLinearAdd": 7, "QLinearConcat": 14},
		map[string]int{"QLinearConv": ops["com.microsoft:QLinearConv"], "QLinearMul": ops["com.microsoft:QLinearMul"],
			"QLinearSigmoid": ops["com.microsoft:QLinearSigmoid"], "QLinearAdd": ops["com.microsoft:QLinearAdd"],
			"QLinearConcat": ops["com.microsoft:QLinearConcat"]}, "every quantized op runs an integer kernel")
	// Between the input's QuantizeLinear and the heads' DequantizeLinear
	// nothing runs in float: the Focus slices, max pools and resizes take
	// uint8 straight from integer kernels.
	require.Equal(t, 1, ops[":QuantizeLinear"])
	require.Equal(t, 9, ops[":DequantizeLinear"], "one per head convolution")
	producer := map[string]string{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n.GetOpType()
		}
	}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "Slice", "Resize", "NhwcMaxPool":
			require.NotEqual(t, "DequantizeLinear", producer[n.GetInput()[0]], "%s %s runs on uint8", n.GetOpType(), n.GetName())
		case "DequantizeLinear":
			require.Contains(t, []string{"QLinearMul"}, producer[n.GetInput()[0]], "only the heads dequantize")
		}
	}

	// Frame 300 (t = 30 s) is held out of calibration: fp32 finds 8
	// persons there (see ../shared/data/README.md).
	in := yoloxInputs(t, 300, 1, 1)[0]
	run := func(path string) []frame.Detection {
		s, err := ort.Open(path, ortOpts(2))
		require.NoError(t, err)
		defer s.Close()
		copy(s.Input(0), in)
		require.NoError(t, s.Run())
		return persons(t, s.Output(0))
	}
	ref, got := run(fp32), run(int8)
	t.Logf("persons: fp32 %d, int8 %d", len(ref), len(got))
	require.InDelta(t, 8, len(ref), 1)
	matched := 0
	for _, r := range ref {
		for _, g := range got {
			if r.Box.IoU(g.Box) > 0.5 {
				matched++
				break
			}
		}
	}
	t.Logf("fp32 persons matched by an int8 person at IoU > 0.5: %d of %d", matched, len(ref))
	require.GreaterOrEqual(t, matched, len(ref)-2)

	acc, err := Compare(fp32, int8, yoloxInputs(t, 315, 70, 4), ortOpts(2))
	require.NoError(t, err)
	t.Logf("raw output drift on 4 held-out frames: %+v", acc.Outputs)
}
