package quant

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

func TestActivationParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Range
		want Params
	}{
		// Hand-computed: scale = (max - min) / 255, zp = round(-min / scale).
		{"relu", Range{0, 6}, Params{Scale: 6.0 / 255, ZeroPoint: 0}},
		{"bgr 0..255", Range{0, 255}, Params{Scale: 1, ZeroPoint: 0}},
		{"signed", Range{-1.02, 1.53}, Params{Scale: 0.01, ZeroPoint: 102}},
		{"negative only widens to 0", Range{-2.55, -1}, Params{Scale: 0.01, ZeroPoint: 255}},
		{"positive only widens to 0", Range{3, 5.1}, Params{Scale: 0.02, ZeroPoint: 0}},
		{"silu", Range{-0.2785, 10}, Params{Scale: 10.2785 / 255, ZeroPoint: 7}}, // 6.909...
		{"empty", Range{0, 0}, Params{Scale: 1, ZeroPoint: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ActivationParams(tc.r)
			require.NoError(t, err)
			require.InDelta(t, tc.want.Scale, p.Scale, 1e-6)
			require.Equal(t, tc.want.ZeroPoint, p.ZeroPoint)
			// 0 is exactly representable.
			require.Equal(t, float32(0), (float32(QuantizeValue(0, p.Scale, p.ZeroPoint, 0, 255))-float32(p.ZeroPoint))*p.Scale)
		})
	}
	for _, r := range []Range{{2, 1}, {float32(math.NaN()), 1}, {0, float32(math.Inf(1))}} {
		_, err := ActivationParams(r)
		require.Error(t, err, "%v", r)
	}
}

func TestQuantizeValueRoundsHalfToEven(t *testing.T) {
	for _, tc := range []struct {
		x    float32
		want int32
	}{
		{0.5, 0}, {1.5, 2}, {2.5, 2}, {-0.5, 0}, {-1.5, -2}, {2.4999, 2}, {2.5001, 3},
		{1000, 127}, {-1000, -127},
	} {
		require.Equal(t, tc.want, QuantizeValue(tc.x, 1, 0, -127, 127), "x=%v", tc.x)
	}
	require.Equal(t, int32(255), QuantizeValue(300, 1, 10, 0, 255))
	require.Equal(t, int32(12), QuantizeValue(0.5, 0.25, 10, 0, 255))
}

func TestQuantizeWeights(t *testing.T) {
	// Two channels: max |w| 1.27 and 0.5.
	w := []float32{1.27, -0.635, 0.01, 0.005, -0.5, 0.25, 0, 0.5 / 127 * 0.5}
	q, s, err := QuantizeWeights(w, 2)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float32{0.01, 0.5 / 127}, s, 1e-9)
	// 0.635/0.01 = 63.5 -> 64 (even), 0.005/0.01 = 0.5 -> 0, last is 0.5 -> 0.
	require.Equal(t, []int8{127, -64, 1, 0, -127, 64, 0, 0}, q)

	q, s, err = QuantizeWeights([]float32{0, 0}, 1)
	require.NoError(t, err)
	require.Equal(t, []float32{1}, s, "all-zero weights get scale 1")
	require.Equal(t, []int8{0, 0}, q)

	_, _, err = QuantizeWeights(w, 3)
	require.Error(t, err)

	// Round trip: error at most half a step per channel.
	rng := rand.New(rand.NewPCG(1, 2))
	w = make([]float32, 16*27)
	for i := range w {
		w[i] = float32(rng.NormFloat64()) * float32(1+i/27)
	}
	q, s, err = QuantizeWeights(w, 16)
	require.NoError(t, err)
	for i, v := range w {
		require.InDelta(t, v, float32(q[i])*s[i/27], float64(s[i/27])/2+1e-6)
	}
}

func TestQuantizeBias(t *testing.T) {
	b := []float32{0.1, -0.3, 1e9}
	q, s, err := QuantizeBias(b, 0.02, []float32{0.5, 0.1, 1e-6})
	require.NoError(t, err)
	require.InDeltaSlice(t, []float32{0.01, 0.002, 2e-8}, s, 1e-12)
	// 0.1/0.01 = 10, -0.3/0.002 = -150, 1e9/2e-8 saturates.
	require.Equal(t, []int32{10, -150, math.MaxInt32}, q)
	_, _, err = QuantizeBias(b, 1, []float32{1, 2})
	require.Error(t, err)
}

