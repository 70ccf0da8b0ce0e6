package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/training/nn"
)

// UNetConfig shapes a UNet person segmenter.
type UNetConfig struct {
	// InputW and InputH are the network's input size, multiples of 16.
	// Person crops are tall: DefaultUNetInput is 96x160 (portrait, 0.6),
	// which holds a standing person's box grown by 1.2 (aspect about 0.45)
	// with some context at the sides, at a height where limbs stay a few
	// pixels wide.
	InputW, InputH int
	// Widths are the channels of the stride-2 stem, the stride 4, 8 and 16
	// stages, and the three decoder stages (stride 8, 4, 2); zero means
	// DefaultUNetWidths.
	Widths [7]int
}

// DefaultUNetInput is the default input size (width, height).
var DefaultUNetInput = [2]int{96, 160}

// DefaultUNetWidths make a segmenter of about 60 M multiply-adds at 96x160.
var DefaultUNetWidths = [7]int{16, 24, 32, 64, 32, 24, 16}

// UNetStride is the mask's stride: the logits are InputH/2 x InputW/2.
const UNetStride = 2

// UNet is a small UNet-style ("U-Net", Ronneberger et al. 2015) binary
// segmenter of plain 3x3 convolutions with ReLU: an encoder that halves
// the resolution four times with stride-2 convolutions (each stage a
// down-sampling and a same-size convolution), a decoder that upsamples 2x
// (nearest), concatenates the encoder's feature map of that size and
// convolves, three times back to stride 2, and a 1x1 head giving one
// person logit per pixel of the stride-2 map.
type UNet struct {
	Cfg    UNetConfig
	Params Params
	layers []convLayer
}

// NewUNet makes a segmenter with weights drawn from seed.
func NewUNet(cfg UNetConfig, seed uint64) (*UNet, error) {
	if cfg.InputW <= 0 || cfg.InputH <= 0 || cfg.InputW%16 != 0 || cfg.InputH%16 != 0 {
		return nil, fmt.Errorf("unet: input %dx%d must be positive multiples of 16", cfg.InputW, cfg.InputH)
	}
	if cfg.Widths == ([7]int{}) {
		cfg.Widths = DefaultUNetWidths
	}
	for _, w := range cfg.Widths {
		if w <= 0 {
			return nil, fmt.Errorf("unet: widths %v must be positive", cfg.Widths)
		}
	}
	m := &UNet{Cfg: cfg}
	rng := rand.New(rand.NewPCG(seed, 0x5e9))
	w := cfg.Widths
	add := func(name string, cin, cout, k, s int) {
		l := convLayer{name: name, w: newParam(name+".w", cout, cin, k, k), b: newParam(name+".b", cout), cin: cin, cout: cout, k: k, s: s}
		heInit(l.w, rng)
		m.layers = append(m.layers, l)
		m.Params = append(m.Params, l.w, l.b)
	}
	add("stem", 3, w[0], 3, 2)
	add("block0", w[0], w[0], 3, 1)
	add("down1", w[0], w[1], 3, 2)
	add("block1", w[1], w[1], 3, 1)
	add("down2", w[1], w[2], 3, 2)
	add("block2", w[2], w[2], 3, 1)
	add("down3", w[2], w[3], 3, 2)
	add("block3", w[3], w[3], 3, 1)
	add("up3", w[3]+w[2], w[4], 3, 1)
	add("up2", w[4]+w[1], w[5], 3, 1)
	add("up1", w[5]+w[0], w[6], 3, 1)
	add("head", w[6], 1, 1, 1)
	head := m.layers[len(m.layers)-1]
	for j := range head.w.Data() {
		head.w.Data()[j] *= 0.1
	}
	return m, nil
}

// OutW is the mask's width, InputW / UNetStride.
func (m *UNet) OutW() int { return m.Cfg.InputW / UNetStride }

// OutH is the mask's height.
func (m *UNet) OutH() int { return m.Cfg.InputH / UNetStride }

// MACs is the multiply-adds of one image's forward pass.
func (m *UNet) MACs() int {
	n := 0
	h, w := m.Cfg.InputH, m.Cfg.InputW
	for _, l := range m.layers {
		switch l.name {
		case "stem", "down1", "down2", "down3":
			h, w = h/2, w/2
		case "up3", "up2", "up1":
			h, w = h*2, w*2
		}
		n += l.cout * l.cin * l.k * l.k * h * w
	}
	return n
}

