package purego

import (
	"fmt"
	"math"
	"slices"

	"gorgonia.org/tensor"
)

// This file holds the Go kernels for the ONNX operators gorgonia has no op
// for, or whose gorgonia op does not match ONNX's semantics. Shapes are
// fixed when a kernel is made; kernels neither allocate nor fail.

// size returns the number of elements of a shape.
func size(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// strides returns the row-major strides of shape s.
func strides(s []int) []int {
	st := make([]int, len(s))
	n := 1
	for i := len(s) - 1; i >= 0; i-- {
		st[i] = n
		n *= s[i]
	}
	return st
}

// conv2d describes a 2-D convolution or transposed convolution in ONNX
// terms (NCHW, pads begin/end per axis).
type conv2d struct {
	n, cin, h, w   int // input
	cout, oh, ow   int // output
	kh, kw         int
	sh, sw         int // strides
	dh, dw         int // dilations
	pt, pl, pb, pr int // pads top, left, bottom, right
	group          int
	weight, bias   []float32  // ONNX layouts; bias may be nil
	act            activation // fused into convKernel and gemmConvKernel
}

// activation is an element-wise function fused into a convolution.
type activation int

const (
	actNone activation = iota
	actRelu
	actSiLU // x * sigmoid(x), as YOLOX exports it (Sigmoid then Mul)
)

func (a activation) apply(v []float32) {
	switch a {
	case actRelu:
		for i, x := range v {
			v[i] = max(x, 0)
		}
	case actSiLU:
		for i, x := range v {
			v[i] = x * sigmoid(x)
		}
	}
}

// sigmoid is the logistic function, in float32 with exp32.
func sigmoid(v float32) float32 { return 1 / (1 + exp32(-v)) }

// exp32 is e**x to about 2 ulp of float32, several times faster than
// math.Exp (YOLOX-nano spends a third of its time in SiLU's exp
// otherwise): Cephes' expf, x = n*ln2 + r with |r| <= ln2/2, exp(r) by a
// degree-6 polynomial, then scaled by 2**n through the exponent bits.
func exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		ln2Hi = 0.693359375
		ln2Lo = -2.12194440e-4
	)
	switch {
	case x != x: // NaN
		return x
	case x > 88.37626:
		return float32(math.Inf(1))
	case x < -87.33654:
		return 0
	}
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2Hi - n*ln2Lo
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	y := p*r*r + r + 1
	return y * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// span returns the range [lo, hi) of output positions o for which the input
// position o*s - p + k*d lies in [0, n).
func span(out, n, s, p, kd int) (lo, hi int) {
	// o*s >= p - kd  and  o*s < n + p - kd
	a := p - kd
	if a > 0 {
		lo = (a + s - 1) / s
	}
	b := n + p - kd // o*s < b
	if b <= 0 {
		return lo, lo
	}
	hi = min(out, (b+s-1)/s)
	return lo, max(lo, hi)
}

// convKernel is a direct convolution with any groups, pads, strides and
// dilations: for each output plane it accumulates weighted input planes,
// which keeps the inner loop a plain strided multiply-add.
func convKernel(c conv2d) kernel {
	cinG, coutG := c.cin/c.group, c.cout/c.group
	inPlane, outPlane := c.h*c.w, c.oh*c.ow
	return func(out []float32, ins [][]float32) {
		x := ins[0]
		for n := range c.n {
			for oc := range c.cout {
				o := out[(n*c.cout+oc)*outPlane:][:outPlane]
				b := float32(0)
				if c.bias != nil {
					b = c.bias[oc]
				}
				for i := range o {
					o[i] = b
				}
				g := oc / coutG
				for ic := range cinG {
					in := x[(n*c.cin+g*cinG+ic)*inPlane:][:inPlane]
					wk := c.weight[(oc*cinG+ic)*c.kh*c.kw:]
					for ky := range c.kh {
						y0, y1 := span(c.oh, c.h, c.sh, c.pt, ky*c.dh)
						for kx := range c.kw {
							wv := wk[ky*c.kw+kx]
							if wv == 0 {
								continue
							}
							x0, x1 := span(c.ow, c.w, c.sw, c.pl, kx*c.dw)
							for oy := y0; oy < y1; oy++ {
								row := in[(oy*c.sh-c.pt+ky*c.dh)*c.w:]
								orow := o[oy*c.ow:]
								ix := x0*c.sw - c.pl + kx*c.dw
								if c.sw == 1 {
									r := row[ix : ix+x1-x0]
									or := orow[x0:x1]
									for i, v := range r {
										or[i] += wv * v
									}
									continue
								}
								for ox := x0; ox < x1; ox++ {
									orow[ox] += wv * row[ix]
									ix += c.sw
								}
							}
						}
					}
				}
				c.act.apply(o)
			}
		}
	}
}

