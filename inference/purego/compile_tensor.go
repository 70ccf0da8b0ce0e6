package purego

import (
	"errors"
	"fmt"
	"math"
	"slices"

	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// This file compiles the operators that move, reduce or multiply tensors:
// Concat, the reductions, Reshape and friends, Slice, Split, Pad, Gather,
// Gemm, MatMul and Softmax.

func (c *compiler) concat(n *onnxpb.NodeProto, a attrs) (*value, error) {
	var ins []*value
	for i := range n.GetInput() {
		v, err := c.in(n, i)
		if err != nil {
			return nil, err
		}
		if v != nil && size(v.shape) > 0 {
			ins = append(ins, v)
		}
	}
	if len(ins) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	rank := len(ins[0].shape)
	axis := a.int("axis", 0)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d for rank %d", a.int("axis", 0), rank)
	}
	out := slices.Clone(ins[0].shape)
	out[axis] = 0
	shapes := make([][]int, len(ins))
	allConst, anyInt := true, false
	for i, v := range ins {
		if len(v.shape) != rank {
			return nil, fmt.Errorf("input %d has rank %d, want %d", i, len(v.shape), rank)
		}
		for d := range rank {
			if d != axis && v.shape[d] != out[d] {
				return nil, fmt.Errorf("input %d has shape %v, incompatible with %v on axis %d", i, v.shape, ins[0].shape, axis)
			}
		}
		out[axis] += v.shape[axis]
		shapes[i] = v.shape
		allConst = allConst && v.isConst()
		anyInt = anyInt || v.isInt
	}
	if anyInt {
		if !allConst || rank != 1 {
			return nil, fmt.Errorf("integer concat: %w", ErrUnsupported)
		}
		v := &value{shape: out, isInt: true}
		for _, in := range ins {
			v.i = append(v.i, in.i...)
		}
		return v, nil
	}
	if len(ins) == 1 {
		return ins[0], nil
	}
	if allConst {
		return c.apply(n.GetName(), concatKernel(shapes, axis), out, ins...)
	}
	if !c.gorgoniaOps {
		// gorgonia's Concat allocates and copies element by element
		// through an iterator; this copies whole runs.
		return c.apply(n.GetName(), concatKernel(shapes, axis), out, ins...)
	}
	nodes := make([]*G.Node, len(ins))
	for i, v := range ins {
		nodes[i] = c.dyn(v)
	}
	return gnode(G.Concat(axis, nodes...))
}

func (c *compiler) reduce(n *onnxpb.NodeProto, op string, x *value, axes []int, keep bool) (*value, error) {
	red := make([]bool, len(x.shape))
	for _, ax := range axes {
		if ax < 0 {
			ax += len(x.shape)
		}
		if ax < 0 || ax >= len(x.shape) {
			return nil, fmt.Errorf("axis %d for rank %d", ax, len(x.shape))
		}
		red[ax] = true
	}
	var out []int
	for i, d := range x.shape {
		if !red[i] {
			out = append(out, d)
		} else if keep {
			out = append(out, 1)
		}
	}
	if len(out) == 0 {
		out = []int{1}
	}
	add := func(acc, v float64) float64 { return acc + v }
	sq := func(acc, v float64) float64 { return acc + v*v }
	id := func(acc float64, _ int) float64 { return acc }
	var k kernel
	switch op {
	case "ReduceMean", "GlobalAveragePool":
		k = reduceKernel(x.shape, red, 0, add, func(acc float64, n int) float64 { return acc / float64(n) })
	case "ReduceSum":
		k = reduceKernel(x.shape, red, 0, add, id)
	case "ReduceSumSquare":
		k = reduceKernel(x.shape, red, 0, sq, id)
	case "ReduceL2":
		k = reduceKernel(x.shape, red, 0, sq, func(acc float64, _ int) float64 { return math.Sqrt(acc) })
	case "ReduceMax", "GlobalMaxPool":
		k = reduceKernel(x.shape, red, math.Inf(-1), math.Max, id)
	default: // ReduceMin
		k = reduceKernel(x.shape, red, math.Inf(1), math.Min, id)
	}
	return c.apply(n.GetName(), k, out, x)
}

