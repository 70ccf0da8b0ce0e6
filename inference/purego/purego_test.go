package purego

import (
	"math"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// opCase is one operator applied to a hand-written input, with the output
// worked out by hand from the ONNX operator spec.
type opCase struct {
	name    string
	inShape []int64
	in      []float32
	build   func(b *onnx.Builder, x string) string
	outDims []int64
	want    []float32
}

func runOp(t *testing.T, tc opCase) {
	t.Helper()
	b := onnx.NewBuilder(tc.name, 1)
	x := b.Input("x", tc.inShape...)
	b.Output(tc.build(b, x), tc.outDims...)
	// Both convolution paths: the im2col kernel and gorgonia's Conv2d.
	for _, o := range []Options{{}, {gorgoniaOps: true}} {
		m, err := LoadModel(b.Model(), o)
		require.NoError(t, err)
		require.Equal(t, tc.outDims, m.Outputs()[0].Shape)
		copy(m.Input(0), tc.in)
		require.NoError(t, m.Run())
		require.InDeltaSlice(t, tc.want, m.Output(0), 1e-5, "gorgoniaOps %v", o.gorgoniaOps)
		require.NoError(t, m.Close())
	}
}

func seq(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i + 1)
	}
	return v
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func TestOps(t *testing.T) {
	for _, tc := range []opCase{
		{
			// Each input pixel stamps the kernel [1 10; 100 1000] scaled by itself.
			name: "conv_transpose_stride2", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 2, 2}, []float32{1, 10, 100, 1000})
				return b.Node("ConvTranspose", []string{x, w}, onnx.Ints("strides", 2, 2))
			},
			outDims: []int64{1, 1, 4, 4},
			want: []float32{
				1, 10, 2, 20,
				100, 1000, 200, 2000,
				3, 30, 4, 40,
				300, 3000, 400, 4000},
		},
		{
			// Overlapping stamps of a 2x2 ones kernel at stride 1 give
			// [1 3 2; 4 10 6; 3 7 4]; pads 1 crop it to the centre; bias 0.5.
			name: "conv_transpose_overlap_pads", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 2, 2}, ones(4))
				bias := b.Initializer("b", []int64{1}, []float32{0.5})
				return b.Node("ConvTranspose", []string{x, w, bias}, onnx.Ints("pads", 1, 1, 0, 0))
			},
			outDims: []int64{1, 1, 2, 2},
			want:    []float32{10.5, 6.5, 7.5, 4.5},
		},
		{
			name: "resize_nearest_x2", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build:   func(b *onnx.Builder, x string) string { return b.Upsample(x, 2) },
			outDims: []int64{1, 1, 4, 4},
			want:    []float32{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4},
		},
		{
			// half_pixel: x = (o+0.5)/1.5 - 0.5 = -1/6, 1/2, 7/6; round_prefer_floor
			// sends the tie 1/2 to 0, so columns 0, 0, 1.
			name: "resize_nearest_x1.5_tie", inShape: []int64{1, 1, 1, 2}, in: []float32{1, 2},
			build: func(b *onnx.Builder, x string) string {
				s := b.Initializer("scales", []int64{4}, []float32{1, 1, 1, 1.5})
				return b.Node("Resize", []string{x, "", s}, onnx.String("mode", "nearest"))
			},
			outDims: []int64{1, 1, 1, 3},
			want:    []float32{1, 1, 2},
		},
		{
			// half_pixel: x = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
			name: "resize_linear_half_pixel", inShape: []int64{1, 1, 1, 2}, in: []float32{1, 2},
			build: func(b *onnx.Builder, x string) string {
				s := b.Initializer("scales", []int64{4}, []float32{1, 1, 1, 2})
				return b.Node("Resize", []string{x, "", s}, onnx.String("mode", "linear"))
			},
			outDims: []int64{1, 1, 1, 4},
			want:    []float32{1, 1.25, 1.75, 2},
		},
		{
			// align_corners from sizes: 2 -> 3 rows and columns.
			name: "resize_linear_align_corners", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				sz := b.Name("sizes")
				b.Model().Graph.Initializer = append(b.Model().Graph.Initializer, &onnxpb.TensorProto{
					Name: sz, Dims: []int64{4}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{1, 1, 3, 3}})
				return b.Node("Resize", []string{x, "", "", sz}, onnx.String("mode", "linear"),
					onnx.String("coordinate_transformation_mode", "align_corners"))
			},
			outDims: []int64{1, 1, 3, 3},
			want:    []float32{1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4},
		},
		{
			// Full output [1 3 2; 4 10 6; 3 7 4] cropped to 2x2: the one row
			// and column of padding go at the start (NOTSET).
			name: "conv_transpose_output_shape", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 2, 2}, ones(4))
				return b.Node("ConvTranspose", []string{x, w}, onnx.Ints("output_shape", 2, 2))
			},
			outDims: []int64{1, 1, 2, 2},
			want:    []float32{10, 6, 7, 4},
		},
		{
			// SAME_UPPER: output = input * stride, padding at the end.
			name: "conv_transpose_same_upper", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 2, 2}, ones(4))
				return b.Node("ConvTranspose", []string{x, w}, onnx.String("auto_pad", "SAME_UPPER"))
			},
			outDims: []int64{1, 1, 2, 2},
			want:    []float32{1, 3, 4, 10},
		},
		{
			// One column of -1 before, a row of -1 after; the last column cropped.
			name: "pad_constant_and_crop", inShape: []int64{1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				p := b.Name("pads")
				b.Model().Graph.Initializer = append(b.Model().Graph.Initializer, &onnxpb.TensorProto{
					Name: p, Dims: []int64{6}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{0, 0, 1, 0, 1, -1}})
				return b.Node("Pad", []string{x, p, b.Initializer("v", nil, []float32{-1})})
			},
			outDims: []int64{1, 3, 2},
			want:    []float32{-1, 1, -1, 3, -1, -1},
		},
		{
			// Channels 2 and 0 of a (1, 3, 1, 2) tensor.
			name: "gather_channels", inShape: []int64{1, 3, 1, 2}, in: seq(6),
			build: func(b *onnx.Builder, x string) string {
				i := b.Name("idx")
				b.Model().Graph.Initializer = append(b.Model().Graph.Initializer, &onnxpb.TensorProto{
					Name: i, Dims: []int64{2}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: []int64{2, 0}})
				return b.Node("Gather", []string{x, i}, onnx.Int("axis", 1))
			},
			outDims: []int64{1, 2, 1, 2},
			want:    []float32{5, 6, 1, 2},
		},
		{
			// YOLOX's export: asymmetric + floor, x = o/2.
			name: "resize_asymmetric_floor", inShape: []int64{1, 1, 1, 3}, in: []float32{1, 2, 3},
			build: func(b *onnx.Builder, x string) string {
				s := b.Initializer("scales", []int64{4}, []float32{1, 1, 1, 2})
				return b.Node("Resize", []string{x, "", s}, onnx.String("mode", "nearest"),
					onnx.String("coordinate_transformation_mode", "asymmetric"), onnx.String("nearest_mode", "floor"))
			},
			outDims: []int64{1, 1, 1, 6},
			want:    []float32{1, 1, 2, 2, 3, 3},
		},
		{
			// 2x2 ones kernel over 1..9 (3x3), padded only bottom and right.
			name: "conv_asymmetric_pads", inShape: []int64{1, 1, 3, 3}, in: seq(9),
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 2, 2}, ones(4))
				return b.Node("Conv", []string{x, w}, onnx.Ints("pads", 0, 0, 1, 1))
			},
			outDims: []int64{1, 1, 3, 3},
			want:    []float32{12, 16, 9, 24, 28, 15, 15, 17, 9},
		},
		{
			// 3x3 ones, stride 2, pad 1 over 1..25 (5x5): window sums.
			name: "conv_stride2_pad1", inShape: []int64{1, 1, 5, 5}, in: seq(25),
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 3, 3}, ones(9))
				return b.Node("Conv", []string{x, w}, onnx.Ints("strides", 2, 2), onnx.Ints("pads", 1, 1, 1, 1))
			},
			outDims: []int64{1, 1, 3, 3},
			want:    []float32{16, 33, 28, 69, 117, 87, 76, 123, 88},
		},
		{
			// Channel 0 sums its 3x3 neighbourhood, channel 1 is the identity
			// kernel plus bias 1.
			name: "conv_depthwise", inShape: []int64{1, 2, 2, 2}, in: []float32{1, 2, 3, 4, 5, 6, 7, 8},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{2, 1, 3, 3}, append(ones(9), 0, 0, 0, 0, 1, 0, 0, 0, 0))
				bias := b.Initializer("b", []int64{2}, []float32{0, 1})
				return b.Node("Conv", []string{x, w, bias}, onnx.Ints("pads", 1, 1, 1, 1), onnx.Int("group", 2))
			},
			outDims: []int64{1, 2, 2, 2},
			want:    []float32{10, 10, 10, 10, 6, 7, 8, 9},
		},
		{
			// Conv (w 2, b 1) then BatchNormalization (gamma 3, beta 0.5,
			// mean 1, var 4, eps 0): 3*(2x+1-1)/2 + 0.5 = 3x + 0.5, folded.
			name: "conv_batchnorm_fold", inShape: []int64{1, 1, 1, 2}, in: []float32{2, -1},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 1, 1}, []float32{2})
				bias := b.Initializer("b", []int64{1}, []float32{1})
				y := b.Node("Conv", []string{x, w, bias})
				p := func(v float32) string { return b.Initializer("p", []int64{1}, []float32{v}) }
				return b.Node("BatchNormalization", []string{y, p(3), p(0.5), p(1), p(4)}, onnx.Float("epsilon", 0))
			},
			outDims: []int64{1, 1, 1, 2},
			want:    []float32{6.5, -2.5},
		},
		{
			// Conv, BatchNormalization and Relu all fold into one kernel.
			name: "conv_batchnorm_relu_fold", inShape: []int64{1, 1, 1, 2}, in: []float32{2, -1},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 1, 1}, []float32{2})
				bias := b.Initializer("b", []int64{1}, []float32{1})
				y := b.Node("Conv", []string{x, w, bias})
				p := func(v float32) string { return b.Initializer("p", []int64{1}, []float32{v}) }
				return b.Relu(b.Node("BatchNormalization", []string{y, p(3), p(0.5), p(1), p(4)}, onnx.Float("epsilon", 0)))
			},
			outDims: []int64{1, 1, 1, 2},
			want:    []float32{6.5, 0},
		},
		{
			// YOLOX's SiLU, Mul(Sigmoid(y), y), fused into the Conv:
			// 2*sigmoid(2) = 2/(1+e**-2) = 1.7615942, -1*sigmoid(-1) = -0.2689414.
			name: "conv_silu_fuse", inShape: []int64{1, 1, 1, 3}, in: []float32{0, 2, -1},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 1, 1}, []float32{1})
				y := b.Node("Conv", []string{x, w})
				return b.Mul(b.Sigmoid(y), y)
			},
			outDims: []int64{1, 1, 1, 3},
			want:    []float32{0, 1.7615942, -0.2689414},
		},
		{
			// The conv output feeds the Relu and the Add: no fusion.
			// y = 2x+1 = [5, -1]; relu(y) + y = [10, -1].
			name: "conv_relu_shared", inShape: []int64{1, 1, 1, 2}, in: []float32{2, -1},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("w", []int64{1, 1, 1, 1}, []float32{2})
				bias := b.Initializer("b", []int64{1}, []float32{1})
				y := b.Node("Conv", []string{x, w, bias})
				return b.Add(b.Relu(y), y)
			},
			outDims: []int64{1, 1, 1, 2},
			want:    []float32{10, -1},
		},
		{
			// Not after a Conv: 3*(x-1)/2 + 0.5.
			name: "batchnorm_alone", inShape: []int64{1, 1, 1, 2}, in: []float32{2, -1},
			build: func(b *onnx.Builder, x string) string {
				p := func(v float32) string { return b.Initializer("p", []int64{1}, []float32{v}) }
				return b.Node("BatchNormalization", []string{x, p(3), p(0.5), p(1), p(4)}, onnx.Float("epsilon", 0))
			},
			outDims: []int64{1, 1, 1, 2},
			want:    []float32{2, -2.5},
		},
		{
			name: "add_per_channel_constant", inShape: []int64{1, 2, 1, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				return b.Add(x, b.Initializer("c", []int64{2, 1, 1}, []float32{10, 20}))
			},
			outDims: []int64{1, 2, 1, 2},
			want:    []float32{11, 12, 23, 24},
		},
		{
			// Constant on the left, broadcast along the last axis.
			name: "sub_constant_minus_row", inShape: []int64{1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				return b.Node("Sub", []string{b.Initializer("c", []int64{2, 1}, []float32{10, 20}), x})
			},
			outDims: []int64{1, 2, 2},
			want:    []float32{9, 8, 17, 16},
		},
		{
			// Two computed tensors of different shapes: x / max over axis 3.
			name: "div_broadcast_computed", inShape: []int64{1, 2, 1, 2}, in: []float32{1, 2, 3, 6},
			build: func(b *onnx.Builder, x string) string {
				m := b.Node("ReduceMax", []string{x}, onnx.Ints("axes", 3), onnx.Int("keepdims", 1))
				return b.Node("Div", []string{x, m})
			},
			outDims: []int64{1, 2, 1, 2},
			want:    []float32{0.5, 1, 0.5, 1},
		},
		{
			// Padding never wins a max, even when every value is negative.
			name: "maxpool_pads_negative", inShape: []int64{1, 1, 2, 2}, in: []float32{-1, -2, -3, -4},
			build: func(b *onnx.Builder, x string) string {
				return b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("pads", 1, 1, 1, 1))
			},
			outDims: []int64{1, 1, 3, 3},
			want:    []float32{-1, -1, -2, -1, -1, -2, -3, -3, -4},
		},
		{
			// count_include_pad 0: padding is left out of the mean.
			name: "averagepool_pads", inShape: []int64{1, 1, 2, 2}, in: []float32{1, 2, 3, 4},
			build: func(b *onnx.Builder, x string) string {
				return b.Node("AveragePool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("pads", 1, 1, 1, 1))
			},
			outDims: []int64{1, 1, 3, 3},
			want:    []float32{1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4},
		},
		{
			// Y = 2 * x * B' + 0.5 * C with x = [1 2], B = [[1 0] [1 1] [0 1]] (3x2).
			name: "gemm_transB_alpha_beta", inShape: []int64{1, 2}, in: []float32{1, 2},
			build: func(b *onnx.Builder, x string) string {
				w := b.Initializer("B", []int64{3, 2}, []float32{1, 0, 1, 1, 0, 1})
				c := b.Initializer("C", []int64{3}, []float32{2, 4, 6})
				return b.Node("Gemm", []string{x, w, c}, onnx.Int("transB", 1), onnx.Float("alpha", 2), onnx.Float("beta", 0.5))
			},
			outDims: []int64{1, 3},
			want:    []float32{3, 8, 7},
		},
		{
			name: "softmax", inShape: []int64{1, 2}, in: []float32{0, float32(math.Log(3))},
			build:   func(b *onnx.Builder, x string) string { return b.Node("Softmax", []string{x}, onnx.Int("axis", -1)) },
			outDims: []int64{1, 2},
			want:    []float32{0.25, 0.75},
		},
		{
			// YOLOX's space-to-depth: every other column from 1, then a transpose.
			name: "slice_step_transpose", inShape: []int64{1, 2, 4}, in: seq(8),
			build: func(b *onnx.Builder, x string) string {
				i64 := func(v ...int64) string {
					b.Model().Graph.Initializer = append(b.Model().Graph.Initializer, &onnxpb.TensorProto{
						Name: b.Name("i"), Dims: []int64{int64(len(v))}, DataType: int32(onnxpb.TensorProto_INT64), Int64Data: v})
					return b.Model().Graph.Initializer[len(b.Model().Graph.Initializer)-1].GetName()
				}
				s := b.Node("Slice", []string{x, i64(1), i64(math.MaxInt64), i64(2), i64(2)})
				return b.Node("Transpose", []string{s}, onnx.Ints("perm", 0, 2, 1))
			},
			outDims: []int64{1, 2, 2},
			want:    []float32{2, 6, 4, 8},
		},
	} {
		t.Run(tc.name, func(t *testing.T) { runOp(t, tc) })
	}
}