// convTransposeKernel scatters each input plane, weighted, into the output
// planes (ONNX ConvTranspose: weight is cin x cout/group x kh x kw).
func convTransposeKernel(c conv2d) kernel {
	cinG, coutG := c.cin/c.group, c.cout/c.group
	inPlane, outPlane := c.h*c.w, c.oh*c.ow
	return func(out []float32, ins [][]float32) {
		x := ins[0]
		for n := range c.n {
			for oc := range c.cout {
				o := out[(n*c.cout+oc)*outPlane:][:outPlane]
				b := float32(0)
				if c.bias != nil {
					b = c.bias[oc]
				}
				for i := range o {
					o[i] = b
				}
			}
			for ic := range c.cin {
				g := ic / cinG
				in := x[(n*c.cin+ic)*inPlane:][:inPlane]
				for j := range coutG {
					oc := g*coutG + j
					o := out[(n*c.cout+oc)*outPlane:][:outPlane]
					wk := c.weight[(ic*coutG+j)*c.kh*c.kw:]
					for ky := range c.kh {
						for kx := range c.kw {
							wv := wk[ky*c.kw+kx]
							if wv == 0 {
								continue
							}
							// output (oy, ox) = (iy*s - p + k*d): the input rows whose
							// output row lands inside [0, oh).
							for iy := range c.h {
								oy := iy*c.sh - c.pt + ky*c.dh
								if oy < 0 || oy >= c.oh {
									continue
								}
								orow := o[oy*c.ow:]
								irow := in[iy*c.w:][:c.w]
								ox := -c.pl + kx*c.dw
								for _, v := range irow {
									if ox >= 0 && ox < c.ow {
										orow[ox] += wv * v
									}
									ox += c.sw
								}
							}
						}
					}
				}
			}
		}
	}
}

// pool2d describes a MaxPool or AveragePool.
type pool2d struct {
	n, c, h, w     int
	oh, ow         int
	kh, kw         int
	sh, sw         int
	dh, dw         int
	pt, pl, pb, pr int
	max            bool
	includePad     bool // AveragePool count_include_pad
}

func poolKernel(p pool2d) kernel {
	inPlane, outPlane := p.h*p.w, p.oh*p.ow
	return func(out []float32, ins [][]float32) {
		x := ins[0]
		for nc := range p.n * p.c {
			in := x[nc*inPlane:][:inPlane]
			o := out[nc*outPlane:][:outPlane]
			for oy := range p.oh {
				for ox := range p.ow {
					acc := float32(0)
					if p.max {
						acc = float32(math.Inf(-1))
					}
					cnt := 0
					for ky := range p.kh {
						iy := oy*p.sh - p.pt + ky*p.dh
						if iy >= p.h+p.pb {
							break
						}
						for kx := range p.kw {
							ix := ox*p.sw - p.pl + kx*p.dw
							if ix >= p.w+p.pr {
								break
							}
							if iy < 0 || ix < 0 || iy >= p.h || ix >= p.w {
								if p.includePad {
									cnt++
								}
								continue
							}
							v := in[iy*p.w+ix]
							cnt++
							if p.max {
								if v > acc {
									acc = v
								}
							} else {
								acc += v
							}
						}
					}
					if !p.max && cnt > 0 {
						acc /= float32(cnt)
					}
					o[oy*p.ow+ox] = acc
				}
			}
		}
	}
}