func TestHistogramPercentile(t *testing.T) {
	var h Histogram
	// 0..9999 and one outlier at 1e6, fed in 3 batches so the range grows.
	var xs []float32
	for i := range 10000 {
		xs = append(xs, float32(i))
	}
	h.Add(xs[:100])
	h.Add(xs[100:])
	h.Add([]float32{1e6, float32(math.NaN()), float32(math.Inf(1))})
	require.Equal(t, uint64(10001), h.N)
	require.Equal(t, float32(0), h.Min)
	require.Equal(t, float32(1e6), h.Max)
	var sum uint64
	for _, c := range h.Counts {
		sum += c
	}
	require.Equal(t, h.N, sum, "no count lost while growing")

	r, err := h.Percentile(100)
	require.NoError(t, err)
	require.Equal(t, Range{0, 1e6}, r)
	// Cutting 0.05% per tail drops the outlier: the top lands on the edge
	// of the bin holding 9994..9999 (width 2*2^20/2048 = 1024).
	r, err = h.Percentile(99.9)
	require.NoError(t, err)
	require.Equal(t, float32(0), r.Min)
	require.Equal(t, float32(10240), r.Max)

	// Fine bins: the 99th percentile of 0..9999 is about 9949.
	var g Histogram
	g.Add(xs)
	r, err = g.Percentile(99)
	require.NoError(t, err)
	require.InDelta(t, 9950, r.Max, 16384/2048.0+1)
	require.InDelta(t, 50, r.Min, 16384/2048.0+1)

	_, err = g.Percentile(0)
	require.Error(t, err)
	var empty Histogram
	_, err = empty.Percentile(99)
	require.Error(t, err)
}

func TestHistogramSigned(t *testing.T) {
	// -5, -4.5, ..., 5 in batches of growing magnitude.
	var h Histogram
	var xs []float32
	for i := -10; i <= 10; i++ {
		xs = append(xs, float32(i)/2)
	}
	h.Add(xs[9:12]) // -0.5, 0, 0.5: bound 0.5 doubles to 1
	h.Add(xs[:9])
	h.Add(xs[12:])
	require.Equal(t, uint64(21), h.N)
	require.Equal(t, 8.0, h.Bound, "the power of two above 5")
	require.Equal(t, Range{-5, 5}, Range{h.Min, h.Max})
	var sum uint64
	for i, c := range h.Counts {
		sum += c
		if c > 0 {
			// Each value sits in its own bin [-8 + i/128, -8 + (i+1)/128).
			v := -8 + float64(i)/128
			require.Equal(t, 0.0, math.Mod(v*2, 1), "bin %d starts at %v", i, v)
		}
	}
	require.Equal(t, h.N, sum)
	r, err := h.Percentile(100)
	require.NoError(t, err)
	require.Equal(t, Range{-5, 5}, r)
}

// BenchmarkHistogramAdd measures the calibration hot loop on one
// 64x104x104 activation.
func BenchmarkHistogramAdd(b *testing.B) {
	xs := make([]float32, 64*104*104)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range xs {
		xs[i] = float32(rng.NormFloat64())
	}
	var h Histogram
	h.Add(xs)
	b.ReportAllocs()
	b.SetBytes(int64(4 * len(xs)))
	for b.Loop() {
		h.Add(xs)
	}
}

func TestRangesOf(t *testing.T) {
	var h Histogram
	h.Add([]float32{-1, 0, 2})
	r, err := RangesOf(map[string]*Histogram{"a": &h, "empty": {}}, MinMax, 0)
	require.NoError(t, err)
	require.Equal(t, map[string]Range{"a": {-1, 2}}, r)
	_, err = RangesOf(map[string]*Histogram{"a": &h}, "kl", 0)
	require.ErrorContains(t, err, `"kl"`)
}

// smallModel: conv-relu, conv, SiLU (sigmoid, mul), add of a constant,
// a max pool concatenated with its input, and a head conv.
func smallModel() *onnxpb.ModelProto {
	b := onnx.NewBuilder("small", 3)
	x := b.Input("images", 1, 3, 16, 16)
	x = b.Relu(b.Conv(x, 3, 8, 3, 1, 1))
	c := b.Conv(x, 8, 8, 3, 1, 1)
	x = b.Mul(c, b.Sigmoid(c))
	x = b.Add(x, b.Initializer("k", []int64{1}, []float32{0.5}))
	x = b.Concat(1, x, b.MaxPool(x, 1, 1))
	x = b.Conv(x, 16, 4, 1, 1, 1)
	b.Output(x, 1, 4, 16, 16)
	return b.Model()
}

// rangesFor gives every tensor of m a range; ReLU outputs start at 0.
func rangesFor(m *onnxpb.ModelProto) map[string]Range {
	r := map[string]Range{"images": {0, 1}}
	for _, n := range m.GetGraph().GetNode() {
		switch n.GetOpType() {
		case "Relu", "Sigmoid":
			r[n.GetOutput()[0]] = Range{0, 1}
		default:
			r[n.GetOutput()[0]] = Range{-2, 3}
		}
	}
	return r
}

func opCount(m *onnxpb.ModelProto) map[string]int {
	c := map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		c[n.GetOpType()]++
	}
	return c
}

