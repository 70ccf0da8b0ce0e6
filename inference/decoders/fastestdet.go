package decoders

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// fastestDet decodes FastestDet's single head [N, 5+C, H, W]: per cell the
// channels are obj (sigmoided), tx, ty, tw, th (raw) and C class scores
// (softmaxed). As in the reference postprocess (dog-qiuqiu/FastestDet):
// score = obj^0.6 * bestcls^0.4, centre = (tanh(t) + cell) / grid size,
// size = sigmoid(t), both as fractions of the input; then NMS.
type fastestDet struct {
	o      Options
	lab    labeler
	cands  []frame.Detection
	minObj float32
}

func newFastestDet(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("fastestdet"))
	// obj^0.6 * cls^0.4 >= th needs obj >= th^(1/0.6) when cls <= 1.
	minObj := float32(math.Pow(float64(o.ScoreThreshold), 1/0.6))
	return &fastestDet{o: o, lab: labeler{labels: o.Labels}, minObj: minObj}, nil
}

func (d *fastestDet) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 1 {
		return dst, fmt.Errorf("decoding fastestdet: %d outputs, want 1", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	out, err := item(outs[0], b, -1, -1, -1)
	if err != nil {
		return dst, err
	}
	ch, gh, gw := int(outs[0].Shape[1]), int(outs[0].Shape[2]), int(outs[0].Shape[3])
	if ch < 6 || gh == 0 || gw == 0 {
		return dst, fmt.Errorf("decoding output %q: shape %v, want [N 5+classes H W]", outs[0].Name, outs[0].Shape)
	}
	plane := gh * gw
	iw, ih := float32(d.o.InputW), float32(d.o.InputH)
	th := d.o.ScoreThreshold
	d.cands = d.cands[:0]
	for y := range gh {
		for x := range gw {
			i := y*gw + x
			obj := out[i]
			if !(obj >= d.minObj) && obj <= 1 {
				continue
			}
			best, cls := float32(math.Inf(-1)), 0
			for c := 5; c < ch; c++ {
				if v := out[c*plane+i]; v > best {
					best, cls = v, c-5
				}
			}
			score := float32(math.Pow(float64(obj), 0.6) * math.Pow(float64(best), 0.4))
			if !(score >= th) {
				continue
			}
			cx := (tanh(out[plane+i]) + float32(x)) / float32(gw) * iw
			cy := (tanh(out[2*plane+i]) + float32(y)) / float32(gh) * ih
			w := sigmoid(out[3*plane+i]) * iw
			h := sigmoid(out[4*plane+i]) * ih
			box, ok := sourceBox(tf, cx-w/2, cy-h/2, cx+w/2, cy+h/2)
			if !ok {
				continue
			}
			d.cands = append(d.cands, frame.Detection{Box: box, Class: cls, Score: score})
		}
	}
	return finishDetections(dst, d.cands, d.o, &d.lab), nil
}

func tanh(x float32) float32 { return float32(math.Tanh(float64(x))) }
