package prep

import (
	"math"

	"github.com/vigil-video/vigil/frame"
)

// Colour conversion works in fixed point with convBits fraction bits and
// ends in a table that clamps to 0..255 and turns the sum into float32 in
// one load: a branch-free clamp costs more than the rest of the pixel in
// Go (float min/max handle NaN and -0), and a branchy one mispredicts on
// noisy content. Each converted value is within 1/4 of the exact BT.601
// result (the luma and the chroma term are each rounded to 1/8).
const (
	convBits = 2
	convOne  = 1 << convBits
	// clampSize is a power of two larger than the range of luma + chroma
	// terms (about -230..490 in 0..255 units), so that masking the index
	// removes the bounds check; clampZero is the index of 0.
	clampSize = 4096
	clampZero = 1536
	// fineBits is the precision chroma terms are summed at before rounding
	// to convBits.
	fineBits = 12
)

// clampTab[clampZero + v] is v/convOne clamped to 0..255. An array, not a
// pointer, so that the hot loop indexes it without reloading its address.
var clampTab [clampSize]float32

func init() {
	for i := range clampTab {
		clampTab[i] = float32(min(max(float64(i-clampZero)/convOne, 0), 255))
	}
}

// yuvTable holds the BT.601 YUV to RGB terms per 8-bit sample: luma in
// convBits fixed point (offset by clampZero), chroma in fineBits.
type yuvTable struct {
	y      [256]int32 // luma term of R, G and B, plus clampZero
	rv, gv [256]int32 // V terms of R and G
	gu, bu [256]int32 // U terms of G and B
}

var (
	limitedYUV = newYUVTable(true)
	fullYUV    = newYUVTable(false)
)

// newYUVTable builds the ITU-R BT.601 matrix (Kr = 0.299, Kb = 0.114) for
// limited range (Y 16..235, chroma 16..240) or full range samples.
func newYUVTable(limited bool) *yuvTable {
	const kr, kb = 0.299, 0.114
	const kg = 1 - kr - kb
	ys, cs, y0 := 1.0, 1.0, 0.0
	if limited {
		ys, cs, y0 = 255.0/219, 255.0/224, 16
	}
	fine := func(v float64) int32 { return int32(math.Round(v * (1 << fineBits))) }
	t := new(yuvTable)
	for i := range 256 {
		c := (float64(i) - 128) * cs
		t.y[i] = int32(math.Round((float64(i)-y0)*ys*convOne)) + clampZero
		t.rv[i] = fine(2 * (1 - kr) * c)
		t.gv[i] = fine(-2 * kr * (1 - kr) / kg * c)
		t.gu[i] = fine(-2 * kb * (1 - kb) / kg * c)
		t.bu[i] = fine(2 * (1 - kb) * c)
	}
	return t
}

// chroma returns the R, G and B chroma terms of a (u, v) sample in convBits.
func (t *yuvTable) chroma(u, v byte) (r, g, b int32) {
	const half = 1 << (fineBits - convBits - 1)
	const shift = fineBits - convBits
	return (t.rv[v] + half) >> shift, (t.gu[u] + t.gv[v] + half) >> shift, (t.bu[u] + half) >> shift
}

// put stores the clamped RGB of luma term l and chroma terms in o[0:3].
func put(o []float32, l, r, g, b int32) {
	o = o[:3]
	o[0] = clampTab[(l+r)&(clampSize-1)]
	o[1] = clampTab[(l+g)&(clampSize-1)]
	o[2] = clampTab[(l+b)&(clampSize-1)]
}

