//go:build cgo

package ort

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

var (
	initMu   sync.Mutex
	initPath string // the library loaded, "" until Init succeeds
)

// Init loads the ONNX Runtime shared library at path (see FindLibrary) and
// creates the process-wide environment. It is safe for concurrent use and
// idempotent: later calls with the same path return nil; a call with another
// path once one is loaded is an error, since a process can load only one.
// A failed Init may be retried.
func Init(path string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if initPath != "" {
		if path != initPath {
			return fmt.Errorf("initialising ONNX Runtime from %s: %s is already loaded", path, initPath)
		}
		return nil
	}
	if !isFile(path) {
		return fmt.Errorf("initialising ONNX Runtime: %w: %s does not exist", ErrLibraryNotFound, path)
	}
	ort.SetSharedLibraryPath(path)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("initialising ONNX Runtime from %s: %w", path, err)
	}
	initPath = path
	return nil
}

// Loaded returns the path of the library Init loaded, if any.
func Loaded() (string, bool) {
	initMu.Lock()
	defer initMu.Unlock()
	return initPath, initPath != ""
}

// Session is one model loaded into ONNX Runtime with its input and output
// buffers, allocated once at Open and reused by every Run. It is not safe
// for concurrent use: one goroutine fills the inputs, runs and reads the
// outputs; use one Session per goroutine to run in parallel.
type Session struct {
	path    string
	inputs  []TensorInfo
	outputs []TensorInfo
	inT     []ort.Value
	outT    []ort.Value
	inBytes [][]uint8 // uint8 inputs' buffers (nil for float inputs)
	inBuf   [][]float32
	outBuf  [][]float32
	sess    *ort.AdvancedSession
}

// Open loads the ONNX model at modelPath. Init must have succeeded. Inputs
// and outputs must be float32 tensors; symbolic dimensions are fixed by
// SessionOptions.BatchSize (a leading one) and InputShapes (any other).
func Open(modelPath string, opts SessionOptions) (*Session, error) {
	initMu.Lock()
	ready := initPath != ""
	initMu.Unlock()
	if !ready {
		return nil, fmt.Errorf("opening model %s: ONNX Runtime is not initialised (call Init)", modelPath)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1
	}
	if opts.IntraOpThreads < 0 {
		return nil, fmt.Errorf("opening model %s: intra-op threads must be >= 0, got %d", modelPath, opts.IntraOpThreads)
	}
	ins, outs, err := ort.GetInputOutputInfo(modelPath)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", modelPath, err)
	}
	s := &Session{path: modelPath}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	for name := range opts.InputShapes {
		if !slices.ContainsFunc(ins, func(t ort.InputOutputInfo) bool { return t.Name == name }) {
			return nil, fmt.Errorf("opening model %s: InputShapes names %q, which is not an input", modelPath, name)
		}
	}
	if s.inputs, err = shapes(ins, opts.BatchSize, opts.InputShapes, true); err != nil {
		return nil, fmt.Errorf("opening model %s: input %w", modelPath, err)
	}
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("opening model %s: %w", modelPath, err)
	}
	defer so.Destroy()
	if s.outputs, err = shapes(outs, opts.BatchSize, nil, false); err != nil {
		// Output sizes follow from the input sizes: learn them by running once.
		if s.outputs, err = probeOutputs(modelPath, s.inputs, outs, so); err != nil {
			return nil, fmt.Errorf("opening model %s: %w", modelPath, err)
		}
	}
	if s.inT, s.inBuf, s.inBytes, err = makeTensors(s.inputs); err != nil {
		return nil, fmt.Errorf("opening model %s: input %w", modelPath, err)
	}
	if s.outT, s.outBuf, _, err = makeTensors(s.outputs); err != nil {
		return nil, fmt.Errorf("opening model %s: output %w", modelPath, err)
	}
	inNames, inVals := namesValues(s.inputs, s.inT)
	outNames, outVals := namesValues(s.outputs, s.outT)
	s.sess, err = ort.NewAdvancedSession(modelPath, inNames, outNames, inVals, outVals, so)
	if err != nil {
		return nil, fmt.Errorf("opening model %s: %w", modelPath, err)
	}
	ok = true
	return s, nil
}

