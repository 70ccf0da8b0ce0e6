package models

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/internal/openblas"
)

// TestTripletLossGradient checks the loss op's gradient (hardest pairs,
// hinge or soft margin, and the normalisation) against finite differences
// of the loss itself on a tiny batch of free features.
func TestTripletLossGradient(t *testing.T) {
	for _, margin := range []float64{0, 0.3} {
		rng := rand.New(rand.NewPCG(5, 6))
		const n, d = 6, 5
		f := make([]float32, n*d)
		for i := range f {
			f[i] = float32(rng.NormFloat64())
		}
		l := &TripletLoss{Margin: margin, n: n, d: d, grad: make([]float32, n*d)}
		l.SetTargets([]int{0, 0, 1, 1, 2, 2})
		v, err := l.compute(f)
		require.NoError(t, err)
		require.Greater(t, v, 0.0)
		grad := append([]float32(nil), l.grad...)
		st := l.Stats()
		require.Equal(t, n, st.Anchors)
		require.Greater(t, st.Active, 0.0, "margin %g: some triplets must be active for the check to mean anything", margin)
		for i := range f {
			old := f[i]
			const eps = 1e-3
			f[i] = old + eps
			up, err := l.compute(f)
			require.NoError(t, err)
			f[i] = old - eps
			down, err := l.compute(f)
			require.NoError(t, err)
			f[i] = old
			num := (up - down) / (2 * eps)
			require.InDelta(t, num, float64(grad[i]), 2e-3*math.Max(1, math.Abs(num)), "margin %g, feature %d", margin, i)
		}
	}
	// Scaling a feature vector does not change its direction, so it has
	// no gradient along itself.
	l := &TripletLoss{n: 4, d: 3, grad: make([]float32, 12)}
	l.SetTargets([]int{0, 0, 1, 1})
	f := []float32{1, 2, 3, 1, 2, 2.5, -1, 0, 1, 0, 1, 1}
	_, err := l.compute(f)
	require.NoError(t, err)
	for i := range 4 {
		var dot float64
		for j := range 3 {
			dot += float64(l.grad[i*3+j] * f[i*3+j])
		}
		require.InDelta(t, 0, dot, 1e-6)
	}
	l.SetTargets([]int{0, 1})
	_, err = l.compute(f)
	require.ErrorContains(t, err, "2 identities for a batch of 4")
}

// identities makes crops of k synthetic people: each a random pattern of
// coloured horizontal bands (shirt, trousers...) over the same mean
// colour, seen with a random shift and brightness and noise per crop.
func identities(seed uint64, k, perID, w, h int) (crops []float32, ids []int) {
	rng := rand.New(rand.NewPCG(seed, 1))
	base := make([][3][]float32, k)
	for p := range base {
		prng := rand.New(rand.NewPCG(uint64(p), 99))
		for c := range 3 {
			band := make([]float32, h)
			for y := 0; y < h; y += 4 {
				v := prng.Float32()
				for j := y; j < min(y+4, h); j++ {
					band[j] = v
				}
			}
			base[p][c] = band
		}
	}
	for p := range k {
		for range perID {
			dy := rng.IntN(5) - 2
			gain := 0.8 + 0.4*rng.Float32()
			for c := range 3 {
				for y := range h {
					yy := min(max(y+dy, 0), h-1)
					for range w {
						crops = append(crops, min(max(base[p][c][yy]*gain+0.1*float32(rng.NormFloat64()), 0), 1))
					}
				}
			}
			ids = append(ids, p)
		}
	}
	return crops, ids
}

// TestReIDLearns: a few dozen Adam steps on PK batches of four synthetic
// identities separate them: on fresh crops of the same people, every
// crop's farthest same-identity crop ends closer than its nearest other
// one, which the random network does not manage.
func TestReIDLearns(t *testing.T) {
	cfg := ReIDConfig{InputW: 16, InputH: 32, Widths: []int{8, 16}, Dim: 16}
	m, err := NewReID(cfg, 1)
	require.NoError(t, err)
	const k, per = 4, 4
	gr, err := m.BuildTraining(k * per)
	require.NoError(t, err)
	loss, cost, err := m.AddTripletLoss(gr, 0)
	require.NoError(t, err)
	_, err = G.Grad(cost, gr.Params...)
	require.NoError(t, err)
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	separated := func(seed uint64) float64 {
		crops, ids := identities(seed, k, per, cfg.InputW, cfg.InputH)
		require.NoError(t, G.Let(gr.Input, tensorOf(crops, k*per, 3, cfg.InputH, cfg.InputW)))
		loss.SetTargets(ids)
		require.NoError(t, vm.RunAll())
		vm.Reset()
		return 1 - loss.Stats().Active
	}
	before := separated(1000)
	solver := G.NewAdamSolver(G.WithLearnRate(3e-3))
	var first, last float64
	for step := range 60 {
		crops, ids := identities(uint64(step), k, per, cfg.InputW, cfg.InputH)
		require.NoError(t, G.Let(gr.Input, tensorOf(crops, k*per, 3, cfg.InputH, cfg.InputW)))
		loss.SetTargets(ids)
		require.NoError(t, vm.RunAll())
		v := float64(cost.Value().Data().(float32))
		if step == 0 {
			first = v
		}
		last = v
		require.NoError(t, solver.Step(G.NodesToValueGrads(gr.Params)))
		vm.Reset()
	}
	after := separated(1000)
	st := loss.Stats()
	t.Logf("loss %.3f -> %.3f; separated anchors %.2f -> %.2f; d+ %.3f d- %.3f", first, last, before, after, st.Pos, st.Neg)
	require.Less(t, last, first*0.7)
	require.Less(t, before, 1.0)
	require.Equal(t, 1.0, after, "every held-out crop is nearer its farthest positive than its nearest negative")
}

