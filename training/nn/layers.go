package nn

import (
	"fmt"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ReLU is max(x, 0).
func ReLU(x *G.Node) (*G.Node, error) {
	s := x.Shape().Clone()
	o := newOp("relu", []tensor.Shape{s}, s, func(out []float32, ins [][]float32) {
		for i, v := range ins[0] {
			out[i] = max(v, 0)
		}
	}, []bool{true}, func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
		// dx = dy where the output is positive.
		d, err := apply(newOp("relu-dx", []tensor.Shape{s, s}, s, func(out []float32, ins [][]float32) {
			dy, y := ins[0], ins[1]
			for i, v := range y {
				if v > 0 {
					out[i] = dy[i]
				} else {
					out[i] = 0
				}
			}
		}, nil, nil), grad, output)
		return G.Nodes{d}, err
	})
	return apply(o, x)
}

// Upsample2x repeats each pixel of x [N, C, H, W] 2x2 times.
func Upsample2x(x *G.Node) (*G.Node, error) {
	s := x.Shape().Clone()
	if s.Dims() != 4 {
		return nil, fmt.Errorf("upsample: input %v is not NCHW", s)
	}
	nc, h, w := s[0]*s[1], s[2], s[3]
	out := tensor.Shape{s[0], s[1], 2 * h, 2 * w}
	o := newOp("upsample2x", []tensor.Shape{s}, out, func(o []float32, ins [][]float32) {
		in := ins[0]
		for p := range nc {
			src := in[p*h*w : (p+1)*h*w]
			dst := o[p*4*h*w : (p+1)*4*h*w]
			for y := range h {
				r0 := dst[(2*y)*2*w : (2*y+1)*2*w]
				for x, v := range src[y*w : (y+1)*w] {
					r0[2*x], r0[2*x+1] = v, v
				}
				copy(dst[(2*y+1)*2*w:(2*y+2)*2*w], r0)
			}
		}
	}, []bool{true}, func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		d, err := apply(newOp("upsample2x-dx", []tensor.Shape{out}, s, func(o []float32, ins [][]float32) {
			dy := ins[0]
			for p := range nc {
				src := dy[p*4*h*w : (p+1)*4*h*w]
				dst := o[p*h*w : (p+1)*h*w]
				for y := range h {
					r0, r1 := src[(2*y)*2*w:], src[(2*y+1)*2*w:]
					for x := range w {
						dst[y*w+x] = r0[2*x] + r0[2*x+1] + r1[2*x] + r1[2*x+1]
					}
				}
			}
		}, nil, nil), grad)
		return G.Nodes{d}, err
	})
	return apply(o, x)
}

// Concat joins NCHW tensors of equal N, H and W along the channels.
func Concat(xs ...*G.Node) (*G.Node, error) {
	if len(xs) == 0 {
		return nil, fmt.Errorf("concat: no inputs")
	}
	s0 := xs[0].Shape()
	ins := make([]tensor.Shape, len(xs))
	chans := make([]int, len(xs))
	total := 0
	for i, x := range xs {
		s := x.Shape()
		if s.Dims() != 4 || s[0] != s0[0] || s[2] != s0[2] || s[3] != s0[3] {
			return nil, fmt.Errorf("concat: input %d is %v, want [%d, C, %d, %d]", i, s, s0[0], s0[2], s0[3])
		}
		ins[i], chans[i] = s.Clone(), s[1]
		total += s[1]
	}
	n, plane := s0[0], s0[2]*s0[3]
	out := tensor.Shape{n, total, s0[2], s0[3]}
	diff := make([]bool, len(xs))
	for i := range diff {
		diff[i] = true
	}
	o := newOp("concat", ins, out, func(o []float32, in [][]float32) {
		for b := range n {
			off := b * total * plane
			for i, c := range chans {
				copy(o[off:off+c*plane], in[i][b*c*plane:(b+1)*c*plane])
				off += c * plane
			}
		}
	}, diff, func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		grads := make(G.Nodes, len(xs))
		start := 0
		for i, c := range chans {
			at := start
			cc := c
			d, err := apply(newOp("concat-dx", []tensor.Shape{out}, ins[i], func(o []float32, in [][]float32) {
				for b := range n {
					copy(o[b*cc*plane:(b+1)*cc*plane], in[0][(b*total+at)*plane:(b*total+at+cc)*plane])
				}
			}, nil, nil), grad)
			if err != nil {
				return nil, err
			}
			grads[i] = d
			start += c
		}
		return grads, nil
	})
	return apply(o, xs...)
}
