// Package nn holds the layers Vigil's own models are built from, as
// gorgonia ops computed by Go code and OpenBLAS on float32 NCHW tensors:
// convolution (im2col + sgemm, with its two gradients), ReLU, 2x nearest
// upsampling, channel concatenation and sigmoid. gorgonia's own Conv2d
// spends most of its time transposing and in pure-Go loops; these run the
// products on OpenBLAS and allocate their outputs once.
//
// Each op implements gorgonia's SDOp: its gradient is built from further ops
// of this package, so gorgonia.Grad and a TapeMachine train graphs made of
// them like any other.
package nn

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// kernel computes an op's output from its inputs, all dense row-major.
type kernel func(out []float32, ins [][]float32)

// gradFunc builds the gradient nodes of an op's inputs (nil where an input
// is not differentiable) from the op's inputs, output and output gradient.
type gradFunc func(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error)

var opIDs atomic.Int64

// op is a gorgonia Op computed by a kernel. It owns its output tensor,
// allocated at the first run and reused by every later one (an op runs once
// per TapeMachine run and its consumers run after it).
type op struct {
	name    string
	id      int64
	in      []tensor.Shape
	out     tensor.Shape
	fn      kernel
	grad    gradFunc
	diff    []bool
	own     *tensor.Dense
	scratch [][]float32
}

func newOp(name string, in []tensor.Shape, out tensor.Shape, fn kernel, diff []bool, grad gradFunc) *op {
	return &op{name: name, id: opIDs.Add(1), in: in, out: out, fn: fn, diff: diff, grad: grad}
}

// apply adds an op node over inputs to their graph.
func apply(o *op, inputs ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(o, inputs...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return n, nil
}

func (o *op) Arity() int { return len(o.in) }

func (o *op) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.in)+1)
	for _, s := range o.in {
		ts = append(ts, G.TensorType{Dims: s.Dims(), Of: tensor.Float32})
	}
	ts = append(ts, G.TensorType{Dims: o.out.Dims(), Of: tensor.Float32})
	return hm.NewFnType(ts...)
}

func (o *op) InferShape(...G.DimSizer) (tensor.Shape, error) { return o.out.Clone(), nil }

func (o *op) Do(inputs ...G.Value) (G.Value, error) {
	if len(inputs) != len(o.in) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", o.name, len(inputs), len(o.in))
	}
	if o.own == nil {
		o.own = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(o.out.Clone()...))
	}
	if !o.own.Shape().Eq(o.out) {
		if err := o.own.Reshape(o.out.Clone()...); err != nil {
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
	}
	if o.scratch == nil {
		o.scratch = make([][]float32, len(o.in))
	}
	for i, v := range inputs {
		d, ok := v.(*tensor.Dense)
		if !ok || d.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("%s: input %d is %T, want a float32 tensor", o.name, i, v)
		}
		if d.RequiresIterator() {
			d = d.Materialize().(*tensor.Dense)
		}
		f := d.Float32s()
		if len(f) != o.in[i].TotalSize() {
			return nil, fmt.Errorf("%s: input %d has %d values, want %v", o.name, i, len(f), o.in[i])
		}
		o.scratch[i] = f
	}
	o.fn(o.own.Float32s(), o.scratch)
	return o.own, nil
}

// UsePreallocDo writes into the op's own tensor, not the offered one.
func (o *op) UsePreallocDo(_ G.Value, inputs ...G.Value) (G.Value, error) { return o.Do(inputs...) }

func (o *op) ReturnsPtr() bool     { return false }
func (o *op) CallsExtern() bool    { return false }
func (o *op) OverwritesInput() int { return -1 }
func (o *op) String() string       { return o.name }

func (o *op) WriteHash(h hash.Hash) { fmt.Fprintf(h, "vigil-nn:%d:%s", o.id, o.name) }

func (o *op) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// DiffWRT reports which inputs the op is differentiable with respect to.
func (o *op) DiffWRT(n int) []bool {
	if o.diff == nil || len(o.diff) != n {
		return make([]bool, n)
	}
	return o.diff
}

// SymDiff builds the gradients of the op's inputs.
func (o *op) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	if o.grad == nil {
		return nil, fmt.Errorf("%s is not differentiable", o.name)
	}
	return o.grad(inputs, output, grad)
}