func TestQuantizeGraph(t *testing.T) {
	m := smallModel()
	orig := proto.Clone(m)
	q, rep, err := Quantize(m, rangesFor(m), Options{})
	require.NoError(t, err)
	require.True(t, proto.Equal(orig, m), "the input model is not changed")

	require.Equal(t, []string{"Conv_16"}, rep.Heads)
	require.Equal(t, map[string]int{"Conv": 2, "Relu": 1, "Sigmoid": 1, "Mul": 1, "Add": 1, "MaxPool": 1, "Concat": 1}, rep.ByOp)
	require.Equal(t, 8, rep.QuantizedNodes)
	require.Equal(t, map[string]int{"Conv": 1}, rep.FloatByOp)
	require.Equal(t, Params{Scale: 1.0 / 255}, rep.Inputs["images"])
	require.Equal(t, int64(17), rep.Opset)

	g := q.GetGraph()
	ops := opCount(q)
	// One Q/DQ per tensor: images, relu, conv, sigmoid, mul, add, maxpool,
	// concat; DQ also for 2 weights, 2 biases and the constant.
	require.Equal(t, 8, ops["QuantizeLinear"])
	require.Equal(t, 8+5, ops["DequantizeLinear"])
	require.Equal(t, 3, ops["Conv"])
	require.Equal(t, []string{"Conv_16"}, []string{g.GetOutput()[0].GetName()}, "graph output names are kept")

	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	for _, n := range g.GetNode() {
		switch n.GetOpType() {
		case "Relu":
			// Folded: the ReLU reads the Conv directly, and is read by Q.
			require.Equal(t, "Conv", producer[n.GetInput()[0]].GetOpType())
		case "Conv":
			if n.GetName() == "Conv_16" {
				require.Equal(t, "DequantizeLinear", producer[n.GetInput()[0]].GetOpType(), "the fp32 head reads dequantized values")
				require.Equal(t, "w_14", n.GetInput()[1], "head weights stay float")
				continue
			}
			for _, in := range n.GetInput() {
				require.Equal(t, "DequantizeLinear", producer[in].GetOpType(), "Conv input %s", in)
			}
		case "Mul", "Add", "Sigmoid", "Concat", "MaxPool":
			for _, in := range n.GetInput() {
				require.Equal(t, "DequantizeLinear", producer[in].GetOpType(), "%s input %s", n.GetOpType(), in)
			}
		}
	}

	// Weights: int8 per channel with axis 0; bias int32 at in*w scales.
	w := onnx.Initializer(g, "Conv_3_weight_quantized")
	require.NotNil(t, w)
	require.Equal(t, int32(onnxpb.TensorProto_INT8), w.GetDataType())
	require.Equal(t, []int64{8, 3, 3, 3}, w.GetDims())
	ws, err := onnx.Floats(onnx.Initializer(g, "Conv_3_weight_quantized_scale"))
	require.NoError(t, err)
	require.Len(t, ws, 8)
	origW, err := onnx.Floats(onnx.Initializer(m.GetGraph(), "w_1"))
	require.NoError(t, err)
	require.InDelta(t, WeightScale(origW[:27]), ws[0], 1e-9)
	bq := onnx.Initializer(g, "Conv_3_bias_quantized")
	require.Equal(t, int32(onnxpb.TensorProto_INT32), bq.GetDataType())
	origB, err := onnx.Floats(onnx.Initializer(m.GetGraph(), "b_2"))
	require.NoError(t, err)
	b0 := int32(binary.LittleEndian.Uint32(bq.GetRawData()))
	require.Equal(t, QuantizeValue(origB[0], ws[0]/255, 0, math.MinInt32+1, math.MaxInt32), b0)
	require.Nil(t, onnx.Initializer(g, "w_1"), "replaced float weights are dropped")

	// Deterministic: the same inputs write the same bytes.
	again, _, err := Quantize(m, rangesFor(m), Options{})
	require.NoError(t, err)
	b1, err := proto.MarshalOptions{Deterministic: true}.Marshal(q)
	require.NoError(t, err)
	b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(again)
	require.NoError(t, err)
	require.Equal(t, b1, b2)

	// Per-tensor weights: one scale.
	q, _, err = Quantize(m, rangesFor(m), Options{PerTensor: true})
	require.NoError(t, err)
	require.Empty(t, onnx.Initializer(q.GetGraph(), "Conv_3_weight_quantized_scale").GetDims())
}