// reshape gives x a new shape of the same size.
func (c *compiler) reshape(n *onnxpb.NodeProto, x *value, shape []int) (*value, error) {
	if size(shape) != size(x.shape) {
		return nil, fmt.Errorf("reshaping %v to %v", x.shape, shape)
	}
	if x.isConst() {
		v := *x
		v.shape = shape
		return &v, nil
	}
	// A copy rather than gorgonia's Reshape, whose result aliases its
	// input's tensor and changes that tensor's shape in place.
	return c.apply(n.GetName(), copyKernel, shape, x)
}

func (c *compiler) reshapeOp(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	s, ok, err := c.constInts(n, 1)
	if err != nil || !ok {
		return nil, fmt.Errorf("shape: %w", errors.Join(err, errors.New("want a constant")))
	}
	allowZero := a.int("allowzero", 0) == 1
	shape := make([]int, len(s))
	infer := -1
	known := 1
	for i, d := range s {
		switch {
		case d == 0 && !allowZero:
			if i >= len(x.shape) {
				return nil, fmt.Errorf("shape %v: 0 at axis %d beyond input rank", s, i)
			}
			shape[i] = x.shape[i]
		case d == -1:
			if infer >= 0 {
				return nil, fmt.Errorf("shape %v has two -1", s)
			}
			infer = i
			continue
		case d < 0:
			return nil, fmt.Errorf("shape %v", s)
		default:
			shape[i] = d
		}
		known *= shape[i]
	}
	if infer >= 0 {
		if known == 0 || size(x.shape)%known != 0 {
			return nil, fmt.Errorf("shape %v for input %v", s, x.shape)
		}
		shape[infer] = size(x.shape) / known
	}
	return c.reshape(n, x, shape)
}

func (c *compiler) squeeze(n *onnxpb.NodeProto, a attrs, x *value, unsqueeze bool) (*value, error) {
	axes := a.ints("axes", 0, 0)
	if _, ok := a["axes"]; !ok {
		ax, _, err := c.constInts(n, 1)
		if err != nil {
			return nil, fmt.Errorf("axes: %w", err)
		}
		axes = ax
	}
	var shape []int
	if unsqueeze {
		rank := len(x.shape) + len(axes)
		ins := make([]bool, rank)
		for _, ax := range axes {
			if ax < 0 {
				ax += rank
			}
			if ax < 0 || ax >= rank || ins[ax] {
				return nil, fmt.Errorf("axes %v for rank %d", axes, rank)
			}
			ins[ax] = true
		}
		k := 0
		for i := range rank {
			if ins[i] {
				shape = append(shape, 1)
			} else {
				shape = append(shape, x.shape[k])
				k++
			}
		}
	} else {
		drop := make([]bool, len(x.shape))
		for _, ax := range axes {
			if ax < 0 {
				ax += len(x.shape)
			}
			if ax < 0 || ax >= len(x.shape) || x.shape[ax] != 1 {
				return nil, fmt.Errorf("axes %v for shape %v", axes, x.shape)
			}
			drop[ax] = true
		}
		for i, d := range x.shape {
			if (len(axes) == 0 && d == 1) || drop[i] {
				continue
			}
			shape = append(shape, d)
		}
	}
	return c.reshape(n, x, shape)
}

