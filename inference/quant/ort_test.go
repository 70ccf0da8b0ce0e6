//go:build cgo

package quant

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
)

// TestQuantizeValueMatchesORT runs ONNX Runtime's QuantizeLinear ->
// DequantizeLinear on ties and random values and checks QuantizeValue
// gives the same integers (round half to even, saturation).
func TestQuantizeValueMatchesORT(t *testing.T) {
	orttest.Init(t)
	const n = 4096
	for _, p := range []Params{{Scale: 0.25, ZeroPoint: 10}, {Scale: 0.0173, ZeroPoint: 131}} {
		b := onnx.NewBuilder("qdq", 1)
		x := b.Input("x", n)
		s := b.Initializer("s", nil, []float32{p.Scale})
		y := b.Node("DequantizeLinear", []string{b.Node("QuantizeLinear", []string{x, s, "zp"}), s, "zp"})
		b.Output(y, n)
		m := b.Model()
		m.Graph.Initializer = append(m.Graph.Initializer,
			&onnxpb.TensorProto{Name: "zp", DataType: int32(onnxpb.TensorProto_UINT8), RawData: []byte{byte(p.ZeroPoint)}})
		sess, err := ort.Open(writeModel(t, m, "qdq.onnx"), ort.SessionOptions{IntraOpThreads: 1})
		require.NoError(t, err)
		in := sess.Input(0)
		rng := rand.New(rand.NewPCG(5, 6))
		for i := range in {
			if i%2 == 0 {
				in[i] = (float32(i/2-n/4) + 0.5) * p.Scale // ties
			} else {
				in[i] = float32(rng.NormFloat64()*40) * p.Scale
			}
		}
		require.NoError(t, sess.Run())
		mismatch := 0
		for i, v := range in {
			want := float32(QuantizeValue(v, p.Scale, p.ZeroPoint, 0, 255)-p.ZeroPoint) * p.Scale
			if want != sess.Output(0)[i] {
				mismatch++
				if p.Scale == 0.25 {
					t.Errorf("x=%v: ORT %v, QuantizeValue %v", v, sess.Output(0)[i], want)
				}
			}
		}
		// With a scale that is not a power of two, x/scale can land a ULP
		// off a tie depending on how it is computed (ORT's MLAS divides in
		// float32 too, so they should agree).
		t.Logf("scale %v: %d of %d values differ from ONNX Runtime", p.Scale, mismatch, n)
		require.LessOrEqual(t, mismatch, n/1000)
		require.NoError(t, sess.Close())
	}
}

// TestSmallModelORT runs the unit tests' small model (SiLU, Add of a
// constant, MaxPool, Concat) quantized with heads through ONNX Runtime and
// checks the ops fuse and the output stays close.
func TestSmallModelORT(t *testing.T) {
	orttest.Init(t)
	m := smallModel()
	c, err := NewCalibrator(m, CalibratorOptions{})
	require.NoError(t, err)
	defer c.Close()
	rng := rand.New(rand.NewPCG(7, 8))
	var inputs [][]float32
	for range 12 {
		in := make([]float32, 3*16*16)
		for i := range in {
			in[i] = rng.Float32()
		}
		inputs = append(inputs, in)
	}
	for _, in := range inputs[:8] {
		require.NoError(t, c.Add(in))
	}
	require.Equal(t, 8, c.Frames())
	require.Error(t, c.Add(inputs[0], inputs[1]), "one input only")
	ranges, err := c.Ranges(MinMax, 0)
	require.NoError(t, err)
	require.Len(t, ranges, len(Activations(m)))
	require.Equal(t, float32(0), ranges["Relu_4"].Min)
	q, rep, err := Quantize(m, ranges, Options{QuantizeHeads: true})
	require.NoError(t, err)
	require.Zero(t, rep.FloatNodes)
	fp32, int8 := writeModel(t, m, "small.onnx"), writeModel(t, q, "small_int8.onnx")

	ops := optimisedOps(t, int8)
	t.Logf("optimised: %v", ops)
	for _, op := range []string{"QLinearConv", "QLinearMul", "QLinearSigmoid", "QLinearAdd", "QLinearConcat"} {
		require.Positive(t, ops["com.microsoft:"+op], op)
	}
	acc, err := Compare(fp32, int8, inputs[8:], ortOpts(1))
	require.NoError(t, err)
	t.Logf("accuracy: %+v", acc.Outputs)
	require.Greater(t, acc.Outputs[0].Cosine, 0.99)

	same, err := Compare(fp32, fp32, inputs[8:], ortOpts(1))
	require.NoError(t, err)
	require.Len(t, same.Outputs, 1)
	require.Zero(t, same.Outputs[0].MaxAbs)
	require.Zero(t, same.Outputs[0].Relative)
	require.InDelta(t, 1, same.Outputs[0].Cosine, 1e-12)

	require.NoError(t, c.Close())
	require.ErrorContains(t, c.Add(inputs[0]), "closed")
	require.NoError(t, c.Close())

	_, err = Compare(fp32, int8, [][]float32{{1, 2}}, ortOpts(1))
	require.ErrorContains(t, err, "2 values")
}
