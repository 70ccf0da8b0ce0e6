package synth

import (
	"bytes"
	"image"
	"image/jpeg"

	"github.com/vigil-video/vigil/frame"
)

// jpegCodec passes pictures through JPEG (ITU-T T.81 baseline, as Go's
// image/jpeg writes it: 4:2:0 chroma, so a YUV420P frame maps onto it
// plane for plane) to give them a lossy codec's artefacts. It keeps its
// buffer between frames; the decoder allocates a picture each time.
type jpegCodec struct {
	buf bytes.Buffer
	rd  bytes.Reader
}

// roundTrip replaces f's planes with their JPEG encoding at quality q,
// decoded. Both directions are deterministic, so the same picture and q
// give the same bytes.
func (c *jpegCodec) roundTrip(f *frame.Frame, q int) {
	w, h := f.Width, f.Height
	img := &image.YCbCr{
		Y: f.Planes[0], Cb: f.Planes[1], Cr: f.Planes[2],
		YStride: f.Strides[0], CStride: f.Strides[1],
		SubsampleRatio: image.YCbCrSubsampleRatio420,
		Rect:           image.Rect(0, 0, w, h),
	}
	c.buf.Reset()
	if err := jpeg.Encode(&c.buf, img, &jpeg.Options{Quality: q}); err != nil {
		return // writing to memory fails only on a bad picture, which Render never makes
	}
	c.rd.Reset(c.buf.Bytes())
	d, err := jpeg.Decode(&c.rd)
	if err != nil {
		return
	}
	out, ok := d.(*image.YCbCr)
	if !ok || out.SubsampleRatio != image.YCbCrSubsampleRatio420 || out.Rect.Dx() != w || out.Rect.Dy() != h {
		return
	}
	for y := range h {
		copy(f.Planes[0][y*f.Strides[0]:][:w], out.Y[out.YOffset(0, y):][:w])
	}
	for y := range h / 2 {
		cw := w / 2
		co := out.COffset(0, 2*y)
		copy(f.Planes[1][y*f.Strides[1]:][:cw], out.Cb[co:][:cw])
		copy(f.Planes[2][y*f.Strides[2]:][:cw], out.Cr[co:][:cw])
	}
}
