package models

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
)

// TestExportMatchesGorgonia: ONNX Runtime running the exported file and the
// gorgonia graph give the same heads on the same synth frames.
func TestExportMatchesGorgonia(t *testing.T) {
	orttest.Init(t)
	m, err := NewCenterNet(CenterNetConfig{InputW: 160, InputH: 96, Classes: []string{"person", "car"}, Keypoints: 17}, 7)
	require.NoError(t, err)
	// Train a few steps so the weights are not just their initial values.
	const batch = 2
	imgs, objs := synthBatch(t, batch, 5)
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
	gr, err := m.Build(batch)
	require.NoError(t, err)
	loss, cost, err := m.AddLoss(gr)
	require.NoError(t, err)
	_, err = G.Grad(cost, gr.Params...)
	require.NoError(t, err)
	in := make([]float32, batch*3*96*160)
	fillInput(in, imgs)
	require.NoError(t, G.Let(gr.Input, tensorOf(in, batch, 3, 96, 160)))
	loss.SetTargets(m.MakeTargets(objs))
	vm := G.NewTapeMachine(gr.G, G.BindDualValues(gr.Params...))
	defer vm.Close()
	solver := G.NewAdamSolver(G.WithLearnRate(1e-3))
	for range 3 {
		require.NoError(t, vm.RunAll())
		require.NoError(t, solver.Step(G.NodesToValueGrads(gr.Params)))
		vm.Reset()
	}
	require.NoError(t, vm.RunAll())

	path := filepath.Join(t.TempDir(), "cn.onnx")
	require.NoError(t, onnx.Write(path, m.ONNX("cn")))
	s, err := ort.Open(path, ort.SessionOptions{BatchSize: batch, IntraOpThreads: 1})
	require.NoError(t, err)
	defer s.Close()
	copy(s.Input(0), in)
	require.NoError(t, s.Run())
	outs := map[string][]float32{}
	for i, o := range s.Outputs() {
		outs[o.Name] = s.Output(i)
	}
	heat := gr.Heatmap.Value().Data().([]float32)
	for i, z := range heat {
		require.InDelta(t, 1/(1+math.Exp(-float64(z))), outs["heatmap"][i], 1e-4, "heatmap %d", i)
	}
	for i, v := range gr.Size.Value().Data().([]float32) {
		require.InDelta(t, v*RegScale, outs["size"][i], 1e-3*math.Max(1, math.Abs(float64(v*RegScale))), "size %d", i)
	}
	for i, v := range gr.Offset.Value().Data().([]float32) {
		require.InDelta(t, v, outs["offset"][i], 1e-4, "offset %d", i)
	}
	plane := m.OutH() * m.OutW()
	for i, v := range gr.Keypoints.Value().Data().([]float32) {
		want := v * RegScale
		if (i/plane)%3 == 2 {
			want = v
		}
		require.InDelta(t, want, outs["keypoints"][i], 1e-3*math.Max(1, math.Abs(float64(want))), "keypoints %d", i)
	}
}
