package main

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestRunBenchIngest(t *testing.T) {
	shareddata.NeedCommands(t, "ffmpeg")
	shareddata.Path(t, "video/vtest_h264.mp4")
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{"ingest", "--streams", "2", "--duration", "3s", "--size", "320x240", "--fps", "15"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Equal(t, 1, bytes.Count(stdout.Bytes(), []byte("\n")), "one JSON line")
	var rep benchIngestReport
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, 2, rep.Streams)
	require.EqualValues(t, 90, rep.FramesExpected)
	// Both streams connect within the first second and then get every
	// frame: at least 2 x 2 s x 15 fps.
	require.GreaterOrEqual(t, rep.Frames, uint64(60), stdout.String())
	require.GreaterOrEqual(t, rep.Packets, rep.Frames)
	require.Zero(t, rep.DroppedAtSource)
	require.Zero(t, rep.Restarts)
	require.Positive(t, rep.MaxRSSMiB)
	require.Positive(t, rep.CPUSeconds)
}

func TestRunBenchIngestFlags(t *testing.T) {
	for _, args := range [][]string{
		{"ingest", "--streams", "0"},
		{"ingest", "--size", "big"},
		{"ingest", "--fps", "-1"},
		{"ingest", "--duration", "0s"},
		{"ingest", "--client", "ffmpeg"},
	} {
		var stdout, stderr bytes.Buffer
		require.Error(t, runBench(context.Background(), args, &stdout, &stderr), "%v", args)
		require.Empty(t, stdout.String())
	}
}