func (m *UNet) layer(name string) (convLayer, bool) {
	for _, l := range m.layers {
		if l.name == name {
			return l, true
		}
	}
	return convLayer{}, false
}

// UNetGraph is a UNet's graph for one batch size.
type UNetGraph struct {
	G *G.ExprGraph
	// Input is [N, 3, InputH, InputW], RGB scaled to [0, 1].
	Input *G.Node
	// Logits are the person logits [N, 1, InputH/2, InputW/2].
	Logits *G.Node
	Params G.Nodes
}

// Build makes the forward graph for batch images.
func (m *UNet) Build(batch int) (*UNetGraph, error) {
	if batch < 1 {
		return nil, fmt.Errorf("unet: batch %d", batch)
	}
	g := G.NewGraph()
	gr := &UNetGraph{G: g}
	gr.Input = G.NewTensor(g, G.Float32, 4, G.WithShape(batch, 3, m.Cfg.InputH, m.Cfg.InputW), G.WithName("input"))
	nodes := map[string][2]*G.Node{}
	for _, l := range m.layers {
		w, b := l.w.node(g), l.b.node(g)
		nodes[l.name] = [2]*G.Node{w, b}
		gr.Params = append(gr.Params, w, b)
	}
	var err error
	conv := func(name string, x *G.Node, relu bool) *G.Node {
		if err != nil {
			return nil
		}
		l, _ := m.layer(name)
		var y *G.Node
		if y, err = nn.Conv2D(x, nodes[name][0], nodes[name][1], l.s, l.k/2); err != nil || !relu {
			return y
		}
		y, err = nn.ReLU(y)
		return y
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
		return conv(name, c, true)
	}
	f2 := conv("block0", conv("stem", gr.Input, true), true)
	f4 := conv("block1", conv("down1", f2, true), true)
	f8 := conv("block2", conv("down2", f4, true), true)
	f16 := conv("block3", conv("down3", f8, true), true)
	t := up("up1", up("up2", up("up3", f16, f8), f4), f2)
	gr.Logits = conv("head", t, false)
	if err != nil {
		return nil, fmt.Errorf("unet: %w", err)
	}
	return gr, nil
}

// ONNX exports the segmenter in the inference selfie family's contract:
// input "input" [N, 3, InputH, InputW] (RGB / 255, the crop stretched to
// the input size), output "mask" [N, 1, InputH/2, InputW/2], the sigmoided
// person probability covering the input. The batch is symbolic.
func (m *UNet) ONNX(name string) *onnxpb.ModelProto {
	b := onnx.NewBuilder(name, 0)
	in := b.Input("input", -1, 3, int64(m.Cfg.InputH), int64(m.Cfg.InputW))
	conv := func(x, n string, relu bool) string {
		l, _ := m.layer(n)
		wn := b.Initializer(n+"_w", []int64{int64(l.cout), int64(l.cin), int64(l.k), int64(l.k)}, append([]float32(nil), l.w.Data()...))
		bn := b.Initializer(n+"_b", []int64{int64(l.cout)}, append([]float32(nil), l.b.Data()...))
		p := int64(l.k / 2)
		y := b.Node("Conv", []string{x, wn, bn},
			onnx.Ints("kernel_shape", int64(l.k), int64(l.k)), onnx.Ints("strides", int64(l.s), int64(l.s)),
			onnx.Ints("pads", p, p, p, p))
		if relu {
			y = b.Relu(y)
		}
		return y
	}
	up := func(n, deep, skip string) string { return conv(b.Concat(1, b.Upsample(deep, 2), skip), n, true) }
	f2 := conv(conv(in, "stem", true), "block0", true)
	f4 := conv(conv(f2, "down1", true), "block1", true)
	f8 := conv(conv(f4, "down2", true), "block2", true)
	f16 := conv(conv(f8, "down3", true), "block3", true)
	t := up("up1", up("up2", up("up3", f16, f8), f4), f2)
	b.Node("Identity", []string{b.Sigmoid(conv(t, "head", false))})
	g := b.Model().Graph
	g.Node[len(g.Node)-1].Output[0] = "mask"
	b.Output("mask", -1, 1, int64(m.OutH()), int64(m.OutW()))
	return b.Model()
}

// DiceWeight weighs the soft Dice term of SegLoss against the binary
// cross-entropy.
const DiceWeight = 0.5

