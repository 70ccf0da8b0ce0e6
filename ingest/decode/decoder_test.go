//go:build cgo

package decode

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireIncreasing checks that the frames' PTS rise strictly and that Seq
// counts from 0.
func requireIncreasing(t *testing.T, frames []decoded) {
	t.Helper()
	for i, f := range frames {
		require.Equal(t, uint64(i), f.Seq)
		if i > 0 {
			require.Greater(t, f.PTS, frames[i-1].PTS, "frame %d", i)
		}
	}
}

func TestDecodeReferenceClip(t *testing.T) {
	path := shareddata.Path(t, "video/vtest_h264.mp4")
	frames, st, errs := decodeFile(t, path, Config{StreamID: "vtest"})
	require.Empty(t, errs)
	require.Len(t, frames, 795)
	requireIncreasing(t, frames)
	for _, f := range frames {
		require.Equal(t, 768, f.Width)
		require.Equal(t, 576, f.Height)
		require.Equal(t, frame.PixelFormatYUV420P, f.Format)
		require.GreaterOrEqual(t, f.Strides[0], 768)
		require.Equal(t, "vtest", f.StreamID)
	}
	// 10 fps from 0: frame i is shown at i/10 s.
	require.Equal(t, time.Duration(0), frames[0].PTS)
	require.Equal(t, 79400*time.Millisecond, frames[794].PTS)
	require.True(t, frames[0].KeyFrame)
	require.Equal(t, Stats{Packets: 795, Frames: 795}, st)

	probed := probeFrames(t, path)
	require.Len(t, probed, 795)
	for i, p := range probed {
		require.Equal(t, p.key, frames[i].KeyFrame, "key_frame of frame %d", i)
	}
}

func TestDecodeClips(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		codec  frame.Codec
		args   []string
		format frame.PixelFormat
	}{
		{"h264 mp4", "a.mp4", frame.CodecH264, []string{"-c:v", "libx264", "-g", "10"}, frame.PixelFormatYUV420P},
		{"h264 mkv", "a.mkv", frame.CodecH264, []string{"-c:v", "libx264", "-g", "10"}, frame.PixelFormatYUV420P},
		{"h264 annexb ts", "a.ts", frame.CodecH264, []string{"-c:v", "libx264", "-g", "10"}, frame.PixelFormatYUV420P},
		{"h264 bframes", "b.mp4", frame.CodecH264, []string{"-c:v", "libx264", "-g", "12", "-bf", "3"}, frame.PixelFormatYUV420P},
		{"h265 mp4", "a.mp4", frame.CodecH265, []string{"-c:v", "libx265", "-x265-params", "keyint=10:log-level=error"}, frame.PixelFormatYUV420P},
		{"h265 mkv", "a.mkv", frame.CodecH265, []string{"-c:v", "libx265", "-x265-params", "keyint=10:log-level=error"}, frame.PixelFormatYUV420P},
		{"vp8 webm", "a.webm", frame.CodecVP8, []string{"-c:v", "libvpx", "-g", "10", "-b:v", "1M"}, frame.PixelFormatYUV420P},
		{"mjpeg mkv", "a.mkv", frame.CodecMJPEG, []string{"-c:v", "mjpeg", "-pix_fmt", "yuvj422p"}, frame.PixelFormatYUVJ420P},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeClip(t, tc.file, append(testsrc("320x240", 25, 2), tc.args...)...)
			probed := probeFrames(t, path)
			for _, threads := range []int{1, 0} {
				frames, st, errs := decodeFile(t, path, Config{Threads: threads})
				require.Empty(t, errs)
				require.Len(t, frames, len(probed), "threads %d", threads)
				require.Len(t, frames, 50)
				requireIncreasing(t, frames)
				require.Equal(t, time.Duration(0), frames[0].PTS)
				for i, f := range frames {
					require.Equal(t, 320, f.Width)
					require.Equal(t, 240, f.Height)
					require.Equal(t, tc.format, f.Format)
					// Vigil counts from the start of the stream; ffprobe
					// gives container times (an MPEG-TS starts at 1.4 s).
					require.InDelta(t, probed[i].pts-probed[0].pts, (f.PTS - frames[0].PTS).Seconds(), 1e-6, "PTS of frame %d", i)
					require.Equal(t, probed[i].key, f.KeyFrame, "key_frame of frame %d", i)
				}
				require.Zero(t, st.CorruptPackets)
			}
			dmx, err := OpenFile(path)
			require.NoError(t, err)
			defer dmx.Close()
			p := dmx.Params()
			require.Equal(t, tc.codec, p.Codec)
			require.Equal(t, 320, p.Width)
			require.Equal(t, 240, p.Height)
			require.InDelta(t, 25, p.FrameRate, 0.01)
		})
	}
}

