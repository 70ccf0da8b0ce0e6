package models

import (
	"fmt"
	"math/rand/v2"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/training/nn"
)

// CenterNetConfig shapes a CenterNet detector.
type CenterNetConfig struct {
	// InputW and InputH are the network's input size, multiples of 16.
	InputW, InputH int
	// Classes are the class names, in output channel order.
	Classes []string
	// Keypoints is the number of keypoints per object (17 for COCO
	// persons), 0 for none.
	Keypoints int
	// Widths are the channels of stem, stage 1-3, the two upsampling
	// stages and the head trunk; zero means DefaultWidths.
	Widths [7]int
}

// DefaultWidths make a detector of about 1 GFLOP at 320x192.
var DefaultWidths = [7]int{16, 32, 64, 128, 64, 48, 48}

// Output stride of the heads, and the scale of the size and keypoint
// regressions (the network predicts pixels / RegScale; export folds it
// back into the last convolution).
const (
	Stride   = 4
	RegScale = 16
)

// CenterNet is a CenterNet-style detector ("Objects as Points", Zhou et al.
// 2019) of plain 3x3 and 1x1 convolutions with ReLU, which quantize well: a
// stride-16 encoder, two upsampling stages with skip connections back to
// stride 4, and heads for the class heatmap, box size, centre offset and
// keypoints (dx, dy, visibility per keypoint, relative to the centre).
type CenterNet struct {
	Cfg    CenterNetConfig
	Params Params
	layers []convLayer
}

type convLayer struct {
	name            string
	w, b            *Param
	cin, cout, k, s int
}

// NewCenterNet makes a detector with weights drawn from seed.
func NewCenterNet(cfg CenterNetConfig, seed uint64) (*CenterNet, error) {
	if cfg.InputW <= 0 || cfg.InputH <= 0 || cfg.InputW%16 != 0 || cfg.InputH%16 != 0 {
		return nil, fmt.Errorf("centernet: input %dx%d must be positive multiples of 16", cfg.InputW, cfg.InputH)
	}
	if len(cfg.Classes) == 0 {
		return nil, fmt.Errorf("centernet: no classes")
	}
	if cfg.Keypoints < 0 {
		return nil, fmt.Errorf("centernet: %d keypoints", cfg.Keypoints)
	}
	if cfg.Widths == ([7]int{}) {
		cfg.Widths = DefaultWidths
	}
	for _, w := range cfg.Widths {
		if w <= 0 {
			return nil, fmt.Errorf("centernet: widths %v must be positive", cfg.Widths)
		}
	}
	m := &CenterNet{Cfg: cfg}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := cfg.Widths
	add := func(name string, cin, cout, k, s int) {
		l := convLayer{name: name, w: newParam(name+".w", cout, cin, k, k), b: newParam(name+".b", cout), cin: cin, cout: cout, k: k, s: s}
		heInit(l.w, rng)
		m.layers = append(m.layers, l)
		m.Params = append(m.Params, l.w, l.b)
	}
	add("stem", 3, w[0], 3, 2)
	add("down1", w[0], w[1], 3, 2)
	add("block1", w[1], w[1], 3, 1)
	add("down2", w[1], w[2], 3, 2)
	add("block2", w[2], w[2], 3, 1)
	add("down3", w[2], w[3], 3, 2)
	add("block3", w[3], w[3], 3, 1)
	add("up2", w[3]+w[2], w[4], 3, 1)
	add("up1", w[4]+w[1], w[5], 3, 1)
	add("trunk", w[5], w[6], 3, 1)
	add("heatmap", w[6], len(cfg.Classes), 1, 1)
	add("size", w[6], 2, 1, 1)
	add("offset", w[6], 2, 1, 1)
	if cfg.Keypoints > 0 {
		add("keypoints", w[6], 3*cfg.Keypoints, 1, 1)
	}
	// Heads start small; the heatmap at a prior of 0.1 (CenterNet).
	for i := range m.layers[10:] {
		l := m.layers[10+i]
		for j := range l.w.Data() {
			l.w.Data()[j] *= 0.1
		}
	}
	for j := range m.layers[10].b.Data() {
		m.layers[10].b.Data()[j] = -2.19
	}
	return m, nil
}

