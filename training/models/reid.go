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

// ReIDConfig shapes a re-identification embedder.
type ReIDConfig struct {
	// InputW and InputH are the crop size the network takes (64x128 by
	// default), at least 2^len(Widths) each.
	InputW, InputH int
	// Widths are the channels of the stem and of each later stage; every
	// entry halves the resolution. Nil means DefaultReIDWidths.
	Widths []int
	// Dim is the embedding's length (128 by default).
	Dim int
}

// DefaultReIDWidths make an embedder of about 22 M multiply-adds per
// 64x128 crop.
var DefaultReIDWidths = []int{16, 32, 64, 128}

// ReID is a person re-identification embedder: a stride-2 3x3 stem, then
// per stage a stride-2 3x3 convolution and a 3x3 block, all with ReLU, a
// global average pool, and a 1x1 convolution that is the embedding layer,
// batch-normalised without scale or shift (the "BNNeck" of Luo et al.,
// "Bag of Tricks and a Strong Baseline for Deep Person Re-identification",
// 2019: it keeps the embeddings centred, so they do not collapse onto one
// direction; export folds it into the convolution). It is trained with a batch-hard triplet loss on
// L2-normalised embeddings (TripletLoss); the server normalises the vector
// too (the inference embedding decoder), so only directions matter.
type ReID struct {
	Cfg ReIDConfig
	// Params are the weights and, last, the embedding's running batch
	// statistics (which training updates but the solver does not).
	Params Params
	layers []convLayer
	bn     nn.BatchStats
}

// NewReID makes an embedder with weights drawn from seed.
func NewReID(cfg ReIDConfig, seed uint64) (*ReID, error) {
	if cfg.InputW == 0 && cfg.InputH == 0 {
		cfg.InputW, cfg.InputH = 64, 128
	}
	if cfg.Widths == nil {
		cfg.Widths = append([]int(nil), DefaultReIDWidths...)
	}
	if cfg.Dim == 0 {
		cfg.Dim = 128
	}
	if len(cfg.Widths) == 0 || len(cfg.Widths) > 8 {
		return nil, fmt.Errorf("reid: %d widths, want 1-8", len(cfg.Widths))
	}
	if min(cfg.InputW, cfg.InputH) < 1<<len(cfg.Widths) {
		return nil, fmt.Errorf("reid: input %dx%d is smaller than %d for %d stages", cfg.InputW, cfg.InputH, 1<<len(cfg.Widths), len(cfg.Widths))
	}
	if cfg.Dim < 1 {
		return nil, fmt.Errorf("reid: dim %d must be positive", cfg.Dim)
	}
	for _, w := range cfg.Widths {
		if w <= 0 {
			return nil, fmt.Errorf("reid: widths %v must be positive", cfg.Widths)
		}
	}
	m := &ReID{Cfg: cfg}
	rng := rand.New(rand.NewPCG(seed, 0x1d))
	add := func(name string, cin, cout, k, s int) {
		l := convLayer{name: name, w: newParam(name+".w", cout, cin, k, k), b: newParam(name+".b", cout), cin: cin, cout: cout, k: k, s: s}
		heInit(l.w, rng)
		m.layers = append(m.layers, l)
		m.Params = append(m.Params, l.w, l.b)
	}
	w := cfg.Widths
	add("stem", 3, w[0], 3, 2)
	for i := 1; i < len(w); i++ {
		add(fmt.Sprintf("down%d", i), w[i-1], w[i], 3, 2)
		add(fmt.Sprintf("block%d", i), w[i], w[i], 3, 1)
	}
	add("embed", w[len(w)-1], cfg.Dim, 1, 1)
	mean, vr := newParam("bn.mean", cfg.Dim), newParam("bn.var", cfg.Dim)
	for i := range vr.Data() {
		vr.Data()[i] = 1
	}
	m.bn = nn.BatchStats{Mean: mean.Data(), Var: vr.Data()}
	m.Params = append(m.Params, mean, vr)
	return m, nil
}

// MACs is the multiply-adds of one crop's forward pass.
func (m *ReID) MACs() int {
	n := 0
	h, w := m.Cfg.InputH, m.Cfg.InputW
	for _, l := range m.layers {
		if l.name == "embed" {
			h, w = 1, 1
		}
		if l.s == 2 {
			h, w = (h-1)/2+1, (w-1)/2+1
		}
		n += l.cout * l.cin * l.k * l.k * h * w
	}
	return n
}

// ReIDGraph is an embedder's graph for one batch size.
type ReIDGraph struct {
	G     *G.ExprGraph
	Input *G.Node // [N, 3, InputH, InputW], RGB scaled to [0, 1]
	// Features are the embeddings before L2 normalisation [N, Dim, 1, 1].
	Features *G.Node
	// Params are the trained parameters' nodes.
	Params G.Nodes
	train  bool
}

