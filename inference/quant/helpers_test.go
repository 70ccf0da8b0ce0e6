//go:build cgo

package quant

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// frames decodes n frames of vtest.avi, every step-th from frame first,
// scaled to w x h (letterboxed to size x size with pad 114 when letterbox)
// as packed BGR24, with the ffmpeg CLI.
func frames(tb testing.TB, first, step, n, w, h int, letterbox bool) [][]byte {
	tb.Helper()
	clip := shareddata.Path(tb, "video/vtest.avi")
	shareddata.NeedCommands(tb, "ffmpeg")
	vf := fmt.Sprintf("select='gte(n\\,%d)*not(mod(n-%d\\,%d))',scale=%d:%d", first, first, step, w, h)
	size := w * h * 3
	if letterbox {
		// vtest is 768x576: fit into w x w, top-left aligned, pad 114.
		vf = fmt.Sprintf("select='gte(n\\,%d)*not(mod(n-%d\\,%d))',scale=%d:%d,pad=%d:%d:0:0:color=0x727272",
			first, first, step, w, h, w, w)
		size = w * w * 3
	}
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-vf", vf, "-fps_mode", "passthrough",
		"-frames:v", fmt.Sprint(n), "-f", "rawvideo", "-pix_fmt", "bgr24", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(tb, err, stderr.String())
	require.Len(tb, out, n*size)
	fr := make([][]byte, n)
	for i := range fr {
		fr[i] = out[i*size : (i+1)*size]
	}
	return fr
}

// planar turns packed BGR into NCHW float32 times scale.
func planar(img []byte, scale float32) []float32 {
	n := len(img) / 3
	out := make([]float32, len(img))
	for i := range n {
		for c := range 3 {
			out[c*n+i] = float32(img[i*3+c]) * scale
		}
	}
	return out
}

// optimisedOps opens the model with ONNX Runtime's full graph optimisation,
// has it write the graph it runs, and counts that graph's ops by
// "domain:op" (the default domain is empty).
func optimisedOps(tb testing.TB, path string) map[string]int {
	tb.Helper()
	ops, _ := optimised(tb, path)
	return ops
}

// optimised is optimisedOps that also returns the optimised graph.
func optimised(tb testing.TB, path string) (map[string]int, *onnxpb.GraphProto) {
	tb.Helper()
	opt := filepath.Join(tb.TempDir(), "optimised.onnx")
	s, err := ort.OpenDynamic(path, ort.DynamicOptions{SessionOptions: ort.SessionOptions{IntraOpThreads: 1}, OptimizedModelPath: opt})
	require.NoError(tb, err)
	require.NoError(tb, s.Close())
	m, err := onnx.Read(opt)
	require.NoError(tb, err)
	ops := map[string]int{}
	for _, n := range m.GetGraph().GetNode() {
		ops[n.GetDomain()+":"+n.GetOpType()]++
	}
	return ops, m.GetGraph()
}

// plainCNN builds the benchmark's plain CNN: 9 regular 3x3 convolutions
// with ReLU at 320x320 (channels 3-16-32s2-32-64s2-64-128s2-128-128-128).
// Its cost is sum(2*Cin*Cout*9*Hout*Wout) = 3.156 GFLOP (1.578 GMAC).
func plainCNN() (*onnxpb.ModelProto, float64) {
	b := onnx.NewBuilder("plain_cnn", 7)
	x := b.Input("images", 1, 3, 320, 320)
	layers := []struct{ cin, cout, stride int }{
		{3, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 64, 2}, {64, 64, 1},
		{64, 128, 2}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1},
	}
	size, flops := 320, 0.0
	for _, l := range layers {
		x = b.Relu(b.Conv(x, l.cin, l.cout, 3, l.stride, 1))
		size /= l.stride
		flops += 2 * float64(l.cin*l.cout*9*size*size)
	}
	b.Output(x, 1, 128, 40, 40)
	return b.Model(), flops
}

func writeModel(tb testing.TB, m *onnxpb.ModelProto, name string) string {
	tb.Helper()
	p := filepath.Join(tb.TempDir(), name)
	require.NoError(tb, onnx.Write(p, m))
	return p
}

func ortOpts(threads int) ort.SessionOptions { return ort.SessionOptions{IntraOpThreads: threads} }
