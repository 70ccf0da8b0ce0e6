package mot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

func TestWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "res.txt")
	w, err := Create(path)
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, w.Write(ctx, &frame.Result{Seq: 0, Detections: []frame.Detection{
		{Box: frame.Box{X1: 10, Y1: 20, X2: 40, Y2: 100}, Score: 0.9, TrackID: 3},
		{Box: frame.Box{X1: 1, Y1: 2, X2: 3, Y2: 4}, Score: 0.5}, // untracked: skipped
	}}))
	require.NoError(t, w.Write(ctx, &frame.Result{Seq: 4, Detections: []frame.Detection{
		{Box: frame.Box{X1: 12.5, Y1: 20, X2: 42.5, Y2: 101}, Score: 0.875, TrackID: 3},
	}}))
	require.NoError(t, w.Close(ctx))
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "1,3,10.00,20.00,30.00,80.00,0.90,-1,-1,-1\n5,3,12.50,20.00,30.00,81.00,0.88,-1,-1,-1\n", string(b))

	_, err = Create(filepath.Join(t.TempDir(), "missing", "res.txt"))
	require.ErrorContains(t, err, "opening MOT output")
}
