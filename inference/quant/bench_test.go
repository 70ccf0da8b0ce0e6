//go:build cgo

package quant

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/ort"
)

// benchModels times one batch-1 run of each model with 1 and 2 intra-op
// threads on input, reporting ms/image; compare fp32 and int8 in the same
// run.
func benchModels(b *testing.B, models [][2]string, input []float32) {
	for _, threads := range []int{1, 2} {
		for _, m := range models {
			b.Run(fmt.Sprintf("%s/threads=%d", m[0], threads), func(b *testing.B) {
				s, err := ort.Open(m[1], ortOpts(threads))
				require.NoError(b, err)
				defer s.Close()
				copy(s.Input(0), input)
				require.NoError(b, s.Run()) // warm-up
				b.ReportAllocs()
				for b.Loop() {
					if err := s.Run(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/image")
			})
		}
	}
}

// BenchmarkPlainCNN compares the plain 3.16 GFLOP ReLU CNN in fp32 and in
// QDQ int8 (the target is int8 at least 2x faster).
func BenchmarkPlainCNN(b *testing.B) {
	fp32, int8, _, held := quantizedPlainCNN(b, MinMax)
	benchModels(b, [][2]string{{"fp32", fp32}, {"int8", int8}}, held[0])
}

// BenchmarkYOLOX compares yolox_nano_416 (depthwise convolutions, SiLU) in
// fp32 and QDQ int8 with fp32 heads, on frame 300.
func BenchmarkYOLOX(b *testing.B) {
	fp32, int8, _ := quantizedYOLOX(b)
	benchModels(b, [][2]string{{"fp32", fp32}, {"int8", int8}}, yoloxInputs(b, 300, 1, 1)[0])
}
