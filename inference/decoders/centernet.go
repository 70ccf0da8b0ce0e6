package decoders

import (
	"fmt"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// centerNet decodes Vigil's own CenterNet-style detector ("Objects as
// Points", Zhou et al. 2019). Output contract, all NCHW float32 at output
// stride R = InputW / W (4 for Vigil's models; InputW and InputH must be
// R*W and R*H), matched by name in any order:
//
//   - "heatmap"   [N, C, H, W]: per-class centre probability, already
//     sigmoided, in [0, 1].
//   - "size"      [N, 2, H, W]: box width (channel 0) and height (channel 1)
//     in input pixels.
//   - "offset"    [N, 2, H, W]: sub-cell centre offset x (0) and y (1) in
//     output cells, usually in [0, 1).
//   - "keypoints" [N, 3K, H, W], optional: for keypoint k, channel 3k is
//     dx and 3k+1 dy, in input pixels relative to the object centre, and
//     3k+2 the keypoint's visibility logit (its Score is the sigmoid).
//
// A cell of class c is a peak when its heatmap value is >= each of its
// 3x3 neighbours' (CenterNet's 3x3 max-pool test) and >= ScoreThreshold;
// the centre is ((x + offset_x) * R, (y + offset_y) * R) and the box that
// centre +- size/2. The MaxDetections highest peaks over all classes are
// kept (top-K); there is no NMS.
type centerNet struct {
	o     Options
	lab   labeler
	cands []frame.Detection
	peaks []peak
}

type peak struct {
	score   float32
	c, x, y int
}

func newCenterNet(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("centernet"))
	return &centerNet{o: o, lab: labeler{labels: o.Labels}}, nil
}

func findOutput(outs []Tensor, name string) (Tensor, bool) {
	for _, t := range outs {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

func (d *centerNet) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	var ts [3]Tensor
	for i, name := range []string{"heatmap", "size", "offset"} {
		t, ok := findOutput(outs, name)
		if !ok {
			return dst, fmt.Errorf("decoding centernet: no output named %q", name)
		}
		ts[i] = t
	}
	heat, err := item(ts[0], b, -1, -1, -1)
	if err != nil {
		return dst, err
	}
	nc, gh, gw := int(ts[0].Shape[1]), ts[0].Shape[2], ts[0].Shape[3]
	size, err := item(ts[1], b, 2, gh, gw)
	if err != nil {
		return dst, err
	}
	off, err := item(ts[2], b, 2, gh, gw)
	if err != nil {
		return dst, err
	}
	var kps []float32
	nk := 0
	if t, ok := findOutput(outs, "keypoints"); ok {
		if kps, err = item(t, b, -1, gh, gw); err != nil {
			return dst, err
		}
		if t.Shape[1]%3 != 0 {
			return dst, fmt.Errorf("decoding output %q: %d channels, want 3 per keypoint", t.Name, t.Shape[1])
		}
		nk = int(t.Shape[1]) / 3
	}
	w, h := int(gw), int(gh)
	if w == 0 || h == 0 || nc == 0 {
		return dst, nil
	}
	rx, ry := float32(d.o.InputW)/float32(w), float32(d.o.InputH)/float32(h)
	plane := w * h
	th := d.o.ScoreThreshold
	d.peaks = d.peaks[:0]
	for c := range nc {
		hm := heat[c*plane : (c+1)*plane]
		for y := range h {
			for x := range w {
				v := hm[y*w+x]
				if !(v >= th) {
					continue
				}
				if isPeak(hm, w, h, x, y, v) {
					d.peaks = append(d.peaks, peak{v, c, x, y})
				}
			}
		}
	}
	d.cands = d.cands[:0]
	for _, p := range d.peaks {
		i := p.y*w + p.x
		cx := (float32(p.x) + off[i]) * rx
		cy := (float32(p.y) + off[plane+i]) * ry
		bw, bh := size[i], size[plane+i]
		box, ok := sourceBox(tf, cx-bw/2, cy-bh/2, cx+bw/2, cy+bh/2)
		if !ok {
			continue
		}
		det := frame.Detection{Box: box, Class: p.c, Label: d.lab.label(p.c), Score: p.score}
		// The keypoint head is trained on people only.
		if nk > 0 && (det.Label == "person" || det.Label == "") {
			det.Keypoints = make(frame.Keypoints, nk)
			for k := range nk {
				kx, ky := tf.ToSource(cx+kps[(3*k)*plane+i], cy+kps[(3*k+1)*plane+i])
				det.Keypoints[k] = clampKeypoint(kx, ky, sigmoid(kps[(3*k+2)*plane+i]), tf)
			}
		}
		d.cands = append(d.cands, det)
	}
	sortByScore(d.cands)
	if len(d.cands) > d.o.MaxDetections {
		d.cands = d.cands[:d.o.MaxDetections]
	}
	return append(dst, d.cands...), nil
}

// isPeak reports whether v at (x, y) is >= its 3x3 neighbours.
func isPeak(hm []float32, w, h, x, y int, v float32) bool {
	for ny := max(y-1, 0); ny <= min(y+1, h-1); ny++ {
		for nx := max(x-1, 0); nx <= min(x+1, w-1); nx++ {
			if hm[ny*w+nx] > v {
				return false
			}
		}
	}
	return true
}

// clampKeypoint keeps a keypoint inside the source frame; a non-finite
// one becomes (0, 0) with score 0.
func clampKeypoint(x, y, s float32, tf prep.Transform) frame.Keypoint {
	if !finite(x) || !finite(y) || !finite(s) {
		return frame.Keypoint{}
	}
	return frame.Keypoint{
		X:     max(0, min(x, float32(tf.SrcW))),
		Y:     max(0, min(y, float32(tf.SrcH))),
		Score: s,
	}
}
