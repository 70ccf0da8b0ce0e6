//go:build !cgo

package encode_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/encode"
)

func TestNoCgo(t *testing.T) {
	enc, err := encode.NewH264(encode.Config{Width: 1280, Height: 720})
	require.ErrorIs(t, err, encode.ErrUnavailable)
	require.Nil(t, enc)
	var e encode.Encoder
	require.ErrorIs(t, e.Encode(&frame.Frame{}, func(*frame.Packet) {}), encode.ErrUnavailable)
	e.ForceKeyFrame()
	e.Close()
}
