package nn

import (
	"fmt"
	"math"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GlobalAvgPool averages each channel of x [N, C, H, W] over the picture,
// giving [N, C, 1, 1] (ONNX GlobalAveragePool).
func GlobalAvgPool(x *G.Node) (*G.Node, error) {
	s := x.Shape().Clone()
	if s.Dims() != 4 {
		return nil, fmt.Errorf("global average pool: input %v is not NCHW", s)
	}
	nc, plane := s[0]*s[1], s[2]*s[3]
	out := tensor.Shape{s[0], s[1], 1, 1}
	inv := 1 / float32(plane)
	o := newOp("global-avg-pool", []tensor.Shape{s}, out, func(o []float32, ins [][]float32) {
		in := ins[0]
		for p := range nc {
			var sum float32
			for _, v := range in[p*plane : (p+1)*plane] {
				sum += v
			}
			o[p] = sum * inv
		}
	}, []bool{true}, func(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
		// Each input pixel gets its channel's gradient over the pixel count.
		d, err := apply(newOp("global-avg-pool-dx", []tensor.Shape{out}, s, func(o []float32, ins [][]float32) {
			dy := ins[0]
			for p := range nc {
				v := dy[p] * inv
				dst := o[p*plane : (p+1)*plane]
				for i := range dst {
					dst[i] = v
				}
			}
		}, nil, nil), grad)
		return G.Nodes{d}, err
	})
	return apply(o, x)
}

// BatchStats are a batch normalisation's running per-channel mean and
// variance, updated by training graphs and used by inference graphs.
type BatchStats struct {
	Mean, Var []float32
	// Momentum is the weight of each batch in the running statistics
	// (0.1 when 0); Eps is added to the variance (1e-5 when 0).
	Momentum, Eps float32
}

// BatchNorm normalises each channel of x [N, C, H, W] to zero mean and
// unit variance, without a learnt scale or shift (Ioffe and Szegedy 2015;
// a following layer can take those on). With train set it uses the batch's
// statistics, back-propagates through them, and folds them into st's
// running ones; otherwise it applies st's running statistics. st's slices
// have C entries.
func BatchNorm(x *G.Node, st *BatchStats, train bool) (*G.Node, error) {
	s := x.Shape().Clone()
	if s.Dims() != 4 {
		return nil, fmt.Errorf("batch norm: input %v is not NCHW", s)
	}
	n, c, plane := s[0], s[1], s[2]*s[3]
	if st == nil || len(st.Mean) != c || len(st.Var) != c {
		return nil, fmt.Errorf("batch norm: statistics for %d channels, want %d", statsLen(st), c)
	}
	if train && n*plane < 2 {
		return nil, fmt.Errorf("batch norm: a training batch of %d values per channel cannot give a variance", n*plane)
	}
	mom, eps := st.Momentum, st.Eps
	if mom == 0 {
		mom = 0.1
	}
	if eps == 0 {
		eps = 1e-5
	}
	inv := make([]float32, c) // 1/σ of the last run
	count := float64(n * plane)
	at := func(b, ch int) int { return (b*c + ch) * plane }
	fwd := func(o []float32, ins [][]float32) {
		in := ins[0]
		for ch := range c {
			var mean, vr float64
			if train {
				for b := range n {
					for _, v := range in[at(b, ch):][:plane] {
						mean += float64(v)
					}
				}
				mean /= count
				for b := range n {
					for _, v := range in[at(b, ch):][:plane] {
						d := float64(v) - mean
						vr += d * d
					}
				}
				vr /= count
				st.Mean[ch] = (1-mom)*st.Mean[ch] + mom*float32(mean)
				st.Var[ch] = (1-mom)*st.Var[ch] + mom*float32(vr*count/(count-1))
			} else {
				mean, vr = float64(st.Mean[ch]), float64(st.Var[ch])
			}
			is := float32(1 / math.Sqrt(vr+float64(eps)))
			inv[ch] = is
			m := float32(mean)
			for b := range n {
				src, dst := in[at(b, ch):][:plane], o[at(b, ch):][:plane]
				for i, v := range src {
					dst[i] = (v - m) * is
				}
			}
		}
	}
	o := newOp(fmt.Sprintf("batchnorm(train=%v)", train), []tensor.Shape{s}, s, fwd, []bool{true},
		func(_ G.Nodes, output, grad *G.Node) (G.Nodes, error) {
			// Training: dx = (dy - mean(dy) - y mean(dy y)) / σ, y being
			// the output; inference: dx = dy / σ.
			d, err := apply(newOp("batchnorm-dx", []tensor.Shape{s, s}, s, func(o []float32, ins [][]float32) {
				dy, y := ins[0], ins[1]
				for ch := range c {
					var mdy, mdyy float64
					if train {
						for b := range n {
							yy := y[at(b, ch):][:plane]
							for i, v := range dy[at(b, ch):][:plane] {
								mdy += float64(v)
								mdyy += float64(v) * float64(yy[i])
							}
						}
						mdy /= count
						mdyy /= count
					}
					for b := range n {
						yy, dst := y[at(b, ch):][:plane], o[at(b, ch):][:plane]
						for i, v := range dy[at(b, ch):][:plane] {
							dst[i] = float32(float64(v)-mdy-float64(yy[i])*mdyy) * inv[ch]
						}
					}
				}
			}, nil, nil), grad, output)
			return G.Nodes{d}, err
		})
	return apply(o, x)
}

func statsLen(st *BatchStats) int {
	if st == nil {
		return 0
	}
	return min(len(st.Mean), len(st.Var))
}
