package whiptest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/pion/webrtc/v4"

	"github.com/vigil-video/vigil/internal/shareddata"
)

// Clip makes a test clip of the given length at 30 fps, 320x240, with a key
// frame every second, using FFmpeg's testsrc: Annex-B H.264 (constrained
// baseline, no B-frames) for webrtc.MimeTypeH264, VP8 in IVF for
// webrtc.MimeTypeVP8. It skips tb when ffmpeg is missing (or fails it when
// shared tools are required).
func Clip(tb testing.TB, mime string, seconds int) []byte {
	tb.Helper()
	shareddata.NeedCommands(tb, "ffmpeg")
	out := filepath.Join(tb.TempDir(), "clip")
	args := []string{"-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=30",
		"-t", strconv.Itoa(seconds), "-pix_fmt", "yuv420p", "-g", "30"}
	switch mime {
	case webrtc.MimeTypeH264:
		args = append(args, "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-bsf:v", "h264_mp4toannexb", "-f", "h264", out)
	case webrtc.MimeTypeVP8:
		args = append(args, "-c:v", "libvpx", "-b:v", "1M", "-f", "ivf", out)
	default:
		tb.Fatalf("no clip for %s", mime)
	}
	if b, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
		tb.Fatalf("ffmpeg: %v: %s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}