// TestReIDExportMatchesGorgonia: ONNX Runtime running the exported file
// gives the gorgonia graph's features, flattened to [N, Dim].
func TestReIDExportMatchesGorgonia(t *testing.T) {
	orttest.Init(t)
	cfg := ReIDConfig{InputW: 32, InputH: 64, Widths: []int{8, 16, 24}, Dim: 32}
	m, err := NewReID(cfg, 3)
	require.NoError(t, err)
	for _, p := range m.Params {
		if len(p.Shape) == 1 { // non-zero biases and statistics, so they are exported right too
			for i := range p.Data() {
				p.Data()[i] = 0.05 * float32(i%7-3)
			}
		}
	}
	for i := range m.bn.Var {
		m.bn.Var[i] = 0.5 + 0.1*float32(i%5)
	}
	const batch = 3
	crops, _ := identities(7, batch, 1, cfg.InputW, cfg.InputH)
	gr, err := m.Build(batch)
	require.NoError(t, err)
	require.NoError(t, G.Let(gr.Input, tensorOf(crops, batch, 3, cfg.InputH, cfg.InputW)))
	vm := G.NewTapeMachine(gr.G)
	defer vm.Close()
	require.NoError(t, vm.RunAll())
	want := gr.Features.Value().Data().([]float32)

	path := filepath.Join(t.TempDir(), "reid.onnx")
	require.NoError(t, onnx.Write(path, m.ONNX("reid")))
	s, err := ort.Open(path, ort.SessionOptions{BatchSize: batch, IntraOpThreads: 1})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, "embedding", s.Outputs()[0].Name)
	copy(s.Input(0), crops)
	require.NoError(t, s.Run())
	got := s.Output(0)
	require.Len(t, got, batch*cfg.Dim)
	for i, v := range want {
		require.InDelta(t, v, got[i], 1e-4*math.Max(1, math.Abs(float64(v))), "feature %d", i)
	}
}

func TestReIDConfig(t *testing.T) {
	m, err := NewReID(ReIDConfig{}, 1)
	require.NoError(t, err)
	require.Equal(t, 64, m.Cfg.InputW)
	require.Equal(t, 128, m.Cfg.Dim)
	// Hand count at 64x128: stem 32x64, stages at 16x32, 8x16, 4x8.
	want := 32*64*16*27 + 16*32*(32*16*9+32*32*9) + 8*16*(64*32*9+64*64*9) + 4*8*(128*64*9+128*128*9) + 128*128
	require.Equal(t, want, m.MACs())
	for _, c := range []ReIDConfig{
		{InputW: 8, InputH: 128},
		{Widths: []int{}},
		{Widths: []int{8, -1}},
		{Dim: -3},
	} {
		_, err := NewReID(c, 1)
		require.Error(t, err, "%+v", c)
	}
	inf, err := m.Build(2)
	require.NoError(t, err)
	_, _, err = m.AddTripletLoss(inf, 0)
	require.ErrorContains(t, err, "BuildTraining")
	tr, err := m.BuildTraining(2)
	require.NoError(t, err)
	_, _, err = m.AddTripletLoss(tr, -1)
	require.ErrorContains(t, err, "margin")
}

// BenchmarkReIDStep is one training step (forward, backward, triplet loss,
// Adam) of the default embedder on a PK batch of 8 x 4 crops at 64x128.
func BenchmarkReIDStep(b *testing.B) {
	openblas.SetThreads(1)
	m, err := NewReID(ReIDConfig{}, 1)
	require.NoError(b, err)
	const k, per = 8, 4
	gr, err := m.BuildTraining(k * per)
	require.NoError(b, err)
	loss, cost, err := m.AddTripletLoss(gr, 0)
	require.NoError(b, err)
	_, err = G.Grad(cost, gr.Params...)
	require.NoError(b, err)
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	crops, ids := identities(1, k, per, 64, 128)
	require.NoError(b, G.Let(gr.Input, tensorOf(crops, k*per, 3, 128, 64)))
	loss.SetTargets(ids)
	solver := G.NewAdamSolver(G.WithLearnRate(1e-3))
	b.ReportAllocs()
	for b.Loop() {
		require.NoError(b, vm.RunAll())
		require.NoError(b, solver.Step(G.NodesToValueGrads(gr.Params)))
		vm.Reset()
	}
	b.ReportMetric(float64(m.MACs())/1e6, "MMAC/crop")
	b.ReportMetric(float64(b.N*k*per)/b.Elapsed().Seconds(), "crops/s")
}
