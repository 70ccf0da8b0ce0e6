package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// Options tune Quantize. The zero value is the default: per-channel
// weights, heads kept fp32, nothing else excluded.
type Options struct {
	// Exclude lists node names or op types (e.g. "Resize") to keep fp32.
	Exclude []string
	// QuantizeHeads quantizes the output heads too. By default they stay
	// fp32: a head is a node from which a graph output is reachable
	// without passing through a layer (Conv, ConvTranspose, Gemm,
	// MatMul), so it is the last layer on each path to an output and
	// every node after it (YOLOX: the reg/obj/cls convolutions, their
	// sigmoids, the concats, reshapes and the transpose).
	QuantizeHeads bool
	// PerTensor quantizes each weight tensor with one scale instead of
	// one per output channel (axis 0).
	PerTensor bool
	// Uint8Input makes each quantized graph input uint8: the model takes
	// q = round(x/Scale) + ZeroPoint (Report.Inputs) straight from the
	// pre-processor instead of quantizing float values itself.
	Uint8Input bool
}

// Report says what Quantize did.
type Report struct {
	// QuantizedNodes and FloatNodes count the original graph's nodes that
	// now run on quantized tensors and those left fp32. A ReLU folded
	// into the op before it counts as quantized.
	QuantizedNodes, FloatNodes int
	// ByOp and FloatByOp count them by op type.
	ByOp, FloatByOp map[string]int
	// Heads names the nodes kept fp32 as output heads.
	Heads []string
	// Inputs holds the scale and zero point of each quantized graph
	// input: a pre-processor that feeds uint8 directly (skipping the
	// input QuantizeLinear) must use them: q = round(x/Scale) + ZeroPoint.
	Inputs map[string]Params
	// OpsetFrom and Opset are the default-domain opset before and after
	// (per-channel QuantizeLinear/DequantizeLinear need opset 13).
	OpsetFrom, Opset int64
}

// minOpset is the opset Quantize writes at least: per-channel (axis)
// DequantizeLinear needs 13.
const minOpset = 13

// Op roles.
var (
	// computeOps fuse into ONNX Runtime's integer kernels when all their
	// activation inputs come from DequantizeLinear and their output goes
	// to QuantizeLinear.
	computeOps = map[string]bool{
		"Conv": true, "Add": true, "Mul": true, "Sigmoid": true, "Concat": true,
		"AveragePool": true, "GlobalAveragePool": true, "Relu": true, "LeakyRelu": true,
	}
	// passOps only move or select values: their output keeps the input's
	// scale and zero point, and ONNX Runtime then drops the DQ/Q pair
	// around them and runs them on uint8.
	passOps = map[string]bool{
		"MaxPool": true, "Resize": true, "Slice": true, "Reshape": true, "Transpose": true, "Flatten": true,
		"Gather": true, "Split": true, "Squeeze": true, "Unsqueeze": true, "DepthToSpace": true, "SpaceToDepth": true,
	}
	layerOps = map[string]bool{"Conv": true, "ConvTranspose": true, "Gemm": true, "MatMul": true}
	// foldable activations get no Q/DQ of their own after a quantized op:
	// the pair goes after them and ONNX Runtime removes them when the Q's
	// range lies within theirs (Relu: zero point 0; Clip: [min, max]).
	foldable = map[string]bool{"Relu": true, "Clip": true}
)