// TestOutputsAlsoConsumed checks outputs that other nodes read too, and an
// output that is the input itself, keep their values after the run.
func TestOutputsAlsoConsumed(t *testing.T) {
	b := onnx.NewBuilder("outs", 1)
	x := b.Input("x", 1, 2)
	a := b.Add(x, b.Initializer("one", []int64{1}, []float32{1})) // Go kernel
	sq := b.Mul(a, a)                                             // gorgonia HadamardProd
	s := b.Sigmoid(sq)                                            // gorgonia Sigmoid, may work in place
	b.Output(a, 1, 2)
	b.Output(sq, 1, 2)
	b.Output(s, 1, 2)
	b.Output(b.Node("Identity", []string{x}), 1, 2)
	m, err := LoadModel(b.Model(), Options{})
	require.NoError(t, err)
	defer m.Close()
	for _, in := range [][]float32{{1, 2}, {-1, 0.5}} {
		copy(m.Input(0), in)
		require.NoError(t, m.Run())
		a0, a1 := in[0]+1, in[1]+1
		require.InDeltaSlice(t, []float32{a0, a1}, m.Output(0), 1e-6)
		require.InDeltaSlice(t, []float32{a0 * a0, a1 * a1}, m.Output(1), 1e-6)
		logistic := func(v float32) float32 { return float32(1 / (1 + math.Exp(-float64(v)))) }
		require.InDeltaSlice(t, []float32{logistic(a0 * a0), logistic(a1 * a1)}, m.Output(2), 1e-6)
		require.InDeltaSlice(t, in, m.Output(3), 0)
	}
}