func (c *compiler) slice(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	var starts, ends, axes, steps []int
	if c.opset < 10 {
		starts, ends, axes = a.ints("starts", 0, 0), a.ints("ends", 0, 0), a.ints("axes", 0, 0)
	} else {
		var err error
		var ok bool
		if starts, ok, err = c.constInts(n, 1); err != nil || !ok {
			return nil, fmt.Errorf("starts: %w", errors.Join(err, errors.New("want a constant")))
		}
		if ends, ok, err = c.constInts(n, 2); err != nil || !ok {
			return nil, fmt.Errorf("ends: %w", errors.Join(err, errors.New("want a constant")))
		}
		if axes, _, err = c.constInts(n, 3); err != nil {
			return nil, fmt.Errorf("axes: %w", err)
		}
		if steps, _, err = c.constInts(n, 4); err != nil {
			return nil, fmt.Errorf("steps: %w", err)
		}
	}
	if len(axes) == 0 {
		for i := range starts {
			axes = append(axes, i)
		}
	}
	if len(steps) == 0 {
		for range starts {
			steps = append(steps, 1)
		}
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, fmt.Errorf("starts %v, ends %v, axes %v, steps %v differ in length", starts, ends, axes, steps)
	}
	rank := len(x.shape)
	start := make([]int, rank)
	step := make([]int, rank)
	out := slices.Clone(x.shape)
	for i := range step {
		step[i] = 1
	}
	for i, ax := range axes {
		if ax < 0 {
			ax += rank
		}
		if ax < 0 || ax >= rank || steps[i] == 0 {
			return nil, fmt.Errorf("axis %d, step %d for rank %d", axes[i], steps[i], rank)
		}
		d := x.shape[ax]
		s, e := starts[i], ends[i]
		if s < 0 {
			s += d
		}
		if e < 0 {
			e += d
		}
		if steps[i] > 0 {
			s, e = min(max(s, 0), d), min(max(e, 0), d)
			out[ax] = max(0, (e-s+steps[i]-1)/steps[i])
		} else {
			s, e = min(max(s, 0), d-1), min(max(e, -1), d-1)
			out[ax] = max(0, (s-e-steps[i]-1)/(-steps[i]))
		}
		start[ax], step[ax] = s, steps[i]
	}
	if size(out) == 0 {
		return nil, fmt.Errorf("empty slice of %v", x.shape)
	}
	if x.isInt {
		if !x.isConst() || rank != 1 {
			return nil, fmt.Errorf("integer slice: %w", ErrUnsupported)
		}
		v := &value{shape: out, isInt: true}
		for k := range out[0] {
			v.i = append(v.i, x.i[start[0]+k*step[0]])
		}
		return v, nil
	}
	return c.apply(n.GetName(), sliceKernel(x.shape, start, step, out), out, x)
}

func (c *compiler) split(n *onnxpb.NodeProto, a attrs, x *value) ([]*value, error) {
	rank := len(x.shape)
	axis := a.int("axis", 0)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d for rank %d", a.int("axis", 0), rank)
	}
	parts := a.ints("split", 0, 0)
	if _, ok := a["split"]; !ok {
		p, _, err := c.constInts(n, 1)
		if err != nil {
			return nil, fmt.Errorf("split: %w", err)
		}
		parts = p
	}
	k := len(n.GetOutput())
	if len(parts) == 0 {
		if k == 0 || x.shape[axis]%k != 0 {
			return nil, fmt.Errorf("%d outputs do not split %d evenly", k, x.shape[axis])
		}
		for range k {
			parts = append(parts, x.shape[axis]/k)
		}
	}
	if len(parts) != k || sumInts(parts) != x.shape[axis] {
		return nil, fmt.Errorf("split %v of axis size %d into %d outputs", parts, x.shape[axis], k)
	}
	var outs []*value
	off := 0
	for i, p := range parts {
		start := make([]int, rank)
		step := make([]int, rank)
		for j := range step {
			step[j] = 1
		}
		start[axis] = off
		out := slices.Clone(x.shape)
		out[axis] = p
		off += p
		v, err := c.apply(fmt.Sprintf("%s_%d", n.GetName(), i), sliceKernel(x.shape, start, step, out), out, x)
		if err != nil {
			return nil, err
		}
		outs = append(outs, v)
	}
	return outs, nil
}

func sumInts(s []int) int {
	t := 0
	for _, v := range s {
		t += v
	}
	return t
}

