//go:build cgo

package decode

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

// Fuzz input framing: chunks of a 2-byte big-endian header and a body. The
// header's top bit marks a key frame; the next one, on the first chunk only,
// makes the body the codec's extradata; the low 14 bits are the body's
// length (cut to what is left).
const (
	fuzzKey   = 0x8000
	fuzzExtra = 0x4000
)

// fuzzChunks splits data into extradata and packets.
func fuzzChunks(data []byte) (extra []byte, pkts []frame.Packet) {
	for i := 0; len(data) >= 2; i++ {
		hdr := int(data[0])<<8 | int(data[1])
		n := min(hdr&0x3fff, len(data)-2)
		body := data[2 : 2+n]
		data = data[2+n:]
		if i == 0 && hdr&fuzzExtra != 0 {
			extra = body
			continue
		}
		pkts = append(pkts, frame.Packet{Data: body, KeyFrame: hdr&fuzzKey != 0})
	}
	return extra, pkts
}

// FuzzDecode feeds arbitrary bytes to the H.264 and H.265 decoders as
// packets, with and without extradata: nothing may crash, and every frame that
// comes out must describe memory it really has.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte{})
	f.Add(uint8(1), []byte{0x80, 4, 0, 0, 0, 1})
	f.Add(uint8(2), []byte{0x80, 8, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0xff})
	debug.SetTraceback("all")
	f.Fuzz(func(t *testing.T, mode uint8, data []byte) {
		// A hang must crash the worker with its stacks, so that the fuzzer
		// keeps the input; it would otherwise only see a stalled worker.
		watchdog := time.AfterFunc(10*time.Second, func() { panic("decoding one fuzz input took over 10s") })
		defer watchdog.Stop()
		extra, pkts := fuzzChunks(data)
		codec := frame.CodecH264
		if mode&1 != 0 {
			codec = frame.CodecH265
		}
		dec, err := NewDecoder(Config{
			StreamID: "fuzz",
			Params:   frame.CodecParams{Codec: codec, Extradata: extra},
			Threads:  1 + int(mode>>1&1),
			// Pictures of up to 16384x16384 take seconds just to clear.
			MaxPixels: 1 << 20,
		})
		if err != nil {
			return // libavcodec may refuse the extradata
		}
		defer dec.Close()
		emit := func(f *frame.Frame) {
			defer f.Release()
			if f.Width <= 0 || f.Height <= 0 {
				t.Fatalf("frame of %dx%d", f.Width, f.Height)
			}
			ch := (f.Height + 1) / 2
			for i, rows := range [3]int{f.Height, ch, ch} {
				w := f.Width
				if i > 0 {
					w = (f.Width + 1) / 2
				}
				if f.Strides[i] < w || len(f.Planes[i]) < f.Strides[i]*rows {
					t.Fatalf("plane %d: stride %d, %d bytes for %dx%d", i, f.Strides[i], len(f.Planes[i]), f.Width, f.Height)
				}
				_ = f.Planes[i][len(f.Planes[i])-1]
			}
		}
		for i := range pkts {
			_ = dec.Decode(&pkts[i], emit)
		}
		_ = dec.Flush(emit)
	})
}

// TestFuzzSeeds checks that the seed corpus holds real streams, so that the
// fuzzer starts from inputs that reach deep into the decoders.
func TestFuzzSeeds(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames int
	}{
		{"h264-avcc", 4}, {"h264-avcc-threads", 4}, {"h264-annexb", 4}, {"h265-hvcc", 4}, {"h265-annexb", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzDecode", tc.name))
			require.NoError(t, err)
			lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
			require.Len(t, lines, 3)
			mode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(lines[1], "uint8("), ")"), 10, 8)
			require.NoError(t, err)
			body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[2], "[]byte("), ")"))
			require.NoError(t, err)
			extra, pkts := fuzzChunks([]byte(body))
			codec := frame.CodecH264
			if mode&1 != 0 {
				codec = frame.CodecH265
			}
			dec, err := NewDecoder(Config{Params: frame.CodecParams{Codec: codec, Extradata: extra}})
			require.NoError(t, err)
			defer dec.Close()
			n := 0
			emit := func(f *frame.Frame) { n++; f.Release() }
			for i := range pkts {
				require.NoError(t, dec.Decode(&pkts[i], emit))
			}
			require.NoError(t, dec.Flush(emit))
			require.Equal(t, tc.frames, n)
		})
	}
}
