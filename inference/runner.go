package inference

import (
	"fmt"

	"github.com/vigil-video/vigil/inference/ort"
)

// TensorInfo describes one input or output of a Runner: its name in the
// graph and its fixed shape.
type TensorInfo struct {
	Name  string
	Shape []int64
}

// Elements returns the number of values of a tensor of this shape.
func (t TensorInfo) Elements() int {
	n := 1
	for _, d := range t.Shape {
		n *= int(d)
	}
	return n
}

// Runner is a model opened in a runtime with its input and output buffers
// allocated once: fill Input(i), call Run, read Output(i). ONNX Runtime
// sessions and the pure-Go runtime both satisfy it. A Runner is not safe
// for concurrent use.
type Runner interface {
	Inputs() []TensorInfo
	Outputs() []TensorInfo
	// Input returns a float input's buffer, nil for a uint8 one.
	Input(i int) []float32
	// InputBytes returns a uint8 (quantized) input's buffer, nil for a
	// float one.
	InputBytes(i int) []uint8
	Output(i int) []float32
	Run() error
	Close() error
}

// RunnerOptions say how to open a Runner.
type RunnerOptions struct {
	Device Device
	// BatchSize fixes a symbolic leading dimension.
	BatchSize int
	// InputShapes fixes other symbolic input dimensions, by input name.
	InputShapes map[string][]int64
}

// openPureGo opens a model in the pure-Go runtime; set by purego.go.
var openPureGo func(path string, o RunnerOptions) (Runner, error)

// OpenRunner opens the ONNX file at path on o.Device's runtime.
func OpenRunner(path string, o RunnerOptions) (Runner, error) {
	switch o.Device.Runtime {
	case RuntimeORT:
		s, err := ort.Open(path, ort.SessionOptions{
			IntraOpThreads: o.Device.Threads, BatchSize: o.BatchSize, InputShapes: o.InputShapes,
			Provider: o.Device.Provider, DeviceID: o.Device.ID, GraphOptimization: o.Device.GraphOptimization,
		})
		if err != nil {
			return nil, err
		}
		return ortRunner{s, infos(s.Inputs()), infos(s.Outputs())}, nil
	case RuntimePureGo:
		if openPureGo == nil {
			return nil, fmt.Errorf("opening %s: the pure-Go runtime is not built in", path)
		}
		return openPureGo(path, o)
	}
	return nil, fmt.Errorf("opening %s: unknown runtime %q", path, o.Device.Runtime)
}

type ortRunner struct {
	*ort.Session
	in, out []TensorInfo
}

func (r ortRunner) Inputs() []TensorInfo  { return r.in }
func (r ortRunner) Outputs() []TensorInfo { return r.out }

func infos(ts []ort.TensorInfo) []TensorInfo {
	out := make([]TensorInfo, len(ts))
	for i, t := range ts {
		out[i] = TensorInfo{Name: t.Name, Shape: t.Shape}
	}
	return out
}
