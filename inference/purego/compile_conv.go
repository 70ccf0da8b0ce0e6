package purego

import (
	"errors"
	"fmt"
	"math"
	"slices"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// This file compiles the convolution-like operators: Conv (with a folded
// BatchNormalization and a fused Relu), ConvTranspose, BatchNormalization,
// MaxPool and AveragePool, and Resize.

// pads2d reads ONNX pads (or auto_pad) for a 2-D window op.
func pads2d(a attrs, h, w, kh, kw, sh, sw, dh, dw int) (pt, pl, pb, pr int, err error) {
	switch ap := a.str("auto_pad", "NOTSET"); ap {
	case "NOTSET":
		p := a.ints("pads", 4, 0)
		if len(p) != 4 {
			return 0, 0, 0, 0, fmt.Errorf("pads %v, want 4 values", p)
		}
		return p[0], p[1], p[2], p[3], nil
	case "VALID":
		return 0, 0, 0, 0, nil
	case "SAME_UPPER", "SAME_LOWER":
		same := func(in, k, s, d int) (int, int) {
			out := (in + s - 1) / s
			total := max((out-1)*s+(k-1)*d+1-in, 0)
			if ap == "SAME_UPPER" {
				return total / 2, total - total/2
			}
			return total - total/2, total / 2
		}
		pt, pb = same(h, kh, sh, dh)
		pl, pr = same(w, kw, sw, dw)
		return pt, pl, pb, pr, nil
	default:
		return 0, 0, 0, 0, fmt.Errorf("auto_pad %q: %w", ap, ErrUnsupported)
	}
}

// convParams reads the attributes shared by Conv and ConvTranspose.
func convParams(a attrs, x *value, wShape []int) (conv2d, error) {
	if len(x.shape) != 4 || len(wShape) != 4 {
		return conv2d{}, fmt.Errorf("input %v and weight %v: only 2-D (NCHW) convolutions: %w", x.shape, wShape, ErrUnsupported)
	}
	p := conv2d{n: x.shape[0], cin: x.shape[1], h: x.shape[2], w: x.shape[3], kh: wShape[2], kw: wShape[3]}
	if ks := a.ints("kernel_shape", 0, 0); len(ks) != 0 && (len(ks) != 2 || ks[0] != p.kh || ks[1] != p.kw) {
		return p, fmt.Errorf("kernel_shape %v disagrees with weight %v", ks, wShape)
	}
	st, dl := a.ints("strides", 2, 1), a.ints("dilations", 2, 1)
	if len(st) != 2 || len(dl) != 2 {
		return p, fmt.Errorf("strides %v, dilations %v: want 2 values", st, dl)
	}
	p.sh, p.sw, p.dh, p.dw = st[0], st[1], dl[0], dl[1]
	p.group = a.int("group", 1)
	if p.sh <= 0 || p.sw <= 0 || p.dh <= 0 || p.dw <= 0 || p.group <= 0 || p.cin%p.group != 0 {
		return p, fmt.Errorf("strides %v, dilations %v, group %d for %d channels", st, dl, p.group, p.cin)
	}
	return p, nil
}

func (c *compiler) conv(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	w, ws, err := c.constFloats(n, 1)
	if err != nil || w == nil {
		return nil, fmt.Errorf("weight: %w", errors.Join(err, errors.New("missing")))
	}
	b, _, err := c.constFloats(n, 2)
	if err != nil {
		return nil, fmt.Errorf("bias: %w", err)
	}
	p, err := convParams(a, x, ws)
	if err != nil {
		return nil, err
	}
	p.cout = ws[0]
	if ws[1]*p.group != p.cin || p.cout%p.group != 0 || (b != nil && len(b) != p.cout) {
		return nil, fmt.Errorf("weight %v, bias %d for %d input channels in %d groups", ws, len(b), p.cin, p.group)
	}
	if p.pt, p.pl, p.pb, p.pr, err = pads2d(a, p.h, p.w, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw); err != nil {
		return nil, err
	}
	p.oh = (p.h+p.pt+p.pb-((p.kh-1)*p.dh+1))/p.sh + 1
	p.ow = (p.w+p.pl+p.pr-((p.kw-1)*p.dw+1))/p.sw + 1
	if p.oh <= 0 || p.ow <= 0 {
		return nil, fmt.Errorf("kernel %dx%d does not fit input %v", p.kh, p.kw, x.shape)
	}
	p.weight, p.bias = w, b
	c.foldBatchNorm(n, &p)
	if !c.gorgoniaOps {
		c.fuseActivation(n, &p)
	}
	out := []int{p.n, p.cout, p.oh, p.ow}
	if x.isConst() || (p.group > 1 && p.group == p.cin && p.cout == p.cin) {
		// Depthwise: the direct kernel beats a 1-row matrix product.
		return c.apply(n.GetName(), convKernel(p), out, x)
	}
	if !c.gorgoniaOps || p.group != 1 || p.pt != p.pb || p.pl != p.pr {
		// gorgonia's Conv2d has neither groups nor asymmetric pads, and
		// allocates its im2col matrix and a transpose on every run.
		k, err := gemmConvKernel(p)
		if err != nil {
			return nil, err
		}
		return c.apply(n.GetName(), k, out, x)
	}
	wn := c.tensorNode(n.GetName()+"_w", []int{p.cout, p.cin, p.kh, p.kw}, p.weight)
	y, err := gnode(G.Conv2d(x.node, wn, tensor.Shape{p.kh, p.kw}, []int{p.pt, p.pl}, []int{p.sh, p.sw}, []int{p.dh, p.dw}))
	if err != nil {
		return nil, err
	}
	if !slices.Equal(y.shape, out) {
		return nil, fmt.Errorf("gorgonia conv gives shape %v, want %v", y.shape, out)
	}
	if p.bias == nil {
		return y, nil
	}
	return c.apply(n.GetName()+"_bias", channelAffine(out, nil, p.bias), out, y)
}

// foldBatchNorm folds a BatchNormalization that is the only consumer of
// a convolution's output into its weights and bias (a copy of them), and
// makes the convolution produce the BatchNormalization's output.
func (c *compiler) foldBatchNorm(n *onnxpb.NodeProto, p *conv2d) {
	out := n.GetOutput()[0]
	cons := c.consumers[out]
	if len(cons) != 1 || c.outputs[out] || cons[0].GetOpType() != "BatchNormalization" || len(cons[0].GetInput()) < 5 || cons[0].GetInput()[0] != out {
		return
	}
	bn := cons[0]
	for _, o := range bn.GetOutput()[1:] {
		if o != "" {
			return
		}
	}
	var par [4][]float32
	for i := range par {
		v, ok := c.vals[bn.GetInput()[i+1]]
		if !ok || !v.isConst() || v.isInt || len(v.f) != p.cout {
			return
		}
		par[i] = v.f
	}
	scale, shift := bnAffine(attrsOf(bn).float("epsilon", 1e-5), par)
	per := len(p.weight) / p.cout
	w := make([]float32, len(p.weight))
	b := make([]float32, p.cout)
	for oc := range p.cout {
		for k := range per {
			w[oc*per+k] = p.weight[oc*per+k] * scale[oc]
		}
		bias := float32(0)
		if p.bias != nil {
			bias = p.bias[oc]
		}
		b[oc] = bias*scale[oc] + shift[oc]
	}
	p.weight, p.bias = w, b
	c.skip[bn] = true
	c.alias[n] = bn.GetOutput()[0]
}

// fuseActivation makes a convolution apply the activation that alone
// consumes its output (after a folded BatchNormalization, if any): a Relu,
// or a SiLU written as Mul(y, Sigmoid(y)).
func (c *compiler) fuseActivation(n *onnxpb.NodeProto, p *conv2d) {
	out := n.GetOutput()[0]
	if a, ok := c.alias[n]; ok {
		out = a
	}
	cons := c.consumers[out]
	if c.outputs[out] {
		return
	}
	if len(cons) == 1 && cons[0].GetOpType() == "Relu" && len(cons[0].GetOutput()) == 1 {
		p.act = actRelu
		c.skip[cons[0]] = true
		c.alias[n] = cons[0].GetOutput()[0]
		return
	}
	if len(cons) != 2 {
		return
	}
	sig, mul := cons[0], cons[1]
	if sig.GetOpType() != "Sigmoid" {
		sig, mul = mul, sig
	}
	if sig.GetOpType() != "Sigmoid" || mul.GetOpType() != "Mul" || len(sig.GetOutput()) != 1 || len(mul.GetOutput()) != 1 {
		return
	}
	s := sig.GetOutput()[0]
	in := mul.GetInput()
	if len(in) != 2 || !(in[0] == out && in[1] == s || in[0] == s && in[1] == out) ||
		len(c.consumers[s]) != 1 || c.outputs[s] {
		return
	}
	p.act = actSiLU
	c.skip[sig], c.skip[mul] = true, true
	c.alias[n] = mul.GetOutput()[0]
}

// bnAffine turns BatchNormalization's scale, B, mean and var into a
// per-channel scale and shift.
func bnAffine(eps float32, par [4][]float32) (scale, shift []float32) {
	scale = make([]float32, len(par[0]))
	shift = make([]float32, len(par[0]))
	for i := range scale {
		s := par[0][i] / float32(math.Sqrt(float64(par[3][i]+eps)))
		scale[i] = s
		shift[i] = par[1][i] - par[2][i]*s
	}
	return scale, shift
}

// channelAffine computes x*scale[c] + shift[c] over NC... tensors
// (scale nil means 1).
func channelAffine(shape []int, scale, shift []float32) kernel {
	ch := shape[1]
	plane := size(shape[2:])
	return func(o []float32, ins [][]float32) {
		x := ins[0]
		for nc := range shape[0] * ch {
			c := nc % ch
			s, b := float32(1), shift[c]
			if scale != nil {
				s = scale[c]
			}
			xs := x[nc*plane:][:plane]
			os := o[nc*plane:][:plane]
			for i, v := range xs {
				os[i] = v*s + b
			}
		}
	}
}

func (c *compiler) batchNorm(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	if len(x.shape) < 2 {
		return nil, fmt.Errorf("input rank %d", len(x.shape))
	}
	var par [4][]float32
	for i := range par {
		f, _, err := c.constFloats(n, i+1)
		if err != nil || len(f) != x.shape[1] {
			return nil, fmt.Errorf("parameter %d: %w", i+1, errors.Join(err, fmt.Errorf("want %d constant values", x.shape[1])))
		}
		par[i] = f
	}
	scale, shift := bnAffine(a.float("epsilon", 1e-5), par)
	return c.apply(n.GetName(), channelAffine(x.shape, scale, shift), x.shape, x)
}

func (c *compiler) convTranspose(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	w, ws, err := c.constFloats(n, 1)
	if err != nil || w == nil {
		return nil, fmt.Errorf("weight: %w", errors.Join(err, errors.New("missing")))
	}
	b, _, err := c.constFloats(n, 2)
	if err != nil {
		return nil, fmt.Errorf("bias: %w", err)
	}
	p, err := convParams(a, x, ws)
	if err != nil {
		return nil, err
	}
	if ws[0] != p.cin {
		return nil, fmt.Errorf("weight %v for %d input channels", ws, p.cin)
	}
	p.cout = ws[1] * p.group
	if b != nil && len(b) != p.cout {
		return nil, fmt.Errorf("bias has %d values for %d channels", len(b), p.cout)
	}
	op := a.ints("output_padding", 2, 0)
	if len(op) != 2 {
		return nil, fmt.Errorf("output_padding %v", op)
	}
	full := func(in, s, k, d, o int) int { return s*(in-1) + o + (k-1)*d + 1 }
	ap := a.str("auto_pad", "NOTSET")
	os := a.ints("output_shape", 0, 0)
	switch {
	case len(os) > 0 || ap == "SAME_UPPER" || ap == "SAME_LOWER":
		// Pads follow from the output size (given, or input * stride).
		if len(os) == 0 {
			os = []int{p.h * p.sh, p.w * p.sw}
		}
		if len(os) == 4 {
			os = os[2:]
		}
		if len(os) != 2 {
			return nil, fmt.Errorf("output_shape %v", os)
		}
		th := full(p.h, p.sh, p.kh, p.dh, op[0]) - os[0]
		tw := full(p.w, p.sw, p.kw, p.dw, op[1]) - os[1]
		if ap == "SAME_UPPER" {
			p.pt, p.pb, p.pl, p.pr = th/2, th-th/2, tw/2, tw-tw/2
		} else {
			p.pt, p.pb, p.pl, p.pr = th-th/2, th/2, tw-tw/2, tw/2
		}
		if p.pt < 0 || p.pb < 0 || p.pl < 0 || p.pr < 0 {
			// A larger output than the convolution covers is zero-padded
			// at the end; not supported.
			return nil, fmt.Errorf("output_shape %v beyond the transposed convolution's reach: %w", os, ErrUnsupported)
		}
	case ap == "NOTSET" || ap == "VALID":
		if p.pt, p.pl, p.pb, p.pr, err = pads2d(a, 0, 0, 0, 0, 1, 1, 1, 1); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("auto_pad %q: %w", ap, ErrUnsupported)
	}
	p.oh = full(p.h, p.sh, p.kh, p.dh, op[0]) - p.pt - p.pb
	p.ow = full(p.w, p.sw, p.kw, p.dw, op[1]) - p.pl - p.pr
	if p.oh <= 0 || p.ow <= 0 {
		return nil, fmt.Errorf("output %dx%d", p.oh, p.ow)
	}
	p.weight, p.bias = w, b
	return c.apply(n.GetName(), convTransposeKernel(p), []int{p.n, p.cout, p.oh, p.ow}, x)
}

func (c *compiler) pool(n *onnxpb.NodeProto, a attrs, x *value, isMax bool) (*value, error) {
	if len(x.shape) != 4 {
		return nil, fmt.Errorf("input %v: only 2-D pools: %w", x.shape, ErrUnsupported)
	}
	ks := a.ints("kernel_shape", 0, 0)
	st, dl := a.ints("strides", 2, 1), a.ints("dilations", 2, 1)
	if len(ks) != 2 || len(st) != 2 || len(dl) != 2 {
		return nil, fmt.Errorf("kernel_shape %v, strides %v, dilations %v: want 2 values each", ks, st, dl)
	}
	p := pool2d{n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3], kh: ks[0], kw: ks[1],
		sh: st[0], sw: st[1], dh: dl[0], dw: dl[1], max: isMax, includePad: a.int("count_include_pad", 0) == 1}
	if p.kh <= 0 || p.kw <= 0 || p.sh <= 0 || p.sw <= 0 || p.dh <= 0 || p.dw <= 0 {
		return nil, fmt.Errorf("kernel_shape %v, strides %v, dilations %v", ks, st, dl)
	}
	if a.int("storage_order", 0) != 0 {
		return nil, fmt.Errorf("storage_order 1: %w", ErrUnsupported)
	}
	var err error
	if p.pt, p.pl, p.pb, p.pr, err = pads2d(a, p.h, p.w, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw); err != nil {
		return nil, err
	}
	ceil := a.int("ceil_mode", 0) == 1
	outDim := func(in, pa, pb, k, s, d int) int {
		span := in + pa + pb - ((k-1)*d + 1)
		o := span/s + 1
		if ceil {
			o = (span+s-1)/s + 1
			if (o-1)*s >= in+pa { // the last window must start inside the input
				o--
			}
		}
		return o
	}
	p.oh = outDim(p.h, p.pt, p.pb, p.kh, p.sh, p.dh)
	p.ow = outDim(p.w, p.pl, p.pr, p.kw, p.sw, p.dw)
	if p.oh <= 0 || p.ow <= 0 {
		return nil, fmt.Errorf("window %v does not fit input %v", ks, x.shape)
	}
	out := []int{p.n, p.c, p.oh, p.ow}
	return c.apply(n.GetName(), poolKernel(p), out, x)
}

