package models

import (
	"image"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/internal/openblas"
	"github.com/vigil-video/vigil/training/dataset"
)

// synthBatch renders n frames of a 320x192 synth scene with their objects.
func synthBatch(t testing.TB, n int, seed uint64) ([]*image.RGBA, [][]dataset.Object) {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed = 320, 192, 8, seed
	sc := synth.NewScene(p)
	var f frame.Frame
	var imgs []*image.RGBA
	var objs [][]dataset.Object
	for range n {
		for range 5 {
			sc.Step()
		}
		sc.Render(&f)
		img, err := synth.ToRGB(&f, nil)
		require.NoError(t, err)
		imgs = append(imgs, img)
		var os []dataset.Object
		for _, o := range sc.Truth() {
			os = append(os, dataset.Object{Box: o.Box, Class: o.Class, Label: o.Label, Keypoints: o.Keypoints, Score: 1, Ignore: o.Box.W() < 3 || o.Box.H() < 3})
		}
		objs = append(objs, os)
	}
	return imgs, objs
}

func fillInput(dst []float32, imgs []*image.RGBA) {
	for b, img := range imgs {
		w, h := img.Rect.Dx(), img.Rect.Dy()
		plane := w * h
		base := b * 3 * plane
		for y := range h {
			for x := range w {
				o := img.PixOffset(x, y)
				i := y*w + x
				dst[base+i] = float32(img.Pix[o]) / 255
				dst[base+plane+i] = float32(img.Pix[o+1]) / 255
				dst[base+2*plane+i] = float32(img.Pix[o+2]) / 255
			}
		}
	}
}

// trainSteps runs steps Adam steps of m on batch synth frames at the
// model's input size and returns the first and last loss.
func trainSteps(t testing.TB, m *CenterNet, batch, steps int) (first, last float64, per time.Duration) {
	w, h := m.Cfg.InputW, m.Cfg.InputH
	imgs, objs := synthBatch(t, batch, 3)
	if w != 320 {
		for i := range imgs {
			imgs[i] = shrink(imgs[i])
			for j := range objs[i] {
				o := &objs[i][j]
				o.Box.X1, o.Box.Y1, o.Box.X2, o.Box.Y2 = o.Box.X1/2, o.Box.Y1/2, o.Box.X2/2, o.Box.Y2/2
				for k := range o.Keypoints {
					o.Keypoints[k].X /= 2
					o.Keypoints[k].Y /= 2
				}
			}
		}
	}
	gr, err := m.Build(batch)
	require.NoError(t, err)
	loss, cost, err := m.AddLoss(gr)
	require.NoError(t, err)
	_, err = G.Grad(cost, gr.Params...)
	require.NoError(t, err)
	in := make([]float32, batch*3*h*w)
	fillInput(in, imgs)
	require.NoError(t, G.Let(gr.Input, tensorOf(in, batch, 3, h, w)))
	loss.SetTargets(m.MakeTargets(objs))
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(2e-3))
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
	return first, last, time.Since(start) / time.Duration(steps)
}

// TestCenterNetLearns: Adam steps on a few synth frames lower the loss a
// lot (the model can fit them).
func TestCenterNetLearns(t *testing.T) {
	m, err := NewCenterNet(CenterNetConfig{InputW: 160, InputH: 96, Classes: []string{"person", "car"}, Keypoints: 17, Widths: [7]int{8, 16, 32, 32, 32, 16, 16}}, 1)
	require.NoError(t, err)
	first, last, _ := trainSteps(t, m, 2, 30)
	t.Logf("loss %.3f -> %.3f", first, last)
	require.Less(t, last, first/2)
}

// BenchmarkCenterNetStep is one training step (forward, backward, Adam)
// of the default detector on 8 images at 320x192.
func BenchmarkCenterNetStep(b *testing.B) {
	openblas.SetThreads(1)
	m, err := NewCenterNet(CenterNetConfig{InputW: 320, InputH: 192, Classes: []string{"person", "car"}, Keypoints: 17}, 1)
	require.NoError(b, err)
	var per time.Duration
	for b.Loop() {
		_, _, per = trainSteps(b, m, 8, 3)
	}
	b.ReportMetric(float64(m.MACs())/1e9, "GMAC/image")
	b.ReportMetric(8/per.Seconds(), "images/s")
}

// shrink halves an image (2x2 box filter).
func shrink(img *image.RGBA) *image.RGBA {
	w, h := img.Rect.Dx()/2, img.Rect.Dy()/2
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			for c := range 4 {
				s := int(img.Pix[img.PixOffset(2*x, 2*y)+c]) + int(img.Pix[img.PixOffset(2*x+1, 2*y)+c]) +
					int(img.Pix[img.PixOffset(2*x, 2*y+1)+c]) + int(img.Pix[img.PixOffset(2*x+1, 2*y+1)+c])
				out.Pix[out.PixOffset(x, y)+c] = uint8(s / 4)
			}
		}
	}
	return out
}
