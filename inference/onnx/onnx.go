// Package onnx reads, edits and writes ONNX model files: the protobuf
// messages come from package onnxpb, and this package adds what Vigil's
// tools need on top of them (loading with clear errors, float tensors,
// initializer lookup, writing).
package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"

	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// Read parses the ONNX model file at path.
func Read(path string) (*onnxpb.ModelProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading ONNX model: %w", err)
	}
	m, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("reading ONNX model %s: %w", path, err)
	}
	return m, nil
}

// Parse parses an ONNX model from its serialised bytes. It rejects bytes
// that are not a model with a graph.
func Parse(b []byte) (*onnxpb.ModelProto, error) {
	m := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("not an ONNX model: %w", err)
	}
	if m.GetGraph() == nil || len(m.GetGraph().GetNode()) == 0 {
		return nil, fmt.Errorf("not an ONNX model: no graph nodes")
	}
	return m, nil
}

// Write serialises m to path, replacing the file atomically.
func Write(path string, m *onnxpb.ModelProto) error {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Errorf("encoding ONNX model %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("writing ONNX model: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing ONNX model: %w", err)
	}
	return nil
}

// Floats returns the values of a FLOAT tensor, whether they are stored in
// float_data or raw_data. Other element types are an error.
func Floats(t *onnxpb.TensorProto) ([]float32, error) {
	if t.GetDataType() != int32(onnxpb.TensorProto_FLOAT) {
		return nil, fmt.Errorf("tensor %q: element type %s, want FLOAT", t.GetName(), onnxpb.TensorProto_DataType(t.GetDataType()))
	}
	n := 1
	for _, d := range t.GetDims() {
		n *= int(d)
	}
	if raw := t.GetRawData(); len(raw) > 0 {
		if len(raw) != 4*n {
			return nil, fmt.Errorf("tensor %q: %d raw bytes for %d floats", t.GetName(), len(raw), n)
		}
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		return out, nil
	}
	if len(t.GetFloatData()) != n {
		return nil, fmt.Errorf("tensor %q: %d floats for shape %v", t.GetName(), len(t.GetFloatData()), t.GetDims())
	}
	return append([]float32(nil), t.GetFloatData()...), nil
}

// FloatTensor makes a FLOAT initializer named name with the given shape,
// stored as raw little-endian bytes.
func FloatTensor(name string, dims []int64, data []float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(data))
	for i, v := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return &onnxpb.TensorProto{Name: name, Dims: dims, DataType: int32(onnxpb.TensorProto_FLOAT), RawData: raw}
}

// Initializer returns the graph initializer called name, or nil.
func Initializer(g *onnxpb.GraphProto, name string) *onnxpb.TensorProto {
	for _, t := range g.GetInitializer() {
		if t.GetName() == name {
			return t
		}
	}
	return nil
}