func TestKeyframesOnly(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"h264", []string{"-c:v", "libx264", "-g", "10"}},
		{"h265", []string{"-c:v", "libx265", "-x265-params", "keyint=10:log-level=error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeClip(t, "k.mp4", append(testsrc("320x240", 25, 4), tc.args...)...)
			var want []float64
			for _, p := range probeFrames(t, path) {
				if p.key {
					want = append(want, p.pts)
				}
			}
			require.GreaterOrEqual(t, len(want), 10)
			frames, _, errs := decodeFile(t, path, Config{KeyframesOnly: true})
			require.Empty(t, errs)
			var got []float64
			for _, f := range frames {
				require.True(t, f.KeyFrame)
				got = append(got, f.PTS.Seconds())
			}
			require.InDeltaSlice(t, want, got, 1e-6)
		})
	}
}

func TestCorruptFile(t *testing.T) {
	// One encoder thread keeps the bitstream, hence the damage, reproducible.
	clean := makeClip(t, "c.mp4", append(testsrc("640x360", 25, 4),
		"-c:v", "libx264", "-threads", "1", "-g", "10", "-movflags", "+faststart")...)
	off, n := mdatRange(t, clean)
	damageAt, damageLen := off+n/2, 20000
	bad := overwrite(t, clean, damageAt, damageLen)

	// Find the first key frame whose packet starts after the damage, from
	// ffprobe's packet list of the clean file (decode order).
	pkts := probePackets(t, clean)
	var firstDamaged, recoverAt = -1, -1
	for i, p := range pkts {
		if p.pos+p.size > damageAt && p.pos < damageAt+damageLen && firstDamaged < 0 {
			firstDamaged = i
		}
		if p.pos >= damageAt+damageLen && p.key {
			recoverAt = i
			break
		}
	}
	require.GreaterOrEqual(t, firstDamaged, 0)
	require.Greater(t, recoverAt, firstDamaged)
	recoverPTS := pkts[recoverAt].pts

	probedClean := probeFrames(t, clean)
	for _, threads := range []int{1, 0} {
		frames, st, errs := decodeFile(t, bad, Config{StreamID: "cam-3", Threads: threads})
		require.NotEmpty(t, errs, "threads %d", threads)
		require.ErrorContains(t, errs[0], "of cam-3: corrupt packet")
		require.Positive(t, st.CorruptPackets)
		require.Positive(t, st.DroppedPackets)
		requireIncreasing(t, frames)
		require.Less(t, len(frames), len(probedClean))

		// Everything from the key frame after the damage decodes.
		var want, got []float64
		for _, p := range probedClean {
			if p.pts >= recoverPTS-1e-9 {
				want = append(want, p.pts)
			}
		}
		for _, f := range frames {
			if f.PTS.Seconds() >= recoverPTS-1e-9 {
				got = append(got, f.PTS.Seconds())
			}
		}
		require.NotEmpty(t, want)
		require.InDeltaSlice(t, want, got, 1e-6, "threads %d", threads)
		// And everything before the damaged packet too.
		for i, p := range probedClean {
			if p.pts < pkts[firstDamaged].pts-0.2 {
				require.InDelta(t, p.pts, frames[i].PTS.Seconds(), 1e-6)
			}
		}
	}
}

func TestTruncatedFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		faststart bool
	}{
		{"index first", true},
		{"index last", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(testsrc("320x240", 25, 4), "-c:v", "libx264", "-g", "10")
			if tc.faststart {
				args = append(args, "-movflags", "+faststart")
			}
			full := makeClip(t, "full.mp4", args...)
			data, err := os.ReadFile(full)
			require.NoError(t, err)
			cut := filepath.Join(t.TempDir(), "cut.mp4")
			require.NoError(t, os.WriteFile(cut, data[:len(data)/2], 0o644))

			dmx, err := OpenFile(cut)
			if !tc.faststart {
				// Without the index at the end there is nothing to read.
				require.Error(t, err)
				require.ErrorContains(t, err, "opening "+cut+": ")
				require.ErrorContains(t, err, "no moov index (cut short or never finished)")
				return
			}
			require.NoError(t, err)
			defer dmx.Close()
			dec, err := NewDecoder(Config{Params: dmx.Params()})
			require.NoError(t, err)
			defer dec.Close()
			var frames int
			emit := func(f *frame.Frame) { frames++; f.Release() }
			var pkt frame.Packet
			for {
				err := dmx.ReadPacket(&pkt)
				if err != nil {
					if !errors.Is(err, io.EOF) {
						require.ErrorContains(t, err, cut)
					}
					break
				}
				_ = dec.Decode(&pkt, emit) // the last packet may be cut short
			}
			_ = dec.Flush(emit)
			require.Greater(t, frames, 10)
			require.Less(t, frames, 100)
		})
	}
}

