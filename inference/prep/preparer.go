package prep

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/vigil-video/vigil/frame"
)

// ErrUnsupportedFormat is returned for a frame whose pixel format prep
// cannot read.
var ErrUnsupportedFormat = errors.New("unsupported pixel format")

// maxPlans is how many geometries (source size + Spec) a Preparer keeps
// tables for: a detector and a re-ID model per stream size fit easily.
const maxPlans = 8

// maxFrameSide bounds a frame's width and height, so that plane sizes
// cannot overflow.
const maxFrameSide = 1 << 16

// Preparer fills model inputs from frames. It keeps the resampling tables of
// the last few geometries (source size and Spec) and its scratch rows, so
// that calls with a geometry it has seen allocate nothing.
//
// The conversion, for every Fill variant:
//   - Pixels are converted to RGB 0..255 per source pixel: YUV with the
//     BT.601 matrix (limited range for yuv420p, full range for yuvj420p),
//     chroma taken from the 2x2 block the pixel lies in, and clamped to
//     0..255; gray8 gives R = G = B = Y. Clamping before resizing is what
//     converting the frame to an RGB image and then resizing it gives; the
//     conversion is in fixed point, within 1/4 of the exact value.
//   - The source (the frame, or the crop) is resized to the content size:
//     the whole input for Stretch; for Letterbox, scale = min(W/w, H/h) and
//     the content is round(w*scale) x round(h*scale), at the top left
//     (TopLeft) or at ((W-nw)/2, (H-nh)/2) rounded down (Center, the
//     default). The rest of the input is exactly Spec.Pad (normalised):
//     content pixels never blend with padding, since sampling clamps to
//     the source's edge pixels.
//   - Sampling follows OpenCV's cv2.resize to the content size: source
//     coordinate = (dst+0.5)*w/nw - 0.5. Bilinear clamps that coordinate
//     to the source; Nearest takes floor((dst+0.5)*w/nw) (OpenCV's
//     INTER_NEAREST_EXACT, so an unscaled image is copied exactly);
//     Bicubic uses OpenCV's INTER_CUBIC kernel (a = -0.75) over 4x4
//     pixels with edge pixels repeated, and clamps the result to 0..255.
//   - Channels go in Spec.Color order and become (x - Mean) / Std.
//
// Each source row is converted and resized horizontally once, into a ring
// of rows; each content row blends them vertically and is written straight
// into dst. Compared with a float64 per-pixel reference the result is
// within 0.5 (in 0..255 units); see prep_test.go.
//
// The Transform returned maps the content back: its Scale is nw/w and
// nh/h (the exact ratio of the resize, which may differ from the letterbox
// scale by under one pixel over the frame) and its Pad the content's offset.
// YOLOX's own preproc truncates w*scale instead of rounding; for the usual
// sizes (768x576, 1920x1080, 1280x720 to 416 or 640) both give the same
// content size.
//
// A Preparer is not safe for concurrent use: give each goroutine its own.
// The zero value is ready to use.
type Preparer struct {
	plans []*plan
	next  int // plan to replace when plans is full

	conv []float32    // one source row converted to packed RGB, needed columns only
	rows []float32    // taps rows resized horizontally: [slot][channel][nw]
	key  [4]int       // source row held by each slot of rows, -1 for none
	line [3][]float32 // one content row resized both ways, RGB
}

// output is where a fill writes: float values or quantized bytes.
type output struct {
	f      []float32
	q      []uint8
	qScale float32
	qZero  uint8
}

// rect is a whole-pixel region of a frame.
type rect struct{ x, y, w, h int }

var pool = sync.Pool{New: func() any { return new(Preparer) }}

// Fill writes frame f, resized and normalised as s says, into dst, one
// image's slot of the batch tensor (s.Width*s.Height*3 values in
// s.Layout). It returns the mapping from input to frame pixels. See
// Preparer for the exact conversion; Fill uses a pooled Preparer.
func Fill(dst []float32, f *frame.Frame, s Spec) (Transform, error) {
	p := pool.Get().(*Preparer)
	defer pool.Put(p)
	return p.Fill(dst, f, s)
}

// FillCrop is Fill of the part of f inside box (frame pixels), for crops of
// detections. See Preparer.FillCrop.
func FillCrop(dst []float32, f *frame.Frame, box frame.Box, s Spec) (Transform, error) {
	p := pool.Get().(*Preparer)
	defer pool.Put(p)
	return p.FillCrop(dst, f, box, s)
}