func TestInputShapes(t *testing.T) {
	b := onnx.NewBuilder("anysize", 1)
	x := b.Input("x", -1, 1, -1, -1)
	b.Output(b.MaxPool(x, 2, 2), -1, 1, -1, -1)
	m := b.Model()
	_, err := LoadModel(m, Options{})
	require.ErrorIs(t, err, ErrUnsupported)
	require.ErrorContains(t, err, "symbolic dimension 2")
	_, err = LoadModel(m, Options{InputShapes: map[string][]int64{"x": {1, 4, 4}}})
	require.ErrorContains(t, err, "3 dimensions for rank 4")
	_, err = LoadModel(m, Options{InputShapes: map[string][]int64{"x": {1, 2, 4, 4}}})
	require.ErrorContains(t, err, "dimension 1 is 2, model has 1")
	_, err = LoadModel(m, Options{InputShapes: map[string][]int64{"y": {1, 1, 4, 4}}})
	require.ErrorContains(t, err, `"y"`)
	md, err := LoadModel(m, Options{BatchSize: 2, InputShapes: map[string][]int64{"x": {0, 1, 4, 6}}})
	require.NoError(t, err)
	defer md.Close()
	require.Equal(t, []int64{2, 1, 4, 6}, md.Inputs()[0].Shape)
	require.Equal(t, []int64{2, 1, 2, 3}, md.Outputs()[0].Shape)
}