// sessionOptions turns opts into ONNX Runtime's session options.
func sessionOptions(opts SessionOptions) (*ort.SessionOptions, error) {
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("making session options: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("setting intra-op threads: %w", err)
		}
	}
	var level ort.GraphOptimizationLevel
	switch opts.GraphOptimization {
	case "", "all":
		level = ort.GraphOptimizationLevelEnableAll
	case "extended":
		level = ort.GraphOptimizationLevelEnableExtended
	case "basic":
		level = ort.GraphOptimizationLevelEnableBasic
	case "off":
		level = ort.GraphOptimizationLevelDisableAll
	default:
		return nil, fmt.Errorf("graph optimisation %q: must be all, extended, basic or off", opts.GraphOptimization)
	}
	if opts.DisableGraphOptimization {
		level = ort.GraphOptimizationLevelDisableAll
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return nil, fmt.Errorf("setting graph optimisation: %w", err)
	}
	dev := map[string]string{"device_id": strconv.Itoa(opts.DeviceID)}
	switch opts.Provider {
	case "", "cpu":
	case "cuda":
		cuda, err := ort.NewCUDAProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("%w: cuda: %w", ErrProviderUnavailable, err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(dev); err != nil {
			return nil, fmt.Errorf("%w: cuda:%d: %w", ErrProviderUnavailable, opts.DeviceID, err)
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, fmt.Errorf("%w: cuda:%d: %w", ErrProviderUnavailable, opts.DeviceID, err)
		}
	case "tensorrt":
		trt, err := ort.NewTensorRTProviderOptions()
		if err != nil {
			return nil, fmt.Errorf("%w: tensorrt: %w", ErrProviderUnavailable, err)
		}
		defer trt.Destroy()
		if err := trt.Update(dev); err != nil {
			return nil, fmt.Errorf("%w: tensorrt:%d: %w", ErrProviderUnavailable, opts.DeviceID, err)
		}
		if err := so.AppendExecutionProviderTensorRT(trt); err != nil {
			return nil, fmt.Errorf("%w: tensorrt:%d: %w", ErrProviderUnavailable, opts.DeviceID, err)
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q (want cpu, cuda or tensorrt)", opts.Provider)
	}
	ok = true
	return so, nil
}

// shapes resolves the symbolic dimensions of infos: a leading one becomes
// batch, others come from fixed (by tensor name). Tensors are float32, or
// uint8 where allowUint8 (quantized inputs).
func shapes(infos []ort.InputOutputInfo, batch int, fixed map[string][]int64, allowUint8 bool) ([]TensorInfo, error) {
	var ti []TensorInfo
	for _, in := range infos {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return nil, fmt.Errorf("%q: is a %s, only tensors are supported", in.Name, in.OrtValueType)
		}
		typ := "float32"
		switch {
		case in.DataType == ort.TensorElementDataTypeFloat:
		case in.DataType == ort.TensorElementDataTypeUint8 && allowUint8:
			typ = "uint8"
		default:
			return nil, fmt.Errorf("%q: element type %s is not supported (float32, and uint8 for inputs)", in.Name, in.DataType)
		}
		want, hasFixed := fixed[in.Name]
		if hasFixed && len(want) != len(in.Dimensions) {
			return nil, fmt.Errorf("%q: shape %v has rank %d, the model's %v has %d", in.Name, want, len(want), in.Dimensions, len(in.Dimensions))
		}
		shape := make([]int64, len(in.Dimensions))
		for i, d := range in.Dimensions {
			w := int64(-1)
			if hasFixed {
				w = want[i]
				if i == 0 && w == 0 {
					w = int64(batch)
				}
			}
			switch {
			case d > 0 && w > 0 && w != d:
				return nil, fmt.Errorf("%q: shape %v disagrees with the model's %v at dimension %d", in.Name, want, in.Dimensions, i)
			case d > 0:
				shape[i] = d
			case w > 0:
				shape[i] = w
			case i == 0:
				shape[i] = int64(batch)
			default:
				return nil, fmt.Errorf("%q: dimension %d of %v is symbolic; fix it with SessionOptions.InputShapes", in.Name, i, in.Dimensions)
			}
		}
		ti = append(ti, TensorInfo{Name: in.Name, Shape: shape, Type: typ})
	}
	return ti, nil
}

