//go:build !cgo

package decode

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

func TestNeedsCgo(t *testing.T) {
	_, err := NewDecoder(Config{Params: frame.CodecParams{Codec: frame.CodecH264}})
	require.ErrorIs(t, err, ErrNeedsCgo)
	require.ErrorContains(t, err, "CGO_ENABLED=1")
	_, err = OpenFile("clip.mp4")
	require.ErrorIs(t, err, ErrNeedsCgo)
	_, err = DecodeFile(context.Background(), "clip.mp4", 0)
	require.ErrorIs(t, err, ErrNeedsCgo)
}
