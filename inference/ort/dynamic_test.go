//go:build cgo

package ort

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/vigil-video/vigil/inference/onnx"
	"github.com/vigil-video/vigil/inference/onnx/onnxpb"
)

func TestDynamicSession(t *testing.T) {
	initORT(t)
	// y = relu(x) * 2 over any N x C x H x W; the relu is a graph value
	// that is not an output until we ask for it.
	b := onnx.NewBuilder("dyn", 1)
	x := b.Input("x", -1, -1, -1, -1)
	r := b.Relu(x)
	y := b.Mul(r, b.Initializer("two", []int64{1}, []float32{2}))
	b.Output(y, -1, -1, -1, -1)
	m := b.Model()
	path := filepath.Join(t.TempDir(), "dyn.onnx")
	require.NoError(t, onnx.Write(path, m))

	opt := filepath.Join(t.TempDir(), "opt.onnx")
	s, err := OpenDynamic(path, DynamicOptions{SessionOptions: SessionOptions{IntraOpThreads: 1}, OptimizedModelPath: opt})
	require.NoError(t, err)
	defer s.Close()
	require.Equal(t, []string{"x"}, s.InputNames())
	require.Equal(t, []string{y}, s.OutputNames())
	_, err = onnx.Read(opt)
	require.NoError(t, err, "ONNX Runtime wrote its optimised graph")

	for _, shape := range [][]int64{{1, 1, 2, 3}, {2, 3, 1, 1}} {
		in := Array{Shape: shape, Data: []float32{-1, 0.5, 2, -3, 4, 0}}
		out, err := s.Run([]Array{in})
		require.NoError(t, err)
		require.Equal(t, []Array{{Shape: shape, Data: []float32{0, 1, 4, 0, 8, 0}}}, out)
	}
	_, err = s.Run([]Array{{Shape: []int64{1, 1, 2, 2}, Data: []float32{1}}})
	require.ErrorContains(t, err, "1 values for shape [1 1 2 2]")
	_, err = s.Run(nil)
	require.ErrorContains(t, err, "0 inputs")

	// An intermediate value, exposed as a graph output, from memory.
	m2 := proto.Clone(m).(*onnxpb.ModelProto)
	extra := proto.Clone(m2.Graph.Output[0]).(*onnxpb.ValueInfoProto)
	extra.Name = r
	m2.Graph.Output = append(m2.Graph.Output, extra)
	data, err := proto.Marshal(m2)
	require.NoError(t, err)
	s2, err := OpenDynamicData("dyn2", data, DynamicOptions{Outputs: []string{r}})
	require.NoError(t, err)
	out, err := s2.Run([]Array{{Shape: []int64{1, 1, 1, 2}, Data: []float32{-5, 5}}})
	require.NoError(t, err)
	require.Equal(t, []float32{0, 5}, out[0].Data)
	require.NoError(t, s2.Close())
	require.NoError(t, s2.Close())
	_, err = s2.Run(nil)
	require.ErrorContains(t, err, "closed")

	_, err = OpenDynamic(filepath.Join(t.TempDir(), "absent.onnx"), DynamicOptions{})
	require.ErrorContains(t, err, "absent.onnx")
	_, err = OpenDynamicData("junk", []byte("junk"), DynamicOptions{})
	require.ErrorContains(t, err, "junk")
	_, err = os.Stat(opt)
	require.NoError(t, err)
}