func (c *compiler) resize(n *onnxpb.NodeProto, a attrs, x *value) (*value, error) {
	mode := a.str("mode", "nearest")
	if mode != "nearest" && mode != "linear" && mode != "bilinear" {
		return nil, fmt.Errorf("mode %q: only nearest and linear: %w", mode, ErrUnsupported)
	}
	if len(x.shape) != 4 {
		return nil, fmt.Errorf("input %v: only NCHW: %w", x.shape, ErrUnsupported)
	}
	scaleIn, sizeIn := 2, 3
	if n.GetOpType() == "Upsample" || c.opset < 11 {
		scaleIn, sizeIn = 1, -1
	}
	scales, _, err := c.constFloats(n, scaleIn)
	if err != nil {
		return nil, fmt.Errorf("scales: %w", err)
	}
	if n.GetOpType() == "Upsample" && scales == nil {
		if at, ok := a["scales"]; ok {
			scales = at.GetFloats()
		}
	}
	out := slices.Clone(x.shape)
	sc := make([]float64, 4)
	switch {
	case len(scales) == 4:
		for i := range 4 {
			sc[i] = float64(scales[i])
			out[i] = int(math.Floor(float64(x.shape[i]) * sc[i]))
		}
	case sizeIn > 0:
		sizes, ok, err := c.constInts(n, sizeIn)
		if err != nil || !ok || len(sizes) != 4 {
			return nil, fmt.Errorf("sizes: %w", errors.Join(err, errors.New("want 4 constant scales or sizes")))
		}
		for i := range 4 {
			out[i] = sizes[i]
			sc[i] = float64(sizes[i]) / float64(x.shape[i])
		}
	default:
		return nil, fmt.Errorf("want 4 constant scales")
	}
	if out[0] != x.shape[0] || out[1] != x.shape[1] {
		return nil, fmt.Errorf("resizing batch or channel axes: %w", ErrUnsupported)
	}
	coord := a.str("coordinate_transformation_mode", "half_pixel")
	nm := a.str("nearest_mode", "round_prefer_floor")
	if n.GetOpType() == "Upsample" || c.opset < 11 {
		coord, nm = "asymmetric", "floor"
	}
	switch coord {
	case "half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel", "tf_half_pixel_for_nearest":
	default:
		return nil, fmt.Errorf("coordinate_transformation_mode %q: %w", coord, ErrUnsupported)
	}
	switch nm {
	case "round_prefer_floor", "round_prefer_ceil", "floor", "ceil":
	default:
		return nil, fmt.Errorf("nearest_mode %q: %w", nm, ErrUnsupported)
	}
	if out[2] <= 0 || out[3] <= 0 {
		return nil, fmt.Errorf("output %v", out)
	}
	if mode != "nearest" {
		if coord == "tf_half_pixel_for_nearest" {
			return nil, fmt.Errorf("coordinate_transformation_mode %q with linear: %w", coord, ErrUnsupported)
		}
		ly := linearAxis(x.shape[2], out[2], sc[2], coord)
		lx := linearAxis(x.shape[3], out[3], sc[3], coord)
		return c.apply(n.GetName(), bilinearKernel(x.shape[0]*x.shape[1], x.shape[2], x.shape[3], ly, lx), out, x)
	}
	ys := make([]int, out[2])
	for i := range ys {
		ys[i] = nearestIndex(i, x.shape[2], out[2], sc[2], coord, nm)
	}
	xs := make([]int, out[3])
	for i := range xs {
		xs[i] = nearestIndex(i, x.shape[3], out[3], sc[3], coord, nm)
	}
	return c.apply(n.GetName(), resizeKernel(x.shape[0]*x.shape[1], x.shape[2], x.shape[3], ys, xs), out, x)
}
