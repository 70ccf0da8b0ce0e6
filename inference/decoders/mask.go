package decoders

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// field is a 2-D grid of scores: the value at column x, row y is
// data[y*rowStride+x*colStride].
type field struct {
	data                 []float32
	w, h                 int
	rowStride, colStride int
}

// tap is a bilinear sample position along one axis.
type tap struct {
	i0, i1 int
	f      float32
	in     bool // the pixel maps inside the model input
}

// rect is a pixel rectangle [x0,x1) x [y0,y1).
type rect struct{ x0, y0, x1, y1 int }

func (r rect) empty() bool { return r.x1 <= r.x0 || r.y1 <= r.y0 }

func (r rect) intersect(o rect) rect {
	return rect{max(r.x0, o.x0), max(r.y0, o.y0), min(r.x1, o.x1), min(r.y1, o.y1)}
}

// raster renders a field, bilinearly sampled, as a binary mask over the
// whole source frame. Its buffers are reused between calls.
type raster struct {
	xs, ys []tap
	buf    []byte    // row-major SrcW x SrcH, 1 = foreground
	tmp    []float32 // one grid row, interpolated vertically
	w, h   int
}

// render sets buf to f > thr at every source pixel centre. A source pixel
// centre (x+0.5, y+0.5) maps to input coordinates through tf and to field
// coordinates gx = ix*ax + bx, gy = iy*ay + by (clamped to the grid).
// Source pixels that map outside the model input (inW x inH), as around
// a crop, are background. It returns the extent of the foreground, its pixel count and the sum of
// the sampled values over it.
func (r *raster) render(f field, tf prep.Transform, inW, inH int, ax, bx, ay, by, thr float32) (ext rect, n int, sum float64, err error) {
	w, h := tf.SrcW, tf.SrcH
	if w <= 0 || h <= 0 || w > maxMaskSide || h > maxMaskSide || w*h > maxMaskPixels {
		return rect{}, 0, 0, fmt.Errorf("decoding mask: source frame %dx%d out of range", w, h)
	}
	if f.w <= 0 || f.h <= 0 {
		return rect{}, 0, 0, fmt.Errorf("decoding mask: empty %dx%d grid", f.w, f.h)
	}
	r.w, r.h = w, h
	r.xs = taps(r.xs[:0], w, f.w, inW, tf.ScaleX, tf.PadX, ax, bx)
	r.ys = taps(r.ys[:0], h, f.h, inH, tf.ScaleY, tf.PadY, ay, by)
	if cap(r.buf) < w*h {
		r.buf = make([]byte, w*h)
	}
	r.buf = r.buf[:w*h]
	if cap(r.tmp) < f.w {
		r.tmp = make([]float32, f.w)
	}
	tmp := r.tmp[:f.w]
	ext = rect{w, h, 0, 0}
	for y, ty := range r.ys {
		row := r.buf[y*w : (y+1)*w]
		if !ty.in {
			clear(row)
			continue
		}
		// Interpolate the two grid rows vertically once per source row;
		// a row whose samples are all <= thr is background throughout,
		// since bilinear values are convex combinations of them.
		r0 := f.data[ty.i0*f.rowStride:]
		r1 := f.data[ty.i1*f.rowStride:]
		peak := float32(math.Inf(-1))
		for j := range tmp {
			a, b := r0[j*f.colStride], r1[j*f.colStride]
			v := a + (b-a)*ty.f
			tmp[j] = v
			peak = max(peak, v)
		}
		if !(peak > thr) {
			clear(row)
			continue
		}
		first, last := -1, -1
		for x, tx := range r.xs {
			a, b := tmp[tx.i0], tmp[tx.i1]
			v := a + (b-a)*tx.f
			if v > thr && tx.in {
				row[x] = 1
				n++
				sum += float64(v)
				if first < 0 {
					first = x
				}
				last = x
			} else {
				row[x] = 0
			}
		}
		if first >= 0 {
			ext.x0, ext.x1 = min(ext.x0, first), max(ext.x1, last+1)
			ext.y0, ext.y1 = min(ext.y0, y), max(ext.y1, y+1)
		}
	}
	if n == 0 {
		ext = rect{}
	}
	return ext, n, sum, nil
}

// taps computes the sample positions of the n source pixels of one axis.
func taps(dst []tap, n, gn, in int, scale, pad, a, b float32) []tap {
	for i := range n {
		v := (float32(i)+0.5)*scale + pad
		g := v*a + b
		if !(g > 0) { // also NaN
			g = 0
		}
		g = min(g, float32(gn-1))
		i0 := int(g)
		dst = append(dst, tap{i0: i0, i1: min(i0+1, gn-1), f: g - float32(i0), in: v >= 0 && v < float32(in)})
	}
	return dst
}

// extentIn returns the extent of the foreground inside reg.
func (r *raster) extentIn(reg rect) rect {
	ext := rect{reg.x1, reg.y1, reg.x0, reg.y0}
	for y := reg.y0; y < reg.y1; y++ {
		row := r.buf[y*r.w : (y+1)*r.w]
		for x := reg.x0; x < reg.x1; x++ {
			if row[x] != 0 {
				ext.x0, ext.x1 = min(ext.x0, x), max(ext.x1, x+1)
				ext.y0, ext.y1 = min(ext.y0, y), max(ext.y1, y+1)
			}
		}
	}
	return ext
}

// encode returns the whole-frame RLE of the foreground inside reg; it
// equals frame.EncodeMask of the buffer with everything outside reg
// cleared, without scanning outside reg.
func (r *raster) encode(reg rect) *frame.Mask {
	w, h := r.w, r.h
	reg = reg.intersect(rect{0, 0, w, h})
	m := &frame.Mask{Width: w, Height: h}
	var run uint32
	cur := byte(0)
	push := func(v byte, k int) {
		if k <= 0 {
			return
		}
		if v != cur {
			m.Counts = append(m.Counts, run)
			run, cur = 0, v
		}
		run += uint32(k)
	}
	if reg.empty() {
		m.Counts = append(m.Counts, uint32(w*h))
		return m
	}
	push(0, reg.x0*h)
	for x := reg.x0; x < reg.x1; x++ {
		push(0, reg.y0)
		for y := reg.y0; y < reg.y1; y++ {
			push(r.buf[y*w+x], 1)
		}
		push(0, h-reg.y1)
	}
	push(0, (w-reg.x1)*h)
	m.Counts = append(m.Counts, run)
	return m
}

// logit returns the inverse of the sigmoid, for thresholding logits.
func logit(p float32) float32 {
	return float32(math.Log(float64(p) / float64(1-p)))
}
