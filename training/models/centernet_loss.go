package models

import (
	"fmt"
	"math"
	"sync"

	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/training/dataset"
)

// Targets are one batch's training targets at the heads' resolution.
type Targets struct {
	n, c, h, w, k int
	// heat is the Gaussian-splatted class heatmap [N, C, h, w]; care is 0
	// where Ignore objects lie (no loss there).
	heat, care []float32
	centres    []centre
}

// centre is one object's peak cell and regression targets.
type centre struct {
	b, c, x, y int
	w, h       float32 // box size, pixels / RegScale
	ox, oy     float32 // sub-cell offset
	kp         []float32
	kpVis      []bool
}

// MakeTargets builds the targets of a batch whose objects are given in
// input pixels (after letterboxing or augmentation), one slice per image.
// Objects of classes the model lacks are skipped; Ignore objects only mask
// the heatmap loss over their box.
func (m *CenterNet) MakeTargets(objects [][]dataset.Object) *Targets {
	h, w := m.OutH(), m.OutW()
	t := &Targets{n: len(objects), c: len(m.Cfg.Classes), h: h, w: w, k: m.Cfg.Keypoints}
	t.heat = make([]float32, t.n*t.c*h*w)
	t.care = make([]float32, t.n*t.c*h*w)
	for i := range t.care {
		t.care[i] = 1
	}
	for b, objs := range objects {
		for _, o := range objs {
			c := m.classIndex(o)
			if c < 0 {
				continue
			}
			plane := t.heat[(b*t.c+c)*h*w : (b*t.c+c+1)*h*w]
			x1, y1, x2, y2 := o.Box.X1/Stride, o.Box.Y1/Stride, o.Box.X2/Stride, o.Box.Y2/Stride
			if o.Ignore {
				care := t.care[(b*t.c+c)*h*w : (b*t.c+c+1)*h*w]
				for y := max(int(y1), 0); y < min(int(math.Ceil(float64(y2))), h); y++ {
					for x := max(int(x1), 0); x < min(int(math.Ceil(float64(x2))), w); x++ {
						if plane[y*w+x] < 1 {
							care[y*w+x] = 0
						}
					}
				}
				continue
			}
			bw, bh := x2-x1, y2-y1
			if bw <= 0 || bh <= 0 {
				continue
			}
			cx, cy := (x1+x2)/2, (y1+y2)/2
			ix, iy := int(cx), int(cy)
			if ix < 0 || iy < 0 || ix >= w || iy >= h {
				continue
			}
			r := max(0, int(gaussianRadius(float64(bh), float64(bw), 0.7)))
			splat(plane, w, h, ix, iy, r)
			ce := centre{b: b, c: c, x: ix, y: iy, w: o.Box.W() / RegScale, h: o.Box.H() / RegScale, ox: cx - float32(ix), oy: cy - float32(iy)}
			if t.k > 0 && len(o.Keypoints) == t.k {
				ce.kp = make([]float32, 2*t.k)
				ce.kpVis = make([]bool, t.k)
				px, py := (cx)*Stride, (cy)*Stride
				for j, kp := range o.Keypoints {
					ce.kp[2*j] = (kp.X - px) / RegScale
					ce.kp[2*j+1] = (kp.Y - py) / RegScale
					ce.kpVis[j] = kp.Score > 0
				}
			}
			t.centres = append(t.centres, ce)
		}
	}
	return t
}

func (m *CenterNet) classIndex(o dataset.Object) int {
	for i, c := range m.Cfg.Classes {
		if c == o.Label {
			return i
		}
	}
	return -1
}

// gaussianRadius is CornerNet's radius for a box of the given size whose
// corners may move so that the IoU stays above minOverlap.
func gaussianRadius(h, w, minOverlap float64) float64 {
	a1, b1, c1 := 1.0, h+w, w*h*(1-minOverlap)/(1+minOverlap)
	r1 := (b1 + math.Sqrt(b1*b1-4*a1*c1)) / 2
	a2, b2, c2 := 4.0, 2*(h+w), (1-minOverlap)*w*h
	r2 := (b2 + math.Sqrt(b2*b2-4*a2*c2)) / 2
	a3, b3, c3 := 4*minOverlap, -2*minOverlap*(h+w), (minOverlap-1)*w*h
	r3 := (b3 + math.Sqrt(b3*b3-4*a3*c3)) / 2
	return min(r1, r2, r3)
}

// splat draws a Gaussian peak of radius r at (cx, cy), keeping the maximum
// where peaks overlap.
func splat(plane []float32, w, h, cx, cy, r int) {
	sigma := float64(2*r+1) / 6
	for y := max(cy-r, 0); y <= min(cy+r, h-1); y++ {
		for x := max(cx-r, 0); x <= min(cx+r, w-1); x++ {
			dx, dy := float64(x-cx), float64(y-cy)
			v := float32(math.Exp(-(dx*dx + dy*dy) / (2 * sigma * sigma)))
			if v > plane[y*w+x] {
				plane[y*w+x] = v
			}
		}
	}
	plane[cy*w+cx] = 1
}

// Loss weights.
const (
	weightSize = 1.0
	weightOff  = 1.0
	weightKp   = 1.0
	weightVis  = 0.5
)

// LossParts are the terms of the last computed loss.
type LossParts struct {
	Heat, Size, Offset, Keypoints, Visibility float64
}

