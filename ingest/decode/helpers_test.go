//go:build cgo

package decode

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// needFFmpeg skips tb when the ffmpeg command-line tools are missing.
func needFFmpeg(tb testing.TB) {
	tb.Helper()
	shareddata.NeedCommands(tb, "ffmpeg", "ffprobe")
}

// makeClip runs ffmpeg with args and the output file name, in a temporary
// folder of tb, and returns the file's path.
func makeClip(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	needFFmpeg(tb)
	out := filepath.Join(tb.TempDir(), name)
	cmd := exec.Command("ffmpeg", append(append([]string{"-hide_banner", "-loglevel", "error", "-nostdin", "-y"}, args...), out)...)
	msg, err := cmd.CombinedOutput()
	require.NoError(tb, err, "ffmpeg %s: %s", strings.Join(args, " "), msg)
	return out
}

// testsrc returns ffmpeg input arguments for a moving test pattern.
func testsrc(size string, rate, seconds int) []string {
	return []string{"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=" + strconv.Itoa(rate), "-t", strconv.Itoa(seconds)}
}

// probeFrames asks ffprobe for every decoded frame of the first video stream:
// its key_frame flag and its best-effort timestamp in seconds.
type probedFrame struct {
	key bool
	pts float64
}

func probeFrames(tb testing.TB, path string) []probedFrame {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "frame=key_frame,best_effort_timestamp_time", "-of", "csv=p=0", path).Output()
	require.NoError(tb, err, "ffprobe %s", path)
	var frames []probedFrame
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, ",")
		require.GreaterOrEqual(tb, len(f), 2, "ffprobe line %q", line)
		pts, err := strconv.ParseFloat(f[1], 64)
		require.NoError(tb, err, "ffprobe line %q", line)
		frames = append(frames, probedFrame{key: f[0] == "1", pts: pts})
	}
	return frames
}

// decoded is what the tests keep of a frame.
type decoded struct {
	StreamID      string
	Seq           uint64
	PTS           time.Duration
	KeyFrame      bool
	Width, Height int
	Format        frame.PixelFormat
	Strides       [3]int
}

// decodeFile decodes path with cfg (Params filled from the file) and returns
// what it saw. It fails tb on any error other than corrupt packets, which it
// returns.
func decodeFile(tb testing.TB, path string, cfg Config) ([]decoded, Stats, []error) {
	tb.Helper()
	dmx, err := OpenFile(path)
	require.NoError(tb, err)
	defer dmx.Close()
	cfg.Params = dmx.Params()
	dec, err := NewDecoder(cfg)
	require.NoError(tb, err)
	defer dec.Close()

	var out []decoded
	emit := func(f *frame.Frame) {
		out = append(out, decoded{
			StreamID: f.StreamID, Seq: f.Seq, PTS: f.PTS, KeyFrame: f.KeyFrame,
			Width: f.Width, Height: f.Height, Format: f.Format, Strides: f.Strides,
		})
		f.Release()
	}
	var errs []error
	var pkt frame.Packet
	for {
		err := dmx.ReadPacket(&pkt)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(tb, err)
		if err := dec.Decode(&pkt, emit); err != nil {
			require.ErrorIs(tb, err, ErrCorruptPacket)
			errs = append(errs, err)
		}
	}
	if err := dec.Flush(emit); err != nil {
		require.ErrorIs(tb, err, ErrCorruptPacket)
		errs = append(errs, err)
	}
	return out, dec.Stats(), errs
}

// overwrite replaces n bytes of the file at path, from offset off, with a
// fixed pseudo-random pattern, and returns the damaged copy's path.
func overwrite(tb testing.TB, path string, off, n int) string {
	tb.Helper()
	data, err := os.ReadFile(path)
	require.NoError(tb, err)
	require.Less(tb, off+n, len(data))
	x := uint32(2463534242)
	for i := off; i < off+n; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		data[i] = byte(x)
	}
	out := filepath.Join(tb.TempDir(), "damaged"+filepath.Ext(path))
	require.NoError(tb, os.WriteFile(out, data, 0o644))
	return out
}

// mdatRange returns the offset and size of the payload of the first mdat box
// of an MP4 file.
func mdatRange(tb testing.TB, path string) (int, int) {
	tb.Helper()
	data, err := os.ReadFile(path)
	require.NoError(tb, err)
	i := bytes.Index(data, []byte("mdat"))
	require.GreaterOrEqual(tb, i, 4, "no mdat box in %s", path)
	size := int(data[i-4])<<24 | int(data[i-3])<<16 | int(data[i-2])<<8 | int(data[i-1])
	return i + 4, size - 8
}

type probedPacket struct {
	pts       float64
	pos, size int
	key       bool
}

// probePackets lists the video packets of path in file order with ffprobe.
func probePackets(tb testing.TB, path string) []probedPacket {
	tb.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,pos,size,flags", "-of", "csv=p=0", path).Output()
	require.NoError(tb, err, "ffprobe %s", path)
	var pkts []probedPacket
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, ",")
		require.GreaterOrEqual(tb, len(f), 4, "ffprobe line %q", line)
		var p probedPacket
		p.pts, err = strconv.ParseFloat(f[0], 64)
		require.NoError(tb, err)
		p.size, err = strconv.Atoi(f[1])
		require.NoError(tb, err)
		p.pos, err = strconv.Atoi(f[2])
		require.NoError(tb, err)
		p.key = strings.HasPrefix(f[3], "K")
		pkts = append(pkts, p)
	}
	return pkts
}
