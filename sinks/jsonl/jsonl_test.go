package jsonl

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

func result(seq uint64) *frame.Result {
	return &frame.Result{
		StreamID: "cam-1", Seq: seq, PTS: time.Duration(seq) * 100 * time.Millisecond,
		Captured: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Width: 768, Height: 576,
		Detections: []frame.Detection{{Box: frame.Box{X1: 1, Y1: 2, X2: 30, Y2: 40}, Class: 0, Label: "person", Score: 0.9, TrackID: 7,
			Keypoints: frame.Keypoints{{X: 5, Y: 6, Score: 1}}}},
	}
}

func TestStdoutLines(t *testing.T) {
	var out bytes.Buffer
	w := &Writer{Path: "-", Stdout: &out}
	require.NoError(t, w.Open())
	for i := range 3 {
		require.NoError(t, w.Write(context.Background(), result(uint64(i))))
	}
	require.NoError(t, w.Close(context.Background()))

	sc := bufio.NewScanner(&out)
	var n uint64
	for sc.Scan() {
		var m sinks.Message
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		require.Equal(t, n, m.Seq)
		require.Equal(t, "cam-1", m.Stream)
		require.InDelta(t, float64(n)*0.1, m.PTS, 1e-9)
		require.Len(t, m.Detections, 1)
		require.Equal(t, [4]float32{1, 2, 30, 40}, m.Detections[0].Box)
		require.Equal(t, uint64(7), m.Detections[0].TrackID)
		n++
	}
	require.Equal(t, uint64(3), n)
}

func TestRotationKeepsEveryLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.jsonl")
	w := &Writer{Path: path, MaxBytes: 1000, MaxBackups: 100}
	require.NoError(t, w.Open())
	const total = 50
	for i := range total {
		require.NoError(t, w.Write(context.Background(), result(uint64(i))))
	}
	require.NoError(t, w.Close(context.Background()))

	files, err := filepath.Glob(path + "*")
	require.NoError(t, err)
	require.Greater(t, len(files), 3, "expected several rotated files")
	seen := map[uint64]bool{}
	for _, f := range files {
		st, err := os.Stat(f)
		require.NoError(t, err)
		require.LessOrEqual(t, st.Size(), int64(1000), f)
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var m sinks.Message
			require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
			require.False(t, seen[m.Seq], "duplicate seq %d", m.Seq)
			seen[m.Seq] = true
		}
	}
	require.Len(t, seen, total)
}

func TestRotationDropsOldestBackups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.jsonl")
	w := &Writer{Path: path, MaxBytes: 600, MaxBackups: 2}
	require.NoError(t, w.Open())
	for i := range 40 {
		require.NoError(t, w.Write(context.Background(), result(uint64(i))))
	}
	require.NoError(t, w.Close(context.Background()))
	files, _ := filepath.Glob(path + "*")
	require.ElementsMatch(t, []string{path, path + ".1", path + ".2"}, files)
}

func TestOpenErrorNamesPath(t *testing.T) {
	w := &Writer{Path: filepath.Join(t.TempDir(), "missing", "out.jsonl")}
	err := w.Open()
	require.ErrorContains(t, err, "missing/out.jsonl")
}

func BenchmarkWrite(b *testing.B) {
	w := &Writer{Path: filepath.Join(b.TempDir(), "out.jsonl")}
	require.NoError(b, w.Open())
	r := result(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = w.Write(context.Background(), r)
	}
	require.NoError(b, w.Close(context.Background()))
}