// resizeKernel gathers with per-axis source indices (nearest-neighbour
// Resize on the last two axes of an NCHW tensor); ys and xs map each
// output row and column to an input one.
func resizeKernel(nc, h, w int, ys, xs []int) kernel {
	oh, ow := len(ys), len(xs)
	return func(out []float32, ins [][]float32) {
		x := ins[0]
		for p := range nc {
			in := x[p*h*w:][:h*w]
			o := out[p*oh*ow:][:oh*ow]
			for oy, iy := range ys {
				row := in[iy*w:][:w]
				orow := o[oy*ow:][:ow]
				for ox, ix := range xs {
					orow[ox] = row[ix]
				}
			}
		}
	}
}

// lerp is one output position of a linear resize: it blends source
// positions i0 and i1 as (1-w)*x[i0] + w*x[i1].
type lerp struct {
	i0, i1 int
	w      float32
}

// linearAxis maps each output position of an axis resized from in to out
// (scale s) to its two source positions, per ONNX Resize's
// coordinate_transformation_mode, clamping at the edges as ONNX Runtime
// does.
func linearAxis(in, out int, s float64, coord string) []lerp {
	l := make([]lerp, out)
	for o := range l {
		var x float64
		switch coord {
		case "asymmetric":
			x = float64(o) / s
		case "align_corners":
			if out > 1 {
				x = float64(o) * float64(in-1) / float64(out-1)
			}
		case "pytorch_half_pixel":
			if out > 1 {
				x = (float64(o)+0.5)/s - 0.5
			}
		default: // half_pixel
			x = (float64(o)+0.5)/s - 0.5
		}
		x = max(0, min(x, float64(in-1)))
		i0 := int(x)
		l[o] = lerp{i0: i0, i1: min(i0+1, in-1), w: float32(x - float64(i0))}
	}
	return l
}

// bilinearKernel resizes the last two axes of an NCHW tensor linearly.
func bilinearKernel(nc, h, w int, ys, xs []lerp) kernel {
	oh, ow := len(ys), len(xs)
	return func(out []float32, ins [][]float32) {
		x := ins[0]
		for p := range nc {
			in := x[p*h*w:][:h*w]
			o := out[p*oh*ow:][:oh*ow]
			for oy, ly := range ys {
				r0, r1 := in[ly.i0*w:][:w], in[ly.i1*w:][:w]
				orow := o[oy*ow:][:ow]
				for ox, lx := range xs {
					top := r0[lx.i0] + lx.w*(r0[lx.i1]-r0[lx.i0])
					bot := r1[lx.i0] + lx.w*(r1[lx.i1]-r1[lx.i0])
					orow[ox] = top + ly.w*(bot-top)
				}
			}
		}
	}
}

// nearestIndex maps output position o of an axis resized from in to out
// (scale s) to its source position, per ONNX Resize's
// coordinate_transformation_mode and nearest_mode.
func nearestIndex(o, in, out int, s float64, coord, mode string) int {
	var x float64
	switch coord {
	case "asymmetric":
		x = float64(o) / s
	case "align_corners":
		if out > 1 {
			x = float64(o) * float64(in-1) / float64(out-1)
		}
	case "pytorch_half_pixel":
		if out > 1 {
			x = (float64(o)+0.5)/s - 0.5
		}
	case "tf_half_pixel_for_nearest":
		x = (float64(o) + 0.5) / s
	default: // half_pixel
		x = (float64(o)+0.5)/s - 0.5
	}
	var i float64
	switch mode {
	case "floor":
		i = math.Floor(x)
	case "ceil":
		i = math.Ceil(x)
	case "round_prefer_ceil":
		i = math.Floor(x + 0.5)
	default: // round_prefer_floor
		if x-math.Floor(x) == 0.5 {
			i = math.Floor(x)
		} else {
			i = math.Round(x)
		}
	}
	return min(max(int(i), 0), in-1)
}

// broadcastStrides returns the strides of a tensor of shape s read as a
// tensor of shape out under numpy broadcasting (0 along broadcast axes).
func broadcastStrides(s, out []int) []int {
	st := make([]int, len(out))
	own := strides(s)
	off := len(out) - len(s)
	for i := range s {
		if s[i] != 1 {
			st[off+i] = own[i]
		}
	}
	return st
}

