package builtin

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDir(t *testing.T) {
	require.Contains(t, Names(), "detector")
	root := t.TempDir()
	dir, err := Dir("detector", root)
	require.NoError(t, err)
	for _, f := range []string{"model.yaml", "fp32.onnx"} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err)
		require.Positive(t, st.Size())
	}
	again, err := Dir("detector", root)
	require.NoError(t, err)
	require.Equal(t, dir, again, "written once")
	_, err = Dir("nope", root)
	require.ErrorContains(t, err, `no built-in model "nope"`)
}
