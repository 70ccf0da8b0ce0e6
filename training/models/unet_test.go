package models

import (
	"bytes"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/internal/openblas"
)

var smallUNet = UNetConfig{InputW: 48, InputH: 80, Widths: [7]int{8, 8, 16, 16, 16, 8, 8}}

// personCrops cuts n person crops out of synth frames: the person's box
// grown by 1.2 and stretched to w x h (nearest pixel), as RGB / 255 NCHW
// input, with the person's mask at the stride-2 map.
func personCrops(t testing.TB, n, w, h int) (in, mask []float32) {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed = 320, 192, 8, 11
	sc := synth.NewScene(p)
	var f frame.Frame
	var buf []byte
	ow, oh := w/UNetStride, h/UNetStride
	for len(mask) < n*ow*oh {
		for range 5 {
			sc.Step()
		}
		sc.Render(&f)
		img, err := synth.ToRGB(&f, nil)
		require.NoError(t, err)
		for _, o := range sc.Truth() {
			if o.Label != "person" || o.Box.H() < 24 || o.Mask == nil || len(mask) == n*ow*oh {
				continue
			}
			buf = o.Mask.Decode(buf)
			cx, cy := (o.Box.X1+o.Box.X2)/2, (o.Box.Y1+o.Box.Y2)/2
			bw, bh := o.Box.W()*1.2, o.Box.H()*1.2
			at := func(x, y float32, sw, sh int) (int, int) {
				sx := int(cx - bw/2 + (x+0.5)*bw/float32(sw))
				sy := int(cy - bh/2 + (y+0.5)*bh/float32(sh))
				return min(max(sx, 0), p.Width-1), min(max(sy, 0), p.Height-1)
			}
			plane := w * h
			base := len(in)
			in = append(in, make([]float32, 3*plane)...)
			for y := range h {
				for x := range w {
					sx, sy := at(float32(x), float32(y), w, h)
					o := img.PixOffset(sx, sy)
					for c := range 3 {
						in[base+c*plane+y*w+x] = float32(img.Pix[o+c]) / 255
					}
				}
			}
			for y := range oh {
				for x := range ow {
					sx, sy := at(float32(x), float32(y), ow, oh)
					mask = append(mask, float32(buf[sy*p.Width+sx]))
				}
			}
		}
	}
	return in, mask
}

func trainUNet(t testing.TB, m *UNet, batch, steps int) (first, last float64, per time.Duration, gr *UNetGraph, in []float32) {
	in, mask := personCrops(t, batch, m.Cfg.InputW, m.Cfg.InputH)
	gr, err := m.Build(batch)
	require.NoError(t, err)
	loss, cost, err := m.AddLoss(gr)
	require.NoError(t, err)
	_, err = G.Grad(cost, gr.Params...)
	require.NoError(t, err)
	require.NoError(t, G.Let(gr.Input, tensorOf(in, batch, 3, m.Cfg.InputH, m.Cfg.InputW)))
	require.NoError(t, loss.SetTargets(mask, nil))
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(3e-3))
	start := time.Now()
	for i := range steps {
		require.NoError(t, vm.RunAll())
		v := float64(cost.Value().Data().(float32))
		if i == 0 {
			first = v
		}
		last = v
		require.NoError(t, solver.Step(G.NodesToValueGrads(gr.Params)))
		vm.Reset()
	}
	require.NoError(t, vm.RunAll()) // leave the final logits in the graph
	return first, last, time.Since(start) / time.Duration(steps), gr, in
}

// TestUNetLearns: Adam steps on a few person crops halve the loss.
func TestUNetLearns(t *testing.T) {
	m, err := NewUNet(smallUNet, 1)
	require.NoError(t, err)
	first, last, _, _, _ := trainUNet(t, m, 3, 25)
	t.Logf("loss %.3f -> %.3f", first, last)
	require.Less(t, last, first/2)
}