// activationInputs returns the indices of n's inputs that carry data (not
// weights, shapes or scales).
func activationInputs(n *onnxpb.NodeProto) []int {
	switch n.GetOpType() {
	case "Add", "Mul":
		return []int{0, 1}
	case "Concat":
		idx := make([]int, len(n.GetInput()))
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	return []int{0}
}

// graph indexes a graph for the rewrite.
type graph struct {
	g         *onnxpb.GraphProto
	inits     map[string]*onnxpb.TensorProto
	producer  map[string]int
	consumers map[string][]int
	outputs   map[string]bool
	inputs    map[string]bool
}

func index(g *onnxpb.GraphProto) *graph {
	x := &graph{g: g, inits: map[string]*onnxpb.TensorProto{}, producer: map[string]int{},
		consumers: map[string][]int{}, outputs: map[string]bool{}, inputs: map[string]bool{}}
	for _, t := range g.GetInitializer() {
		x.inits[t.GetName()] = t
	}
	for i, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			x.producer[o] = i
		}
		for _, in := range n.GetInput() {
			if in != "" && !slices.Contains(x.consumers[in], i) {
				x.consumers[in] = append(x.consumers[in], i)
			}
		}
	}
	for _, o := range g.GetOutput() {
		x.outputs[o.GetName()] = true
	}
	for _, in := range g.GetInput() {
		if x.inits[in.GetName()] == nil {
			x.inputs[in.GetName()] = true
		}
	}
	return x
}

