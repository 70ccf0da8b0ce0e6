package models

import (
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// ONNX exports the detector in the output contract of the inference
// centernet decoder: input "input" [N, 3, InputH, InputW] (RGB / 255,
// letterboxed), outputs "heatmap" (sigmoided), "size" and keypoint dx, dy in
// input pixels (RegScale folded into the last convolutions), "offset" in
// cells, and "keypoints" with visibility logits. The batch is symbolic.
func (m *CenterNet) ONNX(name string) *onnxpb.ModelProto {
	b := onnx.NewBuilder(name, 0)
	in := b.Input("input", -1, 3, int64(m.Cfg.InputH), int64(m.Cfg.InputW))
	layer := func(n string) convLayer {
		for _, l := range m.layers {
			if l.name == n {
				return l
			}
		}
		panic("centernet: no layer " + n)
	}
	conv := func(x, n string, relu bool, scale func(ch int) float32) string {
		l := layer(n)
		w := append([]float32(nil), l.w.Data()...)
		bias := append([]float32(nil), l.b.Data()...)
		if scale != nil {
			per := l.cin * l.k * l.k
			for c := range l.cout {
				s := scale(c)
				for j := range per {
					w[c*per+j] *= s
				}
				bias[c] *= s
			}
		}
		wn := b.Initializer(n+"_w", []int64{int64(l.cout), int64(l.cin), int64(l.k), int64(l.k)}, w)
		bn := b.Initializer(n+"_b", []int64{int64(l.cout)}, bias)
		p := int64(l.k / 2)
		y := b.Node("Conv", []string{x, wn, bn},
			onnx.Ints("kernel_shape", int64(l.k), int64(l.k)), onnx.Ints("strides", int64(l.s), int64(l.s)),
			onnx.Ints("pads", p, p, p, p))
		if relu {
			y = b.Relu(y)
		}
		return y
	}
	x := conv(in, "stem", true, nil)
	f4 := conv(conv(x, "down1", true, nil), "block1", true, nil)
	f8 := conv(conv(f4, "down2", true, nil), "block2", true, nil)
	f16 := conv(conv(f8, "down3", true, nil), "block3", true, nil)
	u2 := conv(b.Concat(1, b.Upsample(f16, 2), f8), "up2", true, nil)
	u1 := conv(b.Concat(1, b.Upsample(u2, 2), f4), "up1", true, nil)
	t := conv(u1, "trunk", true, nil)
	oh, ow := int64(m.OutH()), int64(m.OutW())
	rename := func(v, name string) {
		b.Node("Identity", []string{v})
		g := b.Model().Graph
		g.Node[len(g.Node)-1].Output[0] = name
	}
	rename(b.Sigmoid(conv(t, "heatmap", false, nil)), "heatmap")
	b.Output("heatmap", -1, int64(len(m.Cfg.Classes)), oh, ow)
	rename(conv(t, "size", false, func(int) float32 { return RegScale }), "size")
	b.Output("size", -1, 2, oh, ow)
	rename(conv(t, "offset", false, nil), "offset")
	b.Output("offset", -1, 2, oh, ow)
	if m.Cfg.Keypoints > 0 {
		rename(conv(t, "keypoints", false, func(c int) float32 {
			if c%3 == 2 {
				return 1 // visibility logit
			}
			return RegScale
		}), "keypoints")
		b.Output("keypoints", -1, int64(3*m.Cfg.Keypoints), oh, ow)
	}
	return b.Model()
}
