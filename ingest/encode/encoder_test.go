//go:build cgo

package encode_test

import (
	"math"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/ingest/encode"
	"github.com/vigil-video/vigil/ingest/h264"
	"github.com/vigil-video/vigil/ingest/synth"
)

const fps = 15

// arrivalBase is the wall clock of the first test frame (Date.now() scale).
const arrivalBase = 1796000000000

// sceneFrames renders n frames of the default synth scene at w x h, timed at
// 15 fps, optionally stamped with their arrival.
func sceneFrames(t testing.TB, w, h, n int, stamp bool) []*frame.Frame {
	t.Helper()
	p := synth.DefaultParams()
	p.Width, p.Height = w, h
	scene := synth.NewScene(p)
	frames := make([]*frame.Frame, n)
	for i := range n {
		if i > 0 {
			scene.Step()
		}
		f := &frame.Frame{StreamID: "cam", Seq: uint64(i)}
		scene.Render(f)
		f.PTS = time.Duration(i) * time.Second / fps
		f.Arrival = time.UnixMilli(arrivalBase + int64(i)*67)
		if stamp {
			synth.Stamp(f, f.Arrival.UnixMilli())
		}
		frames[i] = f
	}
	return frames
}

// encoded is an access unit copied out of emit, with its NAL unit types.
type encoded struct {
	p     frame.Packet
	types []h264.NALUType
	sps   []byte
}

func (e encoded) has(t h264.NALUType) bool {
	for _, x := range e.types {
		if x == t {
			return true
		}
	}
	return false
}

// encodeAll encodes frames and requires exactly one access unit per frame,
// emitted before Encode returns.
func encodeAll(t testing.TB, enc *encode.Encoder, frames []*frame.Frame) []encoded {
	t.Helper()
	var out []encoded
	for i, f := range frames {
		n := 0
		require.NoError(t, enc.Encode(f, func(p *frame.Packet) {
			n++
			au := encoded{p: *p}
			au.p.Data = append([]byte(nil), p.Data...)
			for _, nal := range h264.SplitAnnexB(nil, au.p.Data) {
				au.types = append(au.types, h264.TypeOf(nal))
				if h264.TypeOf(nal) == h264.NALUTypeSPS {
					au.sps = nal
				}
			}
			out = append(out, au)
		}))
		require.Equal(t, 1, n, "frame %d: access units emitted during Encode", i)
	}
	return out
}

// decodeAll decodes access units with package decode and returns copies of
// the pictures with their PTS.
func decodeAll(t testing.TB, aus []encoded) []*frame.Frame {
	t.Helper()
	dec, err := decode.NewDecoder(decode.Config{StreamID: "cam", Params: frame.CodecParams{Codec: frame.CodecH264}, Threads: 1})
	require.NoError(t, err)
	defer dec.Close()
	var out []*frame.Frame
	keep := func(f *frame.Frame) {
		g := &frame.Frame{Width: f.Width, Height: f.Height, Format: f.Format, PTS: f.PTS, Arrival: f.Arrival,
			KeyFrame: f.KeyFrame, Strides: f.Strides}
		for i := range f.Planes {
			g.Planes[i] = append([]byte(nil), f.Planes[i]...)
		}
		f.Release()
		out = append(out, g)
	}
	for _, au := range aus {
		require.NoError(t, dec.Decode(&au.p, keep))
	}
	require.NoError(t, dec.Flush(keep))
	return out
}