func TestOpenErrors(t *testing.T) {
	needFFmpeg(t)
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mp4")
	require.NoError(t, os.WriteFile(garbage, []byte("this is not a video file at all"), 0o644))
	audio := makeClip(t, "tone.m4a", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.mp4"), "opening " + filepath.Join(dir, "missing.mp4") + ": No such file or directory"},
		{"garbage", garbage, "opening " + garbage + ": "},
		{"audio only", audio, "opening " + audio + ": no video stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := OpenFile(tc.path)
			require.Error(t, err)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestPixelValues(t *testing.T) {
	// Red (255, 0, 0) in BT.601: limited range Y=81 U=90 V=240
	// (Y = 16 + 65.481 R, Cb = 128 - 37.797 R, Cr = 128 + 112 R, R in [0, 1]);
	// full range Y=76 U=85 V=255.
	for _, tc := range []struct {
		name      string
		pixFmt    string
		format    frame.PixelFormat
		y, u, v   float64
		converted bool
	}{
		{"yuv420p", "yuv420p", frame.PixelFormatYUV420P, 81, 90, 240, false},
		{"yuvj420p", "yuvj420p", frame.PixelFormatYUVJ420P, 76, 85, 255, false},
		{"yuv444p converted", "yuv444p", frame.PixelFormatYUV420P, 81, 90, 240, true},
		{"yuv422p converted", "yuv422p", frame.PixelFormatYUV420P, 81, 90, 240, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeClip(t, "red.mkv", "-f", "lavfi", "-i", "color=c=red:size=96x64:rate=10", "-t", "1",
				"-c:v", "libx264", "-qp", "0", "-pix_fmt", tc.pixFmt)
			dmx, err := OpenFile(path)
			require.NoError(t, err)
			defer dmx.Close()
			dec, err := NewDecoder(Config{Params: dmx.Params()})
			require.NoError(t, err)
			defer dec.Close()
			n := 0
			emit := func(f *frame.Frame) {
				defer f.Release()
				n++
				require.Equal(t, tc.format, f.Format)
				require.Equal(t, 96, f.Width)
				require.Equal(t, 64, f.Height)
				for i, want := range []float64{tc.y, tc.u, tc.v} {
					w, h := 96, 64
					if i > 0 {
						w, h = 48, 32
					}
					require.GreaterOrEqual(t, len(f.Planes[i]), f.Strides[i]*(h-1)+w)
					for y := range h {
						for x := range w {
							require.InDelta(t, want, f.Planes[i][y*f.Strides[i]+x], 2, "plane %d at %d,%d", i, x, y)
						}
					}
				}
			}
			var pkt frame.Packet
			for dmx.ReadPacket(&pkt) == nil {
				require.NoError(t, dec.Decode(&pkt, emit))
			}
			require.NoError(t, dec.Flush(emit))
			require.Equal(t, 10, n)
			if tc.converted {
				require.Equal(t, uint64(10), dec.Stats().ConvertedFrames)
			}
		})
	}
}

// TestReleaseElsewhere hands frames to another goroutine, closes the decoder
// while that one still holds some, and checks that they stay readable.
func TestReleaseElsewhere(t *testing.T) {
	path := makeClip(t, "r.mp4", append(testsrc("320x240", 25, 2), "-c:v", "libx264", "-g", "10")...)
	want := probeFrames(t, path)
	dmx, err := OpenFile(path)
	require.NoError(t, err)
	defer dmx.Close()
	dec, err := NewDecoder(Config{Params: dmx.Params(), PoolSize: 4})
	require.NoError(t, err)

	ch := make(chan *frame.Frame, 100)
	held := make(chan []*frame.Frame)
	go func() {
		var keep []*frame.Frame
		for f := range ch {
			sum := 0
			for _, b := range f.Planes[0] {
				sum += int(b)
			}
			if f.Seq%5 == 0 {
				keep = append(keep, f) // released after Close
				continue
			}
			f.Release()
		}
		held <- keep
	}()
	emit := func(f *frame.Frame) { ch <- f }
	var pkt frame.Packet
	for dmx.ReadPacket(&pkt) == nil {
		require.NoError(t, dec.Decode(&pkt, emit))
	}
	require.NoError(t, dec.Flush(emit))
	close(ch)
	keep := <-held
	require.Len(t, keep, len(want)/5)
	// Copy the pixels the frames hold, close the decoder, and compare.
	before := make([][]byte, len(keep))
	for i, f := range keep {
		before[i] = slices.Clone(f.Planes[0])
	}
	require.NoError(t, dec.Close())
	require.ErrorIs(t, dec.Decode(&pkt, emit), ErrClosed)
	for i, f := range keep {
		require.Equal(t, before[i], f.Planes[0])
		f.Release()
	}
	require.Positive(t, dec.Stats().PoolGrowths)
}

// TestSteadyStateAllocs decodes one GOP over and over and checks that frames
// cost no Go allocation.
func TestSteadyStateAllocs(t *testing.T) {
	path := makeClip(t, "g.mp4", append(testsrc("320x240", 25, 1), "-c:v", "libx264", "-g", "10", "-bf", "0")...)
	dmx, err := OpenFile(path)
	require.NoError(t, err)
	defer dmx.Close()
	var gop []frame.Packet
	for {
		var p frame.Packet
		if err := dmx.ReadPacket(&p); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		if p.KeyFrame && len(gop) > 0 {
			break
		}
		gop = append(gop, p)
	}
	require.Len(t, gop, 10)
	for _, threads := range []int{1, 2} {
		dec, err := NewDecoder(Config{Params: dmx.Params(), Threads: threads})
		require.NoError(t, err)
		frames := 0
		emit := func(f *frame.Frame) { frames++; f.Release() }
		run := func() {
			for i := range gop {
				if err := dec.Decode(&gop[i], emit); err != nil {
					panic(err)
				}
			}
			if err := dec.Flush(emit); err != nil {
				panic(err)
			}
		}
		run()
		allocs := testing.AllocsPerRun(20, run)
		require.Equal(t, 22*10, frames, "threads %d", threads) // AllocsPerRun warms up once
		require.Zero(t, allocs, "threads %d: allocations per GOP of 10 frames", threads)
		require.NoError(t, dec.Close())
	}
}

func TestDemuxerLoop(t *testing.T) {
	path := makeClip(t, "l.mkv", append(testsrc("320x240", 25, 2), "-c:v", "libx264", "-g", "10")...)
	dmx, err := OpenFile(path)
	require.NoError(t, err)
	defer dmx.Close()
	readAll := func() []time.Duration {
		var pts []time.Duration
		var p frame.Packet
		for {
			err := dmx.ReadPacket(&p)
			if errors.Is(err, io.EOF) {
				return pts
			}
			require.NoError(t, err)
			require.NotEmpty(t, p.Data)
			require.Equal(t, frame.CodecH264, p.Codec)
			pts = append(pts, p.PTS)
		}
	}
	first := readAll()
	require.Len(t, first, 50)
	require.NoError(t, dmx.SeekStart())
	require.Equal(t, first, readAll())

	// Reading reuses the packet's buffer.
	require.NoError(t, dmx.SeekStart())
	var p frame.Packet
	p.Data = make([]byte, 0, 1<<20)
	allocs := testing.AllocsPerRun(40, func() {
		if err := dmx.ReadPacket(&p); err != nil {
			panic(err)
		}
	})
	require.Zero(t, allocs)
	require.NoError(t, dmx.Close())
	require.ErrorIs(t, dmx.ReadPacket(&p), ErrClosed)
}

func TestDecodeFile(t *testing.T) {
	path := makeClip(t, "d.mp4", append(testsrc("320x240", 25, 2), "-c:v", "libx264")...)
	res, err := DecodeFile(context.Background(), path, 2)
	require.NoError(t, err)
	require.Equal(t, uint64(50), res.Frames)
	require.Positive(t, res.FPS())

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = DecodeFile(ctx, path, 1)
	require.ErrorIs(t, err, context.Canceled)
}

func TestNewDecoderErrors(t *testing.T) {
	_, err := NewDecoder(Config{StreamID: "cam-1"})
	require.ErrorIs(t, err, ErrUnsupportedCodec)
	require.ErrorContains(t, err, "cam-1")
	_, err = NewDecoder(Config{Params: frame.CodecParams{Codec: frame.CodecH264}, Threads: -1})
	require.ErrorContains(t, err, "threads")
}

func TestGarbagePackets(t *testing.T) {
	dec, err := NewDecoder(Config{StreamID: "junk", Params: frame.CodecParams{Codec: frame.CodecH264}})
	require.NoError(t, err)
	defer dec.Close()
	emit := func(f *frame.Frame) { f.Release() }
	for _, data := range [][]byte{
		nil,
		{},
		{0, 0, 0, 1},
		{0, 0, 0, 1, 0x65, 0xff, 0xff},
		{0, 0, 1, 0x67, 0x42, 0, 0x1e, 0xff, 0, 0, 1, 0x68},
		make([]byte, 5000),
	} {
		_ = dec.Decode(&frame.Packet{Data: data, KeyFrame: true}, emit)
	}
	if err := dec.Flush(emit); err != nil {
		require.ErrorIs(t, err, ErrCorruptPacket)
	}
	require.Equal(t, uint64(2), dec.Stats().EmptyPackets)
}

// TestArrival checks that each frame carries the arrival time of the packet
// it was coded in, through frame threads and reordering.
func TestArrival(t *testing.T) {
	path := makeClip(t, "a.mp4", append(testsrc("320x240", 25, 2), "-c:v", "libx264", "-g", "10", "-bf", "2")...)
	dmx, err := OpenFile(path)
	require.NoError(t, err)
	defer dmx.Close()
	dec, err := NewDecoder(Config{Params: dmx.Params(), Threads: 2})
	require.NoError(t, err)
	defer dec.Close()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	arrivals := map[time.Duration]time.Time{}
	n := 0
	emit := func(f *frame.Frame) {
		defer f.Release()
		n++
		require.Equal(t, arrivals[f.PTS], f.Arrival, "frame at %v", f.PTS)
	}
	var pkt frame.Packet
	for i := 0; dmx.ReadPacket(&pkt) == nil; i++ {
		pkt.Arrival = base.Add(time.Duration(i) * time.Second)
		arrivals[pkt.PTS] = pkt.Arrival
		require.NoError(t, dec.Decode(&pkt, emit))
	}
	require.NoError(t, dec.Flush(emit))
	require.Equal(t, 50, n)
}
