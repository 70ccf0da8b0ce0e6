//go:build cgo

package ort

import (
	"errors"
	"fmt"
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

// Session is one model loaded into ONNX Runtime with its input and output
// buffers, allocated once at Open and reused by every Run. It is not safe
// for concurrent use: one goroutine fills the inputs, runs and reads the
// outputs; use one Session per goroutine to run in parallel.
type Session struct {
	path    string
	inputs  []TensorInfo
	outputs []TensorInfo
	inT     []*ort.Tensor[float32]
	outT    []*ort.Tensor[float32]
	inBuf   [][]float32
	outBuf  [][]float32
	sess    *ort.AdvancedSession
}

// Open loads the ONNX model at modelPath. Init must have succeeded. Only
// float32 inputs and outputs with fixed shapes (apart from a symbolic
// leading batch dimension) are supported so far.
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
	if s.inputs, s.inT, s.inBuf, err = makeTensors(ins, opts.BatchSize); err != nil {
		return nil, fmt.Errorf("opening model %s: input %w", modelPath, err)
	}
	if s.outputs, s.outT, s.outBuf, err = makeTensors(outs, opts.BatchSize); err != nil {
		return nil, fmt.Errorf("opening model %s: output %w", modelPath, err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("opening model %s: making session options: %w", modelPath, err)
	}
	defer so.Destroy()
	if opts.IntraOpThreads > 0 {
		if err := so.SetIntraOpNumThreads(opts.IntraOpThreads); err != nil {
			return nil, fmt.Errorf("opening model %s: setting intra-op threads: %w", modelPath, err)
		}
	}
	level := ort.GraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll)
	if opts.DisableGraphOptimization {
		level = ort.GraphOptimizationLevelDisableAll
	}
	if err := so.SetGraphOptimizationLevel(level); err != nil {
		return nil, fmt.Errorf("opening model %s: setting graph optimisation: %w", modelPath, err)
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

func makeTensors(infos []ort.InputOutputInfo, batch int) ([]TensorInfo, []*ort.Tensor[float32], [][]float32, error) {
	var (
		ti   []TensorInfo
		ts   []*ort.Tensor[float32]
		bufs [][]float32
	)
	for _, in := range infos {
		if in.OrtValueType != ort.ONNXTypeTensor {
			return nil, ts, nil, fmt.Errorf("%q: is a %s, only tensors are supported", in.Name, in.OrtValueType)
		}
		if in.DataType != ort.TensorElementDataTypeFloat {
			return nil, ts, nil, fmt.Errorf("%q: element type %s, only float32 is supported", in.Name, in.DataType)
		}
		shape := make([]int64, len(in.Dimensions))
		for i, d := range in.Dimensions {
			switch {
			case d > 0:
				shape[i] = d
			case i == 0:
				shape[i] = int64(batch)
			default:
				return nil, ts, nil, fmt.Errorf("%q: dimension %d of %v is symbolic; only the leading (batch) one may be", in.Name, i, in.Dimensions)
			}
		}
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(shape...))
		if err != nil {
			return nil, ts, nil, fmt.Errorf("%q: allocating %v: %w", in.Name, shape, err)
		}
		ts = append(ts, t)
		bufs = append(bufs, t.GetData())
		ti = append(ti, TensorInfo{Name: in.Name, Shape: shape, Type: "float32"})
	}
	return ti, ts, bufs, nil
}

func namesValues(infos []TensorInfo, ts []*ort.Tensor[float32]) ([]string, []ort.Value) {
	names := make([]string, len(infos))
	vals := make([]ort.Value, len(ts))
	for i := range infos {
		names[i] = infos[i].Name
		vals[i] = ts[i]
	}
	return names, vals
}

// Path returns the model file the session was opened from.
func (s *Session) Path() string { return s.path }

// Inputs describes the model's inputs, in the model's order.
func (s *Session) Inputs() []TensorInfo { return s.inputs }

// Outputs describes the model's outputs, in the model's order.
func (s *Session) Outputs() []TensorInfo { return s.outputs }

// Input returns input i's buffer, laid out as Inputs()[i].Shape in row-major
// order. Fill it before Run; it stays valid until Close.
func (s *Session) Input(i int) []float32 { return s.inBuf[i] }

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
	s.inT, s.outT, s.inBuf, s.outBuf = nil, nil, nil, nil
	return errors.Join(errs...)
}
