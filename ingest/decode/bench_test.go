//go:build cgo

package decode

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// benchClip returns the 1080p H.264 version of the reference clip, made with
// ffmpeg on first use and cached in the temporary folder by name (the same
// file `vigil bench decode` makes).
func benchClip(b *testing.B) string {
	b.Helper()
	src := shareddata.Path(b, "video/vtest_h264.mp4")
	dir := filepath.Join(os.TempDir(), "vigil-bench")
	out := filepath.Join(dir, "vtest_h264-1080p.mp4")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	needFFmpeg(b)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	tmp := out + ".part.mp4"
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-i", src,
		"-vf", "scale=1920:1080", "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-an", tmp)
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("making %s: %v\n%s", out, err, msg)
	}
	if err := os.Rename(tmp, out); err != nil {
		b.Fatal(err)
	}
	return out
}

// BenchmarkDecode decodes the 1080p clip from packets held in memory, so that
// it measures the decoder alone. One op is the whole clip.
func BenchmarkDecode(b *testing.B) {
	path := benchClip(b)
	dmx, err := OpenFile(path)
	if err != nil {
		b.Fatal(err)
	}
	params := dmx.Params()
	var pkts []frame.Packet
	for {
		var p frame.Packet
		err := dmx.ReadPacket(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			b.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	dmx.Close()

	for _, threads := range []int{1, 2, 0} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			dec, err := NewDecoder(Config{StreamID: "bench", Params: params, Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer dec.Close()
			var frames uint64
			emit := func(f *frame.Frame) { frames++; f.Release() }
			b.ReportAllocs()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for b.Loop() {
				for i := range pkts {
					if err := dec.Decode(&pkts[i], emit); err != nil {
						b.Fatal(err)
					}
				}
				if err := dec.Flush(emit); err != nil {
					b.Fatal(err)
				}
			}
			runtime.ReadMemStats(&after)
			if frames == 0 {
				b.Fatal("no frames decoded")
			}
			b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(frames), "allocs/frame")
		})
	}
}
