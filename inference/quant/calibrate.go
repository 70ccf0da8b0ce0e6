package quant

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/ort"
)

// Method is how a calibrated range is chosen from the observed values.
type Method string

const (
	// MinMax uses the smallest and largest values seen.
	MinMax Method = "minmax"
	// Percentile cuts (100-p)/2 percent from each tail of the histogram of
	// all values seen, which ignores rare outliers.
	Percentile Method = "percentile"
)

// DefaultPercentile is the percentile Ranges uses when given 0.
const DefaultPercentile = 99.99

// floatOps produce float outputs from float inputs; Calibrator observes
// their outputs.
var floatOps = map[string]bool{
	"Conv": true, "ConvTranspose": true, "Relu": true, "Sigmoid": true, "LeakyRelu": true, "Clip": true,
	"Add": true, "Mul": true, "Sub": true, "Div": true, "Concat": true, "MaxPool": true, "AveragePool": true,
	"GlobalAveragePool": true, "Resize": true, "Slice": true, "Reshape": true, "Transpose": true,
	"Flatten": true, "Gemm": true, "MatMul": true, "BatchNormalization": true, "Exp": true, "Tanh": true,
	"HardSigmoid": true, "Identity": true, "Pad": true, "Softmax": true, "Gather": true, "Split": true,
	"Squeeze": true, "Unsqueeze": true, "Neg": true, "Sqrt": true, "Pow": true, "Abs": true, "Max": true,
	"Min": true, "ReduceMean": true, "ReduceMax": true, "ReduceMin": true, "ReduceSum": true, "Expand": true,
	"Tile": true, "DepthToSpace": true, "SpaceToDepth": true, "InstanceNormalization": true, "Erf": true,
	"Softplus": true, "HardSwish": true, "PRelu": true, "Upsample": true, "Sum": true, "Mean": true,
	"LogSoftmax": true,
}

// Activations returns the names of m's float activations that Calibrator
// observes: the float graph inputs and the outputs of float ops (see
// floatOps) whose first input is float, in graph order.
func Activations(m *onnxpb.ModelProto) []string {
	g := m.GetGraph()
	isFloat := map[string]bool{}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
		isFloat[t.GetName()] = t.GetDataType() == int32(onnxpb.TensorProto_FLOAT)
	}
	var names []string
	for _, in := range g.GetInput() {
		if inits[in.GetName()] {
			continue
		}
		if in.GetType().GetTensorType().GetElemType() == int32(onnxpb.TensorProto_FLOAT) {
			isFloat[in.GetName()] = true
			names = append(names, in.GetName())
		}
	}
	for _, n := range g.GetNode() {
		if !floatOps[n.GetOpType()] || len(n.GetInput()) == 0 || !isFloat[n.GetInput()[0]] {
			continue
		}
		for _, o := range n.GetOutput() {
			if o != "" && !isFloat[o] {
				isFloat[o] = true
				names = append(names, o)
			}
		}
	}
	return names
}

// CalibratorOptions tune a Calibrator.
type CalibratorOptions struct {
	// SessionOptions run the fp32 model (IntraOpThreads, Provider…).
	ort.SessionOptions
}

// Calibrator observes the activations of a float model over many inputs.
// It runs the model on ONNX Runtime (ort.Init must have succeeded) with
// every activation exposed as an output and keeps, per tensor, its min,
// max and a Histogram. It is not safe for concurrent use.
type Calibrator struct {
	names  []string
	shapes [][]int64
	sess   *ort.DynamicSession
	hist   []Histogram
	frames int
}