func TestQuantizeOptions(t *testing.T) {
	m := smallModel()
	ranges := rangesFor(m)
	for _, tc := range []struct {
		name   string
		opts   Options
		ranges func(map[string]Range)
		float  map[string]int
	}{
		{"heads too", Options{QuantizeHeads: true}, nil, map[string]int{}},
		{"exclude op", Options{Exclude: []string{"Sigmoid"}}, nil, map[string]int{"Conv": 1, "Sigmoid": 1}},
		{"exclude name", Options{Exclude: []string{"Mul_9"}}, nil, map[string]int{"Conv": 1, "Mul": 1}},
		// Without a range for the SiLU's output, the Mul and the Add that
		// reads it stay fp32, and so does the max pool after the Add (a
		// pass-through op is quantized only after a quantized op); the
		// Concat is quantized from Q/DQ pairs placed after them.
		{"missing range", Options{}, func(r map[string]Range) { delete(r, "Mul_9") },
			map[string]int{"Conv": 1, "Mul": 1, "Add": 1, "MaxPool": 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := maps(ranges)
			if tc.ranges != nil {
				tc.ranges(r)
			}
			_, rep, err := Quantize(m, r, tc.opts)
			require.NoError(t, err)
			require.Equal(t, tc.float, rep.FloatByOp)
		})
	}
}

func maps(r map[string]Range) map[string]Range {
	out := make(map[string]Range, len(r))
	for k, v := range r {
		out[k] = v
	}
	return out
}

func TestQuantizeOpset(t *testing.T) {
	m := smallModel()
	m.OpsetImport[0].Version = 11
	q, rep, err := Quantize(m, rangesFor(m), Options{})
	require.NoError(t, err)
	require.Equal(t, int64(11), rep.OpsetFrom)
	require.Equal(t, int64(13), q.GetOpsetImport()[0].GetVersion())

	// Softmax changed meaning at 13: refuse rather than write a wrong model.
	m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: "sm", OpType: "Softmax", Input: []string{"Conv_16"}, Output: []string{"p"}})
	_, _, err = Quantize(m, rangesFor(m), Options{})
	require.ErrorContains(t, err, "Softmax")

	// An op with no rewrite to opset 13 is refused by name.
	m.Graph.Node[len(m.Graph.Node)-1] = &onnxpb.NodeProto{Name: "loop", OpType: "Scan", Input: []string{"Conv_16"}, Output: []string{"p"}}
	_, _, err = Quantize(m, rangesFor(m), Options{})
	require.ErrorContains(t, err, `op Scan (node "loop")`)

	_, _, err = Quantize(&onnxpb.ModelProto{}, nil, Options{})
	require.Error(t, err)
}

func TestActivations(t *testing.T) {
	m := smallModel()
	names := Activations(m)
	require.Equal(t, "images", names[0])
	require.Len(t, names, 1+len(m.GetGraph().GetNode()))
	// An int64 shape computation is not an activation.
	m.Graph.Node = append(m.Graph.Node,
		&onnxpb.NodeProto{OpType: "Shape", Input: []string{"images"}, Output: []string{"s"}},
		&onnxpb.NodeProto{OpType: "Reshape", Input: []string{"s", "s"}, Output: []string{"r"}})
	require.False(t, slices.Contains(Activations(m), "r"))
}

func TestQuantizeUnnamedNodesAndClip(t *testing.T) {
	// Two convolutions with no node names sharing one weight, each
	// followed by a ReLU6 (Clip), which is folded like a ReLU.
	b := onnx.NewBuilder("unnamed", 4)
	x := b.Input("images", 1, 4, 8, 8)
	lo, hi := b.Initializer("lo", nil, []float32{0}), b.Initializer("hi", nil, []float32{6})
	c1 := b.Conv(x, 4, 4, 3, 1, 1)
	y := b.Node("Clip", []string{c1, lo, hi})
	c2 := b.Conv(y, 4, 4, 3, 1, 1)
	y = b.Node("Clip", []string{c2, lo, hi})
	b.Output(y, 1, 4, 8, 8)
	m := b.Model()
	g := m.GetGraph()
	g.Node[2].Input[1] = g.Node[0].Input[1] // shared weights
	for _, n := range g.Node {
		n.Name = ""
	}
	r := rangesFor(m)
	for _, n := range g.Node {
		if n.GetOpType() == "Clip" {
			r[n.GetOutput()[0]] = Range{0, 6}
		}
	}
	q, rep, err := Quantize(m, r, Options{QuantizeHeads: true})
	require.NoError(t, err)
	require.Equal(t, map[string]int{"Conv": 2, "Clip": 2}, rep.ByOp)
	require.Equal(t, 3, opCount(q)["QuantizeLinear"], "input and the two Clip outputs; no pair between Conv and Clip")
	require.Equal(t, 3+4, opCount(q)["DequantizeLinear"])

	// A graph value whose name Quantize would generate is refused, not
	// written as a broken model.
	g.Node[0].Output[0] = "images_q"
	g.Node[1].Input[0] = "images_q"
	r["images_q"] = r[c1]
	_, _, err = Quantize(m, r, Options{QuantizeHeads: true})
	require.ErrorContains(t, err, `"images_q" is made twice`)
}