// lumaPSNR returns the PSNR of b's luma against a's, in dB.
func lumaPSNR(a, b *frame.Frame) float64 {
	var sum float64
	for y := range a.Height {
		ra := a.Planes[0][y*a.Strides[0]:][:a.Width]
		rb := b.Planes[0][y*b.Strides[0]:][:a.Width]
		for x := range ra {
			d := float64(ra[x]) - float64(rb[x])
			sum += d * d
		}
	}
	mse := sum / float64(a.Width*a.Height)
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		w, h    int
		threads int
	}{
		{name: "360p", w: 640, h: 360},
		{name: "720p", w: 1280, h: 720},
		{name: "720p two slice threads", w: 1280, h: 720, threads: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const seconds = 3
			frames := sceneFrames(t, tc.w, tc.h, seconds*fps, false)
			enc, err := encode.NewH264(encode.Config{Width: tc.w, Height: tc.h, KeyInterval: time.Second, Threads: tc.threads})
			require.NoError(t, err)
			defer enc.Close()
			cfg := enc.Config()
			aus := encodeAll(t, enc, frames)

			total := 0
			for i, au := range aus {
				p := au.p
				require.Equal(t, frames[i].PTS, p.PTS, "PTS of AU %d", i)
				require.Equal(t, frames[i].PTS, p.DTS, "DTS of AU %d", i)
				require.True(t, frames[i].Arrival.Equal(p.Arrival), "Arrival of AU %d", i)
				require.Equal(t, frame.CodecH264, p.Codec)
				require.Equal(t, "cam", p.StreamID)
				require.NotContains(t, au.types, h264.NALUType(0), "AU %d is not Annex-B", i)
				// Key frames every second (15 frames), each an IDR with
				// SPS and PPS in front so that a viewer can join there.
				key := i%fps == 0
				require.Equal(t, key, p.KeyFrame, "KeyFrame of AU %d", i)
				for _, nt := range []h264.NALUType{h264.NALUTypeSPS, h264.NALUTypePPS, h264.NALUTypeIDR} {
					require.Equal(t, key, au.has(nt), "AU %d (%v) has NAL type %d", i, au.types, nt)
				}
				if !key {
					require.True(t, au.has(h264.NALUTypeSlice), "AU %d has no slice: %v", i, au.types)
				}
				// The VBV keeps every burst within its buffer.
				require.LessOrEqual(t, len(p.Data)*8, cfg.Bitrate/2, "AU %d is %d bytes", i, len(p.Data))
				total += len(p.Data)
			}
			// Constrained baseline: profile_idc 66 with constraint_set1.
			sps := aus[0].sps
			require.GreaterOrEqual(t, len(sps), 4)
			require.Equal(t, byte(66), sps[1], "profile_idc")
			require.NotZero(t, sps[2]&0x40, "constraint_set1_flag (constrained baseline)")
			t.Logf("profile-level-id %x", sps[1:4])

			got := decodeAll(t, aus)
			require.Len(t, got, len(frames))
			minPSNR, sumPSNR := math.Inf(1), 0.0
			for i, g := range got {
				require.Equal(t, tc.w, g.Width)
				require.Equal(t, tc.h, g.Height)
				require.Equal(t, frame.PixelFormatYUV420P, g.Format)
				require.Equal(t, frames[i].PTS, g.PTS, "decoded PTS %d", i)
				psnr := lumaPSNR(frames[i], g)
				minPSNR = min(minPSNR, psnr)
				sumPSNR += psnr
			}
			kbps := float64(total*8) / seconds / 1000
			t.Logf("%dx%d at %d kbit/s target: %.0f kbit/s, luma PSNR min %.2f dB, mean %.2f dB",
				tc.w, tc.h, cfg.Bitrate/1000, kbps, minPSNR, sumPSNR/float64(len(got)))
			require.GreaterOrEqual(t, minPSNR, 30.0)
			require.Less(t, kbps, 1.25*float64(cfg.Bitrate)/1000, "rate control overshoots")
		})
	}
}

func TestForceKeyFrame(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 12, false)
	enc, err := encode.NewH264(encode.Config{Width: 640, Height: 360})
	require.NoError(t, err)
	defer enc.Close()
	aus := encodeAll(t, enc, frames[:6])
	enc.ForceKeyFrame()
	aus = append(aus, encodeAll(t, enc, frames[6:])...)
	for i, au := range aus {
		key := i == 0 || i == 6
		require.Equal(t, key, au.p.KeyFrame, "AU %d", i)
		require.Equal(t, key, au.has(h264.NALUTypeIDR), "AU %d: %v", i, au.types)
		require.Equal(t, key, au.has(h264.NALUTypeSPS) && au.has(h264.NALUTypePPS), "AU %d: %v", i, au.types)
	}
	// A viewer that joins at the forced IDR decodes everything from there.
	got := decodeAll(t, aus[6:])
	require.Len(t, got, 6)
	for i, g := range got {
		require.Equal(t, frames[6+i].PTS, g.PTS)
		require.GreaterOrEqual(t, lumaPSNR(frames[6+i], g), 30.0)
	}
}

