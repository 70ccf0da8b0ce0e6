package purego

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// value is one ONNX value during compilation: a gorgonia node computed at
// run time, or a constant known at load (an initializer, or a node folded
// because all its inputs were constant).
type value struct {
	shape []int
	node  *G.Node   // nil for a constant
	f     []float32 // constant float data
	i     []int64   // constant integer data (shapes, indices)
	isInt bool
}

func (v *value) isConst() bool { return v.node == nil }

// maxElements bounds the size of any one tensor (1 GiB of float32), so a
// corrupt or hostile shape is an error at load, not an out-of-memory
// crash.
const maxElements = 1 << 28

// checkShape rejects empty, negative and oversized shapes.
func checkShape(s []int) error {
	n := 1
	for _, d := range s {
		if d <= 0 || d > maxElements {
			return fmt.Errorf("shape %v has a dimension out of range", s)
		}
		n *= d
		if n > maxElements {
			return fmt.Errorf("shape %v has more than %d elements", s, maxElements)
		}
	}
	return nil
}

// maxRank bounds tensor ranks; the index-walking kernels keep their
// multi-index in fixed arrays of this size.
const maxRank = 8

type compiler struct {
	g         *G.ExprGraph
	opset     int64
	vals      map[string]*value
	consumers map[string][]*onnxpb.NodeProto
	outputs   map[string]bool
	skip      map[*onnxpb.NodeProto]bool
	alias     map[*onnxpb.NodeProto]string // a folded node's output name
	ops       int
	// gorgoniaOps uses gorgonia's Conv2d, Rectify, Sigmoid, Concat and
	// element-wise ops instead of the Go kernels that replace them by
	// default (tests compare both).
	gorgoniaOps bool
}

func newCompiler(m *onnxpb.ModelProto) *compiler {
	c := &compiler{
		g:         G.NewGraph(),
		opset:     opsetOf(m),
		vals:      map[string]*value{},
		consumers: map[string][]*onnxpb.NodeProto{},
		outputs:   map[string]bool{},
		skip:      map[*onnxpb.NodeProto]bool{},
		alias:     map[*onnxpb.NodeProto]string{},
	}
	for _, n := range m.GetGraph().GetNode() {
		for _, in := range n.GetInput() {
			c.consumers[in] = append(c.consumers[in], n)
		}
	}
	for _, o := range m.GetGraph().GetOutput() {
		c.outputs[o.GetName()] = true
	}
	return c
}

// opsetOf returns the version of the default ONNX operator set m imports.
func opsetOf(m *onnxpb.ModelProto) int64 {
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			return o.GetVersion()
		}
	}
	return 1
}

// constant turns an initializer into a value.
func constant(t *onnxpb.TensorProto) (*value, error) {
	v := &value{}
	for _, d := range t.GetDims() {
		v.shape = append(v.shape, int(d))
	}
	n := size(v.shape)
	switch onnxpb.TensorProto_DataType(t.GetDataType()) {
	case onnxpb.TensorProto_FLOAT:
		f, err := onnx.Floats(t)
		if err != nil {
			return nil, err
		}
		v.f = f
		return v, nil
	case onnxpb.TensorProto_INT64:
		v.isInt = true
		if raw := t.GetRawData(); len(raw) > 0 {
			if len(raw) != 8*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d int64s", t.GetName(), len(raw), n)
			}
			for k := range n {
				v.i = append(v.i, int64(binary.LittleEndian.Uint64(raw[8*k:])))
			}
		} else {
			v.i = slices.Clone(t.GetInt64Data())
		}
	case onnxpb.TensorProto_INT32:
		v.isInt = true
		if raw := t.GetRawData(); len(raw) > 0 {
			if len(raw) != 4*n {
				return nil, fmt.Errorf("tensor %q: %d raw bytes for %d int32s", t.GetName(), len(raw), n)
			}
			for k := range n {
				v.i = append(v.i, int64(int32(binary.LittleEndian.Uint32(raw[4*k:]))))
			}
		} else {
			for _, x := range t.GetInt32Data() {
				v.i = append(v.i, int64(x))
			}
		}
	default:
		return nil, fmt.Errorf("tensor %q: element type %s: %w", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()), ErrUnsupported)
	}
	if len(v.i) != n {
		return nil, fmt.Errorf("tensor %q: %d values for shape %v", t.GetName(), len(v.i), v.shape)
	}
	return v, nil
}

