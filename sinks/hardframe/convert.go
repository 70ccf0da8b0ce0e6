package hardframe

import (
	"fmt"
	"image"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
)

// toRGBA converts f to RGBA for the store, reusing dst when its size
// matches: YUV with the BT.601 matrix (synth.ToRGB), RGB24 and gray copied.
func toRGBA(f *frame.Frame, dst *image.RGBA) (*image.RGBA, error) {
	switch f.Format {
	case frame.PixelFormatYUV420P, frame.PixelFormatYUVJ420P:
		return synth.ToRGB(f, dst)
	case frame.PixelFormatRGB24, frame.PixelFormatGray8:
	default:
		return nil, fmt.Errorf("converting frame %d of %s: pixel format %s not supported", f.Seq, f.StreamID, f.Format)
	}
	w, h := f.Width, f.Height
	bpp := 1
	if f.Format == frame.PixelFormatRGB24 {
		bpp = 3
	}
	if w <= 0 || h <= 0 || f.Strides[0] < bpp*w || len(f.Planes[0]) < f.Strides[0]*(h-1)+bpp*w {
		return nil, fmt.Errorf("converting frame %d of %s: %dx%d %s plane of %d bytes with stride %d is too small",
			f.Seq, f.StreamID, w, h, f.Format, len(f.Planes[0]), f.Strides[0])
	}
	if dst == nil || dst.Rect != image.Rect(0, 0, w, h) {
		dst = image.NewRGBA(image.Rect(0, 0, w, h))
	}
	for y := range h {
		src := f.Planes[0][y*f.Strides[0]:]
		out := dst.Pix[y*dst.Stride:]
		for x := range w {
			o := out[4*x : 4*x+4]
			if bpp == 3 {
				o[0], o[1], o[2] = src[3*x], src[3*x+1], src[3*x+2]
			} else {
				o[0], o[1], o[2] = src[x], src[x], src[x]
			}
			o[3] = 0xff
		}
	}
	return dst, nil
}
