package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestScheduledRetrain: with retrain.min_new_frames, `vigil serve` runs
// `vigil retrain` by itself once the miners kept enough frames; the
// candidate passes the gate (set wide open here), is published to the
// registry, and the server loads it.
func TestScheduledRetrain(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry")
	copyDetector(t, reg, 1)
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
models:
  - {name: detector, bundle: %q}
streams:
  - {id: night, url: "synth://?domain=night&objects=6&w=320&h=192&fps=10&seed=8&frames=40&realtime=0", infer_fps: 10, models: [detector]}
hard_frames:
  enabled: true
  dir: %q
  miners: [random]
  random: {rate: 1}
  per_stream_per_minute: 0
  dedup_hamming: -1
retrain:
  enabled: true
  model: detector
  min_new_frames: 12
  check_every: 200ms
  labels: pre
  eval: "synth://?domain=night&seed=900&frames=4&w=320&h=192"
  margin: -1
  max_drop: 1
  steps: 2
  dir: %q
`, filepath.Join(reg, "detector"), filepath.Join(dir, "hardframes"), filepath.Join(dir, "runs"))
	path := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	_, _, stderr := startServe(t, "--config", path)
	// The registry watch may load version 2 before the retrain child has
	// exited and the scheduler has logged its result: wait for both.
	require.Eventually(t, func() bool {
		s := stderr.String()
		return strings.Contains(s, `msg="model loaded" model=detector bundle=detector version=2`) &&
			strings.Contains(s, "retrained model published")
	}, 4*time.Minute, 200*time.Millisecond, "stderr:\n%s", stderr)
	require.DirExists(t, filepath.Join(reg, "detector", "2"))
	logs, _ := filepath.Glob(filepath.Join(dir, "runs", "*.log"))
	require.NotEmpty(t, logs, "each run keeps its log")
}