func (c *compiler) gemm(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	if len(x.shape) != 2 {
		return nil, fmt.Errorf("A has shape %v, want 2-D", x.shape)
	}
	if a.int("transA", 0) != 0 {
		return nil, fmt.Errorf("transA: %w", ErrUnsupported)
	}
	bw, bs, err := c.constFloats(n, 1)
	if err != nil || bw == nil || len(bs) != 2 {
		return nil, fmt.Errorf("B: %w", errors.Join(err, errors.New("want a constant matrix")))
	}
	k, m := bs[0], bs[1]
	alpha, beta := a.float("alpha", 1), a.float("beta", 1)
	// B as K x N, scaled by alpha, so the product needs no extra pass.
	w := make([]float32, len(bw))
	if a.int("transB", 0) != 0 {
		k, m = m, k
		for i := range m {
			for j := range k {
				w[j*m+i] = alpha * bw[i*k+j]
			}
		}
	} else {
		for i, v := range bw {
			w[i] = alpha * v
		}
	}
	if x.shape[1] != k {
		return nil, fmt.Errorf("A %v times B %v", x.shape, bs)
	}
	out := []int{x.shape[0], m}
	var y *value
	if x.isConst() {
		y, err = c.apply(n.GetName(), matMulKernel(1, x.shape[0], k, m, false, false, w), out, x)
	} else {
		y, err = gnode(G.Mul(x.node, c.tensorNode(n.GetName()+"_b", []int{k, m}, w)))
	}
	if err != nil {
		return nil, err
	}
	cv, cs, err := c.constFloats(n, 2)
	if err != nil {
		return nil, fmt.Errorf("C: %w", err)
	}
	if cv == nil || beta == 0 {
		return y, nil
	}
	if _, ok := broadcastShape(out, cs); !ok {
		return nil, fmt.Errorf("C %v does not broadcast to %v", cs, out)
	}
	scaled := make([]float32, len(cv))
	for i, v := range cv {
		scaled[i] = beta * v
	}
	return c.apply(n.GetName()+"_c", binaryKernel(binaryFunc("Add"), out, cs, out, nil, scaled), out, y)
}

func (c *compiler) matmul(n *onnxpb.NodeProto, x, y *value) (*value, error) {
	if x.isInt || y.isInt || len(x.shape) < 2 || len(y.shape) < 2 {
		return nil, fmt.Errorf("MatMul of %v and %v: %w", x.shape, y.shape, ErrUnsupported)
	}
	m, k := x.shape[len(x.shape)-2], x.shape[len(x.shape)-1]
	k2, cols := y.shape[len(y.shape)-2], y.shape[len(y.shape)-1]
	if k != k2 {
		return nil, fmt.Errorf("MatMul of %v and %v", x.shape, y.shape)
	}
	if len(x.shape) == 2 && len(y.shape) == 2 && !x.isConst() {
		return gnode(G.Mul(x.node, c.dyn(y)))
	}
	xb, yb := x.shape[:len(x.shape)-2], y.shape[:len(y.shape)-2]
	batchShape := xb
	switch {
	case len(yb) == 0 || size(yb) == 1:
	case size(xb) == 1:
		batchShape = yb
	case slices.Equal(xb, yb):
	default:
		return nil, fmt.Errorf("MatMul batch broadcasting of %v and %v: %w", x.shape, y.shape, ErrUnsupported)
	}
	out := append(slices.Clone(batchShape), m, cols)
	var cb []float32
	ins := []*value{x}
	if y.isConst() && !x.isConst() {
		cb = y.f
	} else {
		ins = append(ins, y)
	}
	return c.apply(n.GetName(), matMulKernel(size(batchShape), m, k, cols, size(xb) > 1, size(yb) > 1, cb), out, ins...)
}