// convert turns frame row y, at the region's needed columns (relative to
// x0), into packed RGB 0..255 in p.conv, one triple per column of pl.cols.
func (p *Preparer) convert(f *frame.Frame, x0, y int, pl *plan) {
	conv := p.conv[:3*len(pl.cols)]
	switch f.Format {
	case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P:
		t := limitedYUV
		if f.Format == frame.PixelFormatYUVJ420P {
			t = fullYUV
		}
		yr := f.Planes[0][y*f.Strides[0]:]
		cy := y >> 1
		ur := f.Planes[1][cy*f.Strides[1]:]
		vr := f.Planes[2][cy*f.Strides[2]:]
		if !pl.useRuns {
			for k, c := range pl.cols {
				x := x0 + int(c)
				r, g, b := t.chroma(ur[x>>1], vr[x>>1])
				put(conv[3*k:], t.y[yr[x]], r, g, b)
			}
			return
		}
		k := 0
		for i := 0; i+1 < len(pl.runs); i += 2 {
			n := int(pl.runs[i+1])
			convertYUV(t, yr, ur, vr, x0+int(pl.runs[i]), conv[3*k:3*(k+n)])
			k += n
		}
	case frame.PixelFormatRGB24:
		row := f.Planes[0][y*f.Strides[0]:]
		for k, c := range pl.cols {
			x := x0 + int(c)
			px, o := row[3*x:3*x+3], conv[3*k:3*k+3]
			o[0], o[1], o[2] = float32(px[0]), float32(px[1]), float32(px[2])
		}
	default: // gray8
		row := f.Planes[0][y*f.Strides[0]:]
		for k, c := range pl.cols {
			v := float32(row[x0+int(c)])
			o := conv[3*k : 3*k+3]
			o[0], o[1], o[2] = v, v, v
		}
	}
}

// convertYUV converts len(o)/3 adjacent pixels from column x of a 4:2:0
// row, two at a time where they share a chroma sample.
func convertYUV(t *yuvTable, yr, ur, vr []byte, x int, o []float32) {
	n := len(o) / 3
	k := 0
	if x&1 == 1 && n > 0 {
		r, g, b := t.chroma(ur[x>>1], vr[x>>1])
		put(o, t.y[yr[x]], r, g, b)
		k, x = 1, x+1
	}
	yr = yr[:x+n-k] // one bounds check for the pairs below
	for ; k+1 < n; k, x = k+2, x+2 {
		c := x >> 1
		r, g, b := t.chroma(ur[c], vr[c])
		yy := yr[x : x+2]
		pp := o[3*k : 3*k+6]
		put(pp, t.y[yy[0]], r, g, b)
		put(pp[3:], t.y[yy[1]], r, g, b)
	}
	if k < n {
		r, g, b := t.chroma(ur[x>>1], vr[x>>1])
		put(o[3*k:], t.y[yr[x]], r, g, b)
	}
}

// bilinearYUV converts and resizes one 4:2:0 row in one step, for bilinear
// taps that are adjacent pixels (x0, x0+1) spread far apart (large
// downscaling), where a converted row would be written and read for
// nothing. x0 holds each output's first tap relative to column xr.
func bilinearYUV(f *frame.Frame, xr, y int, x0 []int32, w []float32, dr, dg, db []float32) {
	t := limitedYUV
	if f.Format == frame.PixelFormatYUVJ420P {
		t = fullYUV
	}
	yr := f.Planes[0][y*f.Strides[0]:]
	cy := y >> 1
	ur := f.Planes[1][cy*f.Strides[1]:]
	vr := f.Planes[2][cy*f.Strides[2]:]
	n := len(dr)
	x0, w, dg, db = x0[:n], w[:2*n], dg[:n], db[:n]
	var px [6]float32
	for i := range dr {
		x := xr + int(x0[i])
		yy := yr[x : x+2]
		r, g, b := t.chroma(ur[x>>1], vr[x>>1])
		put(px[:3], t.y[yy[0]], r, g, b)
		if x&1 == 1 { // the pair straddles two chroma samples
			r, g, b = t.chroma(ur[(x+1)>>1], vr[(x+1)>>1])
		}
		put(px[3:], t.y[yy[1]], r, g, b)
		w0, w1 := w[2*i], w[2*i+1]
		dr[i] = px[0]*w0 + px[3]*w1
		dg[i] = px[1]*w0 + px[4]*w1
		db[i] = px[2]*w0 + px[5]*w1
	}
}
