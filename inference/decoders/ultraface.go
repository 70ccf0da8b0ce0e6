package decoders

import (
	"fmt"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// ultraFace decodes Ultra-Light-Fast-Generic-Face-Detector's two outputs:
// scores [N, A, 2] (softmaxed background, face) and boxes [N, A, 4]
// (already decoded x1, y1, x2, y2 as fractions of the input). Score =
// the face probability (class 0, "face"); then NMS.
type ultraFace struct {
	o     Options
	lab   labeler
	cands []frame.Detection
}

func newUltraFace(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("ultraface"))
	return &ultraFace{o: o, lab: labeler{labels: o.Labels, def: "face"}}, nil
}

func (d *ultraFace) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 2 {
		return dst, fmt.Errorf("decoding ultraface: %d outputs, want scores and boxes", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	scores, err := item(outs[0], b, -1, 2)
	if err != nil {
		return dst, err
	}
	boxes, err := item(outs[1], b, outs[0].Shape[1], 4)
	if err != nil {
		return dst, err
	}
	iw, ih := float32(d.o.InputW), float32(d.o.InputH)
	d.cands = d.cands[:0]
	for i := range len(scores) / 2 {
		s := scores[2*i+1]
		if !(s >= d.o.ScoreThreshold) {
			continue
		}
		p := boxes[4*i : 4*i+4]
		box, ok := sourceBox(tf, p[0]*iw, p[1]*ih, p[2]*iw, p[3]*ih)
		if !ok {
			continue
		}
		d.cands = append(d.cands, frame.Detection{Box: box, Class: 0, Score: s})
	}
	return finishDetections(dst, d.cands, d.o, &d.lab), nil
}
