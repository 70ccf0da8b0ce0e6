package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/sinks"
)

// vigilBin is the binary built once for the end-to-end tests, so that they
// exercise the real process: flags, exit codes, signals.
var vigilBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vigil-e2e-")
	if err != nil {
		panic(err)
	}
	vigilBin = filepath.Join(dir, "vigil")
	args := []string{"build", "-o", vigilBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building vigil: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type runResult struct {
	code           int
	stdout, stderr string
}

func vigil(t *testing.T, timeout time.Duration, args ...string) runResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, vigilBin, args...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "vigil %v timed out; stderr:\n%s", args, se.String())
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	require.NotContains(t, se.String(), "panic:", "vigil %v crashed", args)
	require.NotContains(t, se.String(), "DATA RACE")
	return runResult{code, so.String(), se.String()}
}

func readLines(t *testing.T, path string) []sinks.Message {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var out []sinks.Message
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m sinks.Message
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), "line %d", len(out)+1)
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

func TestAnalyzeFileWritesOneLinePerFrame(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	out := filepath.Join(t.TempDir(), "vtest.jsonl")
	r := vigil(t, 3*time.Minute, "analyze", "--input", "file://"+clip, "--out", out)
	require.Equal(t, 0, r.code, r.stderr)
	lines := readLines(t, out)
	require.Len(t, lines, 795)
	for i, m := range lines {
		require.Equal(t, uint64(i), m.Seq)
		require.Equal(t, "vtest_h264", m.Stream)
		require.Equal(t, 768, m.Width)
		require.Equal(t, 576, m.Height)
		require.NotNil(t, m.Detections)
		// 10 fps clip: PTS advances 0.1 s per frame.
		require.InDelta(t, float64(i)*0.1, m.PTS, 0.002, "frame %d", i)
	}
	require.Contains(t, r.stderr, "795 frames analysed")
}

func TestAnalyzeFrameLimitAndKeyframes(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	out := filepath.Join(t.TempDir(), "a.jsonl")
	r := vigil(t, time.Minute, "analyze", "--quiet", "--input", "file://"+clip, "--out", out, "--frames", "30")
	require.Equal(t, 0, r.code, r.stderr)
	require.Len(t, readLines(t, out), 30)

	// GOP 20: 795 frames hold 40 key frames.
	r = vigil(t, time.Minute, "analyze", "--quiet", "--input", "file://"+clip, "--out", out, "--decode", "keyframes")
	require.Equal(t, 0, r.code, r.stderr)
	lines := readLines(t, out)
	require.Len(t, lines, 40)
	require.InDelta(t, 2.0, lines[1].PTS, 0.001)
}

func TestAnalyzeSynthToStdout(t *testing.T) {
	r := vigil(t, time.Minute, "analyze", "--quiet", "--input", "synth://?w=64&h=48&frames=20&realtime=0")
	require.Equal(t, 0, r.code, r.stderr)
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	n := 0
	for sc.Scan() {
		var m sinks.Message
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
		require.Equal(t, uint64(n), m.Seq)
		require.Equal(t, "input", m.Stream)
		n++
	}
	require.Equal(t, 20, n)
}