func TestUnsupportedOp(t *testing.T) {
	b := onnx.NewBuilder("lstm", 1)
	x := b.Input("x", 1, 4)
	y := b.Node("LSTM", []string{x})
	b.Output(y, 1, 4)
	_, err := LoadModel(b.Model(), Options{})
	require.ErrorIs(t, err, ErrUnsupported)
	require.EqualError(t, err, `purego: node "LSTM_1": op "LSTM" not supported`)
}

func TestBadModels(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(b *onnx.Builder, x string) string
	}{
		{"conv_weight_mismatch", func(b *onnx.Builder, x string) string {
			return b.Node("Conv", []string{x, b.Initializer("w", []int64{1, 5, 3, 3}, ones(45))})
		}},
		{"kernel_larger_than_input", func(b *onnx.Builder, x string) string {
			return b.Node("Conv", []string{x, b.Initializer("w", []int64{1, 3, 9, 9}, ones(243))})
		}},
		{"shapes_do_not_broadcast", func(b *onnx.Builder, x string) string {
			return b.Add(x, b.Initializer("c", []int64{5}, ones(5)))
		}},
		{"missing_input", func(b *onnx.Builder, x string) string { return b.Relu("nowhere") }},
		{"resize_cubic", func(b *onnx.Builder, x string) string {
			s := b.Initializer("scales", []int64{4}, []float32{1, 1, 2, 2})
			return b.Node("Resize", []string{x, "", s}, onnx.String("mode", "cubic"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := onnx.NewBuilder(tc.name, 1)
			x := b.Input("x", 1, 3, 4, 4)
			b.Output(tc.build(b, x), 1, 3, 4, 4)
			_, err := LoadModel(b.Model(), Options{})
			require.Error(t, err)
			t.Log(err)
		})
	}
}

// TestInputBufferBound checks Run reads Input(i) in place on every run,
// and that the symbolic batch takes Options.BatchSize.
func TestInputBufferBound(t *testing.T) {
	b := onnx.NewBuilder("relu", 1)
	x := b.Input("x", -1, 1, 1, 2)
	b.Output(b.Relu(b.Conv(x, 1, 1, 1, 1, 1)), -1, 1, 1, 2)
	m, err := LoadModel(b.Model(), Options{BatchSize: 2})
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, []int64{2, 1, 1, 2}, m.Inputs()[0].Shape)
	in, out := m.Input(0), m.Output(0)
	require.Len(t, in, 4)
	w, bias := onnx.Initializer(b.Model().GetGraph(), "w_1"), onnx.Initializer(b.Model().GetGraph(), "b_2")
	wv, err := onnx.Floats(w)
	require.NoError(t, err)
	bv, err := onnx.Floats(bias)
	require.NoError(t, err)
	for _, v := range [][]float32{{1, -1, 2, -2}, {-3, 3, 0.5, 0}} {
		copy(in, v)
		require.NoError(t, m.Run())
		for i := range v {
			require.InDelta(t, max(0, v[i]*wv[0]+bv[0]), out[i], 1e-6)
		}
	}
	require.NoError(t, m.Close())
	require.ErrorIs(t, m.Run(), ErrClosed)
}

