package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

const benchUsage = `usage: vigil bench decode [--input FILE] [--threads N] [--runs R]
       vigil bench ingest [--streams N] [--duration D] [--size WxH] [--fps F]
       vigil bench infer [--model M] [--variant fp32|int8] [--batch N] [--threads T]

decode: decodes FILE with Vigil's decoder and with the ffmpeg command, each R times
in turn, and prints one JSON line with the best frame rate of each.
Without --input it uses the reference clip scaled to 1080p, made once with
ffmpeg from ../shared/data (or $VIGIL_SHARED_DATA).

infer: times a model end to end in Vigil (pre-processing from a decoded frame,
run, output decoding) and a bare ONNX Runtime session on the same input, and
prints their ratio ('vigil bench infer -h').

ingest: reads N RTSP streams from an in-process server through the pipeline
and reports packets, drops, peak memory and CPU ('vigil bench ingest -h').
`

// benchReport is the JSON line `vigil bench decode` prints.
type benchReport struct {
	Input     string  `json:"input"`
	Frames    uint64  `json:"frames"`
	Threads   int     `json:"threads"`
	Runs      int     `json:"runs"`
	VigilFPS  float64 `json:"vigil_fps"`
	FFmpegFPS float64 `json:"ffmpeg_fps"`
	// Ratio is VigilFPS / FFmpegFPS: above 1, Vigil is faster.
	Ratio float64 `json:"ratio"`
}

// runBench implements `vigil bench decode` and dispatches `vigil bench ingest`.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "ingest" {
		return runBenchIngest(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "infer" {
		return runBenchInfer(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "decode" {
		fmt.Fprint(stderr, benchUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	fs := flag.NewFlagSet("bench decode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), benchUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	input := fs.String("input", "", "video file to decode (default: the reference clip at 1080p)")
	threads := fs.Int("threads", 0, "decoding threads for both decoders; 0 lets libavcodec choose")
	runs := fs.Int("runs", 3, "runs of each decoder; the best counts")
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if *threads < 0 {
		return fmt.Errorf("--threads is %d, must be 0 (auto) or more", *threads)
	}
	if *runs < 1 {
		return fmt.Errorf("--runs is %d, must be 1 or more", *runs)
	}
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		return fmt.Errorf("finding the ffmpeg command to compare with: %w", err)
	}
	path := *input
	if path == "" {
		var err error
		if path, err = benchClip(ctx, stderr); err != nil {
			return err
		}
	}

	rep := benchReport{Input: path, Threads: *threads, Runs: *runs}
	var bestVigil, bestFFmpeg float64
	for range *runs {
		res, err := decode.DecodeFile(ctx, path, *threads)
		if err != nil {
			return fmt.Errorf("decoding %s: %w", path, err)
		}
		if res.Frames == 0 {
			return fmt.Errorf("decoding %s: no frames", path)
		}
		rep.Frames = res.Frames
		bestVigil = max(bestVigil, res.FPS())

		fps, err := ffmpegFPS(ctx, path, *threads, res.Frames)
		if err != nil {
			return err
		}
		bestFFmpeg = max(bestFFmpeg, fps)
	}
	rep.VigilFPS = round(bestVigil, 1)
	rep.FFmpegFPS = round(bestFFmpeg, 1)
	rep.Ratio = round(bestVigil/bestFFmpeg, 3)
	return json.NewEncoder(stdout).Encode(rep)
}

// ffmpegFrameRe finds the frame count in ffmpeg's final report.
var ffmpegFrameRe = regexp.MustCompile(`frame=\s*(\d+)`)

// ffmpegFPS times one ffmpeg process that decodes path to nowhere. ffmpeg's
// -threads before -i sets its decoder's threads. The rate uses the frame
// count ffmpeg reports, or frames when it reports none.
func ffmpegFPS(ctx context.Context, path string, threads int, frames uint64) (float64, error) {
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostats", "-nostdin",
		"-threads", strconv.Itoa(threads), "-i", path, "-f", "null", "-")
	cmd.Stderr = &errOut
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("running ffmpeg on %s: %w\n%s", path, err, tail(errOut.Bytes(), 2000))
	}
	if m := ffmpegFrameRe.FindAllSubmatch(errOut.Bytes(), -1); len(m) > 0 {
		if n, err := strconv.ParseUint(string(m[len(m)-1][1]), 10, 64); err == nil && n > 0 {
			frames = n
		}
	}
	return float64(frames) / elapsed.Seconds(), nil
}

// benchClip returns the reference clip scaled to 1080p, making it with
// ffmpeg on first use. It is cached by name in the temporary folder, where
// the decode package's benchmark finds it too.
func benchClip(ctx context.Context, stderr io.Writer) (string, error) {
	return cachedClip(ctx, stderr, "vtest_h264-1080p.mp4",
		"-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-an")
}

// cachedClip returns a clip made once with ffmpeg from the reference clip,
// with the given output arguments, and kept in $TMPDIR/vigil-bench/name.
func cachedClip(ctx context.Context, stderr io.Writer, name string, args ...string) (string, error) {
	dir := filepath.Join(os.TempDir(), "vigil-bench")
	out := filepath.Join(dir, name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	data := shareddata.Dir()
	if data == "" {
		return "", errors.New("no reference data to make a clip from: put ../shared/data beside the repository or set VIGIL_SHARED_DATA")
	}
	src := filepath.Join(data, "video", "vtest_h264.mp4")
	if _, err := os.Stat(src); err != nil {
		return "", fmt.Errorf("finding the reference clip: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("making the clip cache: %w", err)
	}
	fmt.Fprintf(stderr, "making %s from %s (once)\n", out, src)
	tmp := out + ".part.mp4"
	ffArgs := append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", src}, args...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(ffArgs, tmp)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("making %s: %w\n%s", out, err, tail(msg, 2000))
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", fmt.Errorf("making %s: %w", out, err)
	}
	return out, nil
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

// tail returns at most the last n bytes of b, for error messages.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
