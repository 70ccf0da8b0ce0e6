//go:build cgo

package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// TestBumpOpsetKeepsOutputs raises real models to opset 13, rewriting the
// ops whose definition changed, and checks ONNX Runtime computes the same
// outputs as from the original.
func TestBumpOpsetKeepsOutputs(t *testing.T) {
	orttest.Init(t)
	for _, tc := range []struct{ model, rewrites string }{
		{"selfie_segmentation_landscape.onnx", "opset 9: Upsample -> Resize, Clip attributes -> inputs"},
		{"nanodet_m_320.onnx", "opset 11: Split attribute -> input"},
		{"fastestdet_352.onnx", "opset 11: Softmax on the last axis"},
	} {
		t.Run(tc.model, func(t *testing.T) {
			path := shareddata.Path(t, "models/"+tc.model)
			m, err := onnx.Read(path)
			require.NoError(t, err)
			up := proto.Clone(m).(*onnxpb.ModelProto)
			from, to, err := bumpOpset(up)
			require.NoError(t, err, tc.rewrites)
			require.Less(t, from, int64(13))
			require.Equal(t, int64(13), to)

			a, err := ort.Open(path, ort.SessionOptions{IntraOpThreads: 1})
			require.NoError(t, err)
			defer a.Close()
			b, err := ort.Open(writeModel(t, up, "up.onnx"), ort.SessionOptions{IntraOpThreads: 1})
			require.NoError(t, err)
			defer b.Close()
			rng := rand.New(rand.NewPCG(3, 4))
			for i := range a.Input(0) {
				a.Input(0)[i] = rng.Float32()
			}
			copy(b.Input(0), a.Input(0))
			require.NoError(t, a.Run())
			require.NoError(t, b.Run())
			for i := range a.Outputs() {
				var d float64
				for j, v := range a.Output(i) {
					d = math.Max(d, math.Abs(float64(v-b.Output(i)[j])))
				}
				require.Less(t, d, 1e-4, "output %s", a.Outputs()[i].Name)
			}
		})
	}
}
