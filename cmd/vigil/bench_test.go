package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestRunBench(t *testing.T) {
	shareddata.NeedCommands(t, "ffmpeg")
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi",
		"-i", "testsrc2=size=320x240:rate=25", "-t", "2", "-c:v", "libx264", "-g", "10", clip).CombinedOutput()
	require.NoError(t, err, "%s", out)

	var stdout, stderr bytes.Buffer
	err = runBench(context.Background(), []string{"decode", "--input", clip, "--threads", "1", "--runs", "1"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	var rep map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), stdout.String())
	require.Equal(t, 1, bytes.Count(stdout.Bytes(), []byte("\n")), "one JSON line")
	require.EqualValues(t, 50, rep["frames"])
	require.EqualValues(t, 1, rep["threads"])
	for _, k := range []string{"vigil_fps", "ffmpeg_fps", "ratio"} {
		require.Greater(t, rep[k], 0.0, k)
	}
	require.InDelta(t, rep["vigil_fps"].(float64)/rep["ffmpeg_fps"].(float64), rep["ratio"], 0.01)
}

func TestRunBenchUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want error
		msg  string
	}{
		{"no subcommand", nil, errUsage, ""},
		{"unknown subcommand", []string{"encode"}, errUsage, ""},
		{"bad flag", []string{"decode", "--frobnicate"}, errUsage, ""},
		{"bad runs", []string{"decode", "--input", "x.mp4", "--runs", "0"}, nil, "--runs is 0"},
		{"bad threads", []string{"decode", "--input", "x.mp4", "--threads", "-2"}, nil, "--threads is -2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runBench(context.Background(), tc.args, &stdout, &stderr)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
			if tc.msg != "" {
				require.ErrorContains(t, err, tc.msg)
			}
			require.Empty(t, stdout.String())
		})
	}
}