// heads returns the indices of the head nodes (see Options.QuantizeHeads).
func (x *graph) heads() map[int]bool {
	h := map[int]bool{}
	var stack []int
	for o := range x.outputs {
		if p, ok := x.producer[o]; ok {
			stack = append(stack, p)
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if h[i] {
			continue
		}
		h[i] = true
		n := x.g.GetNode()[i]
		if layerOps[n.GetOpType()] {
			continue
		}
		for _, in := range n.GetInput() {
			if p, ok := x.producer[in]; ok {
				stack = append(stack, p)
			}
		}
	}
	return h
}

// Quantize returns a QDQ copy of m in which every node it can quantize
// runs on uint8 activations calibrated by ranges (keyed by tensor name, see
// Calibrator) with int8 weights and int32 biases, and a report. m is not
// changed. Nodes are left fp32 when excluded by o, when they are heads,
// when their op has no integer kernel, or when a range is missing.
func Quantize(m *onnxpb.ModelProto, ranges map[string]Range, o Options) (*onnxpb.ModelProto, *Report, error) {
	if m.GetGraph() == nil {
		return nil, nil, fmt.Errorf("quantizing: model has no graph")
	}
	m = proto.Clone(m).(*onnxpb.ModelProto)
	rep := &Report{ByOp: map[string]int{}, FloatByOp: map[string]int{}, Inputs: map[string]Params{}}
	var err error
	if rep.OpsetFrom, rep.Opset, err = bumpOpset(m); err != nil {
		return nil, nil, fmt.Errorf("quantizing: %w", err)
	}
	g := m.GetGraph()
	x := index(g)
	var heads map[int]bool
	if !o.QuantizeHeads {
		heads = x.heads()
	}
	q := &writer{x: x, ranges: ranges, params: map[string]Params{}, opt: o}
	nodes := g.GetNode()
	quantized := make([]bool, len(nodes))
	folded := map[int]bool{}    // ReLU nodes folded into the node before
	outOf := map[int][]string{} // the tensors a quantized node's Q/DQ go on
	excluded := func(n *onnxpb.NodeProto) bool {
		return slices.Contains(o.Exclude, n.GetName()) || slices.Contains(o.Exclude, n.GetOpType())
	}
	for i, n := range nodes {
		if folded[i] {
			continue
		}
		op := n.GetOpType()
		if (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") || excluded(n) || heads[i] || len(n.GetOutput()) == 0 {
			continue
		}
		switch {
		case computeOps[op] && len(n.GetOutput()) == 1:
			ok := true
			for _, k := range activationInputs(n) {
				in := n.GetInput()[k]
				if _, isInit := x.inits[in]; isInit && op != "Conv" {
					continue // a constant, quantized on its own
				}
				if _, err := q.paramsOf(in); err != nil {
					ok = false
				}
			}
			if op == "Conv" && !q.convWeightsOK(n) {
				ok = false
			}
			out := n.GetOutput()[0]
			relu := -1
			if cs := x.consumers[out]; len(cs) == 1 && !x.outputs[out] && !foldable[op] {
				if r := nodes[cs[0]]; foldable[r.GetOpType()] && r.GetInput()[0] == out && !excluded(r) && !heads[cs[0]] {
					relu = cs[0]
					out = r.GetOutput()[0]
				}
			}
			if _, err := q.paramsOf(out); err != nil {
				ok = false
			}
			if !ok {
				continue
			}
			quantized[i] = true
			outOf[i] = []string{out}
			if relu >= 0 {
				quantized[relu] = true
				folded[relu] = true
			}
		case passOps[op]:
			in := n.GetInput()[0]
			_, fromQ := x.producer[in]
			if fromQ {
				fromQ = quantized[x.producer[in]] || folded[x.producer[in]]
			}
			if !fromQ && !x.inputs[in] {
				continue
			}
			p, err := q.paramsOf(in)
			if err != nil {
				continue
			}
			quantized[i] = true
			outOf[i] = slices.DeleteFunc(slices.Clone(n.GetOutput()), func(o string) bool { return o == "" })
			for _, o := range outOf[i] {
				q.params[o] = p
			}
		}
	}

	// Tensors that get a Q/DQ pair: inputs and outputs of quantized nodes.
	qOut := map[string]bool{} // produced by a quantized node: Q/DQ replaces it in place
	for i := range nodes {
		if quantized[i] && !folded[i] {
			for _, o := range outOf[i] {
				qOut[o] = true
			}
		}
	}
	var head, out []*onnxpb.NodeProto
	dq := map[string]string{} // tensor -> its dequantized name for quantized consumers
	for _, in := range g.GetInput() {
		name := in.GetName()
		if !x.inputs[name] || !needsQDQ(x, name, quantized, nodes) {
			continue
		}
		p, err := q.paramsOf(name)
		if err != nil {
			continue
		}
		rep.Inputs[name] = p
		dq[name] = name + "_dq"
		head = append(head, q.qdq(name, name+"_q", name+"_dq", p)...)
	}
	for i, n := range nodes {
		n = cloneNode(n)
		switch {
		case quantized[i] && !folded[i]:
			if err := q.rewireInputs(n, dq, &head); err != nil {
				return nil, nil, fmt.Errorf("quantizing node %q: %w", n.GetName(), err)
			}
		case folded[i]:
		default:
			rep.FloatNodes++
			rep.FloatByOp[n.GetOpType()]++
			if heads[i] {
				rep.Heads = append(rep.Heads, n.GetName())
			}
		}
		if quantized[i] {
			rep.QuantizedNodes++
			rep.ByOp[n.GetOpType()]++
		}
		// The node's Q/DQ output: rename what it writes, re-create the
		// name after DequantizeLinear so that every reader (quantized or
		// not, graph outputs included) sees the quantized value.
		var after []*onnxpb.NodeProto
		for k, o := range n.GetOutput() {
			switch {
			case qOut[o]:
				p := q.params[o]
				n.Output[k] = o + "_f"
				after = append(after, q.qdq(o+"_f", o+"_q", o, p)...)
			case !quantized[i] && needsQDQ(x, o, quantized, nodes):
				p, err := q.paramsOf(o)
				if err != nil {
					continue
				}
				dq[o] = o + "_dq"
				after = append(after, q.qdq(o, o+"_q", o+"_dq", p)...)
			}
		}
		out = append(out, n)
		out = append(out, after...)
	}
	g.Node = append(head, out...)
	g.Initializer = append(g.Initializer, q.inits...)
	if o.Uint8Input {
		uint8Inputs(g, rep.Inputs)
	}
	pruneInitializers(g)
	if err := check(g); err != nil {
		return nil, nil, fmt.Errorf("quantizing: %w", err)
	}
	sort.Strings(rep.Heads)
	return m, rep, nil
}

// check verifies the rewritten graph is well formed: each value is made
// once (by a node, an initializer or a graph input), and each node reads
// only values made before it. A name clash with generated names would
// show here instead of in ONNX Runtime.
func check(g *onnxpb.GraphProto) error {
	made := map[string]bool{"": true}
	add := func(name, by string) error {
		if made[name] {
			return fmt.Errorf("value %q is made twice (by %s)", name, by)
		}
		made[name] = true
		return nil
	}
	for _, t := range g.GetInitializer() {
		if err := add(t.GetName(), "an initializer"); err != nil {
			return err
		}
	}
	for _, in := range g.GetInput() {
		if !made[in.GetName()] {
			made[in.GetName()] = true
		}
	}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			if !made[in] {
				return fmt.Errorf("node %q reads %q before it is made", n.GetName(), in)
			}
		}
		for _, o := range n.GetOutput() {
			if err := add(o, "node "+n.GetName()); err != nil {
				return err
			}
		}
	}
	for _, o := range g.GetOutput() {
		if !made[o.GetName()] {
			return fmt.Errorf("graph output %q is not made", o.GetName())
		}
	}
	return nil
}

