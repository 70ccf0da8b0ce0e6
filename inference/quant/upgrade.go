package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// bumpSafe lists ops whose definition at opset 13 accepts every model that
// was valid from the opset given (Add before 7 broadcast differently,
// Slice before 10 took attributes…). Ops that changed but can be rewritten
// are in upgrades.
var bumpSafe = map[string]int64{
	"Conv": 1, "ConvTranspose": 1, "Relu": 6, "Sigmoid": 6, "LeakyRelu": 6, "Tanh": 6, "Exp": 6,
	"Sqrt": 6, "Neg": 6, "HardSigmoid": 6, "Add": 7, "Mul": 7, "Sub": 7, "Div": 7, "Max": 8, "Min": 8,
	"Concat": 4, "MaxPool": 8, "AveragePool": 7, "GlobalAveragePool": 1, "Resize": 11, "Slice": 10,
	"Reshape": 5, "Transpose": 1, "Flatten": 9, "Gemm": 7, "MatMul": 1, "Clip": 11, "Pad": 11,
	"Shape": 1, "Gather": 1, "Cast": 9, "Constant": 1, "BatchNormalization": 9, "Identity": 1,
	"ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1, "Dropout": 1,
}

// upgrades rewrite a node of an older opset into its opset-13 form;
// they return an error when the node cannot be rewritten safely.
var upgrades = map[string]func(u *upgrader, n *onnxpb.NodeProto) error{
	// Attributes that became inputs.
	"Split":     func(u *upgrader, n *onnxpb.NodeProto) error { return u.attrToInput(n, "split", 1) },
	"Squeeze":   func(u *upgrader, n *onnxpb.NodeProto) error { return u.attrToInput(n, "axes", 1) },
	"Unsqueeze": func(u *upgrader, n *onnxpb.NodeProto) error { return u.attrToInput(n, "axes", 1) },
	"ReduceSum": func(u *upgrader, n *onnxpb.NodeProto) error { return u.attrToInput(n, "axes", 1) },
	"Slice": func(u *upgrader, n *onnxpb.NodeProto) error {
		if u.from >= 10 {
			return nil
		}
		for i, a := range []string{"starts", "ends", "axes"} {
			if err := u.attrToInput(n, a, 1+i); err != nil {
				return err
			}
		}
		return nil
	},
	"Clip": func(u *upgrader, n *onnxpb.NodeProto) error {
		if u.from >= 11 {
			return nil
		}
		lo, hi := float32(math.Inf(-1)), float32(math.Inf(1))
		var keep []*onnxpb.AttributeProto
		for _, a := range n.GetAttribute() {
			switch a.GetName() {
			case "min":
				lo = a.GetF()
			case "max":
				hi = a.GetF()
			default:
				keep = append(keep, a)
			}
		}
		n.Attribute = keep
		n.Input = append(n.Input[:1], u.floatConst(n, "min", lo), u.floatConst(n, "max", hi))
		return nil
	},
	// Softmax, LogSoftmax and Hardmax flattened the input from axis (default
	// 1) before opset 13; they agree with the new definition when axis is
	// the last one.
	"Softmax":    (*upgrader).lastAxis,
	"LogSoftmax": (*upgrader).lastAxis,
	// Upsample (removed at 10) is a Resize with asymmetric coordinates.
	"Upsample": func(u *upgrader, n *onnxpb.NodeProto) error {
		if len(n.GetInput()) != 2 {
			return fmt.Errorf("Upsample %q: scales as an attribute (opset < 9) is not supported", n.GetName())
		}
		mode := "nearest"
		for _, a := range n.GetAttribute() {
			if a.GetName() == "mode" {
				mode = string(a.GetS())
			}
		}
		n.OpType = "Resize"
		n.Input = []string{n.Input[0], "", n.Input[1]}
		n.Attribute = []*onnxpb.AttributeProto{onnx.String("mode", mode), onnx.String("coordinate_transformation_mode", "asymmetric")}
		if mode == "nearest" {
			n.Attribute = append(n.Attribute, onnx.String("nearest_mode", "floor"))
		}
		return nil
	},
}

// upgrader rewrites nodes to opset 13.
type upgrader struct {
	g     *onnxpb.GraphProto
	from  int64
	inits []*onnxpb.TensorProto
}