func (c *compiler) softmax(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	rank := len(x.shape)
	def := -1
	if c.opset < 13 {
		def = 1
	}
	axis := a.int("axis", def)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d for rank %d", a.int("axis", def), rank)
	}
	outer, mid, inner := size(x.shape[:axis]), x.shape[axis], size(x.shape[axis+1:])
	if c.opset < 13 { // the input is coerced to 2-D at axis
		mid, inner = size(x.shape[axis:]), 1
	}
	return c.apply(n.GetName(), softmaxKernel(outer, mid, inner), x.shape, x)
}

func (c *compiler) gather(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	idx, err := c.in(n, 1)
	if err != nil || idx == nil || !idx.isConst() || !idx.isInt {
		return nil, fmt.Errorf("indices: %w", errors.Join(err, errors.New("want integer constants")))
	}
	rank := len(x.shape)
	axis := a.int("axis", 0)
	if axis < 0 {
		axis += rank
	}
	if axis < 0 || axis >= rank {
		return nil, fmt.Errorf("axis %d for rank %d", a.int("axis", 0), rank)
	}
	d := x.shape[axis]
	ix := make([]int, len(idx.i))
	for k, i := range idx.i {
		if i < 0 {
			i += int64(d)
		}
		if i < 0 || i >= int64(d) {
			return nil, fmt.Errorf("index %d out of range %d", idx.i[k], d)
		}
		ix[k] = int(i)
	}
	out := append(append(slices.Clone(x.shape[:axis]), idx.shape...), x.shape[axis+1:]...)
	if x.isInt {
		if !x.isConst() || rank != 1 {
			return nil, fmt.Errorf("integer gather: %w", ErrUnsupported)
		}
		v := &value{shape: out, isInt: true}
		for _, i := range ix {
			v.i = append(v.i, x.i[i])
		}
		return v, nil
	}
	outer, inner := size(x.shape[:axis]), size(x.shape[axis+1:])
	return c.apply(n.GetName(), func(o []float32, ins [][]float32) {
		src := ins[0]
		for r := range outer {
			for k, i := range ix {
				copy(o[(r*len(ix)+k)*inner:][:inner], src[(r*d+i)*inner:][:inner])
			}
		}
	}, out, x)
}

func (c *compiler) pad(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	if mode := a.str("mode", "constant"); mode != "constant" {
		return nil, fmt.Errorf("mode %q: only constant: %w", mode, ErrUnsupported)
	}
	rank := len(x.shape)
	pads := a.ints("pads", 0, 0)
	fill := a.float("value", 0)
	if c.opset >= 11 {
		p, ok, err := c.constInts(n, 1)
		if err != nil || !ok {
			return nil, fmt.Errorf("pads: %w", errors.Join(err, errors.New("want a constant")))
		}
		pads = p
		if v, _, err := c.constFloats(n, 2); err != nil {
			return nil, fmt.Errorf("constant_value: %w", err)
		} else if len(v) == 1 {
			fill = v[0]
		}
		if axes, ok, err := c.constInts(n, 3); err != nil {
			return nil, fmt.Errorf("axes: %w", err)
		} else if ok {
			full := make([]int, 2*rank)
			if len(pads) != 2*len(axes) {
				return nil, fmt.Errorf("pads %v for axes %v", pads, axes)
			}
			for k, ax := range axes {
				if ax < 0 {
					ax += rank
				}
				if ax < 0 || ax >= rank {
					return nil, fmt.Errorf("axis %d for rank %d", axes[k], rank)
				}
				full[ax], full[rank+ax] = pads[k], pads[len(axes)+k]
			}
			pads = full
		}
	}
	if len(pads) != 2*rank {
		return nil, fmt.Errorf("pads %v for rank %d", pads, rank)
	}
	out := make([]int, rank)
	for i := range out {
		out[i] = x.shape[i] + pads[i] + pads[rank+i]
		if out[i] <= 0 {
			return nil, fmt.Errorf("pads %v empty shape %v", pads, x.shape)
		}
	}
	if x.isInt {
		return nil, fmt.Errorf("padding an integer tensor: %w", ErrUnsupported)
	}
	return c.apply(n.GetName(), padKernel(x.shape, pads[:rank], out, fill), out, x)
}
