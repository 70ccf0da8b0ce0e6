// Package purego runs ONNX models in pure Go on gorgonia.org/gorgonia, for
// builds without ONNX Runtime (CGO_ENABLED=0) or machines that lack it. It
// covers the operators of Vigil's own architectures (CenterNet-style
// detector, small UNet, re-ID embedder) and those of the reference models
// in shared/data (YOLOX, NanoDet, FastestDet, UltraFace, BodyPix, selfie
// segmentation, OSNet-style re-ID); see https://onnx.ai/onnx/operators/.
//
// Load compiles an ONNX graph once into a gorgonia expression graph run by
// a TapeMachine. Shapes are fixed at load (a symbolic batch becomes
// Options.BatchSize), constant subgraphs are folded, and a
// BatchNormalization or Relu after a Conv is folded into it. gorgonia's
// own ops run Sigmoid, GlobalAveragePool, Gemm and 2-D MatMul (Mul), and
// element-wise Add/Sub/Mul/Div of equal shapes. The rest are Go kernels
// wrapped as gorgonia Ops that own their output tensors: ConvTranspose,
// Resize, pools, Slice, Pad, broadcasting, reductions and so on, which
// gorgonia lacks, and Conv, Relu and Concat, where gorgonia's ops exist
// but allocate on every run (Conv2d its im2col matrix and a transpose,
// Rectify a mask, Concat copies through an iterator): convolutions run as
// im2col plus gorgonia's tensor MatMul (gonum SGEMM), depthwise ones as a
// direct loop.
//
// Data enters through the float32 buffers Input(i) returns, which back the
// graph's input tensors, and leaves through the buffers Output(i) returns,
// filled by Run. The method set mirrors inference/ort.Session, so callers
// treat both runtimes alike.
package purego

