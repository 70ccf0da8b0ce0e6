package decoders

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// nanoDet decodes NanoDet(-m)'s GFL head exported as six outputs, in this
// order (as nanodet_m's ONNX names them): cls_pred_stride_8/16/32
// [N, cells, C] (sigmoided class scores) then dis_pred_stride_8/16/32
// [N, cells, 4*(regMax+1)] (distance distributions to the left, top, right
// and bottom sides). Cells are the ceil(input/stride) grid, row-major;
// a cell's centre is ((x+0.5)*stride, (y+0.5)*stride) as in NanoDet's
// ncnn demo; each side's distance is the softmax-weighted mean of the
// bins 0..regMax, times the stride. Score = best class score; then NMS.
type nanoDet struct {
	o       Options
	lab     labeler
	strides [3]int
	cands   []frame.Detection
}

func newNanoDet(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("nanodet"))
	return &nanoDet{o: o, lab: labeler{labels: o.Labels}, strides: [3]int{8, 16, 32}}, nil
}

func (d *nanoDet) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 6 {
		return dst, fmt.Errorf("decoding nanodet: %d outputs, want 6 (cls and dis per stride 8, 16, 32)", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	th := d.o.ScoreThreshold
	d.cands = d.cands[:0]
	for si, s := range d.strides {
		gw := (d.o.InputW + s - 1) / s
		gh := (d.o.InputH + s - 1) / s
		cls, err := item(outs[si], b, int64(gw*gh), -1)
		if err != nil {
			return dst, err
		}
		dis, err := item(outs[si+3], b, int64(gw*gh), -1)
		if err != nil {
			return dst, err
		}
		nc := int(outs[si].Shape[2])
		nd := int(outs[si+3].Shape[2])
		if nc == 0 || nd == 0 || nd%4 != 0 {
			return dst, fmt.Errorf("decoding output %q: shape %v, want [N cells 4*(reg_max+1)]", outs[si+3].Name, outs[si+3].Shape)
		}
		bins := nd / 4
		for i := range gw * gh {
			p := cls[i*nc : (i+1)*nc]
			best, c := float32(math.Inf(-1)), 0
			for k, v := range p {
				if v > best {
					best, c = v, k
				}
			}
			if !(best >= th) {
				continue
			}
			var dist [4]float32
			q := dis[i*nd : (i+1)*nd]
			for side := range 4 {
				dist[side] = integral(q[side*bins:(side+1)*bins]) * float32(s)
			}
			cx := (float32(i%gw) + 0.5) * float32(s)
			cy := (float32(i/gw) + 0.5) * float32(s)
			box, ok := sourceBox(tf, cx-dist[0], cy-dist[1], cx+dist[2], cy+dist[3])
			if !ok {
				continue
			}
			d.cands = append(d.cands, frame.Detection{Box: box, Class: c, Score: best})
		}
	}
	return finishDetections(dst, d.cands, d.o, &d.lab), nil
}

// integral returns the expectation of the bin index under softmax(logits).
func integral(logits []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range logits {
		m = max(m, v)
	}
	var sum, acc float32
	for k, v := range logits {
		e := exp32(v - m)
		sum += e
		acc += e * float32(k)
	}
	return acc / sum
}
