package prep

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

// The reference below is deliberately slow and plain: float64, every source
// pixel converted with the textbook BT.601 equations, then every output
// pixel sampled from that RGB image. Fill must match it within refBound.

// refBound is the largest difference allowed between Fill and the
// reference, in 0..255 units. Fill rounds the luma and the chroma term of
// each converted pixel to 1/8 (so a pixel is off by at most 1/4), bilinear
// and nearest resizing keep that bound, and bicubic's 4x4 kernel, whose
// absolute weights sum to at most 1.89, stretches it to 0.47.
const refBound = 0.5

// worstSeen tracks the largest difference seen, for the log.
var worstSeen float64

// refRGB converts a frame to float64 RGB 0..255, pixel by pixel.
func refRGB(f *frame.Frame) [][3]float64 {
	img := make([][3]float64, f.Width*f.Height)
	for y := range f.Height {
		for x := range f.Width {
			var r, g, b float64
			switch f.Format {
			case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P:
				Y := float64(f.Planes[0][y*f.Strides[0]+x])
				U := float64(f.Planes[1][y/2*f.Strides[1]+x/2]) - 128
				V := float64(f.Planes[2][y/2*f.Strides[2]+x/2]) - 128
				if f.Format == frame.PixelFormatYUV420P {
					// BT.601, limited range (as in swscale and Poynton).
					Y = 1.164383 * (Y - 16)
					r = Y + 1.596027*V
					g = Y - 0.391762*U - 0.812968*V
					b = Y + 2.017232*U
				} else {
					// BT.601, full range (JFIF).
					r = Y + 1.402*V
					g = Y - 0.344136*U - 0.714136*V
					b = Y + 1.772*U
				}
			case frame.PixelFormatRGB24:
				p := f.Planes[0][y*f.Strides[0]+3*x:]
				r, g, b = float64(p[0]), float64(p[1]), float64(p[2])
			case frame.PixelFormatGray8:
				v := float64(f.Planes[0][y*f.Strides[0]+x])
				r, g, b = v, v, v
			}
			img[y*f.Width+x] = [3]float64{clampF(r), clampF(g), clampF(b)}
		}
	}
	return img
}

func clampF(v float64) float64 { return math.Max(0, math.Min(255, v)) }

// keys is the bicubic convolution kernel of Keys (1981) with OpenCV's
// a = -0.75.
func keys(t float64) float64 {
	const a = -0.75
	t = math.Abs(t)
	switch {
	case t <= 1:
		return (a+2)*t*t*t - (a+3)*t*t + 1
	case t < 2:
		return a*t*t*t - 5*a*t*t + 8*a*t - 4*a
	}
	return 0
}

// refSample samples channel c of a w x h image at output pixel (dx, dy) of
// an nw x nh resize, as cv2.resize does.
func refSample(img [][3]float64, w, h, nw, nh, dx, dy, c int, interp Interp) float64 {
	sx, sy := float64(w)/float64(nw), float64(h)/float64(nh)
	px := func(x, y int) float64 {
		x = min(max(x, 0), w-1)
		y = min(max(y, 0), h-1)
		return img[y*w+x][c]
	}
	switch interp {
	case Nearest:
		return px(int(math.Floor((float64(dx)+0.5)*sx)), int(math.Floor((float64(dy)+0.5)*sy)))
	case Bicubic:
		x := (float64(dx)+0.5)*sx - 0.5
		y := (float64(dy)+0.5)*sy - 0.5
		x0, y0 := int(math.Floor(x)), int(math.Floor(y))
		var v float64
		for j := y0 - 1; j <= y0+2; j++ {
			for i := x0 - 1; i <= x0+2; i++ {
				v += keys(x-float64(i)) * keys(y-float64(j)) * px(i, j)
			}
		}
		return clampF(v)
	default:
		x := math.Max(0, math.Min((float64(dx)+0.5)*sx-0.5, float64(w-1)))
		y := math.Max(0, math.Min((float64(dy)+0.5)*sy-0.5, float64(h-1)))
		x0, y0 := int(x), int(y)
		fx, fy := x-float64(x0), y-float64(y0)
		return (px(x0, y0)*(1-fx)+px(x0+1, y0)*fx)*(1-fy) + (px(x0, y0+1)*(1-fx)+px(x0+1, y0+1)*fx)*fy
	}
}

