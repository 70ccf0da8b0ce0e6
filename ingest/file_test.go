package ingest

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// packetRecorder is an Output that keeps packet metadata.
type packetRecorder struct {
	params []frame.CodecParams
	pkts   []frame.Packet
	limit  int
}

var errEnough = errors.New("enough packets")

func (r *packetRecorder) Count(Event, uint64) {}
func (r *packetRecorder) Params(p frame.CodecParams) error {
	r.params = append(r.params, p)
	return nil
}
func (r *packetRecorder) Frame(f *frame.Frame) error {
	f.Release()
	return errors.New("file source emitted a raw frame")
}
func (r *packetRecorder) Packet(p *frame.Packet) error {
	cp := *p
	cp.Data = nil
	r.pkts = append(r.pkts, cp)
	if r.limit > 0 && len(r.pkts) >= r.limit {
		return errEnough
	}
	return nil
}

// makeMKV makes a 1 s, 25 fps H.264 clip in Matroska with a key frame every
// 10 frames and no B-frames, so PTS increase in decoding order.
func makeMKV(t *testing.T) string {
	t.Helper()
	shareddata.NeedCommands(t, "ffmpeg")
	path := filepath.Join(t.TempDir(), "clip.mkv")
	out, err := exec.Command("ffmpeg", "-v", "error", "-nostdin", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25",
		"-t", "1", "-c:v", "libx264", "-g", "10", "-bf", "0", "-pix_fmt", "yuv420p", path).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return path
}

func TestFileSourceLoopsWithIncreasingPTS(t *testing.T) {
	defer goleak.VerifyNone(t)
	clip := makeMKV(t)
	src, err := Open("cam", "file://"+clip+"?realtime=0&loop=1", Options{})
	require.NoError(t, err)
	require.False(t, src.Live())
	rec := &packetRecorder{limit: 60}
	err = src.Run(context.Background(), rec)
	require.ErrorIs(t, err, errEnough)
	require.Len(t, rec.params, 1)
	require.Equal(t, frame.CodecH264, rec.params[0].Codec)
	require.Equal(t, 160, rec.params[0].Width)
	keys := 0
	for i, p := range rec.pkts {
		require.Equal(t, "cam", p.StreamID)
		if p.KeyFrame {
			keys++
		}
		if i > 0 {
			require.Greater(t, p.PTS, rec.pkts[i-1].PTS, "packet %d", i)
		}
	}
	// Key frames at 0, 10, 20 of each 25-frame pass: 3 + 3 + 1 in 60 packets.
	require.Equal(t, 7, keys)
	require.True(t, rec.pkts[25].KeyFrame, "the second pass starts with a key frame")
	require.InDelta(t, 1.0, rec.pkts[25].PTS.Seconds(), 0.05)
}

func TestFileSourceEndsWithEOF(t *testing.T) {
	clip := makeMKV(t)
	src, err := Open("cam", "file://"+clip+"?realtime=0", Options{})
	require.NoError(t, err)
	rec := &packetRecorder{}
	require.ErrorIs(t, src.Run(context.Background(), rec), io.EOF)
	require.Len(t, rec.pkts, 25)
}

func TestFileSourcePacesInRealTime(t *testing.T) {
	defer goleak.VerifyNone(t)
	clip := makeMKV(t)
	src, err := Open("cam", "file://"+clip, Options{Realtime: true})
	require.NoError(t, err)
	require.True(t, src.Live(), "Options.Realtime paces the file")
	start := time.Now()
	require.ErrorIs(t, src.Run(context.Background(), &packetRecorder{}), io.EOF)
	// 25 frames at 25 fps: the last is due 0.96 s after the first.
	require.GreaterOrEqual(t, time.Since(start), 900*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	require.ErrorIs(t, src.Run(ctx, &packetRecorder{}), context.DeadlineExceeded)
	require.Less(t, time.Since(start), 600*time.Millisecond, "cancellation is prompt")
}

func TestOpenErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"ftp://x/y.mp4", `unknown URL scheme "ftp"`},
		{"file://?loop=1", "no path"},
		{"file:///x.mp4?loop=perhaps", "loop"},
		{"file:///x.mp4?realtime=2", "realtime"},
	} {
		_, err := Open("cam", tc.url, Options{})
		require.ErrorContains(t, err, tc.want, tc.url)
		require.ErrorContains(t, err, "cam", tc.url)
	}
	src, err := Open("cam", "file:///nonexistent/clip.mp4?realtime=0", Options{})
	require.NoError(t, err)
	require.ErrorContains(t, src.Run(context.Background(), &packetRecorder{}), "/nonexistent/clip.mp4")
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"rtsp://admin:hunter2@10.0.0.1/stream", "rtsp://admin:xxxxx@10.0.0.1/stream"},
		{"rtsp://10.0.0.1/stream", "rtsp://10.0.0.1/stream"},
		{"whip://host/x?token=abc", "whip://host/x?token=xxxxx"},
		{"::bad", "<unparseable URL>"},
		{"synth://?objects=6&w=1280", "synth://?objects=6&w=1280"},
	} {
		require.Equal(t, tc.want, Redact(tc.in))
	}
	msg := RedactError(`dial rtsp://admin:hunter2@10.0.0.1/stream: refused (hunter2)`, "rtsp://admin:hunter2@10.0.0.1/stream")
	require.NotContains(t, msg, "hunter2")
}