// Loss is CenterNet's training loss over a Graph's heads: the penalty-
// reduced focal loss on the heatmap (alpha 2, beta 4) over the number of
// objects, L1 on size and offset at the object centres, L1 on visible
// keypoints and binary cross-entropy on keypoint visibility. It is one
// gorgonia op whose gradients are computed with the loss; set its Targets
// before each run.
type Loss struct {
	m       *CenterNet
	mu      sync.Mutex // guards targets and parts against readers in other goroutines
	targets *Targets
	parts   LossParts
	grads   [4][]float32
}

// AddLoss adds the loss of gr's heads to its graph and returns the scalar
// cost node.
func (m *CenterNet) AddLoss(gr *Graph) (*Loss, *G.Node, error) {
	l := &Loss{m: m}
	heads := []*G.Node{gr.Heatmap, gr.Size, gr.Offset}
	if gr.Keypoints != nil {
		heads = append(heads, gr.Keypoints)
	}
	for i, h := range heads {
		l.grads[i] = make([]float32, h.Shape().TotalSize())
	}
	cost, err := addLoss("centernet-loss", l.compute, func(i int) []float32 { return l.grads[i] }, heads...)
	if err != nil {
		return nil, nil, err
	}
	return l, cost, nil
}

// SetTargets sets the targets of the next run.
func (l *Loss) SetTargets(t *Targets) {
	l.mu.Lock()
	l.targets = t
	l.mu.Unlock()
}

// Parts returns the terms of the last run's loss.
func (l *Loss) Parts() LossParts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.parts
}

func sigmoid(z float32) float32 { return 1 / (1 + float32(math.Exp(float64(-z)))) }

// compute evaluates the loss and fills the gradients of the heads.
func (l *Loss) compute(heads [][]float32) (float64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.targets
	if t == nil {
		return 0, fmt.Errorf("centernet loss: no targets set")
	}
	if len(heads[0]) != len(t.heat) {
		return 0, fmt.Errorf("centernet loss: heatmap has %d values, targets %d", len(heads[0]), len(t.heat))
	}
	for i := range heads {
		clear(l.grads[i])
	}
	npos := float32(max(len(t.centres), 1))
	// Focal loss on the heatmap.
	var heat float64
	gh := l.grads[0]
	for i, z := range heads[0] {
		if t.care[i] == 0 {
			continue
		}
		p := min(max(sigmoid(z), 1e-4), 1-1e-4)
		if t.heat[i] == 1 {
			q := 1 - p
			heat -= float64(q * q * float32(math.Log(float64(p))))
			gh[i] = (2*p*q*q*float32(math.Log(float64(p))) - q*q*q) / npos
		} else {
			nw := 1 - t.heat[i]
			nw *= nw
			nw *= nw
			lq := float32(math.Log(float64(1 - p)))
			heat -= float64(nw * p * p * lq)
			gh[i] = -nw * (2*p*p*(1-p)*lq - p*p*p) / npos
		}
	}
	heat /= float64(npos)
	plane := t.h * t.w
	l1 := func(g []float32, pred, target, weight float32, idx int) float64 {
		d := pred - target
		if d > 0 {
			g[idx] += weight / npos
		} else if d < 0 {
			g[idx] -= weight / npos
		}
		return float64(weight * abs32(d))
	}
	var size, off, kp, vis float64
	nvis := float32(0)
	for _, c := range t.centres {
		if c.kpVis != nil {
			for _, v := range c.kpVis {
				if v {
					nvis++
				}
			}
		}
	}
	nvis = max(nvis, 1)
	for _, c := range t.centres {
		at := c.y*t.w + c.x
		base := c.b * 2 * plane
		size += l1(l.grads[1], heads[1][base+at], c.w, weightSize, base+at)
		size += l1(l.grads[1], heads[1][base+plane+at], c.h, weightSize, base+plane+at)
		off += l1(l.grads[2], heads[2][base+at], c.ox, weightOff, base+at)
		off += l1(l.grads[2], heads[2][base+plane+at], c.oy, weightOff, base+plane+at)
		if len(heads) < 4 || c.kp == nil {
			continue
		}
		kb := c.b * 3 * t.k * plane
		for j := range t.k {
			ix, iy, iv := kb+(3*j)*plane+at, kb+(3*j+1)*plane+at, kb+(3*j+2)*plane+at
			p := sigmoid(heads[3][iv])
			if c.kpVis[j] {
				kp += l1(l.grads[3], heads[3][ix], c.kp[2*j], weightKp*npos/nvis, ix)
				kp += l1(l.grads[3], heads[3][iy], c.kp[2*j+1], weightKp*npos/nvis, iy)
				vis -= weightVis * math.Log(float64(max(p, 1e-6)))
				l.grads[3][iv] += weightVis * (p - 1) / npos
			} else {
				vis -= weightVis * math.Log(float64(max(1-p, 1e-6)))
				l.grads[3][iv] += weightVis * p / npos
			}
		}
	}
	n := float64(npos)
	l.parts = LossParts{Heat: heat, Size: size / n, Offset: off / n, Keypoints: kp / n, Visibility: vis / n}
	return heat + (size+off+kp+vis)/n, nil
}

func abs32(v float32) float32 {
	if v < 0 {
		return -v
	}
	return v
}
