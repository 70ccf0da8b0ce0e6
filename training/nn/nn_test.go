package nn

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func randTensor(rng *rand.Rand, shape ...int) *tensor.Dense {
	t := tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(shape...))
	for i := range t.Float32s() {
		t.Float32s()[i] = float32(rng.NormFloat64())
	}
	return t
}

// TestGradients checks every op's gradient against finite differences on a
// small graph: conv (3x3 stride 1 and 2, 1x1), ReLU, upsampling, concat.
func TestGradients(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := G.NewGraph()
	param := func(name string, shape ...int) *G.Node {
		return G.NewTensor(g, tensor.Float32, len(shape), G.WithShape(shape...), G.WithName(name), G.WithValue(randTensor(rng, shape...)))
	}
	x := param("x", 2, 3, 8, 6)
	w1, b1 := param("w1", 4, 3, 3, 3), param("b1", 4)
	w2, b2 := param("w2", 5, 4, 3, 3), param("b2", 5)
	w3, b3 := param("w3", 2, 9, 1, 1), param("b3", 2)
	y1 := must(Conv2D(x, w1, b1, 1, 1))
	r1 := must(ReLU(y1))
	y2 := must(Conv2D(r1, w2, b2, 2, 1)) // 4x3
	u := must(Upsample2x(y2))            // 8x6
	c := must(Concat(r1, u))             // 9 channels
	y3 := must(Conv2D(c, w3, b3, 1, 0))
	weights := G.NewTensor(g, tensor.Float32, 4, G.WithShape(2, 2, 8, 6), G.WithName("r"), G.WithValue(randTensor(rng, 2, 2, 8, 6)))
	cost := G.Must(G.Sum(G.Must(G.HadamardProd(y3, weights))))
	params := G.Nodes{x, w1, b1, w2, b2, w3, b3}
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
	// Gradients accumulate over runs (a solver's Step zeroes them), so keep
	// the first run's.
	grads := map[*G.Node][]float32{}
	for _, p := range params {
		gv, err := p.Grad()
		require.NoError(t, err)
		grads[p] = append([]float32(nil), gv.Data().([]float32)...)
	}
	for _, p := range params {
		analytic := grads[p]
		data := p.Value().Data().([]float32)
		for k := 0; k < 6; k++ {
			i := rng.IntN(len(data))
			old := data[i]
			const eps = 1e-2
			data[i] = old + eps
			up := run()
			data[i] = old - eps
			down := run()
			data[i] = old
			num := (up - down) / (2 * eps)
			require.InDelta(t, num, float64(analytic[i]), 2e-2*math.Max(1, math.Abs(num)), "%s[%d]", p.Name(), i)
		}
	}
}

func must(n *G.Node, err error) *G.Node {
	if err != nil {
		panic(err)
	}
	return n
}