// FillQuantized is Fill for a model whose input is quantized to uint8:
// every value v becomes round(v/scale) + zeroPoint, clamped to 0..255.
func FillQuantized(dst []uint8, f *frame.Frame, s Spec, scale float32, zeroPoint uint8) (Transform, error) {
	p := pool.Get().(*Preparer)
	defer pool.Put(p)
	return p.FillQuantized(dst, f, s, scale, zeroPoint)
}

// Fill writes frame f into dst as the package-level Fill does.
func (p *Preparer) Fill(dst []float32, f *frame.Frame, s Spec) (Transform, error) {
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	return p.run(output{f: dst}, f, rect{0, 0, f.Width, f.Height}, s)
}

// FillCrop writes the part of f inside box into dst. The box is widened to
// whole pixels (floor of X1, Y1, ceiling of X2, Y2) and then treated as a
// frame of its own: sampling repeats the crop's edge pixels, never reads
// beyond them. It must lie inside the frame and be non-empty. The Transform
// maps input pixels to pixels of the whole frame.
func (p *Preparer) FillCrop(dst []float32, f *frame.Frame, box frame.Box, s Spec) (Transform, error) {
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	r, err := cropRect(f, box)
	if err != nil {
		return Transform{}, err
	}
	return p.run(output{f: dst}, f, r, s)
}

// FillQuantized writes frame f into dst as uint8: round(v/scale) +
// zeroPoint clamped to 0..255, v being the value Fill would write. Ties
// round to even, as ONNX's QuantizeLinear does.
func (p *Preparer) FillQuantized(dst []uint8, f *frame.Frame, s Spec, scale float32, zeroPoint uint8) (Transform, error) {
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return Transform{}, fmt.Errorf("prep: quantization scale must be > 0 and finite, got %v", scale)
	}
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	return p.run(output{q: dst, qScale: scale, qZero: zeroPoint}, f, rect{0, 0, f.Width, f.Height}, s)
}

// FillCropQuantized is FillCrop with FillQuantized's uint8 output.
func (p *Preparer) FillCropQuantized(dst []uint8, f *frame.Frame, box frame.Box, s Spec, scale float32, zeroPoint uint8) (Transform, error) {
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return Transform{}, fmt.Errorf("prep: quantization scale must be > 0 and finite, got %v", scale)
	}
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	r, err := cropRect(f, box)
	if err != nil {
		return Transform{}, err
	}
	return p.run(output{q: dst, qScale: scale, qZero: zeroPoint}, f, r, s)
}

// checkFrame validates the frame's size, format and planes so that the
// fill can index them without further checks failing.
func checkFrame(f *frame.Frame) error {
	if f == nil {
		return errors.New("prep: nil frame")
	}
	if f.Width <= 0 || f.Height <= 0 {
		return fmt.Errorf("prep: empty frame (%dx%d)", f.Width, f.Height)
	}
	if f.Width > maxFrameSide || f.Height > maxFrameSide {
		return fmt.Errorf("prep: frame %dx%d is larger than %d", f.Width, f.Height, maxFrameSide)
	}
	switch f.Format {
	case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P:
		cw, ch := (f.Width+1)/2, (f.Height+1)/2
		return errors.Join(checkPlane(f, 0, f.Width, f.Height), checkPlane(f, 1, cw, ch), checkPlane(f, 2, cw, ch))
	case frame.PixelFormatRGB24:
		return checkPlane(f, 0, 3*f.Width, f.Height)
	case frame.PixelFormatGray8:
		return checkPlane(f, 0, f.Width, f.Height)
	default:
		return fmt.Errorf("prep: %w %s", ErrUnsupportedFormat, f.Format)
	}
}

func checkPlane(f *frame.Frame, i, rowBytes, rows int) error {
	plane, stride := f.Planes[i], f.Strides[i]
	if rows > 1 && (stride < rowBytes || stride > len(plane)) {
		return fmt.Errorf("prep: %s frame %dx%d: plane %d has stride %d, want %d..%d",
			f.Format, f.Width, f.Height, i, stride, rowBytes, len(plane))
	}
	if need := stride*(rows-1) + rowBytes; len(plane) < need {
		return fmt.Errorf("prep: %s frame %dx%d: plane %d has %d bytes, want at least %d",
			f.Format, f.Width, f.Height, i, len(plane), need)
	}
	return nil
}

