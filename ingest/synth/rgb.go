package synth

import (
	"fmt"
	"image"

	"github.com/vigil-video/vigil/frame"
)

// ToRGB converts a YUV420P (limited range, as Render makes) or YUVJ420P (full
// range) frame to RGBA with the ITU-R BT.601 matrix, for viewing or for a
// trainer's tensors; each chroma sample serves its 2x2 block. It reuses dst
// when its bounds match the frame, and returns the picture it wrote.
func ToRGB(f *frame.Frame, dst *image.RGBA) (*image.RGBA, error) {
	w, h := f.Width, f.Height
	var ys, cs, y0 int32 // 16.16 fixed point
	switch f.Format {
	case frame.PixelFormatYUV420P:
		ys, cs, y0 = 76309, 74711, 16 // 255/219, 255/224
	case frame.PixelFormatYUVJ420P:
		ys, cs, y0 = 65536, 65536, 0
	default:
		return nil, fmt.Errorf("converting %v to RGB: want yuv420p or yuvj420p", f.Format)
	}
	cw, ch := (w+1)/2, (h+1)/2
	if w <= 0 || h <= 0 || f.Strides[0] < w || f.Strides[1] < cw || f.Strides[2] < cw ||
		len(f.Planes[0]) < (h-1)*f.Strides[0]+w ||
		len(f.Planes[1]) < (ch-1)*f.Strides[1]+cw || len(f.Planes[2]) < (ch-1)*f.Strides[2]+cw {
		return nil, fmt.Errorf("converting %dx%d frame to RGB: planes or strides too small", w, h)
	}
	if dst == nil || dst.Rect != image.Rect(0, 0, w, h) {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	// BT.601: R = Y + 1.402 V, G = Y - 0.344136 U - 0.714136 V,
	// B = Y + 1.772 U, with U and V scaled by cs.
	var ly [256]int32
	for i := range ly {
		ly[i] = (int32(i)-y0)*ys + 1<<15 // rounds the >>16 below
	}
	irv := int32(1.402 * float64(cs))
	igu, igv := int32(0.344136*float64(cs)), int32(0.714136*float64(cs))
	ibu := int32(1.772 * float64(cs))
	for y := range h {
		yr := f.Planes[0][y*f.Strides[0]:][:w]
		ur := f.Planes[1][y/2*f.Strides[1]:][:cw]
		vr := f.Planes[2][y/2*f.Strides[2]:][:cw]
		out := dst.Pix[y*dst.Stride:][:4*w]
		for cx := range w / 2 {
			u, v := int32(ur[cx])-128, int32(vr[cx])-128
			r, g, b := irv*v, -igu*u-igv*v, ibu*u
			o := (*[8]byte)(out[8*cx:])
			l0, l1 := ly[yr[2*cx]], ly[yr[2*cx+1]]
			o[0] = clamp16(l0 + r)
			o[1] = clamp16(l0 + g)
			o[2] = clamp16(l0 + b)
			o[3] = 255
			o[4] = clamp16(l1 + r)
			o[5] = clamp16(l1 + g)
			o[6] = clamp16(l1 + b)
			o[7] = 255
		}
		if w%2 == 1 {
			u, v := int32(ur[cw-1])-128, int32(vr[cw-1])-128
			l := ly[yr[w-1]]
			o := (*[4]byte)(out[4*w-4:])
			o[0], o[1], o[2], o[3] = clamp16(l+irv*v), clamp16(l-igu*u-igv*v), clamp16(l+ibu*u), 255
		}
	}
	return dst, nil
}

// clampTab[i] is i-clampZero clamped to a byte: a branch-free clamp of the
// sums, which span about -250..530 (luma term plus chroma term).
const clampZero = 384

var clampTab = func() (t [1024]byte) {
	for i := range t {
		t[i] = byte(min(max(i-clampZero, 0), 255))
	}
	return t
}()

// clamp16 returns x>>16 clamped to a byte.
func clamp16(x int32) byte { return clampTab[(x>>16+clampZero)&1023] }