// Build makes the inference graph for batch crops: the embedding's batch
// normalisation applies the running statistics.
func (m *ReID) Build(batch int) (*ReIDGraph, error) { return m.build(batch, false) }

// BuildTraining makes the training graph for batch crops: the embedding is
// normalised with the batch's statistics, and each run folds them into the
// running ones.
func (m *ReID) BuildTraining(batch int) (*ReIDGraph, error) { return m.build(batch, true) }

func (m *ReID) build(batch int, train bool) (*ReIDGraph, error) {
	if batch < 1 {
		return nil, fmt.Errorf("reid: batch %d", batch)
	}
	g := G.NewGraph()
	gr := &ReIDGraph{G: g, train: train}
	gr.Input = G.NewTensor(g, G.Float32, 4, G.WithShape(batch, 3, m.Cfg.InputH, m.Cfg.InputW), G.WithName("input"))
	x := gr.Input
	for _, l := range m.layers {
		w, b := l.w.node(g), l.b.node(g)
		gr.Params = append(gr.Params, w, b)
		var err error
		if l.name == "embed" {
			if x, err = nn.GlobalAvgPool(x); err != nil {
				return nil, fmt.Errorf("reid: %w", err)
			}
		}
		if x, err = nn.Conv2D(x, w, b, l.s, l.k/2); err != nil {
			return nil, fmt.Errorf("reid %s: %w", l.name, err)
		}
		if l.name != "embed" {
			if x, err = nn.ReLU(x); err != nil {
				return nil, fmt.Errorf("reid %s: %w", l.name, err)
			}
		}
	}
	x, err := nn.BatchNorm(x, &m.bn, train)
	if err != nil {
		return nil, fmt.Errorf("reid: %w", err)
	}
	gr.Features = x
	return gr, nil
}

// ONNX exports the embedder in the inference embedding family's contract:
// input "input" [N, 3, InputH, InputW] (RGB / 255, stretched), output
// "embedding" [N, Dim], not normalised (the decoder normalises). The batch
// is symbolic.
func (m *ReID) ONNX(name string) *onnxpb.ModelProto {
	b := onnx.NewBuilder(name, 0)
	x := b.Input("input", -1, 3, int64(m.Cfg.InputH), int64(m.Cfg.InputW))
	for _, l := range m.layers {
		if l.name == "embed" {
			x = b.Node("GlobalAveragePool", []string{x})
		}
		w, bias := append([]float32(nil), l.w.Data()...), append([]float32(nil), l.b.Data()...)
		if l.name == "embed" {
			// (w x + b - mean) / σ.
			eps := float64(m.bn.Eps)
			if eps == 0 {
				eps = 1e-5
			}
			per := l.cin * l.k * l.k
			for c := range l.cout {
				inv := float32(1 / math.Sqrt(float64(m.bn.Var[c])+eps))
				for j := range per {
					w[c*per+j] *= inv
				}
				bias[c] = (bias[c] - m.bn.Mean[c]) * inv
			}
		}
		wn := b.Initializer(l.name+"_w", []int64{int64(l.cout), int64(l.cin), int64(l.k), int64(l.k)}, w)
		bn := b.Initializer(l.name+"_b", []int64{int64(l.cout)}, bias)
		p := int64(l.k / 2)
		x = b.Node("Conv", []string{x, wn, bn},
			onnx.Ints("kernel_shape", int64(l.k), int64(l.k)), onnx.Ints("strides", int64(l.s), int64(l.s)),
			onnx.Ints("pads", p, p, p, p))
		if l.name != "embed" {
			x = b.Relu(x)
		}
	}
	b.Node("Flatten", []string{x}, onnx.Int("axis", 1))
	g := b.Model().Graph
	g.Node[len(g.Node)-1].Output[0] = "embedding"
	b.Output("embedding", -1, int64(m.Cfg.Dim))
	return b.Model()
}

// TripletStats describe the last batch a TripletLoss scored.
type TripletStats struct {
	// Anchors is how many crops had both a positive and a negative;
	// Active the fraction of them whose hardest positive is not closer
	// than their hardest negative by the margin (all of them contribute
	// under the soft margin, these the most).
	Anchors int
	Active  float64
	// Pos and Neg are the mean distances to the hardest positive and
	// negative, between L2-normalised embeddings (0-2).
	Pos, Neg float64
}

// TripletLoss is the batch-hard triplet loss of Hermans, Beyer and Leibe,
// "In Defense of the Triplet Loss for Person Re-Identification" (2017), on
// L2-normalised embeddings: for each crop of a PK batch, its farthest
// same-identity crop and its nearest other-identity crop, with
// max(0, margin + d+ - d-) or, for margin 0, the soft margin
// log(1 + exp(d+ - d-)), averaged over the crops. It is one gorgonia op
// whose gradient (through the normalisation) is computed with the loss;
// set the batch's identities before each run. It is safe to read Stats
// from another goroutine.
type TripletLoss struct {
	// Margin is the hinge margin; 0 selects the soft margin.
	Margin float64
	n, d   int
	shape  tensor.Shape

	mu    sync.Mutex // guards ids and stats
	ids   []int
	stats TripletStats
	grad  []float32
}