// OutW and OutH are the heads' size.
func (m *CenterNet) OutW() int { return m.Cfg.InputW / Stride }

// OutH is the heads' height.
func (m *CenterNet) OutH() int { return m.Cfg.InputH / Stride }

// MACs is the multiply-adds of one image's forward pass.
func (m *CenterNet) MACs() int {
	n := 0
	h, w := m.Cfg.InputH, m.Cfg.InputW
	sizes := map[string][2]int{}
	for _, l := range m.layers {
		switch l.name {
		case "stem", "down1", "down2", "down3":
			h, w = h/2, w/2
		case "up2", "up1":
			h, w = h*2, w*2
		}
		sizes[l.name] = [2]int{h, w}
		n += l.cout * l.cin * l.k * l.k * h * w
	}
	return n
}

// Graph is a CenterNet's graph for one batch size.
type Graph struct {
	G     *G.ExprGraph
	Input *G.Node // [N, 3, InputH, InputW], RGB scaled to [0, 1]
	// Heads: heatmap logits [N, C, h, w]; size and keypoint dx, dy in
	// pixels / RegScale; offset in cells; keypoint visibility logits.
	Heatmap, Size, Offset, Keypoints *G.Node
	Params                           G.Nodes
}

// Build makes the forward graph for batch images.
func (m *CenterNet) Build(batch int) (*Graph, error) {
	g := G.NewGraph()
	gr := &Graph{G: g}
	gr.Input = G.NewTensor(g, G.Float32, 4, G.WithShape(batch, 3, m.Cfg.InputH, m.Cfg.InputW), G.WithName("input"))
	nodes := map[string][2]*G.Node{}
	for _, l := range m.layers {
		w, b := l.w.node(g), l.b.node(g)
		nodes[l.name] = [2]*G.Node{w, b}
		gr.Params = append(gr.Params, w, b)
	}
	conv := func(name string, x *G.Node, relu bool) (*G.Node, error) {
		var l convLayer
		for _, c := range m.layers {
			if c.name == name {
				l = c
			}
		}
		y, err := nn.Conv2D(x, nodes[name][0], nodes[name][1], l.s, l.k/2)
		if err != nil || !relu {
			return y, err
		}
		return nn.ReLU(y)
	}
	var err error
	step := func(name string, x *G.Node) *G.Node {
		if err != nil {
			return nil
		}
		var y *G.Node
		y, err = conv(name, x, true)
		return y
	}
	x := step("stem", gr.Input)
	f4 := step("block1", step("down1", x))
	f8 := step("block2", step("down2", f4))
	f16 := step("block3", step("down3", f8))
	if err != nil {
		return nil, err
	}
	up := func(name string, deep, skip *G.Node) *G.Node {
		if err != nil {
			return nil
		}
		var u, c *G.Node
		if u, err = nn.Upsample2x(deep); err != nil {
			return nil
		}
		if c, err = nn.Concat(u, skip); err != nil {
			return nil
		}
		return step(name, c)
	}
	t := step("trunk", up("up1", up("up2", f16, f8), f4))
	if err != nil {
		return nil, err
	}
	if gr.Heatmap, err = conv("heatmap", t, false); err != nil {
		return nil, err
	}
	if gr.Size, err = conv("size", t, false); err != nil {
		return nil, err
	}
	if gr.Offset, err = conv("offset", t, false); err != nil {
		return nil, err
	}
	if m.Cfg.Keypoints > 0 {
		if gr.Keypoints, err = conv("keypoints", t, false); err != nil {
			return nil, err
		}
	}
	return gr, nil
}

func tensorOf(data []float32, shape ...int) *tensor.Dense {
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data))
}