func TestForceKeyFrameConcurrently(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 20, false)
	enc, err := encode.NewH264(encode.Config{Width: 640, Height: 360})
	require.NoError(t, err)
	defer enc.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				enc.ForceKeyFrame() // a viewer's PLI, from its own goroutine
				runtime.Gosched()
			}
		}
	})
	aus := encodeAll(t, enc, frames)
	close(stop)
	wg.Wait()
	require.Len(t, decodeAll(t, aus), len(frames))
}

// TestUnevenPTS feeds what a looping or glitching source gives: a repeated
// PTS and a PTS that starts over. Each access unit keeps its frame's times.
func TestUnevenPTS(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 10, false)
	frames[5].PTS = frames[4].PTS
	frames[7].PTS, frames[8].PTS = 0, 0
	enc, err := encode.NewH264(encode.Config{Width: 640, Height: 360})
	require.NoError(t, err)
	defer enc.Close()
	aus := encodeAll(t, enc, frames)
	for i, au := range aus {
		require.Equal(t, frames[i].PTS, au.p.PTS, "AU %d", i)
		require.True(t, frames[i].Arrival.Equal(au.p.Arrival), "Arrival of AU %d", i)
	}
	require.Len(t, decodeAll(t, aus), len(frames))
}

// TestStampSurvivesEncoding checks what the browser relies on: the capture
// time drawn by synth.Stamp reads back after H.264 at the default bitrate.
func TestStampSurvivesEncoding(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 30, true)
	enc, err := encode.NewH264(encode.Config{Width: 640, Height: 360})
	require.NoError(t, err)
	defer enc.Close()
	got := decodeAll(t, encodeAll(t, enc, frames))
	require.Len(t, got, len(frames))
	for i, g := range got {
		ms, ok := synth.ReadStamp(g)
		require.True(t, ok, "frame %d: stamp unreadable", i)
		require.Equal(t, frames[i].Arrival.UnixMilli(), ms, "frame %d", i)
	}
}

func TestFullRange(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 6, false)
	for _, f := range frames[3:] {
		f.Format = frame.PixelFormatYUVJ420P
	}
	enc, err := encode.NewH264(encode.Config{Width: 640, Height: 360})
	require.NoError(t, err)
	defer enc.Close()
	aus := encodeAll(t, enc, frames)
	// The switch of range reopens libx264: a new IDR with a new SPS.
	require.True(t, aus[3].p.KeyFrame)
	require.True(t, aus[3].has(h264.NALUTypeSPS))
	require.NotEqual(t, aus[0].sps, aus[3].sps, "the SPS signals the range")
	got := decodeAll(t, aus)
	require.Len(t, got, 6)
	for i, g := range got {
		require.Equal(t, frames[i].Format, g.Format, "frame %d", i)
		require.GreaterOrEqual(t, lumaPSNR(frames[i], g), 30.0)
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  encode.Config
		want encode.Config
	}{
		{name: "720p", cfg: encode.Config{Width: 1280, Height: 720},
			want: encode.Config{Width: 1280, Height: 720, FPS: 15, Bitrate: 1_382_400, KeyInterval: 2 * time.Second, Threads: 1}},
		{name: "small gets the floor", cfg: encode.Config{Width: 320, Height: 240},
			want: encode.Config{Width: 320, Height: 240, FPS: 15, Bitrate: 300_000, KeyInterval: 2 * time.Second, Threads: 1}},
		{name: "4k gets the cap", cfg: encode.Config{Width: 3840, Height: 2160, FPS: 30},
			want: encode.Config{Width: 3840, Height: 2160, FPS: 30, Bitrate: 8_000_000, KeyInterval: 2 * time.Second, Threads: 1}},
		{name: "explicit", cfg: encode.Config{Width: 640, Height: 360, FPS: 29.97, Bitrate: 500_000, KeyInterval: time.Second, Threads: 2},
			want: encode.Config{Width: 640, Height: 360, FPS: 29.97, Bitrate: 500_000, KeyInterval: time.Second, Threads: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := encode.NewH264(tc.cfg)
			require.NoError(t, err)
			defer enc.Close()
			require.Equal(t, tc.want, enc.Config())
		})
	}
}