// AddTripletLoss adds the loss of gr's features to its graph and returns
// the scalar cost node.
func (m *ReID) AddTripletLoss(gr *ReIDGraph, margin float64) (*TripletLoss, *G.Node, error) {
	if gr == nil || gr.Features == nil || !gr.train {
		return nil, nil, fmt.Errorf("triplet loss: needs a graph from BuildTraining")
	}
	if margin < 0 || math.IsNaN(margin) {
		return nil, nil, fmt.Errorf("triplet loss: margin %g must be >= 0", margin)
	}
	s := gr.Features.Shape().Clone()
	l := &TripletLoss{Margin: margin, n: s[0], d: s.TotalSize() / s[0], shape: s, grad: make([]float32, s.TotalSize())}
	cost, err := addLoss("triplet-loss", func(ins [][]float32) (float64, error) { return l.compute(ins[0]) },
		func(int) []float32 { return l.grad }, gr.Features)
	if err != nil {
		return nil, nil, err
	}
	return l, cost, nil
}

// SetTargets sets the identity of each crop of the next run's batch.
func (l *TripletLoss) SetTargets(identities []int) {
	l.mu.Lock()
	l.ids = append(l.ids[:0], identities...)
	l.mu.Unlock()
}

// Stats returns the last run's statistics.
func (l *TripletLoss) Stats() TripletStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// compute scores features f [N*D] and fills l.grad.
func (l *TripletLoss) compute(f []float32) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, d := l.n, l.d
	if len(l.ids) != n {
		return 0, fmt.Errorf("triplet loss: %d identities for a batch of %d (call SetTargets)", len(l.ids), n)
	}
	// Normalise.
	x := make([]float64, n*d)
	norms := make([]float64, n)
	for i := range n {
		var ss float64
		for _, v := range f[i*d : (i+1)*d] {
			ss += float64(v) * float64(v)
		}
		nr := math.Sqrt(ss + 1e-12)
		norms[i] = nr
		for j, v := range f[i*d : (i+1)*d] {
			x[i*d+j] = float64(v) / nr
		}
	}
	dist := make([]float64, n*n)
	for i := range n {
		for j := i + 1; j < n; j++ {
			var ss float64
			for k := range d {
				t := x[i*d+k] - x[j*d+k]
				ss += t * t
			}
			dist[i*n+j] = math.Sqrt(ss + 1e-12)
			dist[j*n+i] = dist[i*n+j]
		}
	}
	gx := make([]float64, n*d) // dL/dx
	st := TripletStats{}
	var loss float64
	type triplet struct {
		a, p, q int
		w       float64
	}
	var ts []triplet
	for a := range n {
		p, q := -1, -1
		for j := range n {
			if j == a {
				continue
			}
			if l.ids[j] == l.ids[a] {
				if p < 0 || dist[a*n+j] > dist[a*n+p] {
					p = j
				}
			} else if q < 0 || dist[a*n+j] < dist[a*n+q] {
				q = j
			}
		}
		if p < 0 || q < 0 {
			continue
		}
		st.Anchors++
		dp, dn := dist[a*n+p], dist[a*n+q]
		st.Pos += dp
		st.Neg += dn
		z := dp - dn
		var w float64 // dL_a/dz
		if l.Margin == 0 {
			// softplus(z), computed stably; its derivative is sigmoid(z).
			loss += max(z, 0) + math.Log1p(math.Exp(-math.Abs(z)))
			w = 1 / (1 + math.Exp(-z))
			if z > 0 {
				st.Active++
			}
		} else if z+l.Margin > 0 {
			loss += z + l.Margin
			w = 1
			st.Active++
		}
		ts = append(ts, triplet{a, p, q, w})
	}
	if st.Anchors > 0 {
		k := float64(st.Anchors)
		loss /= k
		st.Pos /= k
		st.Neg /= k
		st.Active /= k
		for _, t := range ts {
			w := t.w / k
			// z = |x_a - x_p| - |x_a - x_q|.
			for _, o := range []struct {
				j    int
				sign float64
			}{{t.p, w}, {t.q, -w}} {
				c := o.sign / dist[t.a*n+o.j]
				for j := range d {
					diff := c * (x[t.a*d+j] - x[o.j*d+j])
					gx[t.a*d+j] += diff
					gx[o.j*d+j] -= diff
				}
			}
		}
	}
	// Through x = f / |f|: df = (gx - x (x . gx)) / |f|.
	for i := range n {
		var dot float64
		for j := range d {
			dot += x[i*d+j] * gx[i*d+j]
		}
		for j := range d {
			l.grad[i*d+j] = float32((gx[i*d+j] - x[i*d+j]*dot) / norms[i])
		}
	}
	l.stats = st
	return loss, nil
}
