package onnx

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBuildWriteRead(t *testing.T) {
	b := NewBuilder("tiny", 1)
	x := b.Input("images", -1, 3, 32, 32)
	x = b.Relu(b.Conv(x, 3, 8, 3, 1, 1))
	x = b.MaxPool(x, 2, 2)
	b.Output(x, -1, 8, 16, 16)
	path := filepath.Join(t.TempDir(), "tiny.onnx")
	require.NoError(t, Write(path, b.Model()))

	m, err := Read(path)
	require.NoError(t, err)
	g := m.GetGraph()
	require.Len(t, g.GetNode(), 3)
	require.Equal(t, "Conv", g.GetNode()[0].GetOpType())
	w, err := Floats(Initializer(g, g.GetNode()[0].GetInput()[1]))
	require.NoError(t, err)
	require.Len(t, w, 8*3*3*3)

	_, err = Parse([]byte("not a model"))
	require.ErrorContains(t, err, "not an ONNX model")
}