// probeOutputs runs the model once on zero inputs of the given shapes and
// returns the outputs' shapes.
func probeOutputs(modelPath string, inputs []TensorInfo, outs []ort.InputOutputInfo, so *ort.SessionOptions) ([]TensorInfo, error) {
	inT, _, _, err := makeTensors(inputs)
	defer func() {
		for _, t := range inT {
			t.Destroy()
		}
	}()
	if err != nil {
		return nil, fmt.Errorf("probing output shapes: %w", err)
	}
	inNames, inVals := namesValues(inputs, inT)
	outNames := make([]string, len(outs))
	for i, o := range outs {
		if o.DataType != ort.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("output %q: element type %s, only float32 is supported", o.Name, o.DataType)
		}
		outNames[i] = o.Name
	}
	sess, err := ort.NewDynamicAdvancedSession(modelPath, inNames, outNames, so)
	if err != nil {
		return nil, fmt.Errorf("probing output shapes: %w", err)
	}
	defer sess.Destroy()
	outVals := make([]ort.Value, len(outs))
	err = sess.Run(inVals, outVals)
	var ti []TensorInfo
	for i, v := range outVals {
		if v == nil {
			continue
		}
		ti = append(ti, TensorInfo{Name: outNames[i], Shape: slices.Clone([]int64(v.GetShape())), Type: "float32"})
		v.Destroy()
	}
	if err != nil {
		return nil, fmt.Errorf("probing output shapes with inputs %v: %w", inputs, err)
	}
	return ti, nil
}

func makeTensors(infos []TensorInfo) ([]ort.Value, [][]float32, [][]uint8, error) {
	var (
		ts   []ort.Value
		f32  [][]float32
		u8   [][]uint8
		err  error
		t32  *ort.Tensor[float32]
		tu8  *ort.Tensor[uint8]
		shap ort.Shape
	)
	for _, in := range infos {
		shap = ort.NewShape(in.Shape...)
		if in.Type == "uint8" {
			if tu8, err = ort.NewEmptyTensor[uint8](shap); err != nil {
				return ts, nil, nil, fmt.Errorf("%q: allocating %v: %w", in.Name, in.Shape, err)
			}
			ts, f32, u8 = append(ts, tu8), append(f32, nil), append(u8, tu8.GetData())
			continue
		}
		if t32, err = ort.NewEmptyTensor[float32](shap); err != nil {
			return ts, nil, nil, fmt.Errorf("%q: allocating %v: %w", in.Name, in.Shape, err)
		}
		ts, f32, u8 = append(ts, t32), append(f32, t32.GetData()), append(u8, nil)
	}
	return ts, f32, u8, nil
}

func namesValues(infos []TensorInfo, ts []ort.Value) ([]string, []ort.Value) {
	names := make([]string, len(infos))
	for i := range infos {
		names[i] = infos[i].Name
	}
	return names, ts
}

// Path returns the model file the session was opened from.
func (s *Session) Path() string { return s.path }

// Inputs describes the model's inputs, in the model's order.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs describes the model's outputs, in the model's order.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Input returns input i's buffer, laid out as Inputs()[i].Shape in row-major
// order, or nil if the input is uint8 (see InputBytes). Fill it before Run;
// it stays valid until Close.
func (s *Session) Input(i int) []float32 { return s.inBuf[i] }

// InputBytes returns the buffer of input i if it is a uint8 (quantized)
// input, else nil.
func (s *Session) InputBytes(i int) []uint8 { return s.inBytes[i] }

// Output returns output i's buffer, which Run overwrites. It stays valid
// until Close; copy what must outlive the next Run.
func (s *Session) Output(i int) []float32 { return s.outBuf[i] }

// Run runs the model on the input buffers and writes the output buffers.
func (s *Session) Run() error {
	if s.sess == nil {
		return fmt.Errorf("running model %s: session is closed", s.path)
	}
	if err := s.sess.Run(); err != nil {
		return fmt.Errorf("running model %s: %w", s.path, err)
	}
	return nil
}

// Close releases the session and its buffers. It is safe to call twice.
func (s *Session) Close() error {
	var errs []error
	if s.sess != nil {
		errs = append(errs, s.sess.Destroy())
		s.sess = nil
	}
	for _, t := range append(s.inT, s.outT...) {
		errs = append(errs, t.Destroy())
	}
	s.inT, s.outT, s.inBuf, s.outBuf, s.inBytes = nil, nil, nil, nil, nil
	return errors.Join(errs...)
}
