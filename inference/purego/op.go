package purego

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel computes one ONNX node in Go: ins are the node's dynamic inputs
// (constant inputs are captured by the kernel when it is made), out is the
// preallocated output, both dense row-major float32.
type kernel func(out []float32, ins [][]float32)

// kernelOp wraps a kernel as a gorgonia Op, for the ONNX operators
// gorgonia lacks (ConvTranspose, grouped convolution, Resize, broadcasting
// with constants, Slice...). It implements UsePreallocDoer, so a
// TapeMachine reuses its output tensor from run to run.
type kernelOp struct {
	name string // ONNX node name and op, for errors and graph dumps
	id   int    // unique per op: kernels close over constants, so two ops are never the same
	in   []tensor.Shape
	out  tensor.Shape
	fn   kernel
	// scratch holds the dense views of the inputs, reused between runs.
	scratch [][]float32
	// own is the output tensor, allocated at the first run and returned
	// by every later one: a TapeMachine forgets its values on Reset, so
	// without it each run would allocate every output anew. Reusing it
	// is safe because the op runs once per run and its consumers run
	// after it.
	own *tensor.Dense
}

func (o *kernelOp) Arity() int { return len(o.in) }

func (o *kernelOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.in)+1)
	for _, s := range o.in {
		ts = append(ts, G.TensorType{Dims: s.Dims(), Of: tensor.Float32})
	}
	ts = append(ts, G.TensorType{Dims: o.out.Dims(), Of: tensor.Float32})
	return hm.NewFnType(ts...)
}

func (o *kernelOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.out.Clone(), nil }

func (o *kernelOp) Do(inputs ...G.Value) (G.Value, error) {
	if o.own == nil {
		o.own = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(o.out.Clone()...))
	}
	if !o.own.Shape().Eq(o.out) {
		// A consumer reshaped it in place; restore.
		if err := o.own.Reshape(o.out.Clone()...); err != nil {
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
	}
	return o.run(o.own, o.own.Float32s(), inputs)
}

// UsePreallocDo ignores the register gorgonia offers and writes into the
// op's own tensor, which is already the right size.
func (o *kernelOp) UsePreallocDo(_ G.Value, inputs ...G.Value) (G.Value, error) {
	return o.Do(inputs...)
}

func (o *kernelOp) run(ret G.Value, out []float32, inputs []G.Value) (G.Value, error) {
	if len(inputs) != len(o.in) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", o.name, len(inputs), len(o.in))
	}
	if o.scratch == nil {
		o.scratch = make([][]float32, len(o.in))
	}
	for i, v := range inputs {
		d, err := floats(v)
		if err != nil {
			return nil, fmt.Errorf("%s: input %d: %w", o.name, i, err)
		}
		if len(d) != o.in[i].TotalSize() {
			return nil, fmt.Errorf("%s: input %d has %d values, want %v", o.name, i, len(d), o.in[i])
		}
		o.scratch[i] = d
	}
	o.fn(out, o.scratch)
	return ret, nil
}

func (o *kernelOp) ReturnsPtr() bool     { return false }
func (o *kernelOp) CallsExtern() bool    { return false }
func (o *kernelOp) OverwritesInput() int { return -1 }
func (o *kernelOp) String() string       { return o.name }

func (o *kernelOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "purego:%d:%s", o.id, o.name) }

func (o *kernelOp) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// floats returns the float32 data of a gorgonia value in row-major order,
// materialising a view (a transpose) when it has to.
func floats(v G.Value) ([]float32, error) {
	d, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("value %T is not a dense tensor", v)
	}
	if d.Dtype() != tensor.Float32 {
		return nil, fmt.Errorf("value has element type %v, want float32", d.Dtype())
	}
	if d.RequiresIterator() {
		d = d.Materialize().(*tensor.Dense)
	}
	return d.Float32s(), nil
}