// NewCalibrator prepares the calibration of m. Close it when done.
func NewCalibrator(m *onnxpb.ModelProto, o CalibratorOptions) (*Calibrator, error) {
	if m.GetGraph() == nil {
		return nil, fmt.Errorf("calibrating: model has no graph")
	}
	c := &Calibrator{}
	aug := proto.Clone(m).(*onnxpb.ModelProto)
	g := aug.GetGraph()
	outs := map[string]bool{}
	for _, v := range g.GetOutput() {
		outs[v.GetName()] = true
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	for _, in := range g.GetInput() {
		if inits[in.GetName()] {
			continue
		}
		var shape []int64
		for i, d := range in.GetType().GetTensorType().GetShape().GetDim() {
			v := d.GetDimValue()
			if v <= 0 {
				if i != 0 {
					return nil, fmt.Errorf("calibrating: input %q has a symbolic dimension %d", in.GetName(), i)
				}
				v = 1
			}
			shape = append(shape, v)
		}
		c.shapes = append(c.shapes, shape)
	}
	c.names = Activations(m)
	for _, name := range c.names {
		if outs[name] || slices.ContainsFunc(g.GetInput(), func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == name }) {
			continue
		}
		g.Output = append(g.Output, &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT)}}}})
	}
	b, err := proto.Marshal(aug)
	if err != nil {
		return nil, fmt.Errorf("calibrating: encoding the model: %w", err)
	}
	// Graph inputs come back as inputs, not outputs: observe them directly.
	var outNames []string
	for _, name := range c.names {
		if !c.isInput(g, name) {
			outNames = append(outNames, name)
		}
	}
	c.sess, err = ort.OpenDynamicData("calibration model", b, ort.DynamicOptions{SessionOptions: o.SessionOptions, Outputs: outNames})
	if err != nil {
		return nil, fmt.Errorf("calibrating: %w", err)
	}
	if len(c.sess.InputNames()) != len(c.shapes) {
		c.sess.Close()
		return nil, fmt.Errorf("calibrating: model has %d inputs, ONNX Runtime sees %d", len(c.shapes), len(c.sess.InputNames()))
	}
	c.hist = make([]Histogram, len(c.names))
	return c, nil
}

func (c *Calibrator) isInput(g *onnxpb.GraphProto, name string) bool {
	return slices.ContainsFunc(g.GetInput(), func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == name })
}

// Add runs the model on one set of inputs (one slice per model input, in
// the model's order, each holding the input's shape with batch 1) and
// updates every activation's statistics.
func (c *Calibrator) Add(inputs ...[]float32) error {
	if c.sess == nil {
		return fmt.Errorf("calibrating: calibrator is closed")
	}
	if len(inputs) != len(c.shapes) {
		return fmt.Errorf("calibrating: %d inputs, the model takes %d", len(inputs), len(c.shapes))
	}
	arrays := make([]ort.Array, len(inputs))
	for i, in := range inputs {
		arrays[i] = ort.Array{Shape: c.shapes[i], Data: in}
	}
	outs, err := c.sess.Run(arrays)
	if err != nil {
		return fmt.Errorf("calibrating frame %d: %w", c.frames, err)
	}
	byName := map[string][]float32{}
	for i, name := range c.sess.InputNames() {
		byName[name] = inputs[i]
	}
	for i, name := range c.sess.OutputNames() {
		byName[name] = outs[i].Data
	}
	for i, name := range c.names {
		c.hist[i].Add(byName[name])
	}
	c.frames++
	return nil
}

// Frames returns how many input sets Add has observed.
func (c *Calibrator) Frames() int { return c.frames }

// Histograms returns each observed tensor's histogram, by name.
func (c *Calibrator) Histograms() map[string]*Histogram {
	h := make(map[string]*Histogram, len(c.names))
	for i, name := range c.names {
		h[name] = &c.hist[i]
	}
	return h
}

// Ranges returns the calibrated range of every observed tensor, by name,
// for Quantize. percentile is used by Percentile only (0 means
// DefaultPercentile).
func (c *Calibrator) Ranges(method Method, percentile float64) (map[string]Range, error) {
	return RangesOf(c.Histograms(), method, percentile)
}

// RangesOf turns histograms into ranges (see Calibrator.Ranges). Empty
// histograms are left out.
func RangesOf(hists map[string]*Histogram, method Method, percentile float64) (map[string]Range, error) {
	if percentile == 0 {
		percentile = DefaultPercentile
	}
	out := make(map[string]Range, len(hists))
	for name, h := range hists {
		if h.N == 0 {
			continue
		}
		switch method {
		case MinMax, "":
			out[name] = Range{Min: h.Min, Max: h.Max}
		case Percentile:
			r, err := h.Percentile(percentile)
			if err != nil {
				return nil, fmt.Errorf("range of %q: %w", name, err)
			}
			out[name] = r
		default:
			return nil, fmt.Errorf("unknown calibration method %q (want minmax or percentile)", method)
		}
	}
	return out, nil
}

// Close releases the ONNX Runtime session. It is safe to call twice.
func (c *Calibrator) Close() error {
	if c.sess == nil {
		return nil
	}
	err := c.sess.Close()
	c.sess = nil
	return err
}
