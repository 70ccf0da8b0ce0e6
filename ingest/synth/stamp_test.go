package synth_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

// render returns a picture of the default scene at w x h.
func render(t *testing.T, w, h int) *frame.Frame {
	t.Helper()
	p := synth.DefaultParams()
	p.Width, p.Height = w, h
	var f frame.Frame
	synth.NewScene(p).Render(&f)
	return &f
}

// padded copies f into planes whose rows are pad bytes longer than needed.
func padded(f *frame.Frame, pad int) *frame.Frame {
	g := frame.Frame{StreamID: f.StreamID, Width: f.Width, Height: f.Height, Format: f.Format}
	for i := range 3 {
		rows := f.Height
		w := f.Width
		if i > 0 {
			rows, w = (f.Height+1)/2, (f.Width+1)/2
		}
		g.Strides[i] = w + pad
		g.Planes[i] = bytes.Repeat([]byte{0xEE}, g.Strides[i]*rows)
		for y := range rows {
			copy(g.Planes[i][y*g.Strides[i]:][:w], f.Planes[i][y*f.Strides[i]:][:w])
		}
	}
	return &g
}

// wantCells spells the protocol's layout independently of stamp.go: the
// sync bits 1010, then ms as 44 binary digits, most significant first.
func wantCells(ms int64) string {
	return "1010" + fmt.Sprintf("%044b", ms)
}

func TestStampLayout(t *testing.T) {
	const ms = 1796000000123 // 2026-11-29, the scale of Date.now()
	f := padded(render(t, 640, 360), 24)
	before := padded(f, 0)
	synth.Stamp(f, ms)
	cells := wantCells(ms)
	require.Len(t, cells, 48)
	for y := range f.Height {
		for x := range f.Width {
			got := f.Planes[0][y*f.Strides[0]+x]
			if x >= synth.StampWidth || y >= synth.StampHeight {
				require.Equal(t, before.Planes[0][y*before.Strides[0]+x], got, "luma outside the stamp at %d,%d", x, y)
				continue
			}
			want := byte(16)
			if cells[y/16*24+x/16] == '1' {
				want = 235
			}
			require.Equal(t, want, got, "luma at %d,%d", x, y)
		}
	}
	for p := 1; p < 3; p++ {
		for y := range f.Height / 2 {
			for x := range f.Width / 2 {
				got := f.Planes[p][y*f.Strides[p]+x]
				if x < synth.StampWidth/2 && y < synth.StampHeight/2 {
					require.Equal(t, byte(128), got, "chroma plane %d at %d,%d", p, x, y)
				} else {
					require.Equal(t, before.Planes[p][y*before.Strides[p]+x], got, "chroma outside the stamp")
				}
			}
		}
	}
	// The padding past each row is not picture and stays untouched.
	require.Equal(t, byte(0xEE), f.Planes[0][f.Width])
}

func TestStampRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		w, h   int
		pad    int
		format frame.PixelFormat
		ms     int64
	}{
		{name: "now", w: 1280, h: 720, format: frame.PixelFormatYUV420P, ms: 1796000000123},
		{name: "zero", w: 640, h: 360, format: frame.PixelFormatYUV420P, ms: 0},
		{name: "largest", w: 640, h: 360, format: frame.PixelFormatYUV420P, ms: 1<<44 - 1},
		{name: "top bit", w: 640, h: 360, format: frame.PixelFormatYUV420P, ms: 1 << 43},
		{name: "smallest frame", w: 384, h: 32, format: frame.PixelFormatYUV420P, ms: 1234567},
		{name: "full range", w: 640, h: 360, format: frame.PixelFormatYUVJ420P, ms: 1796000000999},
		{name: "padded rows", w: 640, h: 360, pad: 64, format: frame.PixelFormatYUV420P, ms: 1700000000001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := padded(render(t, tc.w, tc.h), tc.pad)
			f.Format = tc.format
			synth.Stamp(f, tc.ms)
			got, ok := synth.ReadStamp(f)
			require.True(t, ok)
			require.Equal(t, tc.ms, got)
		})
	}
	t.Run("wraps at 44 bits", func(t *testing.T) {
		f := render(t, 640, 360)
		synth.Stamp(f, 1<<44+5)
		got, ok := synth.ReadStamp(f)
		require.True(t, ok)
		require.Equal(t, int64(5), got)
	})
	t.Run("noisy", func(t *testing.T) {
		// Each bit is a mean over 64 pixels, so strong noise does not flip it.
		f := render(t, 640, 360)
		synth.Stamp(f, 1796000000123)
		rng := rand.New(rand.NewPCG(1, 2))
		for i, v := range f.Planes[0] {
			f.Planes[0][i] = byte(min(255, max(0, int(v)+rng.IntN(161)-80)))
		}
		got, ok := synth.ReadStamp(f)
		require.True(t, ok)
		require.Equal(t, int64(1796000000123), got)
	})
}

func TestReadStampRejects(t *testing.T) {
	stamped := func() *frame.Frame {
		f := render(t, 640, 360)
		synth.Stamp(f, 1796000000123)
		return f
	}
	flat := func(v byte) *frame.Frame {
		f := render(t, 640, 360)
		for i := range f.Planes[0] {
			f.Planes[0][i] = v
		}
		return f
	}
	for _, tc := range []struct {
		name string
		f    *frame.Frame
	}{
		{name: "unstamped scene", f: render(t, 1280, 720)},
		{name: "white", f: flat(235)},
		{name: "black", f: flat(16)},
		{name: "grey", f: flat(128)},
		{name: "broken sync", f: func() *frame.Frame {
			f := stamped()
			// Cell 1 must be 0; paint its centre white.
			for y := 4; y < 12; y++ {
				for x := 16 + 4; x < 16+12; x++ {
					f.Planes[0][y*f.Strides[0]+x] = 235
				}
			}
			return f
		}()},
		{name: "rgb", f: func() *frame.Frame { f := stamped(); f.Format = frame.PixelFormatRGB24; return f }()},
		{name: "too narrow", f: func() *frame.Frame { f := stamped(); f.Width = 383; return f }()},
		{name: "short plane", f: func() *frame.Frame { f := stamped(); f.Planes[0] = f.Planes[0][:1000]; return f }()},
		{name: "nil", f: nil},
		{name: "empty", f: &frame.Frame{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, ok := synth.ReadStamp(tc.f)
			require.False(t, ok)
		})
	}
}

func TestStampLeavesUnfitFrames(t *testing.T) {
	small := render(t, 320, 240)
	before := padded(small, 0)
	synth.Stamp(small, 1796000000123)
	require.Equal(t, before.Planes, small.Planes, "a frame narrower than the stamp is left alone")

	short := render(t, 640, 360)
	short.Planes[1] = short.Planes[1][:100]
	require.NotPanics(t, func() { synth.Stamp(short, 1) })
	synth.Stamp(nil, 1)
	synth.Stamp(&frame.Frame{}, 1)
}

func BenchmarkStamp(b *testing.B) {
	p := synth.DefaultParams()
	var f frame.Frame
	synth.NewScene(p).Render(&f)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		synth.Stamp(&f, 1796000000000+int64(i))
		if _, ok := synth.ReadStamp(&f); !ok {
			b.Fatal("stamp not read back")
		}
	}
}