// TestSegLossGradient compares the loss's gradient with central
// differences, with soft targets and a care mask.
func TestSegLossGradient(t *testing.T) {
	m, err := NewUNet(UNetConfig{InputW: 16, InputH: 16, Widths: [7]int{2, 2, 2, 2, 2, 2, 2}}, 1)
	require.NoError(t, err)
	gr, err := m.Build(2)
	require.NoError(t, err)
	l, _, err := m.AddLoss(gr)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 2))
	n := 2 * m.OutW() * m.OutH()
	z, mask, care := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range z {
		z[i] = float32(rng.NormFloat64() * 2)
		mask[i] = float32(rng.IntN(3)) / 2
		care[i] = 1
		if rng.IntN(5) == 0 {
			care[i] = 0
		}
	}
	require.NoError(t, l.SetTargets(mask, care))
	_, err = l.compute(z)
	require.NoError(t, err)
	grad := append([]float32(nil), l.grad...)
	const h = 1e-2
	for i := range z {
		v := z[i]
		z[i] = v + h
		up, err := l.compute(z)
		require.NoError(t, err)
		z[i] = v - h
		down, err := l.compute(z)
		require.NoError(t, err)
		z[i] = v
		require.InDelta(t, (up-down)/(2*h), grad[i], 2e-4, "logit %d", i)
	}
	require.Error(t, l.SetTargets(mask[:3], nil))
}

func TestNewUNetBadConfig(t *testing.T) {
	for _, c := range []UNetConfig{{InputW: 90, InputH: 160}, {InputW: 96, InputH: 0}, {InputW: 96, InputH: 160, Widths: [7]int{1, 2, 3, 4, 5, 6, -1}}} {
		_, err := NewUNet(c, 1)
		require.Error(t, err, "%+v", c)
	}
	m, err := NewUNet(UNetConfig{InputW: 96, InputH: 160}, 1)
	require.NoError(t, err)
	t.Logf("default UNet: %.1f M MACs per %dx%d crop, %d parameters", float64(m.MACs())/1e6, m.Cfg.InputW, m.Cfg.InputH, countParams(m.Params))
	require.Equal(t, DefaultUNetWidths, m.Cfg.Widths)
}

func countParams(ps Params) int {
	n := 0
	for _, p := range ps {
		n += len(p.Data())
	}
	return n
}

// TestUNetCheckpoint: weights saved and loaded into a model of another
// seed give it the same parameters.
func TestUNetCheckpoint(t *testing.T) {
	a, err := NewUNet(smallUNet, 1)
	require.NoError(t, err)
	b, err := NewUNet(smallUNet, 2)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, a.Params.Save(&buf))
	require.NoError(t, b.Params.Load(&buf))
	for i := range a.Params {
		require.Equal(t, a.Params[i].Data(), b.Params[i].Data())
	}
}

// TestUNetExportMatchesGorgonia: ONNX Runtime running the exported file
// gives the sigmoid of the gorgonia graph's logits.
func TestUNetExportMatchesGorgonia(t *testing.T) {
	orttest.Init(t)
	m, err := NewUNet(smallUNet, 7)
	require.NoError(t, err)
	const batch = 2
	_, _, _, gr, in := trainUNet(t, m, batch, 3)
	path := filepath.Join(t.TempDir(), "unet.onnx")
	require.NoError(t, onnx.Write(path, m.ONNX("unet")))
	s, err := ort.Open(path, ort.SessionOptions{BatchSize: batch, IntraOpThreads: 1})
	require.NoError(t, err)
	defer s.Close()
	require.Len(t, s.Outputs(), 1)
	require.Equal(t, "mask", s.Outputs()[0].Name)
	copy(s.Input(0), in)
	require.NoError(t, s.Run())
	out := s.Output(0)
	logits := gr.Logits.Value().Data().([]float32)
	require.Len(t, out, len(logits))
	for i, z := range logits {
		require.InDelta(t, 1/(1+math.Exp(-float64(z))), out[i], 1e-4, "mask %d", i)
	}
}

// BenchmarkUNetStep is one training step (forward, backward, Adam) of the
// default segmenter on 16 crops at 96x160.
func BenchmarkUNetStep(b *testing.B) {
	openblas.SetThreads(1)
	m, err := NewUNet(UNetConfig{InputW: 96, InputH: 160}, 1)
	require.NoError(b, err)
	var per time.Duration
	for b.Loop() {
		_, _, per, _, _ = trainUNet(b, m, 16, 3)
	}
	b.ReportMetric(float64(m.MACs())/1e6, "MMAC/crop")
	b.ReportMetric(16/per.Seconds(), "crops/s")
}