// broadcastShape returns the numpy broadcast of shapes a and b, or false.
func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := range n {
		da, db := 1, 1
		if j := i - (n - len(a)); j >= 0 {
			da = a[j]
		}
		if j := i - (n - len(b)); j >= 0 {
			db = b[j]
		}
		switch {
		case da == db || db == 1:
			out[i] = da
		case da == 1:
			out[i] = db
		default:
			return nil, false
		}
	}
	return out, true
}

// binaryKernel applies f element-wise with numpy broadcasting. Either
// operand may be a constant (ca, cb non-nil), in which case it is not a
// kernel input.
func binaryKernel(f func(a, b float32) float32, as, bs, out []int, ca, cb []float32) kernel {
	sa, sb := broadcastStrides(as, out), broadcastStrides(bs, out)
	n := size(out)
	last := 1
	if len(out) > 0 {
		last = out[len(out)-1]
	}
	// Collapse to an outer loop over rows and an inner loop over the last
	// axis, whose strides are 0 or 1.
	rows := n / max(last, 1)
	outer := out[:max(len(out)-1, 0)]
	ila, ilb := 0, 0
	if len(out) > 0 {
		ila, ilb = sa[len(out)-1], sb[len(out)-1]
	}
	same := slices.Equal(as, out) && slices.Equal(bs, out)
	return func(o []float32, ins [][]float32) {
		a, b := ca, cb
		k := 0
		if a == nil {
			a = ins[k]
			k++
		}
		if b == nil {
			b = ins[k]
		}
		if same {
			a, b := a[:n], b[:n]
			for i := range o[:n] {
				o[i] = f(a[i], b[i])
			}
			return
		}
		var idx [maxRank]int
		for r := range rows {
			// offsets of this row in a and b from its multi-index
			oa, ob := 0, 0
			rem := r
			for ax := len(outer) - 1; ax >= 0; ax-- {
				idx[0] = rem % outer[ax]
				rem /= outer[ax]
				oa += idx[0] * sa[ax]
				ob += idx[0] * sb[ax]
			}
			orow := o[r*last:][:last]
			for i := range orow {
				orow[i] = f(a[oa+i*ila], b[ob+i*ilb])
			}
		}
	}
}

// unaryKernel applies f element-wise.
func unaryKernel(f func(float32) float32) kernel {
	return func(o []float32, ins [][]float32) {
		x := ins[0][:len(o)]
		for i, v := range x {
			o[i] = f(v)
		}
	}
}

// copyKernel copies its input: Reshape, Flatten, Identity and friends.
func copyKernel(o []float32, ins [][]float32) { copy(o, ins[0]) }

// transposeKernel permutes axes: out axis i is input axis perm[i].
func transposeKernel(in []int, perm []int) kernel {
	ist := strides(in)
	out := make([]int, len(in))
	st := make([]int, len(in)) // input stride for each output axis
	for i, p := range perm {
		out[i] = in[p]
		st[i] = ist[p]
	}
	n := size(out)
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		var idx [maxRank]int
		off := 0
		for i := range n {
			o[i] = x[off]
			// increment the multi-index (last axis fastest)
			for ax := len(out) - 1; ax >= 0; ax-- {
				idx[ax]++
				off += st[ax]
				if idx[ax] < out[ax] {
					break
				}
				off -= st[ax] * idx[ax]
				idx[ax] = 0
			}
		}
	}
}

// sliceKernel copies a strided box: start and step per input axis, out is
// the output shape.
func sliceKernel(in, start, step, out []int) kernel {
	ist := strides(in)
	base := 0
	st := make([]int, len(in))
	for i := range in {
		base += start[i] * ist[i]
		st[i] = step[i] * ist[i]
	}
	n := size(out)
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		var idx [maxRank]int
		off := base
		for i := range n {
			o[i] = x[off]
			for ax := len(out) - 1; ax >= 0; ax-- {
				idx[ax]++
				off += st[ax]
				if idx[ax] < out[ax] {
					break
				}
				off -= st[ax] * idx[ax]
				idx[ax] = 0
			}
		}
	}
}