// attrs gives typed access to a node's attributes with defaults.
type attrs map[string]*onnxpb.AttributeProto

func attrsOf(n *onnxpb.NodeProto) attrs {
	a := attrs{}
	for _, at := range n.GetAttribute() {
		a[at.GetName()] = at
	}
	return a
}

func (a attrs) int(name string, def int) int {
	if at, ok := a[name]; ok {
		return int(at.GetI())
	}
	return def
}

func (a attrs) float(name string, def float32) float32 {
	if at, ok := a[name]; ok {
		return at.GetF()
	}
	return def
}

func (a attrs) str(name, def string) string {
	if at, ok := a[name]; ok {
		return string(at.GetS())
	}
	return def
}

// ints returns an INTS attribute, or def repeated n times when absent.
func (a attrs) ints(name string, n, def int) []int {
	if at, ok := a[name]; ok {
		out := make([]int, len(at.GetInts()))
		for i, v := range at.GetInts() {
			out[i] = int(v)
		}
		return out
	}
	out := make([]int, n)
	for i := range out {
		out[i] = def
	}
	return out
}

// in returns the node's i-th input value, or nil when it is absent or "".
func (c *compiler) in(n *onnxpb.NodeProto, i int) (*value, error) {
	if i >= len(n.GetInput()) || n.GetInput()[i] == "" {
		return nil, nil
	}
	v, ok := c.vals[n.GetInput()[i]]
	if !ok {
		return nil, fmt.Errorf("input %q is not computed before this node (graph not topologically sorted?)", n.GetInput()[i])
	}
	return v, nil
}

// constInts returns a constant integer input (shape, axes, starts...).
func (c *compiler) constInts(n *onnxpb.NodeProto, i int) ([]int, bool, error) {
	v, err := c.in(n, i)
	if err != nil || v == nil {
		return nil, false, err
	}
	if !v.isConst() {
		return nil, false, fmt.Errorf("input %d must be a constant: %w", i, ErrUnsupported)
	}
	if !v.isInt {
		out := make([]int, len(v.f))
		for k, f := range v.f {
			out[k] = int(f)
		}
		return out, true, nil
	}
	out := make([]int, len(v.i))
	for k, x := range v.i {
		out[k] = int(clampInt(x))
	}
	return out, true, nil
}

// clampInt keeps INT64_MAX-style sentinels (Slice ends) inside int range.
func clampInt(x int64) int64 { return max(min(x, math.MaxInt32), math.MinInt32) }

// constFloats returns a constant float input.
func (c *compiler) constFloats(n *onnxpb.NodeProto, i int) ([]float32, []int, error) {
	v, err := c.in(n, i)
	if err != nil || v == nil {
		return nil, nil, err
	}
	if !v.isConst() || v.isInt {
		return nil, nil, fmt.Errorf("input %d must be a float constant: %w", i, ErrUnsupported)
	}
	return v.f, v.shape, nil
}

// dyn makes a gorgonia node for v (a constant becomes a bound tensor).
func (c *compiler) dyn(v *value) *G.Node {
	if v.node != nil {
		return v.node
	}
	c.ops++
	return c.tensorNode(fmt.Sprintf("const_%d", c.ops), v.shape, v.f)
}

func (c *compiler) tensorNode(name string, shape []int, data []float32) *G.Node {
	t := tensor.New(tensor.WithShape(slices.Clone(shape)...), tensor.WithBacking(data))
	return G.NewTensor(c.g, tensor.Float32, len(shape), G.WithShape(slices.Clone(shape)...), G.WithName(name), G.WithValue(t))
}