// refFill returns, per element of the input tensor in s.Layout, the value
// in 0..255 units before mean and std, and whether it is padding. crop is
// the region of the frame, in whole pixels.
func refFill(f *frame.Frame, crop rect, s Spec) (vals []float64, pad []bool) {
	full := refRGB(f)
	w, h := crop.w, crop.h
	img := make([][3]float64, w*h)
	for y := range h {
		for x := range w {
			img[y*w+x] = full[(crop.y+y)*f.Width+crop.x+x]
		}
	}
	nw, nh, ox, oy := s.Width, s.Height, 0, 0
	if s.Resize == Letterbox {
		r := math.Min(float64(s.Width)/float64(w), float64(s.Height)/float64(h))
		nw = min(max(int(math.Round(float64(w)*r)), 1), s.Width)
		nh = min(max(int(math.Round(float64(h)*r)), 1), s.Height)
		if s.Align != TopLeft {
			ox, oy = (s.Width-nw)/2, (s.Height-nh)/2
		}
	}
	n := s.Width * s.Height * 3
	vals, pad = make([]float64, n), make([]bool, n)
	for y := range s.Height {
		for x := range s.Width {
			for c := range 3 {
				rc := c // channel of the RGB image
				if s.Color == BGR {
					rc = 2 - c
				}
				i := (y*s.Width+x)*3 + c
				if s.Layout == NCHW {
					i = c*s.Width*s.Height + y*s.Width + x
				}
				dx, dy := x-ox, y-oy
				if dx < 0 || dy < 0 || dx >= nw || dy >= nh {
					vals[i], pad[i] = float64(s.Pad), true
					continue
				}
				vals[i] = refSample(img, w, h, nw, nh, dx, dy, rc, s.Interp)
			}
		}
	}
	return vals, pad
}

// channel returns the output channel of element i.
func channel(s Spec, i int) int {
	if s.Layout == NCHW {
		return i / (s.Width * s.Height)
	}
	return i % 3
}

func stdOf(s Spec, c int) float32 {
	if s.Std[c] == 0 {
		return 1
	}
	return s.Std[c]
}

// randFrame makes a w x h frame of random content with rows padded by a
// random amount, as decoders' strides are.
func randFrame(rng *rand.Rand, w, h int, format frame.PixelFormat) *frame.Frame {
	f := &frame.Frame{Width: w, Height: h, Format: format}
	plane := func(i, rowBytes, rows int) {
		stride := rowBytes + rng.IntN(3)*16
		f.Strides[i] = stride
		f.Planes[i] = make([]byte, stride*(rows-1)+rowBytes)
		for j := range f.Planes[i] {
			f.Planes[i][j] = byte(rng.IntN(256))
		}
	}
	switch format {
	case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P:
		plane(0, w, h)
		plane(1, (w+1)/2, (h+1)/2)
		plane(2, (w+1)/2, (h+1)/2)
	case frame.PixelFormatRGB24:
		plane(0, 3*w, h)
	default:
		plane(0, w, h)
	}
	return f
}

var formats = []frame.PixelFormat{frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P, frame.PixelFormatRGB24, frame.PixelFormatGray8}

func randSize(rng *rand.Rand) int {
	switch rng.IntN(4) {
	case 0:
		return 1 + rng.IntN(3) // 1..3
	case 1:
		return 1 + rng.IntN(80) // up to 5x the input
	default:
		return 1 + rng.IntN(24)
	}
}

func randSpec(rng *rand.Rand) Spec {
	pick := func(n int) int { return rng.IntN(n) }
	s := Spec{
		Width: 1 + rng.IntN(20), Height: 1 + rng.IntN(20),
		Layout: []Layout{NCHW, NHWC}[pick(2)],
		Color:  []Color{RGB, BGR}[pick(2)],
		Resize: []Resize{Letterbox, Stretch}[pick(2)],
		Interp: []Interp{"", Bilinear, Nearest, Bicubic}[pick(4)],
		Align:  []Align{"", Center, TopLeft}[pick(3)],
		Pad:    float32(pick(256)),
	}
	switch pick(3) {
	case 0: // 0..255
	case 1: // ImageNet-like
		s.Mean = [3]float32{103.53, 116.28, 123.675}
		s.Std = [3]float32{57.375, 57.12, 58.395}
	default:
		s.Mean = [3]float32{127.5, 127.5, 127.5}
		s.Std = [3]float32{127.5, 0, 255}
	}
	return s
}

// requireMatches compares a float fill with the reference.
func requireMatches(t *testing.T, got []float32, f *frame.Frame, crop rect, s Spec, msg string) {
	t.Helper()
	want, pad := refFill(f, crop, s)
	require.Len(t, got, len(want))
	for i, g := range got {
		c := channel(s, i)
		if pad[i] {
			require.Equal(t, (s.Pad-s.Mean[c])/stdOf(s, c), g, "%s: padding at %d", msg, i)
			continue
		}
		// Compare in 0..255 units.
		d := math.Abs(float64(g)*float64(stdOf(s, c)) + float64(s.Mean[c]) - want[i])
		worstSeen = max(worstSeen, d)
		if !(d <= refBound) { // NaN, an unwritten element, fails too
			require.Failf(t, "differs from the reference", "%s: element %d (channel %d) = %v, want %v (0..255 units)", msg, i, c, g, want[i])
		}
	}
}

func TestFillMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var p Preparer
	for iter := range 600 {
		w, h := randSize(rng), randSize(rng)
		format := formats[rng.IntN(len(formats))]
		f := randFrame(rng, w, h, format)
		s := randSpec(rng)
		msg := fmt.Sprintf("iteration %d: %s %dx%d -> %+v", iter, format, w, h, s)
		dst := make([]float32, s.Width*s.Height*3)
		for i := range dst {
			dst[i] = float32(math.NaN()) // every element must be written
		}
		tr, err := p.Fill(dst, f, s)
		require.NoError(t, err, msg)
		requireMatches(t, dst, f, rect{0, 0, w, h}, s, msg)
		require.Equal(t, w, tr.SrcW)
		require.Equal(t, h, tr.SrcH)

		// The package-level function agrees with the Preparer.
		dst2 := make([]float32, len(dst))
		_, err = Fill(dst2, f, s)
		require.NoError(t, err)
		require.Equal(t, dst, dst2, msg)
	}
	t.Logf("largest difference from the reference: %.4f (0..255 units)", worstSeen)
}

// TestFillEveryCombination runs every combination of layout, colour,
// resize, interpolation, alignment, normalisation and pixel format once,
// on a frame smaller in one direction and larger in the other.
func TestFillEveryCombination(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	var p Preparer
	norms := [][2][3]float32{
		{},
		{{103.53, 116.28, 123.675}, {57.375, 57.12, 58.395}},
		{{127.5, 127.5, 127.5}, {127.5, 0, 255}},
	}
	n := 0
	for _, format := range formats {
		for _, layout := range []Layout{NCHW, NHWC} {
			for _, color := range []Color{RGB, BGR} {
				for _, resize := range []Resize{Letterbox, Stretch} {
					for _, interp := range []Interp{Bilinear, Nearest, Bicubic} {
						for _, align := range []Align{Center, TopLeft} {
							for _, norm := range norms {
								s := Spec{Width: 9, Height: 7, Layout: layout, Color: color, Resize: resize,
									Interp: interp, Align: align, Mean: norm[0], Std: norm[1], Pad: 114}
								w, h := 3+rng.IntN(6), 8+rng.IntN(20)
								f := randFrame(rng, w, h, format)
								dst := make([]float32, 9*7*3)
								_, err := p.Fill(dst, f, s)
								require.NoError(t, err)
								requireMatches(t, dst, f, rect{0, 0, w, h}, s, fmt.Sprintf("%s %dx%d -> %+v", format, w, h, s))
								n++
							}
						}
					}
				}
			}
		}
	}
	require.Equal(t, 4*2*2*2*3*2*3, n)
}

func TestFillCropMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var p Preparer
	for iter := range 400 {
		w, h := 1+rng.IntN(60), 1+rng.IntN(60)
		format := formats[rng.IntN(len(formats))]
		f := randFrame(rng, w, h, format)
		s := randSpec(rng)
		// A box with fractional edges inside the frame.
		x1, x2 := rng.Float32()*float32(w), rng.Float32()*float32(w)
		y1, y2 := rng.Float32()*float32(h), rng.Float32()*float32(h)
		box := frame.Box{X1: min(x1, x2), Y1: min(y1, y2), X2: max(x1, x2), Y2: max(y1, y2)}
		if box.W() <= 0 || box.H() <= 0 {
			continue
		}
		r := rect{int(math.Floor(float64(box.X1))), int(math.Floor(float64(box.Y1))), 0, 0}
		r.w = int(math.Ceil(float64(box.X2))) - r.x
		r.h = int(math.Ceil(float64(box.Y2))) - r.y
		msg := fmt.Sprintf("iteration %d: %s %dx%d crop %v -> %+v", iter, format, w, h, box, s)
		dst := make([]float32, s.Width*s.Height*3)
		tr, err := p.FillCrop(dst, f, box, s)
		require.NoError(t, err, msg)
		requireMatches(t, dst, f, r, s, msg)

		// The crop's corners map to the content's corners.
		nw, nh, ox, oy := refContent(r.w, r.h, s)
		x, y := tr.ToInput(float32(r.x), float32(r.y))
		require.InDelta(t, ox, x, 1e-3, msg)
		require.InDelta(t, oy, y, 1e-3, msg)
		x, y = tr.ToInput(float32(r.x+r.w), float32(r.y+r.h))
		require.InDelta(t, ox+nw, x, 1e-3, msg)
		require.InDelta(t, oy+nh, y, 1e-3, msg)

		// The quantized crop is the float crop, quantized.
		scale, zp := 0.5+rng.Float32(), uint8(rng.IntN(256))
		q := make([]uint8, len(dst))
		tq, err := p.FillCropQuantized(q, f, box, s, scale, zp)
		require.NoError(t, err, msg)
		require.Equal(t, tr, tq, msg)
		for i, v := range dst {
			want := min(max(math.RoundToEven(float64(v/scale))+float64(zp), 0), 255)
			require.InDelta(t, want, float64(q[i]), 1, "%s: value %d", msg, i)
		}
	}
}