// cropRect widens box to whole pixels and checks that it lies in the frame.
func cropRect(f *frame.Frame, b frame.Box) (rect, error) {
	for _, v := range [4]float32{b.X1, b.Y1, b.X2, b.Y2} {
		if !finite(v) {
			return rect{}, fmt.Errorf("prep: crop box %v is not finite", b)
		}
	}
	if !(b.X2 > b.X1 && b.Y2 > b.Y1) {
		return rect{}, fmt.Errorf("prep: crop box %v is empty", b)
	}
	if b.X1 < 0 || b.Y1 < 0 || b.X2 > float32(f.Width) || b.Y2 > float32(f.Height) {
		return rect{}, fmt.Errorf("prep: crop box %v is outside the %dx%d frame", b, f.Width, f.Height)
	}
	x1, y1 := int(math.Floor(float64(b.X1))), int(math.Floor(float64(b.Y1)))
	x2, y2 := int(math.Ceil(float64(b.X2))), int(math.Ceil(float64(b.Y2)))
	return rect{x1, y1, x2 - x1, y2 - y1}, nil
}

// run is the one pass of every fill: for each content row it converts and
// horizontally resizes the source rows it needs (each at most once), blends
// them vertically, normalises and writes the row; then it pads.
func (p *Preparer) run(out output, f *frame.Frame, r rect, s Spec) (Transform, error) {
	return runOn([]*Preparer{p}, out, f, r, s)
}

// runOn is run with the content rows split into contiguous bands, one per
// Preparer, each band on a goroutine of its own (the first on the
// caller's). Every Preparer keeps its own plan and row cache; the bands
// write disjoint rows of out.
func runOn(ps []*Preparer, out output, f *frame.Frame, r rect, s Spec) (Transform, error) {
	if err := s.Validate(); err != nil {
		return Transform{}, err
	}
	n := s.Width * s.Height * 3
	if out.q == nil && len(out.f) != n || out.q != nil && len(out.q) != n {
		got := len(out.f)
		if out.q != nil {
			got = len(out.q)
		}
		return Transform{}, fmt.Errorf("prep: dst has %d values, want %d (%dx%dx3)", got, n, s.Width, s.Height)
	}
	pl := ps[0].plan(r.w, r.h, s)
	em := newEmitter(out, pl, s)
	// Bands of at least 16 rows: splitting further costs more in row
	// conversions shared by neighbouring bands than it saves.
	bands := max(1, min(len(ps), pl.nh/16))
	if bands == 1 {
		ps[0].band(f, r, pl, &em, 0, pl.nh)
	} else {
		per := (pl.nh + bands - 1) / bands
		var wg sync.WaitGroup
		for i := 1; i < bands; i++ {
			q := ps[i]
			qpl := q.plan(r.w, r.h, s)
			qem := em
			qem.pl = qpl
			wg.Go(func() { q.band(f, r, qpl, &qem, i*per, min((i+1)*per, pl.nh)) })
		}
		ps[0].band(f, r, pl, &em, 0, per)
		wg.Wait()
	}
	em.pad()

	sx, sy := float64(pl.nw)/float64(r.w), float64(pl.nh)/float64(r.h)
	return Transform{
		ScaleX: float32(sx), ScaleY: float32(sy),
		PadX: float32(float64(pl.offX) - float64(r.x)*sx),
		PadY: float32(float64(pl.offY) - float64(r.y)*sy),
		SrcW: f.Width, SrcH: f.Height,
	}, nil
}

// newEmitter sets up the normalisation of spec s into out.
func newEmitter(out output, pl *plan, s Spec) emitter {
	// Per output channel: x*mul + add in float, or x*qmul + qadd before
	// rounding for quantized output.
	em := emitter{out: out, pl: pl, W: s.Width, H: s.Height, nchw: s.Layout == NCHW, zero: float32(out.qZero)}
	for c := range 3 {
		std := s.Std[c]
		if std == 0 {
			std = 1
		}
		em.mul[c] = 1 / std
		em.add[c] = -s.Mean[c] / std
		em.padF[c] = (s.Pad - s.Mean[c]) / std
		if out.q != nil {
			em.mul[c] /= out.qScale
			em.add[c] /= out.qScale
			em.padQ[c] = uint8(min(max(math.RoundToEven(float64(em.padF[c]/out.qScale))+float64(out.qZero), 0), 255))
		}
	}
	em.chans = [3]int{0, 1, 2}
	if s.Color == BGR {
		em.chans = [3]int{2, 1, 0}
	}
	return em
}