// apply computes a kernel over ins: folded now when every input is
// constant, otherwise as a kernelOp in the graph.
func (c *compiler) apply(name string, fn kernel, out []int, ins ...*value) (*value, error) {
	allConst := true
	for _, v := range ins {
		if !v.isConst() {
			allConst = false
		} else if v.isInt {
			return nil, fmt.Errorf("integer input to a float operator: %w", ErrUnsupported)
		}
	}
	if allConst {
		o := make([]float32, size(out))
		data := make([][]float32, len(ins))
		for i, v := range ins {
			data[i] = v.f
		}
		fn(o, data)
		return &value{shape: out, f: o}, nil
	}
	c.ops++
	op := &kernelOp{name: name, id: c.ops, out: tensor.Shape(slices.Clone(out)), fn: fn}
	nodes := make([]*G.Node, len(ins))
	for i, v := range ins {
		op.in = append(op.in, tensor.Shape(slices.Clone(v.shape)))
		nodes[i] = c.dyn(v)
	}
	nd, err := G.ApplyOp(op, nodes...)
	if err != nil {
		return nil, fmt.Errorf("adding op: %w", err)
	}
	return &value{shape: out, node: nd}, nil
}

// gnode wraps the result of a gorgonia builder call as a value.
func gnode(nd *G.Node, err error) (*value, error) {
	if err != nil {
		return nil, err
	}
	s := nd.Shape()
	shape := make([]int, len(s))
	copy(shape, s)
	return &value{shape: shape, node: nd}, nil
}

// node compiles one ONNX node. It recovers from gorgonia's panics on
// shapes it does not expect, so a strange model is an error, not a crash.
func (c *compiler) node(n *onnxpb.NodeProto) (err error) {
	if c.skip[n] {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gorgonia: %v", r)
		}
	}()
	outs, err := c.compile(n)
	if err != nil {
		return err
	}
	if len(outs) < len(n.GetOutput()) {
		// Extra outputs (BatchNormalization's running stats, Dropout's
		// mask) are training-only; using one is an error at its consumer.
		for _, name := range n.GetOutput()[len(outs):] {
			if name != "" && (len(c.consumers[name]) > 0 || c.outputs[name]) {
				return fmt.Errorf("output %q: %w", name, ErrUnsupported)
			}
		}
	}
	for i, v := range outs {
		if i < len(n.GetOutput()) {
			if err := checkShape(v.shape); err != nil {
				return fmt.Errorf("output %q: %w", n.GetOutput()[i], err)
			}
			if len(v.shape) > maxRank {
				return fmt.Errorf("output %q has rank %d > %d: %w", n.GetOutput()[i], len(v.shape), maxRank, ErrUnsupported)
			}
			c.vals[n.GetOutput()[i]] = v
		}
	}
	if name, ok := c.alias[n]; ok && len(outs) > 0 {
		c.vals[name] = outs[0]
	}
	return nil
}

func one(v *value, err error) ([]*value, error) {
	if err != nil {
		return nil, err
	}
	return []*value{v}, nil
}

