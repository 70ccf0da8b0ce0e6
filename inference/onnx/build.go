package onnx

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// Opset is the ONNX operator set version the Builder writes.
const Opset = 17

// Builder assembles an ONNX graph node by node. Each method adds one node
// and returns the name of its output, so layers chain naturally:
//
//	b := onnx.NewBuilder("tiny", 1)
//	x := b.Input("images", 1, 3, 64, 64)
//	x = b.Relu(b.Conv(x, 3, 8, 3, 1, 1))
//	b.Output(x, 1, 8, 64, 64)
//	m := b.Model()
//
// Weights are drawn from a seeded He-normal distribution, so the same
// seed builds the same model.
type Builder struct {
	g   *onnxpb.GraphProto
	rng *rand.Rand
	n   int
}

// NewBuilder starts a graph called name whose weights come from seed.
func NewBuilder(name string, seed uint64) *Builder {
	return &Builder{g: &onnxpb.GraphProto{Name: name}, rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))}
}

// Name returns a fresh value name with the given prefix.
func (b *Builder) Name(prefix string) string {
	b.n++
	return fmt.Sprintf("%s_%d", prefix, b.n)
}

func valueInfo(name string, dims []int64) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for i, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}}
		if d <= 0 {
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: fmt.Sprintf("d%d", i)}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
		TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape},
	}}}
}

// Input declares a float input; a dimension <= 0 is symbolic (a batch).
func (b *Builder) Input(name string, dims ...int64) string {
	b.g.Input = append(b.g.Input, valueInfo(name, dims))
	return name
}

// Output declares value name as a float graph output of the given shape.
func (b *Builder) Output(name string, dims ...int64) {
	b.g.Output = append(b.g.Output, valueInfo(name, dims))
}

// Initializer adds a constant float tensor and returns its name.
func (b *Builder) Initializer(prefix string, dims []int64, data []float32) string {
	name := b.Name(prefix)
	b.g.Initializer = append(b.g.Initializer, FloatTensor(name, dims, data))
	return name
}

// Node adds a node of type op and returns its single output's name.
func (b *Builder) Node(op string, inputs []string, attrs ...*onnxpb.AttributeProto) string {
	out := b.Name(op)
	b.g.Node = append(b.g.Node, &onnxpb.NodeProto{
		Name: out, OpType: op, Input: inputs, Output: []string{out}, Attribute: attrs,
	})
	return out
}

// Ints makes an INTS attribute.
func Ints(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS, Ints: v}
}

// Int makes an INT attribute.
func Int(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: v}
}

// Float makes a FLOAT attribute.
func Float(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_FLOAT, F: v}
}

// String makes a STRING attribute.
func String(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_STRING, S: []byte(v)}
}

func (b *Builder) normal(n int, std float64) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(b.rng.NormFloat64() * std)
	}
	return w
}

// Conv adds a k x k convolution from cin to cout channels with a bias,
// He-initialised. groups is 1 for a regular convolution, cin for a
// depthwise one.
func (b *Builder) Conv(x string, cin, cout, k, stride, groups int) string {
	fanIn := cin / groups * k * k
	w := b.Initializer("w", []int64{int64(cout), int64(cin / groups), int64(k), int64(k)},
		b.normal(cout*cin/groups*k*k, math.Sqrt(2/float64(fanIn))))
	bias := b.Initializer("b", []int64{int64(cout)}, b.normal(cout, 0.05))
	p := int64(k / 2)
	return b.Node("Conv", []string{x, w, bias},
		Ints("kernel_shape", int64(k), int64(k)), Ints("strides", int64(stride), int64(stride)),
		Ints("pads", p, p, p, p), Int("group", int64(groups)))
}

// ConvTranspose adds a k x k transposed convolution that upsamples by
// stride (k == stride, no padding).
func (b *Builder) ConvTranspose(x string, cin, cout, k int) string {
	w := b.Initializer("w", []int64{int64(cin), int64(cout), int64(k), int64(k)},
		b.normal(cin*cout*k*k, math.Sqrt(2/float64(cin))))
	bias := b.Initializer("b", []int64{int64(cout)}, b.normal(cout, 0.05))
	return b.Node("ConvTranspose", []string{x, w, bias},
		Ints("kernel_shape", int64(k), int64(k)), Ints("strides", int64(k), int64(k)))
}

// Relu adds a ReLU.
func (b *Builder) Relu(x string) string { return b.Node("Relu", []string{x}) }

// Sigmoid adds a logistic sigmoid.
func (b *Builder) Sigmoid(x string) string { return b.Node("Sigmoid", []string{x}) }

// Add adds an element-wise (broadcasting) sum.
func (b *Builder) Add(x, y string) string { return b.Node("Add", []string{x, y}) }

// Mul adds an element-wise (broadcasting) product.
func (b *Builder) Mul(x, y string) string { return b.Node("Mul", []string{x, y}) }

// Concat joins values along axis.
func (b *Builder) Concat(axis int, xs ...string) string {
	return b.Node("Concat", xs, Int("axis", int64(axis)))
}

// MaxPool adds a k x k max pool with the given stride and no padding.
func (b *Builder) MaxPool(x string, k, stride int) string {
	return b.Node("MaxPool", []string{x},
		Ints("kernel_shape", int64(k), int64(k)), Ints("strides", int64(stride), int64(stride)))
}

// GlobalAveragePool averages each channel over its whole plane.
func (b *Builder) GlobalAveragePool(x string) string {
	return b.Node("GlobalAveragePool", []string{x})
}

// Upsample adds a nearest-neighbour Resize by an integer factor on H and W.
func (b *Builder) Upsample(x string, factor int) string {
	f := float32(factor)
	scales := b.Initializer("scales", []int64{4}, []float32{1, 1, f, f})
	return b.Node("Resize", []string{x, "", scales}, String("mode", "nearest"))
}

// Flatten flattens all axes after the first.
func (b *Builder) Flatten(x string) string { return b.Node("Flatten", []string{x}, Int("axis", 1)) }

// Gemm adds a fully connected layer from in to out features.
func (b *Builder) Gemm(x string, in, out int) string {
	w := b.Initializer("w", []int64{int64(out), int64(in)}, b.normal(in*out, math.Sqrt(1/float64(in))))
	bias := b.Initializer("b", []int64{int64(out)}, b.normal(out, 0.05))
	return b.Node("Gemm", []string{x, w, bias}, Int("transB", 1))
}

// Model wraps the graph in a model with the Builder's opset.
func (b *Builder) Model() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:    8,
		ProducerName: "vigil",
		OpsetImport:  []*onnxpb.OperatorSetIdProto{{Domain: "", Version: Opset}},
		Graph:        b.g,
	}
}
