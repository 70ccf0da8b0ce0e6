package models

import (
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// lossOp is a training loss as one gorgonia op: compute takes the inputs'
// values and returns the loss, and leaves the loss's gradient with respect
// to input i where grad(i) returns it. Its output is [1]. Computing the
// gradient with the loss keeps it exact and cheap (one pass, fused).
type lossOp struct {
	name    string
	ins     []tensor.Shape
	compute func(ins [][]float32) (float64, error)
	grad    func(i int) []float32
	vals    [][]float32
	out     *tensor.Dense
}

// addLoss adds a lossOp over inputs to their graph and returns the scalar
// cost node (the op's output summed).
func addLoss(name string, compute func(ins [][]float32) (float64, error), grad func(i int) []float32, inputs ...*G.Node) (*G.Node, error) {
	o := &lossOp{name: name, compute: compute, grad: grad, vals: make([][]float32, len(inputs))}
	for _, in := range inputs {
		o.ins = append(o.ins, in.Shape().Clone())
	}
	out, err := G.ApplyOp(o, inputs...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cost, err := G.Sum(out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cost, nil
}

func (o *lossOp) Arity() int { return len(o.ins) }

func (o *lossOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.ins)+1)
	for _, s := range o.ins {
		ts = append(ts, G.TensorType{Dims: s.Dims(), Of: tensor.Float32})
	}
	return hm.NewFnType(append(ts, G.TensorType{Dims: 1, Of: tensor.Float32})...)
}

func (o *lossOp) InferShape(...G.DimSizer) (tensor.Shape, error) { return tensor.Shape{1}, nil }

func (o *lossOp) Do(inputs ...G.Value) (G.Value, error) {
	if len(inputs) != len(o.ins) {
		return nil, fmt.Errorf("%s: %d inputs, want %d", o.name, len(inputs), len(o.ins))
	}
	for i, v := range inputs {
		d, ok := v.(*tensor.Dense)
		if !ok || d.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("%s: input %d is %T, want a float32 tensor", o.name, i, v)
		}
		if d.RequiresIterator() {
			d = d.Materialize().(*tensor.Dense)
		}
		if o.vals[i] = d.Float32s(); len(o.vals[i]) != o.ins[i].TotalSize() {
			return nil, fmt.Errorf("%s: input %d has %d values, want %v", o.name, i, len(o.vals[i]), o.ins[i])
		}
	}
	v, err := o.compute(o.vals)
	if err != nil {
		return nil, err
	}
	if o.out == nil {
		o.out = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(1))
	}
	o.out.Float32s()[0] = float32(v)
	return o.out, nil
}

func (o *lossOp) UsePreallocDo(_ G.Value, inputs ...G.Value) (G.Value, error) { return o.Do(inputs...) }
func (o *lossOp) ReturnsPtr() bool                                            { return false }
func (o *lossOp) CallsExtern() bool                                           { return false }
func (o *lossOp) OverwritesInput() int                                        { return -1 }
func (o *lossOp) String() string                                              { return o.name }
func (o *lossOp) WriteHash(h hash.Hash)                                       { fmt.Fprintf(h, "%s:%p", o.name, o) }
func (o *lossOp) Hashcode() uint32                                            { return hashOf(o) }

// DiffWRT: a loss is differentiable with respect to every input.
func (o *lossOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}

// SymDiff returns, per input, an op that scales the gradient the loss
// computed by the incoming gradient. It takes the loss node as an input so
// that it runs after the loss.
func (o *lossOp) SymDiff(inputs G.Nodes, output, grad *G.Node) (G.Nodes, error) {
	out := make(G.Nodes, len(inputs))
	for i := range inputs {
		n, err := G.ApplyOp(&lossGradOp{l: o, i: i}, grad, output)
		if err != nil {
			return nil, fmt.Errorf("%s gradient: %w", o.name, err)
		}
		out[i] = n
	}
	return out, nil
}

// lossGradOp outputs the stored gradient of input i times the incoming
// gradient.
type lossGradOp struct {
	l   *lossOp
	i   int
	out *tensor.Dense
}

func (o *lossGradOp) Arity() int { return 2 }
func (o *lossGradOp) Type() hm.Type {
	return hm.NewFnType(G.TensorType{Dims: 1, Of: tensor.Float32}, G.TensorType{Dims: 1, Of: tensor.Float32},
		G.TensorType{Dims: o.l.ins[o.i].Dims(), Of: tensor.Float32})
}
func (o *lossGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return o.l.ins[o.i].Clone(), nil
}
func (o *lossGradOp) Do(inputs ...G.Value) (G.Value, error) {
	g, ok := inputs[0].Data().([]float32)
	if !ok || len(g) != 1 {
		return nil, fmt.Errorf("%s gradient: incoming gradient %v", o.l.name, inputs[0].Shape())
	}
	if o.out == nil {
		o.out = tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(o.l.ins[o.i].Clone()...))
	}
	dst := o.out.Float32s()
	for j, v := range o.l.grad(o.i) {
		dst[j] = v * g[0]
	}
	return o.out, nil
}
func (o *lossGradOp) UsePreallocDo(_ G.Value, inputs ...G.Value) (G.Value, error) {
	return o.Do(inputs...)
}
func (o *lossGradOp) ReturnsPtr() bool      { return false }
func (o *lossGradOp) CallsExtern() bool     { return false }
func (o *lossGradOp) OverwritesInput() int  { return -1 }
func (o *lossGradOp) String() string        { return fmt.Sprintf("%s-grad%d", o.l.name, o.i) }
func (o *lossGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s-grad:%p:%d", o.l.name, o.l, o.i) }
func (o *lossGradOp) Hashcode() uint32      { return hashOf(o) }

func hashOf(o interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}
