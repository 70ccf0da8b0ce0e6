package training

import (
	"image"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/training/dataset"
)

// letterbox writes img into dst [3, h, w] (RGB / 255) scaled to fit and
// centred on black, as the centernet family's input spec says, and returns
// the transform from image to input pixels.
func letterbox(dst []float32, img *image.RGBA, w, h int) prep.Transform {
	sw, sh := img.Rect.Dx(), img.Rect.Dy()
	s := min(float32(w)/float32(sw), float32(h)/float32(sh))
	nw, nh := int(float32(sw)*s+0.5), int(float32(sh)*s+0.5)
	px, py := (w-nw)/2, (h-nh)/2
	clear(dst[:3*w*h])
	plane := w * h
	for y := range nh {
		fy := (float32(y)+0.5)/s - 0.5
		y0 := min(max(int(fy), 0), sh-1)
		y1 := min(y0+1, sh-1)
		ty := min(max(fy-float32(y0), 0), 1)
		for x := range nw {
			fx := (float32(x)+0.5)/s - 0.5
			x0 := min(max(int(fx), 0), sw-1)
			x1 := min(x0+1, sw-1)
			tx := min(max(fx-float32(x0), 0), 1)
			o00, o01 := img.PixOffset(x0+img.Rect.Min.X, y0+img.Rect.Min.Y), img.PixOffset(x1+img.Rect.Min.X, y0+img.Rect.Min.Y)
			o10, o11 := img.PixOffset(x0+img.Rect.Min.X, y1+img.Rect.Min.Y), img.PixOffset(x1+img.Rect.Min.X, y1+img.Rect.Min.Y)
			i := (y+py)*w + x + px
			for c := range 3 {
				a := float32(img.Pix[o00+c])*(1-tx) + float32(img.Pix[o01+c])*tx
				b := float32(img.Pix[o10+c])*(1-tx) + float32(img.Pix[o11+c])*tx
				dst[c*plane+i] = (a*(1-ty) + b*ty) / 255
			}
		}
	}
	return prep.Transform{ScaleX: s, ScaleY: s, PadX: float32(px), PadY: float32(py), SrcW: sw, SrcH: sh}
}

// toInput maps a sample's objects into input pixels.
func toInput(objs []dataset.Object, tf prep.Transform) []dataset.Object {
	out := make([]dataset.Object, len(objs))
	for i, o := range objs {
		o.Box = frame.Box{
			X1: o.Box.X1*tf.ScaleX + tf.PadX, Y1: o.Box.Y1*tf.ScaleY + tf.PadY,
			X2: o.Box.X2*tf.ScaleX + tf.PadX, Y2: o.Box.Y2*tf.ScaleY + tf.PadY,
		}
		if o.Keypoints != nil {
			kps := make(frame.Keypoints, len(o.Keypoints))
			for j, k := range o.Keypoints {
				k.X, k.Y = tf.ToInput(k.X, k.Y)
				kps[j] = k
			}
			o.Keypoints = kps
		}
		o.Mask = nil
		out[i] = o
	}
	return out
}