// refContent is the letterbox geometry as the Preparer doc states it.
func refContent(w, h int, s Spec) (nw, nh, ox, oy int) {
	if s.Resize == Stretch {
		return s.Width, s.Height, 0, 0
	}
	r := math.Min(float64(s.Width)/float64(w), float64(s.Height)/float64(h))
	nw = min(max(int(math.Round(float64(w)*r)), 1), s.Width)
	nh = min(max(int(math.Round(float64(h)*r)), 1), s.Height)
	if s.Align != TopLeft {
		ox, oy = (s.Width-nw)/2, (s.Height-nh)/2
	}
	return nw, nh, ox, oy
}

func TestFillQuantizedMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var p Preparer
	var off, total int
	for iter := range 300 {
		w, h := randSize(rng), randSize(rng)
		format := formats[rng.IntN(len(formats))]
		f := randFrame(rng, w, h, format)
		s := randSpec(rng)
		scale := []float32{1, 1.0 / 255, 0.0078125, 0.02}[rng.IntN(4)]
		zero := uint8(rng.IntN(256))
		msg := fmt.Sprintf("iteration %d: %s %dx%d -> %+v scale %v zero %d", iter, format, w, h, s, scale, zero)
		dst := make([]uint8, s.Width*s.Height*3)
		_, err := p.FillQuantized(dst, f, s, scale, zero)
		require.NoError(t, err, msg)
		want, pad := refFill(f, rect{0, 0, w, h}, s)
		for i, g := range dst {
			c := channel(s, i)
			if pad[i] {
				v := (s.Pad - s.Mean[c]) / stdOf(s, c)
				q := math.RoundToEven(float64(v/scale)) + float64(zero)
				require.Equal(t, uint8(clampF(q)), g, "%s: padding at %d", msg, i)
				continue
			}
			x := (want[i] - float64(s.Mean[c])) / float64(stdOf(s, c)) / float64(scale)
			q := clampF(math.RoundToEven(x) + float64(zero))
			total++
			// Fill's error (refBound in 0..255 units) in quantization steps,
			// plus one for a value near a rounding tie.
			steps := refBound / (float64(stdOf(s, c)) * float64(scale))
			require.InDelta(t, q, float64(g), math.Floor(steps)+1, "%s: element %d (%v before rounding)", msg, i, x)
			if uint8(q) != g {
				off++
			}
		}
	}
	t.Logf("%d of %d quantized values differ from the reference's", off, total)
}

// TestFillExact: an unscaled Stretch+Nearest fill is the colour conversion
// alone.
func TestFillExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, format := range formats {
		for _, size := range [][2]int{{1, 1}, {2, 2}, {3, 5}, {64, 48}, {97, 31}} {
			f := randFrame(rng, size[0], size[1], format)
			s := Spec{Width: size[0], Height: size[1], Layout: NHWC, Color: RGB, Resize: Stretch, Interp: Nearest}
			dst := make([]float32, size[0]*size[1]*3)
			tr, err := Fill(dst, f, s)
			require.NoError(t, err)
			require.Equal(t, Transform{ScaleX: 1, ScaleY: 1, SrcW: size[0], SrcH: size[1]}, tr)
			want := refRGB(f)
			for i, v := range dst {
				require.InDelta(t, want[i/3][i%3], v, 0.25+1e-4, "%s %v element %d", format, size, i)
			}
		}
	}
}