// band writes content rows [from, to) through em.
func (p *Preparer) band(f *frame.Frame, r rect, pl *plan, em *emitter, from, to int) {
	p.scratch(pl)
	for i := range p.key {
		p.key[i] = -1
	}
	taps, nw := pl.taps, pl.nw
	for oy := from; oy < to; oy++ {
		wy := pl.yW[oy*taps : oy*taps+taps]
		iy := pl.yIdx[oy*taps : oy*taps+taps]
		var src [4][]float32 // slot of each tap
		for t, y := range iy {
			src[t] = p.row(f, r, pl, int(y))
		}
		switch taps {
		case 1:
			em.blend(oy, src[0], src[0], 1, 0)
		case 2:
			em.blend(oy, src[0], src[1], wy[0], wy[1])
		default: // bicubic: clamp before normalising
			w0, w1, w2, w3 := wy[0], wy[1], wy[2], wy[3]
			for c := range 3 {
				o := c * nw
				a, b, c2, d := src[0][o:o+nw], src[1][o:o+nw], src[2][o:o+nw], src[3][o:o+nw]
				line := p.line[c][:nw]
				for i := range line {
					line[i] = clamp255(a[i]*w0 + b[i]*w1 + c2[i]*w2 + d[i]*w3)
				}
			}
			em.row(oy, &p.line)
		}
	}
}

// scratch sizes the Preparer's row buffers for pl.
func (p *Preparer) scratch(pl *plan) {
	p.conv = grow(p.conv, 3*len(pl.cols))
	for c := range 3 {
		p.line[c] = grow(p.line[c], pl.nw)
	}
	p.rows = grow(p.rows, pl.taps*3*pl.nw)
}

// row returns source row y of the region (relative), converted and resized
// horizontally, as 3 channels of nw values, computing it unless its slot
// holds it already. Taps of one output row are consecutive rows, clamped,
// so y mod taps never sends two of them to one slot.
func (p *Preparer) row(f *frame.Frame, r rect, pl *plan, y int) []float32 {
	slot := y % pl.taps
	nw := pl.nw
	buf := p.rows[slot*3*nw : (slot+1)*3*nw]
	if p.key[slot] == y {
		return buf
	}
	p.key[slot] = y
	if pl.adjacent && !pl.useRuns && (f.Format == frame.PixelFormatYUV420P || f.Format == frame.PixelFormatYUVJ420P) {
		bilinearYUV(f, r.x, r.y+y, pl.x0, pl.xW, buf[:nw], buf[nw:2*nw], buf[2*nw:])
		return buf
	}
	p.convert(f, r.x, r.y+y, pl)
	hresize(buf[:nw], buf[nw:2*nw], buf[2*nw:], p.conv, pl)
	return buf
}

// hresize resamples one converted row (packed RGB of the needed columns)
// to nw values per channel. pl.xIdx holds offsets into conv.
func hresize(dr, dg, db []float32, conv []float32, pl *plan) {
	n := len(dr)
	dg, db = dg[:n], db[:n]
	switch pl.taps {
	case 1:
		idx := pl.xIdx[:n]
		for i := range dr {
			px := conv[idx[i]:][:3]
			dr[i], dg[i], db[i] = px[0], px[1], px[2]
		}
	case 2:
		idx, w := pl.xIdx[:2*n], pl.xW[:2*n]
		if pl.adjacent {
			for i := range dr {
				k := 2 * i
				j := int(idx[k])
				ab := conv[j : j+6 : j+6]
				ww := w[k : k+2 : k+2]
				w0, w1 := ww[0], ww[1]
				dr[i] = ab[0]*w0 + ab[3]*w1
				dg[i] = ab[1]*w0 + ab[4]*w1
				db[i] = ab[2]*w0 + ab[5]*w1
			}
			return
		}
		for i := range dr {
			j0, j1 := idx[2*i], idx[2*i+1]
			a, b := conv[j0:j0+3], conv[j1:j1+3]
			w0, w1 := w[2*i], w[2*i+1]
			dr[i] = a[0]*w0 + b[0]*w1
			dg[i] = a[1]*w0 + b[1]*w1
			db[i] = a[2]*w0 + b[2]*w1
		}
	default:
		idx, w := pl.xIdx[:4*n], pl.xW[:4*n]
		for i := range dr {
			ii, ww := idx[4*i:4*i+4], w[4*i:4*i+4]
			a, b, c, d := conv[ii[0]:][:3], conv[ii[1]:][:3], conv[ii[2]:][:3], conv[ii[3]:][:3]
			w0, w1, w2, w3 := ww[0], ww[1], ww[2], ww[3]
			dr[i] = a[0]*w0 + b[0]*w1 + c[0]*w2 + d[0]*w3
			dg[i] = a[1]*w0 + b[1]*w1 + c[1]*w2 + d[1]*w3
			db[i] = a[2]*w0 + b[2]*w1 + c[2]*w2 + d[2]*w3
		}
	}
}

