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

// TestKillWhileMining SIGKILLs `vigil serve` while it writes hard frames
// (every analysed frame is a candidate, none is a duplicate): `vigil
// dataset validate` passes on what it left, and the next server carries on
// with the same store. While a server mines, `vigil dataset export` reads
// its store and `vigil dataset import` into it is refused.
func TestKillWhileMining(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "hardframes")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
models:
  - {name: detector, bundle: "builtin:detector"}
streams:
  - {id: night, url: "synth://?domain=night&objects=8&w=640&h=360&fps=15&seed=5&realtime=0", infer_fps: 15, models: [detector]}
hard_frames:
  enabled: true
  dir: %q
  miners: [random]
  random: {rate: 1}
  per_stream_per_minute: 0
  dedup_hamming: 0
`, store)
	path := filepath.Join(dir, "vigil.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
	for round := range 4 {
		cmd, _, stderr := startServe(t, "--config", path)
		entries := func() int {
			names, _ := filepath.Glob(filepath.Join(store, "labels", "*.json"))
			return len(names)
		}
		before := entries()
		require.Eventually(t, func() bool { return entries() >= before+10 }, 60*time.Second, 20*time.Millisecond, "stderr:\n%s", stderr)
		if round == 0 {
			// Exporting reads the store while the server mines; a second
			// writer is refused: its crash recovery would delete the
			// server's write in flight.
			exp := filepath.Join(dir, "export")
			r := vigil(t, time.Minute, "dataset", "export", store, "--format", "coco", "--out", exp)
			require.Equal(t, 0, r.code, r.stderr)
			r = vigil(t, time.Minute, "dataset", "import", store, "--from", filepath.Join(exp, "annotations.json"))
			require.Equal(t, 1, r.code, r.stderr)
			require.Contains(t, r.stderr, fmt.Sprintf("store open for writing by another process: process %d writes it", cmd.Process.Pid))
		}
		// Land at different points of the next entry's write.
		time.Sleep(time.Duration(round*17) * time.Millisecond)
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		tmp, _ := filepath.Glob(filepath.Join(store, "*", ".tmp-*"))
		rootTmp, _ := filepath.Glob(filepath.Join(store, ".tmp-*"))
		tmp = append(tmp, rootTmp...)
		r := vigil(t, time.Minute, "dataset", "validate", store)
		t.Logf("round %d: killed with %d label files, temporary files left: %q; validate: %s", round, entries(), tmp, strings.TrimSpace(r.stdout+r.stderr))
		require.Equal(t, 0, r.code, "validate after SIGKILL:\n%s%s", r.stdout, r.stderr)
	}
}
