package ort

import "errors"

// ErrNoCgo is returned by Init and Open in builds without cgo, which cannot
// load ONNX Runtime; use the pure-Go runtime there.
var ErrNoCgo = errors.New("ONNX Runtime needs cgo: this binary was built with CGO_ENABLED=0")

// ErrProviderUnavailable is returned by Open when the requested execution
// provider (CUDA, TensorRT) is not in the loaded library or finds no device.
var ErrProviderUnavailable = errors.New("execution provider unavailable")

// TensorInfo describes one model input or output as the session runs it.
type TensorInfo struct {
	// Name is the tensor's name in the ONNX graph.
	Name string
	// Shape is the fixed shape of the session's buffer: a symbolic leading
	// (batch) dimension is replaced by SessionOptions.BatchSize.
	Shape []int64
	// Type is the ONNX element type, e.g. "float32".
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

// SessionOptions tune a session. The zero value is the default.
type SessionOptions struct {
	// IntraOpThreads is ONNX Runtime's intra-op thread count. It defaults
	// to 0: chosen by ONNX Runtime (one per physical core).
	IntraOpThreads int
	// DisableGraphOptimization turns ONNX Runtime's graph optimisation
	// off (it is on at the highest level by default; a bool whose zero
	// value is "on" keeps the zero SessionOptions the right default).
	DisableGraphOptimization bool
	// GraphOptimization is ONNX Runtime's optimisation level: "all" (the
	// default when empty), "extended", "basic" or "off".
	GraphOptimization string
	// BatchSize replaces a symbolic leading dimension of the model's
	// inputs and outputs. It defaults to 1. Models with a fixed batch
	// dimension ignore it.
	BatchSize int
	// InputShapes fixes the symbolic dimensions of named inputs, for
	// models that take any picture size (bodypix): the shape must have
	// the input's rank and agree with its fixed dimensions; a leading 0
	// stands for BatchSize. Output shapes are then learnt by running the
	// model once on zeros at Open.
	InputShapes map[string][]int64
	// Provider selects an ONNX Runtime execution provider: "" or "cpu"
	// for the default CPU provider, "cuda" or "tensorrt" (on DeviceID)
	// when the loaded library was built with them.
	Provider string
	// DeviceID is the GPU the CUDA or TensorRT provider runs on.
	DeviceID int
}
