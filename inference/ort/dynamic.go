//go:build cgo

package ort

import (
	"fmt"
	"slices"

	ort "github.com/yalue/onnxruntime_go"
)

// Array is a float32 tensor held in Go memory: Data in row-major order of
// Shape.
type Array struct {
	Shape []int64
	Data  []float32
}

// DynamicOptions tune a DynamicSession.
type DynamicOptions struct {
	SessionOptions
	// Outputs names the tensors Run returns, in order. It defaults to the
	// model's graph outputs. Any value of the graph that is declared a graph
	// output may be named (see package quant, which exposes activations).
	Outputs []string
	// OptimizedModelPath, when set, makes ONNX Runtime write the graph it
	// runs, after its optimisations, to this file when the session is made.
	OptimizedModelPath string
}

// DynamicSession runs a model on inputs of any shape and returns outputs
// that ONNX Runtime allocates, of whatever shape the run produces. Unlike
// Session it copies every input and output on each Run; use it where
// shapes are not known in advance (calibration, tools), not on hot paths.
// It is not safe for concurrent use.
type DynamicSession struct {
	path     string
	inNames  []string
	outNames []string
	sess     *ort.DynamicAdvancedSession
}

// OpenDynamic loads the ONNX model at modelPath for dynamic runs. Init must
// have succeeded.
func OpenDynamic(modelPath string, opts DynamicOptions) (*DynamicSession, error) {
	ins, outs, err := ort.GetInputOutputInfo(modelPath)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", modelPath, err)
	}
	return openDynamic(modelPath, ins, outs, opts, func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSession(modelPath, in, out, so)
	})
}

// OpenDynamicData is OpenDynamic for a model held in memory; name is used
// in errors only.
func OpenDynamicData(name string, model []byte, opts DynamicOptions) (*DynamicSession, error) {
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", name, err)
	}
	return openDynamic(name, ins, outs, opts, func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		return ort.NewDynamicAdvancedSessionWithONNXData(model, in, out, so)
	})
}

func openDynamic(name string, ins, outs []ort.InputOutputInfo, opts DynamicOptions,
	open func(in, out []string, so *ort.SessionOptions) (*ort.DynamicAdvancedSession, error)) (*DynamicSession, error) {
	initMu.Lock()
	ready := initPath != ""
	initMu.Unlock()
	if !ready {
		return nil, fmt.Errorf("opening model %s: ONNX Runtime is not initialised (call Init)", name)
	}
	if opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("opening model %s: intra-op threads must be >= 0, got %d", name, opts.IntraOpThreads)
	}
	s := &DynamicSession{path: name}
	for _, in := range ins {
		if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("opening model %s: input %q is not a float32 tensor", name, in.Name)
		}
		s.inNames = append(s.inNames, in.Name)
	}
	s.outNames = slices.Clone(opts.Outputs)
	for _, o := range outs {
		if len(opts.Outputs) == 0 {
			s.outNames = append(s.outNames, o.Name)
		}
	}
	so, err := sessionOptions(opts.SessionOptions)
	if err != nil {
		return nil, fmt.Errorf("opening model %s: %w", name, err)
	}
	defer so.Destroy()
	if opts.OptimizedModelPath != "" {
		if err := so.SetOptimizedModelFilePath(opts.OptimizedModelPath); err != nil {
			return nil, fmt.Errorf("opening model %s: setting the optimised model path: %w", name, err)
		}
	}
	if s.sess, err = open(s.inNames, s.outNames, so); err != nil {
		return nil, fmt.Errorf("opening model %s: %w", name, err)
	}
	return s, nil
}

// InputNames returns the model's input names, in the order Run takes them.
func (s *DynamicSession) InputNames() []string { return s.inNames }

// OutputNames returns the names of the tensors Run returns, in order.
func (s *DynamicSession) OutputNames() []string { return s.outNames }

// Run runs the model on inputs (one per InputNames entry) and returns the
// outputs named by OutputNames, copied into Go memory.
func (s *DynamicSession) Run(inputs []Array) ([]Array, error) {
	if s.sess == nil {
		return nil, fmt.Errorf("running model %s: session is closed", s.path)
	}
	if len(inputs) != len(s.inNames) {
		return nil, fmt.Errorf("running model %s: %d inputs, the model takes %d", s.path, len(inputs), len(s.inNames))
	}
	inVals := make([]ort.Value, len(inputs))
	defer func() {
		for _, v := range inVals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	for i, in := range inputs {
		n := int64(1)
		for _, d := range in.Shape {
			n *= d
		}
		if n != int64(len(in.Data)) || len(in.Shape) == 0 {
			return nil, fmt.Errorf("running model %s: input %q: %d values for shape %v", s.path, s.inNames[i], len(in.Data), in.Shape)
		}
		t, err := ort.NewTensor(ort.NewShape(in.Shape...), in.Data)
		if err != nil {
			return nil, fmt.Errorf("running model %s: input %q: %w", s.path, s.inNames[i], err)
		}
		inVals[i] = t
	}
	outVals := make([]ort.Value, len(s.outNames))
	defer func() {
		for _, v := range outVals {
			if v != nil {
				v.Destroy()
			}
		}
	}()
	if err := s.sess.Run(inVals, outVals); err != nil {
		return nil, fmt.Errorf("running model %s: %w", s.path, err)
	}
	out := make([]Array, len(outVals))
	for i, v := range outVals {
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("running model %s: output %q is not a float32 tensor", s.path, s.outNames[i])
		}
		out[i] = Array{Shape: slices.Clone([]int64(t.GetShape())), Data: slices.Clone(t.GetData())}
	}
	return out, nil
}

// Close releases the session. It is safe to call twice.
func (s *DynamicSession) Close() error {
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	if err != nil {
		return fmt.Errorf("closing model %s: %w", s.path, err)
	}
	return nil
}