// emitter normalises content rows into the output and pads around them.
type emitter struct {
	out      output
	pl       *plan
	W, H     int
	nchw     bool
	mul, add [3]float32 // per output channel, quantization folded in
	padF     [3]float32 // per output channel: (Pad - Mean) / Std
	padQ     [3]uint8   // and its quantized value
	zero     float32    // quantization zero point
	chans    [3]int     // RGB channel of each output channel
}

// blend writes content row oy from two horizontally resized rows (3
// channels of nw values each): a*w0 + b*w1, normalised (and quantized).
func (e *emitter) blend(oy int, a, b []float32, w0, w1 float32) {
	pl := e.pl
	nw, plane := pl.nw, e.W*e.H
	y := pl.offY + oy
	for c := range 3 {
		o := e.chans[c] * nw
		ra, rb := a[o:o+nw], b[o:o+nw]
		m0, m1, add := w0*e.mul[c], w1*e.mul[c], e.add[c]
		switch {
		case e.out.q == nil && e.nchw:
			o := c*plane + y*e.W + pl.offX
			d := e.out.f[o : o+nw]
			ra, rb := ra[:len(d)], rb[:len(d)]
			for i := range d {
				d[i] = ra[i]*m0 + rb[i]*m1 + add
			}
		case e.out.q == nil:
			o := (y*e.W+pl.offX)*3 + c
			d := e.out.f[o : o+3*nw-2]
			for i := range ra {
				d[3*i] = ra[i]*m0 + rb[i]*m1 + add
			}
		case e.nchw:
			o := c*plane + y*e.W + pl.offX
			d := e.out.q[o : o+nw]
			for i := range d {
				d[i] = quant(ra[i]*m0+rb[i]*m1+add, e.zero)
			}
		default:
			o := (y*e.W+pl.offX)*3 + c
			d := e.out.q[o : o+3*nw-2]
			for i := range ra {
				d[3*i] = quant(ra[i]*m0+rb[i]*m1+add, e.zero)
			}
		}
	}
}

// row writes content row oy.
func (e *emitter) row(oy int, line *[3][]float32) {
	pl := e.pl
	nw, plane := pl.nw, e.W*e.H
	y := pl.offY + oy
	for c := range 3 {
		src := line[e.chans[c]][:nw]
		m, a := e.mul[c], e.add[c]
		switch {
		case e.out.q == nil && e.nchw:
			o := c*plane + y*e.W + pl.offX
			d := e.out.f[o : o+nw]
			for i, v := range src {
				d[i] = v*m + a
			}
		case e.out.q == nil:
			o := (y*e.W+pl.offX)*3 + c
			d := e.out.f[o : o+3*nw-2]
			for i, v := range src {
				d[3*i] = v*m + a
			}
		case e.nchw:
			o := c*plane + y*e.W + pl.offX
			d := e.out.q[o : o+nw]
			for i, v := range src {
				d[i] = quant(v*m+a, e.zero)
			}
		default:
			o := (y*e.W+pl.offX)*3 + c
			d := e.out.q[o : o+3*nw-2]
			for i, v := range src {
				d[3*i] = quant(v*m+a, e.zero)
			}
		}
	}
}

// pad writes the pad value everywhere outside the content.
func (e *emitter) pad() {
	pl := e.pl
	if pl.nw == e.W && pl.nh == e.H {
		return
	}
	// Spans of pixels, in row-major pixel indices: above, left and right
	// of each content row, below.
	top := pl.offY * e.W
	e.span(0, top)
	for y := pl.offY; y < pl.offY+pl.nh; y++ {
		e.span(y*e.W, y*e.W+pl.offX)
		e.span(y*e.W+pl.offX+pl.nw, (y+1)*e.W)
	}
	e.span((pl.offY+pl.nh)*e.W, e.W*e.H)
}

