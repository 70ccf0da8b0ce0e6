package models

import (
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	G "gorgonia.org/gorgonia"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
)

// builtinDetector is the day-trained detector the binary carries, as
// `vigil train` exported it.
func builtinDetector(t *testing.T) *onnxpb.ModelProto {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	m, err := onnx.Read(filepath.Join(filepath.Dir(file), "..", "..", "inference", "builtin", "detector", "fp32.onnx"))
	require.NoError(t, err)
	return m
}

func initializers(t *testing.T, m *onnxpb.ModelProto) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, in := range m.GetGraph().GetInitializer() {
		v, err := onnx.Floats(in)
		require.NoError(t, err)
		out[baseName(in.GetName())] = v
	}
	return out
}

// TestCenterNetFromONNXRoundTrip: importing the built-in detector and
// exporting it again gives bit-identical initializers and the same graph
// shapes, and the configuration is the one model.yaml states (320x192,
// person and car, 17 keypoints, default widths).
func TestCenterNetFromONNXRoundTrip(t *testing.T) {
	orig := builtinDetector(t)
	m, err := CenterNetFromONNX(orig, []string{"person", "car"})
	require.NoError(t, err)
	require.Equal(t, CenterNetConfig{InputW: 320, InputH: 192, Classes: []string{"person", "car"}, Keypoints: 17, Widths: DefaultWidths}, m.Cfg)

	again := m.ONNX("detector")
	want, got := initializers(t, orig), initializers(t, again)
	require.Len(t, got, len(want))
	for name, w := range want {
		g, ok := got[name]
		require.True(t, ok, name)
		require.Len(t, g, len(w), name)
		for i := range w {
			require.Equal(t, math.Float32bits(w[i]), math.Float32bits(g[i]), "%s[%d]", name, i)
		}
	}
	require.Equal(t, len(orig.GetGraph().GetNode()), len(again.GetGraph().GetNode()))
}

// TestCenterNetFromONNXMatchesRuntime: the imported model's heads, after
// the export's output conversions, equal ONNX Runtime's outputs of the
// original file on the same synth frame within 1e-4.
func TestCenterNetFromONNXMatchesRuntime(t *testing.T) {
	orttest.Init(t)
	orig := builtinDetector(t)
	m, err := CenterNetFromONNX(orig, []string{"person", "car"})
	require.NoError(t, err)
	imgs, _ := synthBatch(t, 1, 11)
	in := make([]float32, 3*192*320)
	fillInput(in, imgs)

	gr, err := m.Build(1)
	require.NoError(t, err)
	require.NoError(t, G.Let(gr.Input, tensorOf(in, 1, 3, 192, 320)))
	vm := G.NewTapeMachine(gr.G)
	defer vm.Close()
	require.NoError(t, vm.RunAll())

	path := filepath.Join(t.TempDir(), "detector.onnx")
	require.NoError(t, onnx.Write(path, orig))
	s, err := ort.Open(path, ort.SessionOptions{BatchSize: 1, IntraOpThreads: 1})
	require.NoError(t, err)
	defer s.Close()
	copy(s.Input(0), in)
	require.NoError(t, s.Run())
	outs := map[string][]float32{}
	for i, o := range s.Outputs() {
		outs[o.Name] = s.Output(i)
	}
	plane := m.OutH() * m.OutW()
	for _, h := range []struct {
		name string
		n    *G.Node
		conv func(i int, v float32) float64
	}{
		{"heatmap", gr.Heatmap, func(_ int, v float32) float64 { return 1 / (1 + math.Exp(-float64(v))) }},
		{"size", gr.Size, func(_ int, v float32) float64 { return float64(v) * RegScale }},
		{"offset", gr.Offset, func(_ int, v float32) float64 { return float64(v) }},
		{"keypoints", gr.Keypoints, func(i int, v float32) float64 {
			if (i/plane)%3 == 2 {
				return float64(v)
			}
			return float64(v) * RegScale
		}},
	} {
		vals := h.n.Value().Data().([]float32)
		require.Len(t, outs[h.name], len(vals), h.name)
		worst := 0.0
		for i, v := range vals {
			worst = math.Max(worst, math.Abs(h.conv(i, v)-float64(outs[h.name][i])))
		}
		require.Less(t, worst, 1e-4, "%s: largest difference from ONNX Runtime", h.name)
	}
}

// TestCenterNetFromONNXRejects: files of another layout or mismatched
// class names are refused with an error naming the problem.
func TestCenterNetFromONNXRejects(t *testing.T) {
	small, err := NewCenterNet(CenterNetConfig{InputW: 64, InputH: 32, Classes: []string{"person"}, Widths: [7]int{4, 4, 4, 4, 4, 4, 4}}, 1)
	require.NoError(t, err)
	for _, tc := range []struct {
		name    string
		model   func() *onnxpb.ModelProto
		classes []string
		msg     string
	}{
		{"class names", func() *onnxpb.ModelProto { return small.ONNX("x") }, []string{"person", "car"}, "1 classes, 2 names"},
		{"missing weight", func() *onnxpb.ModelProto {
			m := small.ONNX("x")
			g := m.GetGraph()
			for i, in := range g.GetInitializer() {
				if strings.HasPrefix(in.GetName(), "trunk_w_") {
					g.Initializer = append(g.Initializer[:i], g.Initializer[i+1:]...)
					break
				}
			}
			return m
		}, []string{"person"}, "input \"trunk_w_"},
		{"extra convolution", func() *onnxpb.ModelProto {
			m := small.ONNX("x")
			for _, n := range m.GetGraph().GetNode() {
				if n.GetOpType() == "Conv" && strings.HasPrefix(n.GetInput()[1], "trunk_w_") {
					c := proto.Clone(n).(*onnxpb.NodeProto)
					c.Input = []string{n.GetInput()[0], "more_w_99", "more_b_100"}
					m.Graph.Node = append(m.Graph.Node, c)
					m.Graph.Initializer = append(m.Graph.Initializer, onnx.FloatTensor("more_w_99", []int64{1, 4, 1, 1}, make([]float32, 4)), onnx.FloatTensor("more_b_100", []int64{1}, []float32{0}))
					break
				}
			}
			return m
		}, []string{"person"}, "convolutions"},
		{"stride", func() *onnxpb.ModelProto {
			m := small.ONNX("x")
			for _, n := range m.GetGraph().GetNode() {
				if n.GetOpType() == "Conv" && strings.HasPrefix(n.GetInput()[1], "block1_w_") {
					for _, a := range n.GetAttribute() {
						if a.GetName() == "strides" {
							a.Ints = []int64{2, 2}
						}
					}
				}
			}
			return m
		}, []string{"person"}, "strides"},
		{"no input", func() *onnxpb.ModelProto {
			m := small.ONNX("x")
			m.Graph.Input[0].Name = "images"
			return m
		}, []string{"person"}, "no input"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CenterNetFromONNX(tc.model(), tc.classes)
			require.ErrorContains(t, err, tc.msg)
		})
	}
	// The unmodified small model imports, widths and all.
	m, err := CenterNetFromONNX(small.ONNX("x"), []string{"person"})
	require.NoError(t, err)
	require.Equal(t, small.Cfg, m.Cfg)
}