// compile dispatches on the operator. Operators follow
// https://onnx.ai/onnx/operators/.
func (c *compiler) compile(n *onnxpb.NodeProto) ([]*value, error) {
	a := attrsOf(n)
	x, err := c.in(n, 0)
	if err != nil {
		return nil, err
	}
	if x == nil && n.GetOpType() != "Constant" {
		return nil, fmt.Errorf("missing first input")
	}
	switch op := n.GetOpType(); op {
	case "Constant":
		t := a["value"].GetT()
		if t == nil {
			if f, ok := a["value_float"]; ok {
				return []*value{{shape: []int{}, f: []float32{f.GetF()}}}, nil
			}
			if f, ok := a["value_floats"]; ok {
				return []*value{{shape: []int{len(f.GetFloats())}, f: slices.Clone(f.GetFloats())}}, nil
			}
			if i, ok := a["value_int"]; ok {
				return []*value{{shape: []int{}, i: []int64{i.GetI()}, isInt: true}}, nil
			}
			if i, ok := a["value_ints"]; ok {
				return []*value{{shape: []int{len(i.GetInts())}, i: slices.Clone(i.GetInts()), isInt: true}}, nil
			}
			return nil, fmt.Errorf("constant without a supported value attribute: %w", ErrUnsupported)
		}
		return one(constant(t))
	case "Identity", "Dropout":
		return []*value{x}, nil
	case "Conv":
		return one(c.conv(n, a, x))
	case "ConvTranspose":
		return one(c.convTranspose(n, a, x))
	case "BatchNormalization":
		return one(c.batchNorm(n, a, x))
	case "Relu":
		if x.isConst() || !c.gorgoniaOps {
			// gorgonia's Rectify allocates a comparison mask and a product
			// on every run.
			return one(c.apply(n.GetName(), unaryKernel(func(v float32) float32 { return max(v, 0) }), x.shape, x))
		}
		return one(gnode(G.Rectify(x.node)))
	case "Sigmoid":
		if x.isConst() || !c.gorgoniaOps {
			// gorgonia's Sigmoid allocates its result on every run.
			return one(c.apply(n.GetName(), unaryKernel(sigmoid), x.shape, x))
		}
		return one(gnode(G.Sigmoid(x.node)))
	case "LeakyRelu":
		alpha := a.float("alpha", 0.01)
		return one(c.apply(n.GetName(), unaryKernel(func(v float32) float32 {
			if v < 0 {
				return v * alpha
			}
			return v
		}), x.shape, x))
	case "Clip":
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		if c.opset < 11 {
			lo, hi = a.float("min", lo), a.float("max", hi)
		} else {
			for i, p := range []*float32{&lo, &hi} {
				f, _, err := c.constFloats(n, i+1)
				if err != nil {
					return nil, fmt.Errorf("clip bound: %w", err)
				}
				if len(f) == 1 {
					*p = f[0]
				}
			}
		}
		return one(c.apply(n.GetName(), unaryKernel(func(v float32) float32 { return min(max(v, lo), hi) }), x.shape, x))
	case "Tanh", "Exp", "Sqrt", "Neg", "Abs", "Reciprocal", "HardSigmoid", "HardSwish", "Softplus", "Erf":
		f := unaryFunc(op, a)
		return one(c.apply(n.GetName(), unaryKernel(f), x.shape, x))
	case "Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Max", "Min":
		y, err := c.in(n, 1)
		if err != nil || y == nil {
			return nil, fmt.Errorf("second operand: %w", errors.Join(err, errors.New("missing")))
		}
		return one(c.binary(n, op, x, y))
	case "Concat":
		return one(c.concat(n, a))
	case "MaxPool", "AveragePool":
		return one(c.pool(n, a, x, op == "MaxPool"))
	case "GlobalAveragePool", "GlobalMaxPool":
		if len(x.shape) != 4 {
			return nil, fmt.Errorf("input rank %d, want 4: %w", len(x.shape), ErrUnsupported)
		}
		if op == "GlobalAveragePool" && !x.isConst() {
			return one(gnode(G.GlobalAveragePool2D(x.node)))
		}
		return one(c.reduce(n, op, x, []int{2, 3}, true))
	case "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceSumSquare":
		axes := a.ints("axes", 0, 0)
		if _, ok := a["axes"]; !ok {
			if ax, ok, err := c.constInts(n, 1); err != nil {
				return nil, fmt.Errorf("axes: %w", err)
			} else if ok {
				axes = ax
			}
		}
		if len(axes) == 0 {
			if a.int("noop_with_empty_axes", 0) == 1 {
				return []*value{x}, nil
			}
			for i := range x.shape {
				axes = append(axes, i)
			}
		}
		return one(c.reduce(n, op, x, axes, a.int("keepdims", 1) == 1))
	case "Resize", "Upsample":
		return one(c.resize(n, a, x))
	case "Flatten":
		axis := a.int("axis", 1)
		if axis < 0 {
			axis += len(x.shape)
		}
		if axis < 0 || axis > len(x.shape) {
			return nil, fmt.Errorf("axis %d out of range for rank %d", a.int("axis", 1), len(x.shape))
		}
		return one(c.reshape(n, x, []int{size(x.shape[:axis]), size(x.shape[axis:])}))
	case "Reshape":
		return one(c.reshapeOp(n, a, x))
	case "Squeeze", "Unsqueeze":
		return one(c.squeeze(n, a, x, op == "Unsqueeze"))
	case "Transpose":
		perm := a.ints("perm", 0, 0)
		if len(perm) == 0 {
			for i := len(x.shape) - 1; i >= 0; i-- {
				perm = append(perm, i)
			}
		}
		if len(perm) != len(x.shape) {
			return nil, fmt.Errorf("perm %v for rank %d", perm, len(x.shape))
		}
		out := make([]int, len(perm))
		seen := make([]bool, len(perm))
		for i, p := range perm {
			if p < 0 || p >= len(perm) || seen[p] {
				return nil, fmt.Errorf("perm %v is not a permutation", perm)
			}
			seen[p] = true
			out[i] = x.shape[p]
		}
		if x.isInt {
			return nil, fmt.Errorf("transpose of an integer tensor: %w", ErrUnsupported)
		}
		return one(c.apply(n.GetName(), transposeKernel(x.shape, perm), out, x))
	case "Slice":
		return one(c.slice(n, a, x))
	case "Pad":
		return one(c.pad(n, a, x))
	case "Split":
		return c.split(n, a, x)
	case "Gemm":
		return one(c.gemm(n, a, x))
	case "MatMul":
		y, err := c.in(n, 1)
		if err != nil || y == nil {
			return nil, fmt.Errorf("second operand: %w", errors.Join(err, errors.New("missing")))
		}
		return one(c.matmul(n, x, y))
	case "Softmax":
		return one(c.softmax(n, a, x))
	case "Shape":
		s := &value{shape: []int{len(x.shape)}, isInt: true}
		for _, d := range x.shape {
			s.i = append(s.i, int64(d))
		}
		return []*value{s}, nil
	case "Gather":
		return one(c.gather(n, a, x))
	case "Cast":
		if !x.isConst() {
			if to := a.int("to", 0); to == int(onnxpb.TensorProto_FLOAT) && !x.isInt {
				return []*value{x}, nil
			}
			return nil, fmt.Errorf("cast of a computed tensor: %w", ErrUnsupported)
		}
		v := &value{shape: x.shape}
		switch onnxpb.TensorProto_DataType(a.int("to", 0)) {
		case onnxpb.TensorProto_FLOAT:
			v.f = x.f
			if x.isInt {
				v.f = make([]float32, len(x.i))
				for k, i := range x.i {
					v.f[k] = float32(i)
				}
			}
		case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32:
			v.isInt, v.i = true, x.i
			if !x.isInt {
				v.i = make([]int64, len(x.f))
				for k, f := range x.f {
					v.i[k] = int64(f)
				}
			}
		default:
			return nil, fmt.Errorf("cast to type %d: %w", a.int("to", 0), ErrUnsupported)
		}
		return []*value{v}, nil
	}
	return nil, ErrUnsupported
}

