//go:build cgo

package decode

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestReadFrames(t *testing.T) {
	path := shareddata.Path(t, "video/vtest_h264.mp4")
	fs, err := ReadFrames(path, 300, 0, 300)
	require.NoError(t, err)
	require.Len(t, fs, 3)
	require.Same(t, fs[0], fs[2], "one frame for a position asked twice")
	for _, f := range fs {
		require.Equal(t, 768, f.Width)
		require.Equal(t, 576, f.Height)
		require.Equal(t, frame.PixelFormatYUV420P, f.Format)
	}
	require.Equal(t, uint64(300), fs[0].Seq)
	require.Equal(t, uint64(0), fs[1].Seq)
	for _, f := range fs {
		f.Release()
	}

	_, err = ReadFrames(path, 5000)
	require.ErrorContains(t, err, "has 795 frames, no frame 5000")
}