func cloneNode(n *onnxpb.NodeProto) *onnxpb.NodeProto { return proto.Clone(n).(*onnxpb.NodeProto) }

// needsQDQ reports whether tensor t is an activation input of a quantized
// node.
func needsQDQ(x *graph, t string, quantized []bool, nodes []*onnxpb.NodeProto) bool {
	for _, c := range x.consumers[t] {
		if !quantized[c] {
			continue
		}
		n := nodes[c]
		for _, k := range activationInputs(n) {
			if k < len(n.GetInput()) && n.GetInput()[k] == t {
				return true
			}
		}
	}
	return false
}

// writer holds the state of one rewrite.
type writer struct {
	x      *graph
	ranges map[string]Range
	params map[string]Params
	opt    Options
	inits  []*onnxpb.TensorProto
	names  map[string]bool // node names used as prefixes
}

// prefix names what is made for node n: its name, or its first output's
// when the name is empty or taken (names are optional in ONNX).
func (q *writer) prefix(n *onnxpb.NodeProto) string {
	if q.names == nil {
		q.names = map[string]bool{}
	}
	p := n.GetName()
	if p == "" || q.names[p] {
		p = n.GetOutput()[0] + "_node"
	}
	q.names[p] = true
	return p
}

// paramsOf returns the activation parameters of tensor t: those set for it
// (pass-through outputs) or computed from its range.
func (q *writer) paramsOf(t string) (Params, error) {
	if p, ok := q.params[t]; ok {
		return p, nil
	}
	r, ok := q.ranges[t]
	if !ok {
		return Params{}, fmt.Errorf("no calibrated range for %q", t)
	}
	p, err := ActivationParams(r)
	if err != nil {
		return Params{}, fmt.Errorf("tensor %q: %w", t, err)
	}
	q.params[t] = p
	return p, nil
}

func (q *writer) convWeightsOK(n *onnxpb.NodeProto) bool {
	in := n.GetInput()
	if len(in) < 2 {
		return false
	}
	w := q.x.inits[in[1]]
	if w == nil || w.GetDataType() != int32(onnxpb.TensorProto_FLOAT) || len(w.GetDims()) < 2 {
		return false
	}
	if len(in) > 2 && in[2] != "" {
		b := q.x.inits[in[2]]
		if b == nil || b.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
			return false
		}
	}
	return true
}

// qdq returns QuantizeLinear(from) -> qName -> DequantizeLinear -> to.
func (q *writer) qdq(from, qName, to string, p Params) []*onnxpb.NodeProto {
	s, z := q.scaleZP(qName, p)
	return []*onnxpb.NodeProto{
		{Name: qName + "_QuantizeLinear", OpType: "QuantizeLinear", Input: []string{from, s, z}, Output: []string{qName}},
		{Name: qName + "_DequantizeLinear", OpType: "DequantizeLinear", Input: []string{qName, s, z}, Output: []string{to}},
	}
}

func (q *writer) scaleZP(prefix string, p Params) (string, string) {
	s, z := prefix+"_scale", prefix+"_zero_point"
	q.inits = append(q.inits, onnx.FloatTensor(s, nil, []float32{p.Scale}),
		&onnxpb.TensorProto{Name: z, DataType: int32(onnxpb.TensorProto_UINT8), RawData: []byte{byte(p.ZeroPoint)}})
	return s, z
}