func unaryFunc(op string, a attrs) func(float32) float32 {
	switch op {
	case "Tanh":
		return func(v float32) float32 { return float32(math.Tanh(float64(v))) }
	case "Exp":
		return func(v float32) float32 { return float32(math.Exp(float64(v))) }
	case "Sqrt":
		return func(v float32) float32 { return float32(math.Sqrt(float64(v))) }
	case "Neg":
		return func(v float32) float32 { return -v }
	case "Abs":
		return func(v float32) float32 { return float32(math.Abs(float64(v))) }
	case "Reciprocal":
		return func(v float32) float32 { return 1 / v }
	case "Softplus":
		return func(v float32) float32 { return float32(math.Log1p(math.Exp(float64(v)))) }
	case "Erf":
		return func(v float32) float32 { return float32(math.Erf(float64(v))) }
	case "HardSigmoid":
		al, be := a.float("alpha", 0.2), a.float("beta", 0.5)
		return func(v float32) float32 { return min(max(al*v+be, 0), 1) }
	default: // HardSwish
		return func(v float32) float32 { return v * min(max(v/6+0.5, 0), 1) }
	}
}

func binaryFunc(op string) func(a, b float32) float32 {
	switch op {
	case "Add":
		return func(a, b float32) float32 { return a + b }
	case "Sub":
		return func(a, b float32) float32 { return a - b }
	case "Mul":
		return func(a, b float32) float32 { return a * b }
	case "Div":
		return func(a, b float32) float32 { return a / b }
	case "Pow":
		return func(a, b float32) float32 { return float32(math.Pow(float64(a), float64(b))) }
	case "Max":
		return func(a, b float32) float32 { return max(a, b) }
	case "Min":
		return func(a, b float32) float32 { return min(a, b) }
	default: // PRelu
		return func(a, b float32) float32 {
			if a < 0 {
				return a * b
			}
			return a
		}
	}
}

