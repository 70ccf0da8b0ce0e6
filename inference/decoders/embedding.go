package decoders

import (
	"fmt"
	"math"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// embedding decodes a re-identification model's vector output [N, D]
// (trailing 1s allowed, e.g. [N, D, 1, 1]) into one detection whose
// Embedding is the L2-normalised vector (a new slice the caller keeps)
// and whose Box is the whole model input mapped back through tf (the crop
// in source pixels). Class 0, Score 1.
type embedding struct {
	o   Options
	lab labeler
}

func newEmbedding(o Options) (Decoder, error) {
	return &embedding{o: o, lab: labeler{labels: o.Labels, def: "person"}}, nil
}

func (d *embedding) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if len(outs) != 1 {
		return dst, fmt.Errorf("decoding embedding: %d outputs, want 1", len(outs))
	}
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	t := outs[0]
	want := make([]int64, len(t.Shape)-1)
	for i := range want {
		want[i] = -1
		if i > 0 {
			want[i] = 1
		}
	}
	if len(want) == 0 {
		return dst, fmt.Errorf("decoding output %q: shape %v, want [N D]", t.Name, t.Shape)
	}
	v, err := item(t, b, want...)
	if err != nil {
		return dst, err
	}
	if len(v) == 0 {
		return dst, fmt.Errorf("decoding output %q: empty embedding", t.Name)
	}
	var ss float64
	for _, x := range v {
		ss += float64(x) * float64(x)
	}
	norm := math.Sqrt(ss)
	if !(norm > 0) || math.IsInf(norm, 0) {
		return dst, fmt.Errorf("decoding output %q: embedding norm is %v", t.Name, norm)
	}
	e := make([]float32, len(v))
	for i, x := range v {
		e[i] = float32(float64(x) / norm)
	}
	box := tf.Box(frame.Box{X2: float32(d.o.InputW), Y2: float32(d.o.InputH)})
	return append(dst, frame.Detection{Box: box, Class: 0, Label: d.lab.label(0), Score: 1, Embedding: e}), nil
}
