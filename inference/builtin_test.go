package inference

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference/builtin"
)

// TestBuiltinBundles: every model inside the binary opens as a bundle of
// the expected task, and its files match their checksums.
func TestBuiltinBundles(t *testing.T) {
	want := map[string]Task{"detector": TaskDetect, "segmenter": TaskSegment, "embedder": TaskEmbed}
	require.ElementsMatch(t, []string{"detector", "embedder", "segmenter"}, builtin.Names())
	for name, task := range want {
		b, err := OpenBundle(builtin.Prefix+name, "")
		require.NoError(t, err, name)
		require.Equal(t, task, b.Task, name)
		require.Equal(t, name, b.Name)
		for _, v := range b.Variants {
			require.NoError(t, b.VerifyVariant(v), "%s %s", name, v.Name)
		}
	}
	_, err := OpenBundle("builtin:nope", "")
	require.ErrorContains(t, err, `no built-in model "nope"`)
}
