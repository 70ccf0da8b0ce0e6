//go:build cgo

package quant

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/ort/orttest"
)

// quantizedPlainCNN calibrates the plain CNN on frames of vtest.avi and
// returns the fp32 and int8 model paths and held-out inputs.
func quantizedPlainCNN(tb testing.TB, method Method) (string, string, *Report, [][]float32) {
	tb.Helper()
	orttest.Init(tb)
	m, flops := plainCNN()
	require.InDelta(tb, 3.156e9, flops, 1e7)
	imgs := frames(tb, 0, 25, 24, 320, 320, false)
	var inputs [][]float32
	for _, img := range imgs {
		inputs = append(inputs, planar(img, 1.0/255))
	}
	calib, held := inputs[:16], inputs[16:]
	c, err := NewCalibrator(m, CalibratorOptions{})
	require.NoError(tb, err)
	defer c.Close()
	for _, in := range calib {
		require.NoError(tb, c.Add(in))
	}
	ranges, err := c.Ranges(method, 0)
	require.NoError(tb, err)
	q, rep, err := Quantize(m, ranges, Options{QuantizeHeads: true})
	require.NoError(tb, err)
	return writeModel(tb, m, "fp32.onnx"), writeModel(tb, q, "int8.onnx"), rep, held
}

func TestPlainCNN(t *testing.T) {
	fp32, int8, rep, held := quantizedPlainCNN(t, MinMax)
	t.Logf("report: %+v", rep)
	require.Equal(t, 18, rep.QuantizedNodes)
	require.Equal(t, map[string]int{"Conv": 9, "Relu": 9}, rep.ByOp)
	require.Equal(t, Params{Scale: 1.0 / 255, ZeroPoint: 0}, rep.Inputs["images"])

	ops := optimisedOps(t, int8)
	t.Logf("optimised int8 graph: %v", ops)
	require.Equal(t, 9, ops["com.microsoft:QLinearConv"])
	// All else: the input's QuantizeLinear, the output's DequantizeLinear
	// and layout transposes (NCHW <-> NHWC, on uint8): no float compute.
	for op, n := range ops {
		switch op {
		case ":QuantizeLinear", ":DequantizeLinear":
			require.Equal(t, 1, n, op)
		case "com.microsoft:QLinearConv", ":Transpose":
		default:
			t.Errorf("float op %s x%d left in the optimised graph", op, n)
		}
	}
	t.Logf("optimised fp32 graph: %v", optimisedOps(t, fp32))

	acc, err := Compare(fp32, int8, held, ortOpts(1))
	require.NoError(t, err)
	t.Logf("accuracy on %d held-out frames: %+v", acc.Inputs, acc.Outputs)
	require.Greater(t, acc.Outputs[0].Cosine, 0.99)
}