// concatKernel joins its inputs along axis.
func concatKernel(shapes [][]int, axis int) kernel {
	outer := size(shapes[0][:axis])
	chunk := make([]int, len(shapes)) // elements per outer index, per input
	total := 0
	for i, s := range shapes {
		chunk[i] = size(s[axis:])
		total += chunk[i]
	}
	return func(o []float32, ins [][]float32) {
		for r := range outer {
			dst := o[r*total:]
			for i, x := range ins {
				n := copy(dst, x[r*chunk[i]:][:chunk[i]])
				dst = dst[n:]
			}
		}
	}
}

// softmaxKernel normalises exp(x) over axis blocks of length n with inner
// stride inner (ONNX Softmax opset 13 semantics, any axis).
func softmaxKernel(outer, n, inner int) kernel {
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		for a := range outer {
			for b := range inner {
				base := a*n*inner + b
				m := float32(math.Inf(-1))
				for i := range n {
					m = max(m, x[base+i*inner])
				}
				var s float32
				for i := range n {
					e := float32(math.Exp(float64(x[base+i*inner] - m)))
					o[base+i*inner] = e
					s += e
				}
				for i := range n {
					o[base+i*inner] /= s
				}
			}
		}
	}
}

// reduceKernel reduces the axes marked in red (ReduceMean, ReduceSum,
// ReduceMax, ReduceL2...): init, then acc = f(acc, x) over each reduced
// group, then fin(acc, count). It accumulates in float64: a float32 sum
// over a whole plane (a layer norm's mean) loses digits that ONNX
// Runtime's blocked sums keep.
func reduceKernel(in []int, red []bool, init float64, f func(acc, x float64) float64, fin func(acc float64, n int) float64) kernel {
	outShape := make([]int, len(in))
	cnt := 1
	for i, d := range in {
		outShape[i] = d
		if red[i] {
			outShape[i] = 1
			cnt *= d
		}
	}
	ost := broadcastStrides(outShape, in)
	n := size(in)
	acc := make([]float64, size(outShape))
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		for i := range acc {
			acc[i] = init
		}
		var idx [maxRank]int
		off := 0
		for i := range n {
			acc[off] = f(acc[off], float64(x[i]))
			for ax := len(in) - 1; ax >= 0; ax-- {
				idx[ax]++
				off += ost[ax]
				if idx[ax] < in[ax] {
					break
				}
				off -= ost[ax] * idx[ax]
				idx[ax] = 0
			}
		}
		for i, a := range acc {
			o[i] = float32(fin(a, cnt))
		}
	}
}

// matMulKernel multiplies batched matrices: a is batch x m x k (or
// broadcast when aBatch is false), b is k x n (constant cb, or an input,
// batched when bBatch).
func matMulKernel(batch, m, k, n int, aBatch, bBatch bool, cb []float32) kernel {
	return func(o []float32, ins [][]float32) {
		a := ins[0]
		b := cb
		if b == nil {
			b = ins[1]
		}
		for bi := range batch {
			am := a
			if aBatch {
				am = a[bi*m*k:]
			}
			bm := b
			if bBatch {
				bm = b[bi*k*n:]
			}
			om := o[bi*m*n:][:m*n]
			for i := range om {
				om[i] = 0
			}
			for i := range m {
				orow := om[i*n:][:n]
				for p := range k {
					av := am[i*k+p]
					if av == 0 {
						continue
					}
					brow := bm[p*n:][:n]
					for j, bv := range brow {
						orow[j] += av * bv
					}
				}
			}
		}
	}
}

