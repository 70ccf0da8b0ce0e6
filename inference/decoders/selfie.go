package decoders

import (
	"fmt"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// selfie decodes a one-channel person probability map such as MediaPipe
// selfie segmentation's segment_back [N, H, W, 1] (or [N, 1, H, W]),
// which covers the model input. The map is sampled bilinearly at every
// source pixel centre (undoing the Transform; map pixel centres at
// (i+0.5)*InputW/W), thresholded at MaskThreshold, and returned as one
// "person" detection (source pixels outside the model input, as around a
// crop, are background) (class 0) whose Box is the mask's extent, Score the
// mean probability over the mask and Mask the whole-frame RLE. An empty
// mask gives no detection.
type selfie struct {
	o   Options
	lab labeler
	r   raster
}

func newSelfie(o Options) (Decoder, error) {
	return &selfie{o: o, lab: labeler{labels: o.Labels, def: "person"}}, nil
}

func (d *selfie) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 1 {
		return dst, fmt.Errorf("decoding selfie: %d outputs, want 1", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	t := outs[0]
	if len(t.Shape) != 4 {
		return dst, fmt.Errorf("decoding output %q: shape %v, want [N H W 1] or [N 1 H W]", t.Name, t.Shape)
	}
	gh, gw := t.Shape[1], t.Shape[2]
	if t.Shape[3] != 1 {
		gh, gw = t.Shape[2], t.Shape[3]
	}
	want := []int64{gh, gw, 1}
	if t.Shape[3] != 1 {
		want = []int64{1, gh, gw}
	}
	p, err := item(t, b, want...)
	if err != nil {
		return dst, err
	}
	f := field{data: p, w: int(gw), h: int(gh), rowStride: int(gw), colStride: 1}
	ax := float32(gw) / float32(d.o.InputW)
	ay := float32(gh) / float32(d.o.InputH)
	ext, n, sum, err := d.r.render(f, tf, d.o.InputW, d.o.InputH, ax, -0.5, ay, -0.5, d.o.MaskThreshold)
	if err != nil {
		return dst, fmt.Errorf("decoding output %q: %w", t.Name, err)
	}
	if n == 0 {
		return dst, nil
	}
	return append(dst, frame.Detection{
		Box:   frame.Box{X1: float32(ext.x0), Y1: float32(ext.y0), X2: float32(ext.x1), Y2: float32(ext.y1)},
		Class: 0, Label: d.lab.label(0),
		Score: float32(sum / float64(n)),
		Mask:  d.r.encode(ext),
	}), nil
}