import (
	"errors"
	"fmt"
	"slices"

	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// ErrUnsupported is wrapped by Load's error when the model uses an
// operator, attribute or element type this runtime does not run.
var ErrUnsupported = errors.New("not supported")

// ErrClosed is returned by Run after Close.
var ErrClosed = errors.New("purego: model closed")

// Options tune how a model is compiled. The zero value is the default.
type Options struct {
	// BatchSize replaces a symbolic leading dimension of the inputs. It
	// defaults to 1. The other dimensions must be fixed in the model.
	//
	// There is no thread count: gorgonia's matrix products use gonum's
	// BLAS, which splits large products over GOMAXPROCS goroutines; set
	// GOMAXPROCS to bound it.
	BatchSize int
	// InputShapes fixes the symbolic dimensions of named inputs, for
	// models that take any picture size: the shape must have the input's
	// rank and agree with its fixed dimensions; a leading 0 stands for
	// BatchSize. As in inference/ort.SessionOptions.
	InputShapes map[string][]int64

	// gorgoniaOps uses gorgonia's Conv2d, Rectify and Concat rather
	// than the Go kernels that replace them (for tests and comparisons).
	gorgoniaOps bool
}

// TensorInfo describes one model input or output as the model runs it.
type TensorInfo struct {
	// Name is the tensor's name in the ONNX graph.
	Name string
	// Shape is the fixed shape of the buffer (batch substituted).
	Shape []int64
	// Type is the element type; always "float32".
	Type string
}

// Elements returns the number of elements of a tensor of this shape.
func (t TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Model is an ONNX graph compiled to a gorgonia expression graph and a
// TapeMachine. Its buffers are allocated once at load and reused by every
// Run. It is not safe for concurrent use: one goroutine fills the inputs,
// runs and reads the outputs; load one Model per goroutine to run in
// parallel.
type Model struct {
	inputs, outputs []TensorInfo
	inBuf, outBuf   [][]float32
	vm              G.VM
	closed          bool
}

// Load reads the ONNX model at path and compiles it.
func Load(path string, o Options) (*Model, error) {
	m, err := onnx.Read(path)
	if err != nil {
		return nil, fmt.Errorf("loading model: %w", err)
	}
	md, err := LoadModel(m, o)
	if err != nil {
		return nil, fmt.Errorf("loading model %s: %w", path, err)
	}
	return md, nil
}

// LoadModel compiles a parsed ONNX model. It does not modify m; weights
// are copied out of it.
func LoadModel(m *onnxpb.ModelProto, o Options) (*Model, error) {
	if o.BatchSize < 0 {
		return nil, fmt.Errorf("purego: batch size must be >= 0, got %d", o.BatchSize)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1
	}
	g := m.GetGraph()
	if g == nil {
		return nil, errors.New("purego: model has no graph")
	}
	c := newCompiler(m)
	c.gorgoniaOps = o.gorgoniaOps
	for _, t := range g.GetInitializer() {
		v, err := constant(t)
		if err != nil {
			return nil, fmt.Errorf("purego: initializer: %w", err)
		}
		c.vals[t.GetName()] = v
	}
	for name := range o.InputShapes {
		if !slices.ContainsFunc(g.GetInput(), func(vi *onnxpb.ValueInfoProto) bool { return vi.GetName() == name }) {
			return nil, fmt.Errorf("purego: InputShapes names %q, which is not an input", name)
		}
	}
	md := &Model{}
	for _, in := range g.GetInput() {
		if _, ok := c.vals[in.GetName()]; ok {
			continue // an initializer listed as an input (IR < 4)
		}
		info, err := tensorInfo(in, o.BatchSize, o.InputShapes[in.GetName()])
		if err != nil {
			return nil, fmt.Errorf("purego: input %w", err)
		}
		shape := make([]int, len(info.Shape))
		for i, d := range info.Shape {
			shape[i] = int(d)
		}
		if len(shape) == 0 || len(shape) > maxRank {
			return nil, fmt.Errorf("purego: input %q has rank %d, want 1 to %d", info.Name, len(shape), maxRank)
		}
		if err := checkShape(shape); err != nil {
			return nil, fmt.Errorf("purego: input %q: %w", info.Name, err)
		}
		buf := make([]float32, info.Elements())
		nd := c.tensorNode("input:"+info.Name, shape, buf)
		c.vals[info.Name] = &value{shape: shape, node: nd}
		md.inputs = append(md.inputs, info)
		md.inBuf = append(md.inBuf, buf)
	}
	for i, n := range g.GetNode() {
		name := n.GetName()
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		if d := n.GetDomain(); d != "" && d != "ai.onnx" {
			return nil, fmt.Errorf("purego: node %q: op %q of domain %q: %w", name, n.GetOpType(), d, ErrUnsupported)
		}
		if err := c.node(n); err != nil {
			if err == ErrUnsupported {
				return nil, fmt.Errorf("purego: node %q: op %q %w", name, n.GetOpType(), err)
			}
			return nil, fmt.Errorf("purego: node %q (%s): %w", name, n.GetOpType(), err)
		}
	}
	for _, out := range g.GetOutput() {
		v, ok := c.vals[out.GetName()]
		if !ok {
			return nil, fmt.Errorf("purego: output %q is not computed by the graph", out.GetName())
		}
		if v.isInt {
			return nil, fmt.Errorf("purego: output %q is an integer tensor: %w", out.GetName(), ErrUnsupported)
		}
		info := TensorInfo{Name: out.GetName(), Type: "float32"}
		for _, d := range v.shape {
			info.Shape = append(info.Shape, int64(d))
		}
		buf := make([]float32, size(v.shape))
		if v.isConst() {
			copy(buf, v.f)
		} else {
			// A sink op copies the value into the output buffer as soon as it
			// is computed: reading the node's value after the run could see
			// a register the machine has since reused for another node.
			sink := func(_ []float32, ins [][]float32) { copy(buf, ins[0]) }
			if _, err := c.apply("output:"+out.GetName(), sink, []int{1}, v); err != nil {
				return nil, fmt.Errorf("purego: output %q: %w", out.GetName(), err)
			}
		}
		md.outputs = append(md.outputs, info)
		md.outBuf = append(md.outBuf, buf)
	}
	md.vm = G.NewTapeMachine(c.g)
	return md, nil
}

// tensorInfo reads a graph input's shape, substituting batch for a
// symbolic leading dimension, or taking the dimensions of fixed (a leading
// 0 there is the batch) when it is given.
func tensorInfo(vi *onnxpb.ValueInfoProto, batch int, fixed []int64) (TensorInfo, error) {
	tt := vi.GetType().GetTensorType()
	if tt == nil || tt.GetElemType() != int32(onnxpb.TensorProto_FLOAT) {
		return TensorInfo{}, fmt.Errorf("%q: not a float tensor: %w", vi.GetName(), ErrUnsupported)
	}
	dims := tt.GetShape().GetDim()
	if fixed != nil && len(fixed) != len(dims) {
		return TensorInfo{}, fmt.Errorf("%q: InputShapes gives %d dimensions for rank %d", vi.GetName(), len(fixed), len(dims))
	}
	info := TensorInfo{Name: vi.GetName(), Type: "float32"}
	for i, d := range dims {
		v := d.GetDimValue()
		switch {
		case fixed != nil:
			f := fixed[i]
			if i == 0 && f == 0 {
				f = int64(batch)
			}
			if f <= 0 || (v > 0 && f != v) {
				return TensorInfo{}, fmt.Errorf("%q: InputShapes dimension %d is %d, model has %d", vi.GetName(), i, fixed[i], v)
			}
			v = f
		case v <= 0 && i == 0:
			v = int64(batch)
		case v <= 0:
			return TensorInfo{}, fmt.Errorf("%q: symbolic dimension %d (only the batch may be symbolic; see Options.InputShapes): %w", vi.GetName(), i, ErrUnsupported)
		}
		info.Shape = append(info.Shape, v)
	}
	return info, nil
}

// Inputs describes the model's inputs, in graph order.
func (m *Model) Inputs() []TensorInfo { return cloneInfos(m.inputs) }

// Outputs describes the model's outputs, in graph order.
func (m *Model) Outputs() []TensorInfo { return cloneInfos(m.outputs) }

func cloneInfos(ts []TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = t
		out[i].Shape = slices.Clone(t.Shape)
	}
	return out
}

// Input returns the buffer of input i, row-major, to fill before Run. The
// graph reads it in place; it is the same slice for the Model's lifetime.
func (m *Model) Input(i int) []float32 { return m.inBuf[i] }

// Output returns the buffer Run writes output i into; it is the same slice
// for the Model's lifetime.
func (m *Model) Output(i int) []float32 { return m.outBuf[i] }

// Run computes the outputs from the current inputs.
func (m *Model) Run() error {
	if m.closed {
		return ErrClosed
	}
	defer m.vm.Reset()
	if err := m.vm.RunAll(); err != nil {
		return fmt.Errorf("running model: %w", err)
	}
	return nil
}

// Close releases the machine. The Model cannot run afterwards.
func (m *Model) Close() error {
	if m.closed {
		return nil
	}
	m.closed = true
	return m.vm.Close()
}