// gemmConvKernel is a convolution as im2col then one matrix product per
// batch item and group, on gorgonia's tensor engine (gonum's SGEMM): the
// column matrix and product are buffers owned by the kernel, and the
// product comes out already in NCHW order, so unlike gorgonia's Conv2d it
// allocates nothing per run and needs no transpose.
func gemmConvKernel(c conv2d) (kernel, error) {
	cinG, coutG := c.cin/c.group, c.cout/c.group
	k, s := cinG*c.kh*c.kw, c.oh*c.ow
	col := make([]float32, k*s)
	prod := make([]float32, coutG*s)
	colT := tensor.New(tensor.WithShape(k, s), tensor.WithBacking(col))
	prodT := tensor.New(tensor.WithShape(coutG, s), tensor.WithBacking(prod))
	ws := make([]*tensor.Dense, c.group)
	for g := range ws {
		ws[g] = tensor.New(tensor.WithShape(coutG, k), tensor.WithBacking(c.weight[g*coutG*k:][:coutG*k]))
	}
	var eng tensor.StdEng
	inPlane := c.h * c.w
	var runErr error
	fn := func(out []float32, ins [][]float32) {
		x := ins[0]
		for n := range c.n {
			for g := range c.group {
				im := x[(n*c.cin+g*cinG)*inPlane:][:cinG*inPlane]
				im2col(c, im, cinG, col)
				if err := eng.MatMul(ws[g], colT, prodT); err != nil && runErr == nil {
					runErr = err
				}
				for j := range coutG {
					oc := g*coutG + j
					b := float32(0)
					if c.bias != nil {
						b = c.bias[oc]
					}
					dst := out[(n*c.cout+oc)*s:][:s]
					for i, v := range prod[j*s:][:s] {
						dst[i] = v + b
					}
					c.act.apply(dst)
				}
			}
		}
	}
	// MatMul fails only on shape mismatch, which the shapes above rule
	// out; check once at build time so a kernel never fails at run time.
	fn(make([]float32, c.n*c.cout*s), [][]float32{make([]float32, c.n*c.cin*inPlane)})
	if runErr != nil {
		return nil, fmt.Errorf("matrix product: %w", runErr)
	}
	return fn, nil
}

// im2col lays out the receptive fields of cin input planes as a
// (cin*kh*kw) x (oh*ow) matrix, zero where they fall in the padding.
func im2col(c conv2d, im []float32, cin int, col []float32) {
	s := c.oh * c.ow
	r := 0
	for ic := range cin {
		plane := im[ic*c.h*c.w:][:c.h*c.w]
		for ky := range c.kh {
			y0, y1 := span(c.oh, c.h, c.sh, c.pt, ky*c.dh)
			for kx := range c.kw {
				x0, x1 := span(c.ow, c.w, c.sw, c.pl, kx*c.dw)
				dst := col[r*s:][:s]
				r++
				for oy := range c.oh {
					drow := dst[oy*c.ow:][:c.ow]
					if oy < y0 || oy >= y1 {
						clear(drow)
						continue
					}
					srow := plane[(oy*c.sh-c.pt+ky*c.dh)*c.w:][:c.w]
					clear(drow[:x0])
					clear(drow[x1:])
					ix := x0*c.sw - c.pl + kx*c.dw
					if c.sw == 1 {
						copy(drow[x0:x1], srow[ix:])
						continue
					}
					for ox := x0; ox < x1; ox++ {
						drow[ox] = srow[ix]
						ix += c.sw
					}
				}
			}
		}
	}
}

// padKernel pads (or, for negative pads, crops) each axis: output index
// o reads input index o - begin[axis], or fill outside the input.
func padKernel(in, begin, out []int, fill float32) kernel {
	ist := strides(in)
	last := len(out) - 1
	rows := size(out[:last])
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		var idx [maxRank]int
		for r := range rows {
			// multi-index of this output row, and whether it is inside
			rem, off, inside := r, 0, true
			for ax := last - 1; ax >= 0; ax-- {
				idx[ax] = rem % out[ax]
				rem /= out[ax]
				s := idx[ax] - begin[ax]
				if s < 0 || s >= in[ax] {
					inside = false
				}
				off += s * ist[ax]
			}
			orow := o[r*out[last]:][:out[last]]
			if !inside {
				for i := range orow {
					orow[i] = fill
				}
				continue
			}
			for i := range orow {
				s := i - begin[last]
				if s < 0 || s >= in[last] {
					orow[i] = fill
				} else {
					orow[i] = x[off+s]
				}
			}
		}
	}
}