// TestKnownColours checks the conversion against published BT.601 values:
// red (255, 0, 0) is Y=81 U=90 V=240 in limited range and Y=76 U=85 V=255
// in full range; mid grey is Y=126 in limited range.
func TestKnownColours(t *testing.T) {
	for _, tc := range []struct {
		name    string
		format  frame.PixelFormat
		y, u, v byte
		rgb     [3]float32
	}{
		{"red limited", frame.PixelFormatYUV420P, 81, 90, 240, [3]float32{255, 0, 0}},
		{"red full", frame.PixelFormatYUVJ420P, 76, 85, 255, [3]float32{255, 0, 0}},
		{"green limited", frame.PixelFormatYUV420P, 145, 54, 34, [3]float32{0, 255, 0}},
		{"blue limited", frame.PixelFormatYUV420P, 41, 240, 110, [3]float32{0, 0, 255}},
		{"white limited", frame.PixelFormatYUV420P, 235, 128, 128, [3]float32{255, 255, 255}},
		{"black limited", frame.PixelFormatYUV420P, 16, 128, 128, [3]float32{0, 0, 0}},
		{"grey full", frame.PixelFormatYUVJ420P, 128, 128, 128, [3]float32{128, 128, 128}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &frame.Frame{Width: 4, Height: 2, Format: tc.format, Strides: [3]int{4, 2, 2}}
			f.Planes[0] = []byte{tc.y, tc.y, tc.y, tc.y, tc.y, tc.y, tc.y, tc.y}
			f.Planes[1] = []byte{tc.u, tc.u}
			f.Planes[2] = []byte{tc.v, tc.v}
			dst := make([]float32, 3*2*2)
			_, err := Fill(dst, f, Spec{Width: 2, Height: 2, Layout: NHWC, Color: RGB, Resize: Stretch})
			require.NoError(t, err)
			for i, v := range dst {
				require.InDelta(t, tc.rgb[i%3], v, 2, "element %d", i)
			}
		})
	}
}

// TestTransformFollowsContent puts a bright block on a dark frame and checks
// that the Transform maps its centre to the centroid of the brightness in
// the input.
func TestTransformFollowsContent(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for iter := range 200 {
		w, h := 8+rng.IntN(200), 8+rng.IntN(200)
		s := Spec{Width: 16 + rng.IntN(100), Height: 16 + rng.IntN(100), Layout: NCHW, Color: RGB,
			Resize: []Resize{Letterbox, Stretch}[rng.IntN(2)], Align: []Align{Center, TopLeft}[rng.IntN(2)],
			Interp: []Interp{Bilinear, Nearest, Bicubic}[rng.IntN(3)]}
		// A block at least 4 input pixels wide, inside the frame.
		bw := max(4*float64(w)/float64(s.Width), 4*float64(h)/float64(s.Height), 2)
		bw = math.Min(math.Ceil(bw), float64(min(w, h)))
		bx, by := rng.IntN(w-int(bw)+1), rng.IntN(h-int(bw)+1)
		f := &frame.Frame{Width: w, Height: h, Format: frame.PixelFormatGray8, Strides: [3]int{w}}
		f.Planes[0] = make([]byte, w*h)
		for y := by; y < by+int(bw); y++ {
			for x := bx; x < bx+int(bw); x++ {
				f.Planes[0][y*w+x] = 255
			}
		}
		dst := make([]float32, s.Width*s.Height*3)
		tr, err := Fill(dst, f, s)
		require.NoError(t, err)
		var sum, sx, sy float64
		for y := range s.Height {
			for x := range s.Width {
				v := float64(dst[y*s.Width+x])
				sum += v
				sx += v * (float64(x) + 0.5)
				sy += v * (float64(y) + 0.5)
			}
		}
		cx, cy := tr.ToInput(float32(bx)+float32(bw)/2, float32(by)+float32(bw)/2)
		msg := fmt.Sprintf("iteration %d: %dx%d block %v at %d,%d -> %+v", iter, w, h, bw, bx, by, s)
		require.InDelta(t, cx, sx/sum, 0.5, msg)
		require.InDelta(t, cy, sy/sum, 0.5, msg)

		// ToSource inverts ToInput, and the content maps onto the frame.
		x, y := tr.ToSource(cx, cy)
		require.InDelta(t, float32(bx)+float32(bw)/2, x, 1e-3)
		require.InDelta(t, float32(by)+float32(bw)/2, y, 1e-3)
		nw, nh, ox, oy := refContent(w, h, s)
		got := tr.Box(frame.Box{X1: float32(ox), Y1: float32(oy), X2: float32(ox + nw), Y2: float32(oy + nh)})
		require.InDelta(t, 0, got.X1, 1e-3)
		require.InDelta(t, 0, got.Y1, 1e-3)
		require.InDelta(t, w, got.X2, 1e-3)
		require.InDelta(t, h, got.Y2, 1e-3)
	}
}

