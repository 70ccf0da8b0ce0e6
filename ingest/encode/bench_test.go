//go:build cgo

package encode_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/encode"
)

// benchFrames is how many distinct 720p pictures the benchmarks cycle
// through: two seconds of the moving scene.
const benchFrames = 30

// BenchmarkEncodeH264 encodes 720p synth frames, one per op, with the
// settings a viewer stream gets (one thread).
func BenchmarkEncodeH264(b *testing.B) {
	frames := sceneFrames(b, 1280, 720, benchFrames, false)
	enc, err := encode.NewH264(encode.Config{Width: 1280, Height: 720})
	require.NoError(b, err)
	defer enc.Close()
	bytes := 0
	emit := func(p *frame.Packet) { bytes += len(p.Data) }
	// Warm up past the first IDR so that the buffer has grown.
	for _, f := range frames[:2] {
		require.NoError(b, enc.Encode(f, emit))
	}
	pts := frames[1].PTS
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		f := frames[n%benchFrames]
		pts += time.Second / fps
		f.PTS = pts
		if err := enc.Encode(f, emit); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "frames/s")
}

// BenchmarkEncodeH264FFmpeg is the peer: the ffmpeg command encoding the
// same raw frames with libx264 and the same settings (one thread, the same
// bitrate, VBV and key interval), 600 frames per op. Compare the frames/s
// metrics; the command's start-up is part of its cost.
func BenchmarkEncodeH264FFmpeg(b *testing.B) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		b.Skip("ffmpeg not found")
	}
	frames := sceneFrames(b, 1280, 720, benchFrames, false)
	raw := filepath.Join(b.TempDir(), "raw.yuv")
	out, err := os.Create(raw)
	require.NoError(b, err)
	for _, f := range frames {
		for _, p := range f.Planes {
			_, err := out.Write(p)
			require.NoError(b, err)
		}
	}
	require.NoError(b, out.Close())
	const loops = 20 // 600 frames per run, so that start-up is a few per cent
	cfg := encode.Config{Width: 1280, Height: 720}
	enc, err := encode.NewH264(cfg)
	require.NoError(b, err)
	cfg = enc.Config()
	enc.Close()
	rate := strconv.Itoa(cfg.Bitrate)
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin",
		"-stream_loop", strconv.Itoa(loops - 1),
		"-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "1280x720", "-r", strconv.Itoa(fps), "-i", raw,
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-profile:v", "baseline",
		"-threads", "1", "-b:v", rate, "-maxrate", rate, "-bufsize", strconv.Itoa(cfg.Bitrate / 2),
		"-g", strconv.Itoa(int(cfg.KeyInterval.Seconds() * cfg.FPS)),
		"-x264-params", "repeat-headers=1:scenecut=0", "-f", "null", "-"}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for b.Loop() {
		if msg, err := exec.Command(ffmpeg, args...).CombinedOutput(); err != nil {
			b.Fatalf("ffmpeg: %v: %s", err, msg)
		}
		n += loops * benchFrames
	}
	b.ReportMetric(float64(n)/time.Since(start).Seconds(), "frames/s")
}