// rewireInputs points a quantized node's inputs at dequantized tensors:
// activations at their DQ outputs, Conv weights and biases at new int8 /
// int32 initializers behind DequantizeLinear, constants at uint8 ones.
func (q *writer) rewireInputs(n *onnxpb.NodeProto, dq map[string]string, head *[]*onnxpb.NodeProto) error {
	x := n.GetInput()[0]
	prefix := q.prefix(n)
	for _, k := range activationInputs(n) {
		in := n.Input[k]
		if d, ok := dq[in]; ok {
			n.Input[k] = d
			continue
		}
		if t, ok := q.x.inits[in]; ok && n.GetOpType() != "Conv" {
			name, nodes, err := q.constant(prefix+"_in"+fmt.Sprint(k), t)
			if err != nil {
				return err
			}
			*head = append(*head, nodes...)
			n.Input[k] = name
		}
	}
	if n.GetOpType() != "Conv" {
		return nil
	}
	inP, err := q.paramsOf(x)
	if err != nil {
		return err
	}
	wName, wScales, nodes, err := q.weights(prefix, q.x.inits[n.Input[1]])
	if err != nil {
		return err
	}
	*head = append(*head, nodes...)
	n.Input[1] = wName
	if len(n.Input) > 2 && n.Input[2] != "" {
		bName, nodes, err := q.bias(prefix, q.x.inits[n.Input[2]], inP.Scale, wScales)
		if err != nil {
			return err
		}
		*head = append(*head, nodes...)
		n.Input[2] = bName
	}
	return nil
}

// constant quantizes a float initializer used as an activation (a Mul's
// constant factor) to uint8 over its own range.
func (q *writer) constant(prefix string, t *onnxpb.TensorProto) (string, []*onnxpb.NodeProto, error) {
	v, err := onnx.Floats(t)
	if err != nil {
		return "", nil, err
	}
	r := Range{Min: float32(math.Inf(1)), Max: float32(math.Inf(-1))}
	for _, f := range v {
		r.Min, r.Max = min(r.Min, f), max(r.Max, f)
	}
	p, err := ActivationParams(r)
	if err != nil {
		return "", nil, fmt.Errorf("constant %q: %w", t.GetName(), err)
	}
	raw := make([]byte, len(v))
	for i, f := range v {
		raw[i] = byte(QuantizeValue(f, p.Scale, p.ZeroPoint, actQMin, actQMax))
	}
	qn := prefix + "_quantized"
	q.inits = append(q.inits, &onnxpb.TensorProto{Name: qn, Dims: t.GetDims(), DataType: int32(onnxpb.TensorProto_UINT8), RawData: raw})
	s, z := q.scaleZP(qn, p)
	return qn + "_dq", []*onnxpb.NodeProto{{Name: qn + "_DequantizeLinear", OpType: "DequantizeLinear",
		Input: []string{qn, s, z}, Output: []string{qn + "_dq"}}}, nil
}

// weights stores t as int8, per output channel (axis 0) unless
// Options.PerTensor, and returns the dequantized name and the scales.
func (q *writer) weights(prefix string, t *onnxpb.TensorProto) (string, []float32, []*onnxpb.NodeProto, error) {
	w, err := onnx.Floats(t)
	if err != nil {
		return "", nil, nil, err
	}
	channels := int(t.GetDims()[0])
	if q.opt.PerTensor {
		channels = 1
	}
	qw, scales, err := QuantizeWeights(w, channels)
	if err != nil {
		return "", nil, nil, fmt.Errorf("weights %q: %w", t.GetName(), err)
	}
	raw := make([]byte, len(qw))
	for i, v := range qw {
		raw[i] = byte(v)
	}
	qn := prefix + "_weight_quantized"
	var sDims []int64
	if len(scales) > 1 {
		sDims = []int64{int64(len(scales))}
	}
	zp := &onnxpb.TensorProto{Name: qn + "_zero_point", Dims: sDims, DataType: int32(onnxpb.TensorProto_INT8), RawData: make([]byte, len(scales))}
	q.inits = append(q.inits,
		&onnxpb.TensorProto{Name: qn, Dims: t.GetDims(), DataType: int32(onnxpb.TensorProto_INT8), RawData: raw},
		onnx.FloatTensor(qn+"_scale", sDims, scales), zp)
	return qn + "_dq", scales, []*onnxpb.NodeProto{dequantize(qn, sDims)}, nil
}

