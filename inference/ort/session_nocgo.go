//go:build !cgo

package ort

import "fmt"

// Init reports ErrNoCgo: ONNX Runtime cannot be loaded without cgo.
func Init(path string) error {
	return fmt.Errorf("initialising ONNX Runtime from %s: %w", path, ErrNoCgo)
}

// Session is a model loaded into ONNX Runtime; without cgo none can be made.
type Session struct{}

// Open reports ErrNoCgo: ONNX Runtime cannot be loaded without cgo.
func Open(modelPath string, _ SessionOptions) (*Session, error) {
	return nil, fmt.Errorf("opening model %s: %w", modelPath, ErrNoCgo)
}

// Path returns "".
func (s *Session) Path() string { return "" }

// Inputs returns nil.
func (s *Session) Inputs() []TensorInfo { return nil }

// Outputs returns nil.
func (s *Session) Outputs() []TensorInfo { return nil }

// Input returns nil.
func (s *Session) Input(int) []float32 { return nil }

// Output returns nil.
func (s *Session) Output(int) []float32 { return nil }

// Run reports ErrNoCgo.
func (s *Session) Run() error { return ErrNoCgo }

// Close does nothing.
func (s *Session) Close() error { return nil }

// Loaded reports that no library is loaded: builds without cgo cannot.
func Loaded() (string, bool) { return "", false }

// InputBytes returns nil.
func (s *Session) InputBytes(int) []uint8 { return nil }