func TestNewH264Errors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  encode.Config
		want string
	}{
		{name: "odd width", cfg: encode.Config{Width: 641, Height: 360}, want: "encoder size 641x360: width and height must be even"},
		{name: "odd height", cfg: encode.Config{Width: 640, Height: 361}, want: "encoder size 640x361"},
		{name: "zero", cfg: encode.Config{}, want: "encoder size 0x0"},
		{name: "negative", cfg: encode.Config{Width: -2, Height: 2}, want: "encoder size -2x2"},
		{name: "huge", cfg: encode.Config{Width: 16384, Height: 2}, want: "encoder size 16384x2"},
		{name: "fps", cfg: encode.Config{Width: 64, Height: 64, FPS: -1}, want: "encoder fps -1"},
		{name: "fps nan", cfg: encode.Config{Width: 64, Height: 64, FPS: math.NaN()}, want: "encoder fps NaN"},
		{name: "bitrate", cfg: encode.Config{Width: 64, Height: 64, Bitrate: -5}, want: "encoder bitrate -5"},
		{name: "key interval", cfg: encode.Config{Width: 64, Height: 64, KeyInterval: -time.Second}, want: "encoder key interval -1s"},
		{name: "threads", cfg: encode.Config{Width: 64, Height: 64, Threads: -1}, want: "encoder threads -1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := encode.NewH264(tc.cfg)
			require.ErrorContains(t, err, tc.want)
			require.Nil(t, enc)
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	frames := sceneFrames(t, 640, 360, 1, false)
	big := sceneFrames(t, 1280, 720, 1, false)[0]
	f := frames[0]
	enc, err := encode.NewH264(encode.Config{Width: 1280, Height: 720})
	require.NoError(t, err)
	defer enc.Close()
	never := func(*frame.Packet) { t.Fatal("emitted a packet for bad input") }

	require.EqualError(t, enc.Encode(f, never), "encoding frame 0 of cam: frame is 640x360, encoder was opened for 1280x720")

	rgb := clone(big)
	rgb.Format = frame.PixelFormatRGB24
	require.EqualError(t, enc.Encode(rgb, never), "encoding frame 0 of cam: pixel format rgb24 is not yuv420p or yuvj420p")

	short := clone(big)
	short.Planes[2] = short.Planes[2][:100]
	require.ErrorContains(t, enc.Encode(short, never), "encoding frame 0 of cam: planes or strides [1280 640 640] too small for 1280x720")

	narrow := clone(big)
	narrow.Strides[0] = 100
	require.ErrorContains(t, enc.Encode(narrow, never), "too small for 1280x720")

	require.ErrorContains(t, enc.Encode(nil, never), "nil frame")

	// The encoder still works after rejecting bad frames, and the first
	// frame it encodes is an IDR.
	aus := encodeAll(t, enc, []*frame.Frame{big})
	require.True(t, aus[0].p.KeyFrame)

	enc.Close()
	enc.Close()
	require.ErrorIs(t, enc.Encode(big, never), encode.ErrClosed)
}

// clone returns a frame that shares f's planes.
func clone(f *frame.Frame) *frame.Frame {
	return &frame.Frame{StreamID: f.StreamID, Seq: f.Seq, PTS: f.PTS, Arrival: f.Arrival,
		Width: f.Width, Height: f.Height, Format: f.Format, Planes: f.Planes, Strides: f.Strides}
}

// rssBytes returns the resident set size of the process.
func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	fields := strings.Fields(string(b))
	pages, err := strconv.ParseInt(fields[1], 10, 64)
	require.NoError(t, err)
	return pages * int64(os.Getpagesize())
}

// TestCloseFreesC opens, uses and closes many encoders: what libx264 and
// libavcodec allocate must come back. An encoder left open holds about 16 MB
// at 720p, and its input frame alone 1.4 MB, so a leak of either over 60
// encoders stands well above the few tens of MB that malloc's arenas wander.
func TestCloseFreesC(t *testing.T) {
	frames := sceneFrames(t, 1280, 720, 2, false)
	cycle := func() {
		enc, err := encode.NewH264(encode.Config{Width: 1280, Height: 720})
		require.NoError(t, err)
		encodeAll(t, enc, frames)
		enc.Close()
	}
	for range 5 {
		cycle()
	}
	before := rssBytes(t)
	const n = 60
	for range n {
		cycle()
	}
	grown := rssBytes(t) - before
	t.Logf("RSS grew by %d KiB over %d encoders", grown>>10, n)
	require.Less(t, grown, int64(64<<20), "C memory leaks: RSS grew by %d KiB", grown>>10)
}