// TestRunAllocatesLittle guards the steady-state garbage of Run: the Go
// kernels own their outputs, so only gorgonia's own ops (Sigmoid, Mul,
// the machine's bookkeeping) allocate. With gorgonia's Conv2d, Rectify and
// Concat the same model makes about 34 MB of garbage per run.
func TestRunAllocatesLittle(t *testing.T) {
	m, err := LoadModel(centerNet(128), Options{})
	require.NoError(t, err)
	defer m.Close()
	fillRandom(m.Input(0), 1)
	require.NoError(t, m.Run())
	var before, after runtime.MemStats
	const runs = 5
	runtime.ReadMemStats(&before)
	for range runs {
		require.NoError(t, m.Run())
	}
	runtime.ReadMemStats(&after)
	perRun := (after.TotalAlloc - before.TotalAlloc) / runs
	t.Logf("%d bytes, %d allocations per run", perRun, (after.Mallocs-before.Mallocs)/runs)
	require.Less(t, perRun, uint64(1<<20))
}

// BenchmarkCenterNet times one Run of the 128x128 CenterNet-style model
// without ONNX Runtime (cgo builds compare the two in BenchmarkRun).
func BenchmarkCenterNet(b *testing.B) {
	m, err := LoadModel(centerNet(128), Options{})
	require.NoError(b, err)
	defer m.Close()
	fillRandom(m.Input(0), 1)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Run(); err != nil {
			b.Fatal(err)
		}
	}
}