func (c *compiler) binary(n *onnxpb.NodeProto, op string, x, y *value) (*value, error) {
	out, ok := broadcastShape(x.shape, y.shape)
	if !ok {
		return nil, fmt.Errorf("shapes %v and %v do not broadcast", x.shape, y.shape)
	}
	if x.isInt && y.isInt && x.isConst() && y.isConst() {
		return intBinary(op, x, y, out)
	}
	if x.isInt || y.isInt {
		return nil, fmt.Errorf("integer operand: %w", ErrUnsupported)
	}
	if c.gorgoniaOps && !x.isConst() && !y.isConst() && slices.Equal(x.shape, y.shape) {
		// By default a Go kernel: gorgonia's ops allocate on every run.
		switch op {
		case "Add":
			return gnode(G.Add(x.node, y.node))
		case "Sub":
			return gnode(G.Sub(x.node, y.node))
		case "Mul":
			return gnode(G.HadamardProd(x.node, y.node))
		case "Div":
			return gnode(G.HadamardDiv(x.node, y.node))
		}
	}
	var ca, cb []float32
	var ins []*value
	if x.isConst() && !y.isConst() {
		ca = x.f
	} else {
		ins = append(ins, x)
	}
	if y.isConst() && !x.isConst() {
		cb = y.f
	} else {
		ins = append(ins, y)
	}
	return c.apply(n.GetName(), binaryKernel(binaryFunc(op), x.shape, y.shape, out, ca, cb), out, ins...)
}

// intBinary folds integer arithmetic on constants (shape computations).
func intBinary(op string, x, y *value, out []int) (*value, error) {
	if size(x.shape) != 1 && size(y.shape) != 1 && !slices.Equal(x.shape, y.shape) {
		return nil, fmt.Errorf("integer broadcasting of %v and %v: %w", x.shape, y.shape, ErrUnsupported)
	}
	v := &value{shape: out, isInt: true, i: make([]int64, size(out))}
	for k := range v.i {
		a, b := x.i[k%len(x.i)], y.i[k%len(y.i)]
		switch op {
		case "Add":
			v.i[k] = a + b
		case "Sub":
			v.i[k] = a - b
		case "Mul":
			v.i[k] = a * b
		case "Div":
			if b == 0 {
				return nil, fmt.Errorf("integer division by zero")
			}
			v.i[k] = a / b
		default:
			return nil, fmt.Errorf("integer %s: %w", op, ErrUnsupported)
		}
	}
	return v, nil
}