// bias stores t as int32 with scale inScale*wScales[c], zero point 0.
func (q *writer) bias(prefix string, t *onnxpb.TensorProto, inScale float32, wScales []float32) (string, []*onnxpb.NodeProto, error) {
	b, err := onnx.Floats(t)
	if err != nil {
		return "", nil, err
	}
	qb, scales, err := QuantizeBias(b, inScale, wScales)
	if err != nil {
		return "", nil, fmt.Errorf("bias %q: %w", t.GetName(), err)
	}
	raw := make([]byte, 4*len(qb))
	for i, v := range qb {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(v))
	}
	qn := prefix + "_bias_quantized"
	sDims := []int64{int64(len(scales))}
	q.inits = append(q.inits,
		&onnxpb.TensorProto{Name: qn, Dims: t.GetDims(), DataType: int32(onnxpb.TensorProto_INT32), RawData: raw},
		onnx.FloatTensor(qn+"_scale", sDims, scales),
		&onnxpb.TensorProto{Name: qn + "_zero_point", Dims: sDims, DataType: int32(onnxpb.TensorProto_INT32), RawData: make([]byte, 4*len(scales))})
	return qn + "_dq", []*onnxpb.NodeProto{dequantize(qn, sDims)}, nil
}

func dequantize(qn string, sDims []int64) *onnxpb.NodeProto {
	n := &onnxpb.NodeProto{Name: qn + "_DequantizeLinear", OpType: "DequantizeLinear",
		Input: []string{qn, qn + "_scale", qn + "_zero_point"}, Output: []string{qn + "_dq"}}
	if len(sDims) > 0 {
		n.Attribute = []*onnxpb.AttributeProto{onnx.Int("axis", 0)}
	}
	return n
}

// pruneInitializers drops initializers no node or graph input uses (the
// float weights that were replaced).
func pruneInitializers(g *onnxpb.GraphProto) {
	used := map[string]bool{}
	for _, n := range g.GetNode() {
		for _, in := range n.GetInput() {
			used[in] = true
		}
	}
	for _, o := range g.GetOutput() {
		used[o.GetName()] = true
	}
	dropped := map[string]bool{}
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool {
		dropped[t.GetName()] = !used[t.GetName()]
		return dropped[t.GetName()]
	})
	// Models of IR < 4 list initializers as graph inputs too.
	g.Input = slices.DeleteFunc(g.Input, func(v *onnxpb.ValueInfoProto) bool { return dropped[v.GetName()] })
}

// uint8Inputs turns each quantized graph input into a uint8 input: its
// QuantizeLinear goes, its DequantizeLinear reads the input itself, and
// float readers of the input read the dequantized value instead.
func uint8Inputs(g *onnxpb.GraphProto, inputs map[string]Params) {
	for _, in := range g.GetInput() {
		name := in.GetName()
		if _, ok := inputs[name]; !ok {
			continue
		}
		qName, dqName := name+"_q", name+"_dq"
		nodes := g.Node[:0]
		for _, n := range g.GetNode() {
			if n.GetOpType() == "QuantizeLinear" && len(n.GetOutput()) == 1 && n.GetOutput()[0] == qName {
				continue
			}
			for k, x := range n.GetInput() {
				switch {
				case x == qName:
					n.Input[k] = name
				case x == name && n.GetOpType() != "DequantizeLinear":
					n.Input[k] = dqName
				}
			}
			nodes = append(nodes, n)
		}
		g.Node = nodes
		in.GetType().GetTensorType().ElemType = int32(onnxpb.TensorProto_UINT8)
	}
}