func TestAnalyzeDamagedFiles(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	shareddata.NeedCommands(t, "ffmpeg")
	data, err := os.ReadFile(clip)
	require.NoError(t, err)
	dir := t.TempDir()

	corrupt := append([]byte(nil), data...)
	// Overwrite 64 KiB in the middle of the media data with a fixed pattern.
	for i := len(corrupt) / 2; i < len(corrupt)/2+64<<10; i++ {
		corrupt[i] = byte(i * 7)
	}
	// vtest_h264.mp4 keeps its index (moov) at the end, so its first half has
	// no index at all: ffmpeg refuses it too. A faststart copy cut in half
	// still holds the first half of the frames.
	truncated := data[:len(data)/2]
	faststart := filepath.Join(dir, "faststart.mp4")
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-i", clip, "-c", "copy", "-movflags", "+faststart", faststart).CombinedOutput()
	require.NoError(t, err, "%s", out)
	fs, err := os.ReadFile(faststart)
	require.NoError(t, err)
	truncatedFast := fs[:len(fs)/2]
	garbage := bytes.Repeat([]byte("not a video "), 1000)

	for _, tc := range []struct {
		name      string
		data      []byte
		wantCode  int
		minFrames int
		wantErr   string
	}{
		{"corrupted middle", corrupt, 0, 700, ""},
		{"truncated no-index", truncated, 1, 0, "no moov index"},
		{"truncated faststart", truncatedFast, 0, 350, ""},
		{"not a video", garbage, 1, 0, "garbage.mp4"},
		{"empty", nil, 1, 0, "opening"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-") + ".mp4"
			if tc.name == "not a video" {
				name = "garbage.mp4"
			}
			in := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(in, tc.data, 0o644))
			out := filepath.Join(dir, name+".jsonl")
			r := vigil(t, 2*time.Minute, "analyze", "--input", "file://"+in, "--out", out)
			require.Equal(t, tc.wantCode, r.code, r.stderr)
			if tc.wantErr != "" {
				require.Contains(t, r.stderr, tc.wantErr)
				require.Contains(t, r.stderr, name, "the error names the file")
				return
			}
			lines := readLines(t, out)
			require.GreaterOrEqual(t, len(lines), tc.minFrames)
			if tc.name == "corrupted middle" {
				m := regexp.MustCompile(`(\d+) decode errors`).FindStringSubmatch(r.stderr)
				require.NotNil(t, m, r.stderr)
				require.NotEqual(t, "0", m[1], "the damage is counted")
			}
			for i := 1; i < len(lines); i++ {
				require.Greater(t, lines[i].Seq, lines[i-1].Seq)
			}
		})
	}
}

func TestAnalyzeLiveSourceForDuration(t *testing.T) {
	start := time.Now()
	r := vigil(t, time.Minute, "analyze", "--quiet", "--input", "synth://?w=64&h=48&fps=20", "--realtime", "--duration", "1s", "--infer-fps", "10")
	require.Equal(t, 0, r.code, r.stderr)
	el := time.Since(start)
	require.GreaterOrEqual(t, el, time.Second)
	n := strings.Count(r.stdout, "\n")
	// 1 s at 10 analysed frames per second; loose bounds for a loaded machine.
	require.GreaterOrEqual(t, n, 5)
	require.LessOrEqual(t, n, 12)
}

func TestServeBadConfigNamesKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte("streams:\n  - id: a\n    url: synth://\n    infer_fps: 0\n"), 0o644))
	r := vigil(t, 30*time.Second, "serve", "--config", cfg)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "streams[0].infer_fps")
}

func TestUsageErrors(t *testing.T) {
	require.Equal(t, 2, vigil(t, 10*time.Second).code)
	require.Equal(t, 2, vigil(t, 10*time.Second, "frobnicate").code)
	r := vigil(t, 10*time.Second, "analyze")
	require.Equal(t, 2, r.code)
	require.Contains(t, r.stderr, "--input is required")
}

var listenRE = regexp.MustCompile(`api:\s+(http://\S+)/api/streams`)

// startServe starts `vigil serve` with args and returns the process, the base
// URL it printed, and its standard error. The process is killed at cleanup.
func startServe(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	cmd := exec.Command(vigilBin, append([]string{"serve"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill() })

	base := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				base <- m[1]
			}
		}
	}()
	select {
	case url := <-base:
		return cmd, url, stderr
	case <-time.After(20 * time.Second):
		t.Fatalf("server printed no address; stderr:\n%s", stderr.String())
		return nil, "", nil
	}
}