func TestLetterboxGeometry(t *testing.T) {
	yolox := Spec{Width: 416, Height: 416, Layout: NCHW, Color: BGR, Resize: Letterbox, Align: TopLeft, Std: [3]float32{1, 1, 1}, Pad: 114}
	f := &frame.Frame{Width: 768, Height: 576, Format: frame.PixelFormatGray8, Strides: [3]int{768}, Planes: [3][]byte{make([]byte, 768*576)}}
	dst := make([]float32, 416*416*3)
	tr, err := Fill(dst, f, yolox)
	require.NoError(t, err)
	// YOLOX's preproc: r = min(416/576, 416/768), content 416x312 at 0,0.
	require.Equal(t, Transform{ScaleX: 416.0 / 768, ScaleY: 312.0 / 576, SrcW: 768, SrcH: 576}, tr)
	require.Equal(t, float32(0), dst[311*416+415], "last content pixel")
	require.Equal(t, float32(114), dst[312*416], "first padding row")

	centre := yolox
	centre.Align = Center
	tr, err = Fill(dst, f, centre)
	require.NoError(t, err)
	require.Equal(t, float32(52), tr.PadY, "(416-312)/2 rows above")
	require.Equal(t, float32(0), tr.PadX)
	require.Equal(t, float32(114), dst[51*416])
	require.Equal(t, float32(0), dst[52*416])
	require.Equal(t, float32(0), dst[363*416])
	require.Equal(t, float32(114), dst[364*416])
}

func TestValidation(t *testing.T) {
	good := Spec{Width: 4, Height: 4, Layout: NCHW, Color: RGB, Resize: Stretch}
	yuv := func(w, h int) *frame.Frame {
		return randFrame(rand.New(rand.NewPCG(1, 1)), w, h, frame.PixelFormatYUV420P)
	}
	with := func(mod func(*Spec)) Spec { s := good; mod(&s); return s }
	for _, tc := range []struct {
		name string
		f    *frame.Frame
		s    Spec
		dst  int
		want string
	}{
		{"zero width", yuv(4, 4), with(func(s *Spec) { s.Width = 0 }), 48, "prep: width must be > 0, got 0"},
		{"negative height", yuv(4, 4), with(func(s *Spec) { s.Height = -1 }), 48, "prep: height must be > 0, got -1"},
		{"layout", yuv(4, 4), with(func(s *Spec) { s.Layout = "chw" }), 48, `prep: layout must be nchw or nhwc, got "chw"`},
		{"color", yuv(4, 4), with(func(s *Spec) { s.Color = "" }), 48, `prep: color must be rgb or bgr, got ""`},
		{"resize", yuv(4, 4), with(func(s *Spec) { s.Resize = "crop" }), 48, `prep: resize must be letterbox or stretch, got "crop"`},
		{"interp", yuv(4, 4), with(func(s *Spec) { s.Interp = "lanczos" }), 48, `prep: interp must be bilinear, nearest or bicubic, got "lanczos"`},
		{"align", yuv(4, 4), with(func(s *Spec) { s.Align = "bottom" }), 48, `prep: align must be center or topleft, got "bottom"`},
		{"std", yuv(4, 4), with(func(s *Spec) { s.Std[1] = -1 }), 48, "prep: std[1] must be >= 0"},
		{"mean", yuv(4, 4), with(func(s *Spec) { s.Mean[2] = float32(math.NaN()) }), 48, "prep: mean[2] must be finite"},
		{"dst length", yuv(4, 4), good, 47, "prep: dst has 47 values, want 48 (4x4x3)"},
		{"nil frame", nil, good, 48, "prep: nil frame"},
		{"empty frame", &frame.Frame{Format: frame.PixelFormatYUV420P}, good, 48, "prep: empty frame (0x0)"},
		{"format", &frame.Frame{Width: 2, Height: 2, Format: frame.PixelFormatUnknown}, good, 48, "prep: unsupported pixel format unknown"},
		{"short plane", &frame.Frame{Width: 4, Height: 4, Format: frame.PixelFormatGray8, Strides: [3]int{4}, Planes: [3][]byte{make([]byte, 15)}}, good, 48,
			"prep: gray frame 4x4: plane 0 has 15 bytes, want at least 16"},
		{"short stride", &frame.Frame{Width: 4, Height: 4, Format: frame.PixelFormatRGB24, Strides: [3]int{4}, Planes: [3][]byte{make([]byte, 48)}}, good, 48,
			"prep: rgb24 frame 4x4: plane 0 has stride 4, want 12..48"},
		{"missing chroma", func() *frame.Frame { f := yuv(4, 4); f.Planes[2] = nil; return f }(), good, 48,
			"prep: yuv420p frame 4x4: plane 2 has stride"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Fill(make([]float32, tc.dst), tc.f, tc.s)
			require.ErrorContains(t, err, tc.want)
			_, err = FillQuantized(make([]uint8, tc.dst), tc.f, tc.s, 1, 0)
			require.ErrorContains(t, err, tc.want)
		})
	}

	_, err := Fill(make([]float32, 48), &frame.Frame{Width: 2, Height: 2, Format: 99}, good)
	require.ErrorIs(t, err, ErrUnsupportedFormat)
	_, err = FillQuantized(make([]uint8, 48), yuv(4, 4), good, 0, 0)
	require.ErrorContains(t, err, "prep: quantization scale must be > 0")

	f := yuv(10, 8)
	for _, tc := range []struct {
		box  frame.Box
		want string
	}{
		{frame.Box{X1: -1, Y1: 0, X2: 5, Y2: 5}, "outside the 10x8 frame"},
		{frame.Box{X1: 0, Y1: 0, X2: 10.5, Y2: 5}, "outside the 10x8 frame"},
		{frame.Box{X1: 2, Y1: 3, X2: 5, Y2: 9}, "outside the 10x8 frame"},
		{frame.Box{X1: 20, Y1: 20, X2: 30, Y2: 30}, "outside the 10x8 frame"},
		{frame.Box{X1: 5, Y1: 0, X2: 5, Y2: 5}, "is empty"},
		{frame.Box{X1: 5, Y1: 5, X2: 3, Y2: 6}, "is empty"},
		{frame.Box{X1: float32(math.NaN()), Y1: 0, X2: 5, Y2: 5}, "is not finite"},
	} {
		_, err := FillCrop(make([]float32, 48), f, tc.box, good)
		require.ErrorContains(t, err, "prep: crop box")
		require.ErrorContains(t, err, tc.want)
	}
	_, err = FillCrop(make([]float32, 48), f, frame.Box{X1: 0, Y1: 0, X2: 10, Y2: 8}, good)
	require.NoError(t, err, "the whole frame is a valid crop")
}

