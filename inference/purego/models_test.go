package purego

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

// Test models shaped like Vigil's own architectures, built with the onnx
// Builder. Shapes of the outputs are known from the architecture.

// batchNorm adds an inference-mode BatchNormalization with random
// statistics over c channels.
func batchNorm(b *onnx.Builder, x string, c int, rng *rand.Rand) string {
	gen := func(lo, hi float64) []float32 {
		v := make([]float32, c)
		for i := range v {
			v[i] = float32(lo + (hi-lo)*rng.Float64())
		}
		return v
	}
	dims := []int64{int64(c)}
	return b.Node("BatchNormalization", []string{x,
		b.Initializer("gamma", dims, gen(0.5, 1.5)), b.Initializer("beta", dims, gen(-0.2, 0.2)),
		b.Initializer("mean", dims, gen(-0.3, 0.3)), b.Initializer("var", dims, gen(0.5, 2))},
		onnx.Float("epsilon", 1e-5))
}

// centerNet is a CenterNet-style detector: a strided backbone with
// BatchNormalization and a depthwise block, an upsampling neck with
// ConvTranspose, Resize and Concat skips, and three heads (class heatmap
// with Sigmoid, box size, keypoint offsets).
func centerNet(size int64) *onnxpb.ModelProto {
	b := onnx.NewBuilder("centernet", 1)
	rng := rand.New(rand.NewPCG(7, 7))
	x := b.Input("images", 1, 3, size, size)
	c1 := b.Relu(batchNorm(b, b.Conv(x, 3, 16, 3, 2, 1), 16, rng)) // /2
	c2 := b.Relu(b.Conv(c1, 16, 32, 3, 2, 1))                      // /4
	c2 = b.Node("LeakyRelu", []string{b.Conv(c2, 32, 32, 3, 1, 32)}, onnx.Float("alpha", 0.1))
	c3 := b.Relu(batchNorm(b, b.Conv(c2, 32, 64, 3, 2, 1), 64, rng)) // /8
	c3 = b.Node("Clip", []string{b.Conv(c3, 64, 64, 1, 1, 1),
		b.Initializer("lo", nil, []float32{0}), b.Initializer("hi", nil, []float32{6})})
	u2 := b.Relu(b.ConvTranspose(c3, 64, 32, 2)) // /4
	u2 = b.Relu(b.Conv(b.Concat(1, u2, c2), 64, 32, 3, 1, 1))
	u1 := b.Upsample(u2, 2) // /2
	u1 = b.Relu(b.Conv(b.Concat(1, u1, c1), 48, 32, 3, 1, 1))
	scale := b.Initializer("scale", []int64{1, 32, 1, 1}, func() []float32 {
		v := make([]float32, 32)
		for i := range v {
			v[i] = 0.5 + float32(i)/32
		}
		return v
	}())
	u1 = b.Mul(u1, scale)
	heat := b.Sigmoid(b.Conv(b.Relu(b.Conv(u1, 32, 32, 3, 1, 1)), 32, 3, 1, 1, 1))
	wh := b.Conv(b.Relu(b.Conv(u1, 32, 32, 3, 1, 1)), 32, 2, 1, 1, 1)
	kp := b.Conv(b.Relu(b.Conv(u1, 32, 32, 3, 1, 1)), 32, 10, 1, 1, 1)
	h := size / 2
	b.Output(heat, 1, 3, h, h)
	b.Output(wh, 1, 2, h, h)
	b.Output(kp, 1, 10, h, h)
	return b.Model()
}

// uNet is a small UNet segmenter with a symbolic batch dimension:
// MaxPool down, ConvTranspose up, Concat skips, a Sigmoid mask.
func uNet(size int64) *onnxpb.ModelProto {
	b := onnx.NewBuilder("unet", 2)
	x := b.Input("images", -1, 3, size, size)
	e1 := b.Relu(b.Conv(b.Relu(b.Conv(x, 3, 8, 3, 1, 1)), 8, 8, 3, 1, 1))
	e2 := b.Relu(b.Conv(b.MaxPool(e1, 2, 2), 8, 16, 3, 1, 1))
	e3 := b.Relu(b.Conv(b.MaxPool(e2, 2, 2), 16, 32, 3, 1, 1))
	d2 := b.Relu(b.Conv(b.Concat(1, b.ConvTranspose(e3, 32, 16, 2), e2), 32, 16, 3, 1, 1))
	d1 := b.Relu(b.Conv(b.Concat(1, b.ConvTranspose(d2, 16, 8, 2), e1), 16, 8, 3, 1, 1))
	mask := b.Sigmoid(b.Conv(d1, 8, 1, 1, 1, 1))
	b.Output(mask, -1, 1, size, size)
	return b.Model()
}

// embedder is a re-ID embedder: convs, pools (max with padding, average),
// GlobalAveragePool, Flatten, Gemm and L2 normalisation (ReduceL2 + Div),
// plus a Softmax over identity logits.
func embedder() *onnxpb.ModelProto {
	b := onnx.NewBuilder("embedder", 3)
	x := b.Input("crops", -1, 3, 64, 32)
	x = b.Relu(b.Conv(x, 3, 16, 3, 2, 1)) // 32x16
	x = b.Node("MaxPool", []string{x}, onnx.Ints("kernel_shape", 3, 3), onnx.Ints("strides", 2, 2), onnx.Ints("pads", 1, 1, 1, 1))
	x = b.Relu(b.Conv(x, 16, 32, 3, 1, 1)) // 16x8
	x = b.Node("AveragePool", []string{x}, onnx.Ints("kernel_shape", 2, 2), onnx.Ints("strides", 2, 2))
	x = b.Relu(b.Conv(x, 32, 64, 3, 1, 1)) // 8x4
	f := b.Flatten(b.GlobalAveragePool(x))
	e := b.Gemm(f, 64, 128)
	norm := b.Node("ReduceL2", []string{e}, onnx.Ints("axes", 1), onnx.Int("keepdims", 1))
	emb := b.Node("Div", []string{e, norm})
	logits := b.Node("Softmax", []string{b.Gemm(e, 128, 10)}, onnx.Int("axis", 1))
	b.Output(emb, -1, 128)
	b.Output(logits, -1, 10)
	return b.Model()
}

// writeModel writes m into a temporary directory and returns its path.
func writeModel(tb testing.TB, m *onnxpb.ModelProto) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), m.GetGraph().GetName()+".onnx")
	require.NoError(tb, onnx.Write(path, m))
	return path
}

// fillRandom fills buf with values uniform in [-1, 1) from seed.
func fillRandom(buf []float32, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for i := range buf {
		buf[i] = float32(rng.Float64()*2 - 1)
	}
}

// maxAbs returns the largest magnitude in v.
func maxAbs(v []float32) float64 {
	m := 0.0
	for _, x := range v {
		m = math.Max(m, math.Abs(float64(x)))
	}
	return m
}

// maxDiff returns the largest absolute difference between a and b.
func maxDiff(a, b []float32) float64 {
	m := 0.0
	for i := range a {
		m = math.Max(m, math.Abs(float64(a[i]-b[i])))
	}
	return m
}
