package hardframe

import (
	"bufio"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/store"
)

// childEnv, set to a store folder, makes the test binary a miner that
// writes hard frames into it as fast as it can until it is killed.
const childEnv = "VIGIL_HARDFRAME_KILL_CHILD"

// roundEnv numbers the child's run, so each run stores new pictures.
const roundEnv = "VIGIL_HARDFRAME_KILL_ROUND"

const killW, killH = 320, 192

// killChild mines every frame of an endless run of different synth scenes
// into the store in dir, with a 1 MiB bound so that evictions happen too,
// and prints "puts N" whenever the store commits another entry.
func killChild(dir string) int {
	round, _ := strconv.Atoi(os.Getenv(roundEnv))
	c := config.Default().HardFrames
	c.Enabled, c.Dir, c.MaxMB, c.Miners = true, dir, 1, []string{config.MinerRandom}
	c.Random.Rate, c.PerStreamPerMinute, c.DedupHamming, c.QueueSize = 1, 0, 0, 4
	m, err := New(Options{Config: c, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p := synth.DefaultParams()
	p.Width, p.Height, p.Texture = killW, killH, 1
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC).Add(time.Duration(round) * time.Hour)
	var printed uint64
	for i := uint64(0); ; i++ {
		p.Seed = uint64(round)*1_000_000 + i + 1
		f := &frame.Frame{}
		synth.Snapshot(p, 0, f)
		f.StreamID, f.Seq, f.PTS, f.Arrival = "cam", i, time.Duration(i)*time.Second, base.Add(time.Duration(i)*time.Second)
		m.ObserveFrame(&frame.Result{StreamID: "cam", Seq: i, PTS: f.PTS, Captured: f.Arrival, Width: killW, Height: killH,
			Detections: []frame.Detection{{Box: frame.Box{X1: 10, Y1: 10, X2: 50, Y2: 90}, Label: "person", Score: 0.6, TrackID: i + 1}}}, f)
		if n := m.store.Stats().Puts; n != printed {
			printed = n
			fmt.Printf("puts %d\n", n)
		}
	}
}

// TestKillWhileWriting is issue 9's "kill the server while it writes hard
// frames": a child process mines into a store as fast as it can and is
// killed with SIGKILL in the middle of a write, three times over the same
// store. Each time, opening the store recovers it, Validate finds nothing
// wrong, and every entry it lists reads back with its picture.
func TestKillWhileWriting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	midWrite := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childEnv+"="+dir, roundEnv+"="+strconv.Itoa(round))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		puts := make(chan int, 1024)
		go func() {
			defer close(puts)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "puts ")); err == nil {
					puts <- n
				}
			}
		}()
		// Let it store a few entries, then kill it as soon as a write is
		// in flight (a temporary file exists).
		deadline := time.After(30 * time.Second)
		for n := 0; n < 3; {
			select {
			case v, ok := <-puts:
				require.True(t, ok, "child ended early: %s", stderr.String())
				n = v
			case <-deadline:
				t.Fatalf("child stored nothing in 30 s: %s", stderr.String())
			}
		}
		caught := false
		for start := time.Now(); !caught && time.Since(start) < 2*time.Second; {
			caught = hasTemp(dir)
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		_ = cmd.Wait()
		for range puts {
		}
		if caught {
			midWrite++
		}

		s, err := store.Open(dir, store.Options{})
		require.NoError(t, err)
		rec := s.Recovery()
		problems, err := store.Validate(dir)
		require.NoError(t, err)
		require.Empty(t, problems, "round %d", round)
		require.Empty(t, rec.Missing)
		entries := s.List()
		require.NotEmpty(t, entries)
		for _, e := range entries {
			got, err := s.Get(e.ID)
			require.NoError(t, err, e.ID)
			require.Equal(t, image.Rect(0, 0, killW, killH), got.Image.Bounds())
			require.Len(t, got.Objects, 1)
		}
		st := s.Stats()
		require.NoError(t, s.Close(), "the next round's child takes the writer lock")
		require.LessOrEqual(t, st.Bytes, int64(1<<20))
		t.Logf("round %d: killed with a write in flight: %v; recovered %d temporary and %d orphan files; %d entries, %d bytes, version %s",
			round, caught, len(rec.Temp), len(rec.Orphans), st.Entries, st.Bytes, st.Version)
	}
	require.Positive(t, midWrite, "at least one kill landed during a write")
}

// hasTemp reports whether the store holds a temporary file of a write in
// flight.
func hasTemp(dir string) bool {
	for _, sub := range []string{"", "images", "labels"} {
		es, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range es {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				return true
			}
		}
	}
	return false
}