// TestZeroAllocs: with geometries it has seen, a Preparer allocates nothing,
// even when crops of many sizes cycle through it.
func TestZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	f := randFrame(rng, 768, 576, frame.PixelFormatYUV420P)
	det := Spec{Width: 416, Height: 416, Layout: NCHW, Color: BGR, Resize: Letterbox, Align: TopLeft, Std: [3]float32{1, 1, 1}, Pad: 114}
	reid := Spec{Width: 128, Height: 256, Layout: NHWC, Color: BGR, Resize: Stretch}
	in := make([]float32, 416*416*3)
	crop := make([]float32, 128*256*3)
	q := make([]uint8, 416*416*3)
	var p Preparer
	boxes := make([]frame.Box, 20) // more sizes than the Preparer keeps plans
	for i := range boxes {
		x, y := rng.Float32()*500, rng.Float32()*300
		boxes[i] = frame.Box{X1: x, Y1: y, X2: x + 20 + rng.Float32()*200, Y2: y + 40 + rng.Float32()*250}
	}
	step := func() {
		_, err := p.Fill(in, f, det)
		require.NoError(t, err)
		_, err = p.FillQuantized(q, f, det, 1.0/255, 0)
		require.NoError(t, err)
		for _, b := range boxes {
			_, err = p.FillCrop(crop, f, b, reid)
			require.NoError(t, err)
		}
	}
	for range 10 { // until every plan's buffers have seen the largest crop
		step()
	}
	require.Zero(t, testing.AllocsPerRun(5, step))
	if raceEnabled {
		return
	}
	require.Zero(t, testing.AllocsPerRun(20, func() {
		_, err := Fill(in, f, det)
		require.NoError(t, err)
	}), "package-level Fill")
}

// measure runs op in b.Loop and reports, besides wall time per op, the
// CPU time per op (cpu-ns/op) and the fastest single op (min-ns/op): on a
// machine shared with other work, wall time per op overstates the cost and
// the fastest op is the best estimate of it on an idle core.
func measure(b *testing.B, op func() error) {
	b.ReportAllocs()
	cpu := cpuTime()
	fastest := time.Duration(math.MaxInt64)
	for b.Loop() {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		fastest = min(fastest, time.Since(start))
	}
	if cpu > 0 {
		b.ReportMetric(float64(cpuTime()-cpu)/float64(b.N), "cpu-ns/op")
	}
	b.ReportMetric(float64(fastest), "min-ns/op")
}

func benchFrame(w, h int) *frame.Frame {
	return randFrame(rand.New(rand.NewPCG(13, 14)), w, h, frame.PixelFormatYUV420P)
}

