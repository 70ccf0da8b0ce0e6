package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestGlobalAvgPool checks the pool's values by hand and its gradient, and
// that of a conv before it, against finite differences.
func TestGlobalAvgPool(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := G.NewGraph()
	param := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randTensor(rng, shape...)))
	}
	x := param("x", 2, 3, 5, 4)
	w, b := param("w", 4, 3, 3, 3), param("b", 4)
	y := must(ReLU(must(Conv2D(x, w, b, 2, 1)))) // [2, 4, 3, 2]
	p := must(GlobalAvgPool(y))
	require.Equal(t, tensor.Shape{2, 4, 1, 1}, p.Shape())
	weights := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 4, 1, 1), G.WithName("r"), G.WithValue(randTensor(rng, 2, 4, 1, 1)))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(p, weights))))
	params := G.Nodes{x, w, b}
	_, err := G.Grad(cost, params...)
	require.NoError(t, err)
	vm := G.NewTapeMachine(g, G.BindDualValues(params...))
	defer vm.Close()
	run := func() float64 {
		vm.Reset()
		require.NoError(t, vm.RunAll())
		return float64(cost.Value().Data().(float32))
	}
	run()
	// The pooled values are the plane means of the conv output.
	yv, pv := y.Value().Data().([]float32), p.Value().Data().([]float32)
	for c := range 8 {
		var s float64
		for _, v := range yv[c*6 : (c+1)*6] {
			s += float64(v)
		}
		require.InDelta(t, s/6, pv[c], 1e-5)
	}
	grads := map[*G.Node][]float32{}
	for _, n := range params {
		gv, err := n.Grad()
		require.NoError(t, err)
		grads[n] = append([]float32(nil), gv.Data().([]float32)...)
	}
	for _, n := range params {
		data := n.Value().Data().([]float32)
		for k := 0; k < 8; k++ {
			i := rng.IntN(len(data))
			old := data[i]
			const eps = 1e-2
			data[i] = old + eps
			up := run()
			data[i] = old - eps
			down := run()
			data[i] = old
			num := (up - down) / (2 * eps)
			require.InDelta(t, num, float64(grads[n][i]), 2e-2*math.Max(1, math.Abs(num)), "%s[%d]", n.Name(), i)
		}
	}
}

func TestGlobalAvgPoolBadInput(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("x"))
	_, err := GlobalAvgPool(x)
	require.ErrorContains(t, err, "not NCHW")
}

// TestBatchNorm checks the training output's statistics, the running
// statistics, the inference output, and both gradients (through the batch
// statistics when training) against finite differences.
func TestBatchNorm(t *testing.T) {
	for _, train := range []bool{true, false} {
		rng := rand.New(rand.NewPCG(7, 8))
		g := G.NewGraph()
		xv := randTensor(rng, 4, 3, 2, 2)
		for i := range xv.Float32s() {
			xv.Float32s()[i] = 2*xv.Float32s()[i] + 1 // mean 1, std 2
		}
		x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 2, 2), G.WithName("x"), G.WithValue(xv))
		st := &BatchStats{Mean: []float32{0.5, -1, 2}, Var: []float32{1, 4, 0.25}, Momentum: 0.5}
		y := must(BatchNorm(x, st, train))
		weights := G.NewTensor(g, tensor.Float32, 4, G.WithShape(4, 3, 2, 2), G.WithName("r"), G.WithValue(randTensor(rng, 4, 3, 2, 2)))
		cost := G.Must(G.Sum(G.Must(G.HadamardProd(y, weights))))
		_, err := G.Grad(cost, x)
		require.NoError(t, err)
		vm := G.NewTapeMachine(g, G.BindDualValues(x))
		run := func() float64 {
			vm.Reset()
			require.NoError(t, vm.RunAll())
			return float64(cost.Value().Data().(float32))
		}
		in := append([]float32(nil), xv.Float32s()...)
		run()
		out := y.Value().Data().([]float32)
		for ch := range 3 {
			var vals, ins []float64
			for b := range 4 {
				for i := range 4 {
					vals = append(vals, float64(out[(b*3+ch)*4+i]))
					ins = append(ins, float64(in[(b*3+ch)*4+i]))
				}
			}
			mean, vr := meanVar(vals)
			if train {
				require.InDelta(t, 0, mean, 1e-5)
				require.InDelta(t, 1, vr, 1e-3)
				im, iv := meanVar(ins)
				want := []float32{0.5, -1, 2}[ch]*0.5 + float32(im)*0.5
				require.InDelta(t, want, st.Mean[ch], 1e-5, "running mean")
				wantVar := []float32{1, 4, 0.25}[ch]*0.5 + float32(iv*16/15)*0.5
				require.InDelta(t, wantVar, st.Var[ch], 1e-4, "running variance (unbiased)")
			} else {
				m, v := []float64{0.5, -1, 2}[ch], []float64{1, 4, 0.25}[ch]
				for i, x := range ins {
					require.InDelta(t, (x-m)/math.Sqrt(v+1e-5), vals[i], 1e-4)
				}
			}
		}
		gv, err := x.Grad()
		require.NoError(t, err)
		analytic := append([]float32(nil), gv.Data().([]float32)...)
		data := xv.Float32s()
		for i := range data {
			old := data[i]
			const eps = 1e-2
			data[i] = old + eps
			up := run()
			data[i] = old - eps
			down := run()
			data[i] = old
			num := (up - down) / (2 * eps)
			require.InDelta(t, num, float64(analytic[i]), 2e-2*math.Max(1, math.Abs(num)), "train %v x[%d]", train, i)
		}
		vm.Close()
	}
	g := G.NewGraph()
	x := G.NewTensor(g, tensor.Float32, 4, G.WithShape(1, 2, 1, 1), G.WithName("x"))
	_, err := BatchNorm(x, &BatchStats{Mean: []float32{0}, Var: []float32{1}}, false)
	require.ErrorContains(t, err, "1 channels, want 2")
	_, err = BatchNorm(x, &BatchStats{Mean: []float32{0, 0}, Var: []float32{1, 1}}, true)
	require.ErrorContains(t, err, "cannot give a variance")
}

func meanVar(v []float64) (mean, vr float64) {
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	for _, x := range v {
		vr += (x - mean) * (x - mean)
	}
	return mean, vr / float64(len(v))
}