// SegLoss is the segmenter's training loss over a UNetGraph's logits: the
// per-pixel binary cross-entropy averaged over the pixels whose care is
// non-zero, plus DiceWeight times the soft Dice loss (1 - 2|P.T| / (|P| +
// |T|), per image, over cared pixels, averaged over the batch), which keeps
// thin limbs and small persons from drowning in background. It is one
// gorgonia op whose gradient is computed with the loss; set the targets
// before each run. Targets may be soft (0..1).
type SegLoss struct {
	mu         sync.Mutex // guards the targets and parts against readers in other goroutines
	n, plane   int
	mask, care []float32
	bce, dice  float64
	grad       []float32
	shape      tensor.Shape
}

// AddLoss adds the loss of gr's logits to its graph and returns the
// scalar cost node.
func (m *UNet) AddLoss(gr *UNetGraph) (*SegLoss, *G.Node, error) {
	s := gr.Logits.Shape().Clone()
	l := &SegLoss{n: s[0], plane: s[1] * s[2] * s[3], shape: s, grad: make([]float32, s.TotalSize())}
	cost, err := addLoss("unet-loss", func(ins [][]float32) (float64, error) { return l.compute(ins[0]) },
		func(int) []float32 { return l.grad }, gr.Logits)
	if err != nil {
		return nil, nil, err
	}
	return l, cost, nil
}

// SetTargets sets the next run's targets: mask [N, h, w] (the person
// probability, 0 or 1, or soft) and care [N, h, w] (1 where the loss
// counts, 0 where it does not; nil counts everywhere), at the logits'
// resolution. The loss keeps the slices until the next call.
func (l *SegLoss) SetTargets(mask, care []float32) error {
	if len(mask) != l.n*l.plane || (care != nil && len(care) != len(mask)) {
		return fmt.Errorf("unet loss: targets of %d and %d values, want %d", len(mask), len(care), l.n*l.plane)
	}
	l.mu.Lock()
	l.mask, l.care = mask, care
	l.mu.Unlock()
	return nil
}

// Parts returns the last run's cross-entropy and Dice terms (the Dice
// term unweighted).
func (l *SegLoss) Parts() (bce, dice float64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bce, l.dice
}

// compute evaluates the loss on logits z and fills the gradient.
func (l *SegLoss) compute(z []float32) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mask == nil {
		return 0, fmt.Errorf("unet loss: no targets set")
	}
	if len(z) != len(l.mask) {
		return 0, fmt.Errorf("unet loss: %d logits, targets %d", len(z), len(l.mask))
	}
	clear(l.grad)
	care := func(i int) float32 {
		if l.care == nil {
			return 1
		}
		return l.care[i]
	}
	var cared float64
	for i := range z {
		cared += float64(care(i))
	}
	if cared == 0 {
		l.bce, l.dice = 0, 0
		return 0, nil
	}
	var bce float64
	inv := float32(1 / cared)
	for i, v := range z {
		c := care(i)
		if c == 0 {
			continue
		}
		t := l.mask[i]
		// log(1 + exp(-|v|)) + max(v, 0) - v*t, stable for large |v|.
		bce += float64(c) * (math.Log1p(math.Exp(-math.Abs(float64(v)))) + math.Max(float64(v), 0) - float64(v*t))
		l.grad[i] = c * (sigmoid(v) - t) * inv
	}
	bce /= cared
	const eps = 1
	var dice float64
	for b := range l.n {
		var inter, sum float64
		for i := b * l.plane; i < (b+1)*l.plane; i++ {
			c := float64(care(i))
			p := float64(sigmoid(z[i]))
			inter += c * p * float64(l.mask[i])
			sum += c * (p + float64(l.mask[i]))
		}
		d := (2*inter + eps) / (sum + eps)
		dice += 1 - d
		// d(1 - D)/dp_i = -(2 t_i (S + eps) - (2I + eps)) / (S + eps)^2.
		den := (sum + eps) * (sum + eps)
		for i := b * l.plane; i < (b+1)*l.plane; i++ {
			c := float64(care(i))
			if c == 0 {
				continue
			}
			p := float64(sigmoid(z[i]))
			g := -c * (2*float64(l.mask[i])*(sum+eps) - (2*inter + eps)) / den
			l.grad[i] += float32(DiceWeight * g * p * (1 - p) / float64(l.n))
		}
	}
	dice /= float64(l.n)
	l.bce, l.dice = bce, dice
	return bce + DiceWeight*dice, nil
}
