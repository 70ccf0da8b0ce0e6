package decoders

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// yolox decodes YOLOX's raw head: one output [N, A, 5+C] whose anchors are
// the cells of the stride 8, 16 and 32 grids over the input, row-major,
// stride by stride. Per anchor (tx, ty, tw, th, obj, cls...):
// centre = (t + grid) * stride, size = exp(t) * stride, score = obj times
// the best class score (the YOLOX demo's postprocess), then class-aware NMS.
type yolox struct {
	o     Options
	lab   labeler
	grid  []anchor
	cands []frame.Detection
}

// anchor is one grid cell of a strided grid.
type anchor struct {
	x, y, stride float32
}

func newYOLOX(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("yolox"))
	d := &yolox{o: o, lab: labeler{labels: o.Labels}}
	for _, s := range []int{8, 16, 32} {
		gw, gh := o.InputW/s, o.InputH/s
		for y := range gh {
			for x := range gw {
				d.grid = append(d.grid, anchor{float32(x), float32(y), float32(s)})
			}
		}
	}
	if len(d.grid) == 0 {
		return nil, fmt.Errorf("input %dx%d is smaller than one stride-32 cell", o.InputW, o.InputH)
	}
	return d, nil
}

func (d *yolox) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 1 {
		return dst, fmt.Errorf("decoding yolox: %d outputs, want 1", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	out, err := item(outs[0], b, int64(len(d.grid)), -1)
	if err != nil {
		return dst, err
	}
	cols := int(outs[0].Shape[2])
	if cols < 6 {
		return dst, fmt.Errorf("decoding output %q: %d values per anchor, want 5 + classes", outs[0].Name, cols)
	}
	th := d.o.ScoreThreshold
	d.cands = d.cands[:0]
	for i, a := range d.grid {
		p := out[i*cols : (i+1)*cols]
		obj := p[4]
		if obj < th && obj <= 1 { // score <= obj when class scores are <= 1
			continue
		}
		best, cls := float32(math.Inf(-1)), 0
		for c, v := range p[5:] {
			if v > best {
				best, cls = v, c
			}
		}
		score := obj * best
		if !(score >= th) {
			continue
		}
		cx := (p[0] + a.x) * a.stride
		cy := (p[1] + a.y) * a.stride
		w := exp32(p[2]) * a.stride
		h := exp32(p[3]) * a.stride
		box, ok := sourceBox(tf, cx-w/2, cy-h/2, cx+w/2, cy+h/2)
		if !ok {
			continue
		}
		d.cands = append(d.cands, frame.Detection{Box: box, Class: cls, Score: score})
	}
	return finishDetections(dst, d.cands, d.o, &d.lab), nil
}