// TestServeDefault runs `vigil serve` on its embedded default, adds a file
// stream through the API, watches its counters move, removes it, and stops
// the server with SIGTERM.
func TestServeDefault(t *testing.T) {
	clip := shareddata.Path(t, "video/vtest_h264.mp4")
	cmd, url, stderr := startServe(t, "--listen", "127.0.0.1:0")

	get := func(path string) (int, string) {
		resp, err := http.Get(url + path)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	streams := func() map[string]map[string]any {
		_, body := get("/api/streams")
		var list []map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &list))
		out := map[string]map[string]any{}
		for _, s := range list {
			out[s["id"].(string)] = s
		}
		return out
	}

	code, _ := get("/healthz")
	require.Equal(t, 200, code)
	require.Eventually(t, func() bool { c, _ := get("/readyz"); return c == 200 }, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		s, ok := streams()["synth"]
		return ok && s["state"] == "streaming" && s["frames_analyzed"].(float64) > 0
	}, 20*time.Second, 100*time.Millisecond, "the default synth stream is analysed")
	require.Eventually(t, func() bool {
		_, m := get("/metrics")
		return strings.Contains(m, `vigil_inference_images_total{model="detector"}`) && !strings.Contains(m, `vigil_inference_images_total{model="detector"} 0`)
	}, 20*time.Second, 100*time.Millisecond, "the built-in detector runs on it")
	code, page := get("/")
	require.Equal(t, 200, code)
	require.Contains(t, page, "<title>Vigil</title>")

	body := fmt.Sprintf(`{"id":"vtest","url":"file://%s?loop=1","infer_fps":5}`, clip)
	resp, err := http.Post(url+"/api/streams", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)

	var before float64
	require.Eventually(t, func() bool {
		s, ok := streams()["vtest"]
		if !ok {
			return false
		}
		before = s["frames_in"].(float64)
		return before >= 5 && s["frames_analyzed"].(float64) > 0
	}, 20*time.Second, 100*time.Millisecond)
	require.Eventually(t, func() bool { return streams()["vtest"]["frames_in"].(float64) > before }, 10*time.Second, 100*time.Millisecond, "counters move")
	_, metrics := get("/metrics")
	require.Contains(t, metrics, `vigil_ingest_frames_total{stream="vtest"}`)

	req, _ := http.NewRequest(http.MethodDelete, url+"/api/streams/vtest", nil)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, has := streams()["vtest"]
	require.False(t, has)
	_, metrics = get("/metrics")
	require.NotContains(t, metrics, `stream="vtest"`)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		require.NoError(t, err, stderr.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not stop on SIGTERM; stderr:\n%s", stderr.String())
	}
	require.NotContains(t, stderr.String(), "panic:")
}

// TestServeReloadsConfig edits the config file of a running server: the new
// stream appears and the removed one goes, without a restart.
func TestServeReloadsConfig(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vigil.yaml")
	write := func(ids ...string) {
		var b strings.Builder
		b.WriteString("listen: 127.0.0.1:0\nshutdown_timeout: 2s\nstreams:\n")
		for _, id := range ids {
			fmt.Fprintf(&b, "  - id: %s\n    url: \"synth://?w=32&h=32&fps=20\"\n    infer_fps: 5\n", id)
		}
		// Same size and second as the last write would hide the change from
		// a poller that looks at size and mtime only; content decides here.
		require.NoError(t, os.WriteFile(cfgPath, []byte(b.String()), 0o644))
	}
	write("a")
	cmd, url, stderr := startServe(t, "--config", cfgPath)
	ids := func() []string {
		resp, err := http.Get(url + "/api/streams")
		require.NoError(t, err)
		defer resp.Body.Close()
		var list []struct{ ID string }
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
		var out []string
		for _, s := range list {
			out = append(out, s.ID)
		}
		return out
	}
	require.Equal(t, []string{"a"}, ids())
	time.Sleep(1100 * time.Millisecond) // a new modification time
	write("b")
	require.Eventually(t, func() bool { return slices.Equal(ids(), []string{"b"}) }, 10*time.Second, 100*time.Millisecond)

	// A broken file is refused and the running config stays.
	require.NoError(t, os.WriteFile(cfgPath, []byte("streams:\n  - id: b\n    infer_fps: -1\n"), 0o644))
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), "config not reloaded") }, 10*time.Second, 100*time.Millisecond)
	require.Equal(t, []string{"b"}, ids())

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
}

// syncBuffer is a bytes.Buffer that a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