func (u *upgrader) attrToInput(n *onnxpb.NodeProto, attr string, at int) error {
	i := slices.IndexFunc(n.GetAttribute(), func(a *onnxpb.AttributeProto) bool { return a.GetName() == attr })
	if i < 0 {
		return nil
	}
	a := n.Attribute[i]
	n.Attribute = slices.Delete(n.Attribute, i, i+1)
	name := n.GetOutput()[0] + "_" + attr
	raw := make([]byte, 8*len(a.GetInts()))
	for k, v := range a.GetInts() {
		binary.LittleEndian.PutUint64(raw[8*k:], uint64(v))
	}
	u.inits = append(u.inits, &onnxpb.TensorProto{Name: name, Dims: []int64{int64(len(a.GetInts()))},
		DataType: int32(onnxpb.TensorProto_INT64), RawData: raw})
	for len(n.Input) < at {
		n.Input = append(n.Input, "")
	}
	if len(n.Input) == at {
		n.Input = append(n.Input, name)
	} else {
		n.Input[at] = name
	}
	return nil
}

func (u *upgrader) floatConst(n *onnxpb.NodeProto, what string, v float32) string {
	if math.IsInf(float64(v), 0) {
		return ""
	}
	name := n.GetOutput()[0] + "_" + what
	u.inits = append(u.inits, onnx.FloatTensor(name, nil, []float32{v}))
	return name
}

func (u *upgrader) lastAxis(n *onnxpb.NodeProto) error {
	axis := int64(1)
	for _, a := range n.GetAttribute() {
		if a.GetName() == "axis" {
			axis = a.GetI()
		}
	}
	rank := rankOf(u.g, n.GetInput()[0])
	if axis == -1 || (rank > 0 && axis == int64(rank-1)) {
		n.Attribute = []*onnxpb.AttributeProto{onnx.Int("axis", axis)}
		return nil
	}
	return fmt.Errorf("%s %q: axis %d is not provably the last (input rank %d), and its meaning changed at opset 13", n.GetOpType(), n.GetName(), axis, rank)
}

// rankOf returns the rank of value name from the graph's declared shapes,
// or -1.
func rankOf(g *onnxpb.GraphProto, name string) int {
	for _, vs := range [][]*onnxpb.ValueInfoProto{g.GetValueInfo(), g.GetInput(), g.GetOutput()} {
		for _, v := range vs {
			if v.GetName() == name {
				if s := v.GetType().GetTensorType().GetShape(); s != nil {
					return len(s.GetDim())
				}
			}
		}
	}
	return -1
}

// bumpOpset raises the default-domain opset to minOpset, rewriting the
// nodes whose definition changed, and returns the opsets before and after.
// It refuses (and leaves m unchanged) when a node cannot be rewritten.
func bumpOpset(m *onnxpb.ModelProto) (int64, int64, error) {
	var def *onnxpb.OperatorSetIdProto
	for _, o := range m.GetOpsetImport() {
		if o.GetDomain() == "" || o.GetDomain() == "ai.onnx" {
			def = o
		}
	}
	if def == nil {
		return 0, 0, fmt.Errorf("model imports no default-domain opset")
	}
	from := def.GetVersion()
	if from >= minOpset {
		return from, from, nil
	}
	g := m.GetGraph()
	u := &upgrader{g: g, from: from}
	nodes := make([]*onnxpb.NodeProto, len(g.GetNode()))
	for i, n := range g.GetNode() {
		nodes[i] = n
		if n.GetDomain() != "" && n.GetDomain() != "ai.onnx" {
			continue
		}
		if v, ok := bumpSafe[n.GetOpType()]; ok && from >= v {
			continue
		}
		up, ok := upgrades[n.GetOpType()]
		if !ok {
			return 0, 0, fmt.Errorf("raising opset %d to %d for per-channel quantization: op %s (node %q) changed meaning and is not rewritten; re-export the model at opset >= %d",
				from, minOpset, n.GetOpType(), n.GetName(), minOpset)
		}
		c := cloneNode(n)
		if err := up(u, c); err != nil {
			return 0, 0, fmt.Errorf("raising opset %d to %d for per-channel quantization: %w", from, minOpset, err)
		}
		nodes[i] = c
	}
	g.Node = nodes
	g.Initializer = append(g.Initializer, u.inits...)
	def.Version = minOpset
	if m.IrVersion < 7 {
		m.IrVersion = 7
	}
	return from, minOpset, nil
}