// span writes the pad value to pixels [from, to) of every channel.
func (e *emitter) span(from, to int) {
	if from >= to {
		return
	}
	plane := e.W * e.H
	for c := range 3 {
		x, q := e.padF[c], e.padQ[c]
		switch {
		case e.out.q == nil && e.nchw:
			fill(e.out.f[c*plane+from:c*plane+to], x)
		case e.out.q == nil:
			d := e.out.f[3*from+c : 3*to]
			for i := 0; i < len(d); i += 3 {
				d[i] = x
			}
		case e.nchw:
			fill(e.out.q[c*plane+from:c*plane+to], q)
		default:
			d := e.out.q[3*from+c : 3*to]
			for i := 0; i < len(d); i += 3 {
				d[i] = q
			}
		}
	}
}

// fill sets every element of d to v, doubling with copy (memmove is
// vectorised; a plain loop is not).
func fill[T any](d []T, v T) {
	if len(d) == 0 {
		return
	}
	d[0] = v
	for n := 1; n < len(d); n *= 2 {
		copy(d[n:], d[:n])
	}
}

// quant returns round(x) + zero clamped to 0..255, rounding ties to even as
// ONNX's QuantizeLinear does. x is v/scale.
func quant(x, zero float32) uint8 {
	// Adding and removing 1.5*2^23 rounds a float32 below 2^22 in magnitude
	// to an integer, ties to even; clamp first so that x is that small (and
	// not NaN). Values are usually in range, so these branches predict well;
	// Go's float min and max would cost more.
	const magic = 12582912
	if !(x > -512) {
		x = -512
	} else if x > 512 {
		x = 512
	}
	q := int32((x+magic)-magic) + int32(zero)
	return uint8(min(max(q, 0), 255))
}

// clamp255 clamps a bicubic result, which leaves 0..255 only near edges,
// so the branches predict well.
func clamp255(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return v
}

// grow returns s with length n, reusing its array when it is big enough.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Group fills one image with several Preparers at once, each on a
// goroutine of its own over a band of output rows, for a large picture and
// idle cores. The result is identical to a single Preparer's. A Group is
// not safe for concurrent use; it needs at least one Preparer.
type Group []*Preparer

// NewGroup returns a Group of n Preparers (at least one).
func NewGroup(n int) Group {
	g := make(Group, max(n, 1))
	for i := range g {
		g[i] = new(Preparer)
	}
	return g
}

// Fill is Preparer.Fill, shared among the group.
func (g Group) Fill(dst []float32, f *frame.Frame, s Spec) (Transform, error) {
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	return runOn(g, output{f: dst}, f, rect{0, 0, f.Width, f.Height}, s)
}

// FillCrop is Preparer.FillCrop, shared among the group.
func (g Group) FillCrop(dst []float32, f *frame.Frame, box frame.Box, s Spec) (Transform, error) {
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	r, err := cropRect(f, box)
	if err != nil {
		return Transform{}, err
	}
	return runOn(g, output{f: dst}, f, r, s)
}

// FillQuantized is Preparer.FillQuantized, shared among the group.
func (g Group) FillQuantized(dst []uint8, f *frame.Frame, s Spec, scale float32, zeroPoint uint8) (Transform, error) {
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return Transform{}, fmt.Errorf("prep: quantization scale must be > 0 and finite, got %v", scale)
	}
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	return runOn(g, output{q: dst, qScale: scale, qZero: zeroPoint}, f, rect{0, 0, f.Width, f.Height}, s)
}

// FillCropQuantized is Preparer.FillCropQuantized, shared among the group.
func (g Group) FillCropQuantized(dst []uint8, f *frame.Frame, box frame.Box, s Spec, scale float32, zeroPoint uint8) (Transform, error) {
	if !(scale > 0) || math.IsInf(float64(scale), 0) {
		return Transform{}, fmt.Errorf("prep: quantization scale must be > 0 and finite, got %v", scale)
	}
	if err := checkFrame(f); err != nil {
		return Transform{}, err
	}
	r, err := cropRect(f, box)
	if err != nil {
		return Transform{}, err
	}
	return runOn(g, output{q: dst, qScale: scale, qZero: zeroPoint}, f, r, s)
}
