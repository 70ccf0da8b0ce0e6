package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// copyDetector puts the built-in detector into a registry as version v.
func copyDetector(t *testing.T, root string, v int) {
	t.Helper()
	src := filepath.Join("..", "..", "inference", "builtin", "detector")
	dst := filepath.Join(root, "detector", fmt.Sprint(v))
	require.NoError(t, os.MkdirAll(dst, 0o755))
	for _, name := range []string{"fp32.onnx", "int8.onnx", "model.yaml"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		require.NoError(t, err)
		if name == "model.yaml" {
			b = []byte(strings.Replace(string(b), "\nversion: 1\n", fmt.Sprintf("\nversion: %d\n", v), 1))
		}
		require.NoError(t, os.WriteFile(filepath.Join(dst, name), b, 0o644))
	}
}

// TestPromoteWhileServing runs `vigil serve` on a generated scene read as
// fast as it is analysed (nothing is dropped), promotes a new version of
// its detector with `vigil models promote`, and checks the results: every
// frame is there, in order, and each names the version that analysed it,
// the old one up to the swap and the new one after.
func TestPromoteWhileServing(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry")
	copyDetector(t, reg, 1)
	copyDetector(t, reg, 2)
	require.Equal(t, 0, vigil(t, 30*time.Second, "models", "promote", "detector", "1", "--registry", reg).code)
	results := filepath.Join(dir, "results.jsonl")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
models:
  - {name: detector, bundle: %q, max_accuracy_loss: 0}
streams:
  - {id: synth, url: "synth://?objects=4&w=320&h=240&fps=10&seed=2&realtime=0", models: [detector], infer_fps: 10}
sinks:
  jsonl: {enabled: true, path: %q}
`, filepath.Join(reg, "detector"), results)
	cfgPath := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	cmd, _, stderr := startServe(t, "--config", cfgPath)

	lines := func() int {
		b, _ := os.ReadFile(results)
		return strings.Count(string(b), "\n")
	}
	require.Eventually(t, func() bool { return lines() >= 50 }, 30*time.Second, 50*time.Millisecond)
	require.Equal(t, 0, vigil(t, 30*time.Second, "models", "promote", "detector", "2", "--registry", reg).code)
	require.Eventually(t, func() bool {
		return strings.Contains(stderr.String(), `msg="model loaded" model=detector bundle=detector version=2`)
	}, 20*time.Second, 50*time.Millisecond, "stderr:\n%s", stderr)
	n := lines()
	require.Eventually(t, func() bool { return lines() >= n+50 }, 30*time.Second, 50*time.Millisecond)
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait())

	msgs := readLines(t, results)
	var switched int
	for i, m := range msgs {
		if m.EndOfStream {
			continue
		}
		require.Equal(t, uint64(i), m.Seq, "frame %d: no gap in the analysed frames", i)
		v := m.Version[:strings.Index(m.Version, "/")]
		if v == "2" && (i == 0 || msgs[i-1].Version[:1] == "1") {
			switched = i
		}
		if switched > 0 {
			require.Equal(t, "2", v, "frame %d after the swap at %d", i, switched)
		} else {
			require.Equal(t, "1", v, "frame %d before the swap", i)
		}
	}
	t.Logf("%d frames, version 1 up to %d, version 2 from there", len(msgs), switched)
	require.Greater(t, switched, 0)
}