// BenchmarkFill times the fills Vigil does per frame, on frames of random
// content (the worst case for the colour clamp). "floor" writes every value
// of a 416x416x3 tensor once with one multiply-add, which no scalar Go fill
// can beat; "reference" is the test's float64 per-pixel version.
func BenchmarkFill(b *testing.B) {
	yolox := Spec{Width: 416, Height: 416, Layout: NCHW, Color: BGR, Resize: Letterbox, Align: TopLeft, Std: [3]float32{1, 1, 1}, Pad: 114}
	with := func(i Interp) Spec { s := yolox; s.Interp = i; return s }
	for _, bc := range []struct {
		name string
		w, h int
		s    Spec
	}{
		{"768x576_to_416_letterbox_bilinear_nchw", 768, 576, yolox},
		{"1920x1080_to_416_letterbox_bilinear_nchw", 1920, 1080, yolox},
		{"768x576_to_416_letterbox_nearest_nchw", 768, 576, with(Nearest)},
		{"768x576_to_416_letterbox_bicubic_nchw", 768, 576, with(Bicubic)},
		{"1920x1080_to_416_letterbox_bicubic_nchw", 1920, 1080, with(Bicubic)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := benchFrame(bc.w, bc.h)
			dst := make([]float32, 416*416*3)
			var p Preparer
			measure(b, func() error { _, err := p.Fill(dst, f, bc.s); return err })
		})
	}
	b.Run("768x576_to_416_quantized_nchw", func(b *testing.B) {
		f := benchFrame(768, 576)
		dst := make([]uint8, 416*416*3)
		var p Preparer
		measure(b, func() error { _, err := p.FillQuantized(dst, f, yolox, 1.0/255, 0); return err })
	})
	reid := Spec{Width: 128, Height: 256, Layout: NHWC, Color: BGR, Resize: Stretch}
	for _, box := range []frame.Box{{X1: 100, Y1: 200, X2: 180, Y2: 360}, {X1: 50, Y1: 20, X2: 350, Y2: 560}} {
		b.Run(fmt.Sprintf("crop_%gx%g_to_128x256_stretch_bilinear_nhwc", box.W(), box.H()), func(b *testing.B) {
			f := benchFrame(768, 576)
			dst := make([]float32, 128*256*3)
			var p Preparer
			measure(b, func() error { _, err := p.FillCrop(dst, f, box, reid); return err })
		})
	}
	b.Run("floor_write_416x416x3", func(b *testing.B) {
		dst := make([]float32, 416*416*3)
		src := make([]float32, len(dst))
		measure(b, func() error {
			for i := range dst {
				dst[i] = src[i]*0.5 + 1
			}
			return nil
		})
	})
	b.Run("reference_768x576_to_416", func(b *testing.B) {
		f := benchFrame(768, 576)
		measure(b, func() error { refFill(f, rect{0, 0, 768, 576}, yolox); return nil })
	})
}

// TestGroupMatchesPreparer: a Group's bands give exactly one Preparer's
// result, for whole frames, crops and quantized output.
func TestGroupMatchesPreparer(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	var p Preparer
	g := NewGroup(3)
	for iter := range 200 {
		w, h := 1+rng.IntN(200), 1+rng.IntN(200)
		f := randFrame(rng, w, h, formats[rng.IntN(len(formats))])
		s := randSpec(rng)
		// Inputs tall enough for several bands (16 rows each, at least).
		s.Width, s.Height = 8+rng.IntN(120), 40+rng.IntN(120)
		msg := fmt.Sprintf("iteration %d: %dx%d %+v", iter, w, h, s)
		want := make([]float32, s.Width*s.Height*3)
		got := make([]float32, len(want))
		wt, err := p.Fill(want, f, s)
		require.NoError(t, err, msg)
		gt, err := g.Fill(got, f, s)
		require.NoError(t, err, msg)
		require.Equal(t, wt, gt, msg)
		require.Equal(t, want, got, msg)

		box := frame.Box{X1: float32(w) / 4, Y1: float32(h) / 4, X2: float32(w), Y2: float32(h)}
		wt, err = p.FillCrop(want, f, box, s)
		require.NoError(t, err, msg)
		gt, err = g.FillCrop(got, f, box, s)
		require.NoError(t, err, msg)
		require.Equal(t, wt, gt, msg)
		require.Equal(t, want, got, msg)

		wq, gq := make([]uint8, len(want)), make([]uint8, len(want))
		_, err = p.FillQuantized(wq, f, s, 0.7, 9)
		require.NoError(t, err, msg)
		_, err = g.FillQuantized(gq, f, s, 0.7, 9)
		require.NoError(t, err, msg)
		require.Equal(t, wq, gq, msg)
		_, err = p.FillCropQuantized(wq, f, box, s, 0.7, 9)
		require.NoError(t, err, msg)
		_, err = g.FillCropQuantized(gq, f, box, s, 0.7, 9)
		require.NoError(t, err, msg)
		require.Equal(t, wq, gq, msg)
	}
}
