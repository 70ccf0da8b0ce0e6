//go:build !cgo

package ort

import "fmt"

// Array is a float32 tensor held in Go memory: Data in row-major order of
// Shape.
type Array struct {
	Shape []int64
	Data  []float32
}

// DynamicOptions tune a DynamicSession.
type DynamicOptions struct {
	SessionOptions
	// Outputs names the tensors Run returns.
	Outputs []string
	// OptimizedModelPath is where ONNX Runtime writes its optimised graph.
	OptimizedModelPath string
}

// DynamicSession runs a model on inputs of any shape; without cgo none can
// be made.
type DynamicSession struct{}

// OpenDynamic reports ErrNoCgo: ONNX Runtime cannot be loaded without cgo.
func OpenDynamic(modelPath string, _ DynamicOptions) (*DynamicSession, error) {
	return nil, fmt.Errorf("opening model %s: %w", modelPath, ErrNoCgo)
}

// OpenDynamicData reports ErrNoCgo: ONNX Runtime cannot be loaded without cgo.
func OpenDynamicData(name string, _ []byte, _ DynamicOptions) (*DynamicSession, error) {
	return nil, fmt.Errorf("opening model %s: %w", name, ErrNoCgo)
}

// InputNames returns nil.
func (s *DynamicSession) InputNames() []string { return nil }

// OutputNames returns nil.
func (s *DynamicSession) OutputNames() []string { return nil }

// Run reports ErrNoCgo.
func (s *DynamicSession) Run([]Array) ([]Array, error) { return nil, ErrNoCgo }

// Close does nothing.
func (s *DynamicSession) Close() error { return nil }
