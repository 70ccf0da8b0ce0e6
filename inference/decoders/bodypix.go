package decoders

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/prep"
)

// bodyPix decodes BodyPix (MobileNetV1, output stride 16) into people with
// 17 COCO keypoints and a person mask. Outputs are NHWC and found by name:
// heatmaps [N, H, W, 17] (keypoint logits), short_offsets [N, H, W, 34]
// (y offsets of the 17 keypoints, then x offsets, in input pixels),
// displacement_fwd and displacement_bwd [N, H, W, 32] (y then x of the 16
// skeleton edges) and segments [N, H, W, 1] (person logits). The grid
// covers the input with align-corners sampling: cell (gx, gy) is input
// pixel (16*gx, 16*gy), so the input should be 16k+1 pixels per side
// (e.g. 257x353 or 513x769).
//
// Method: PoseNet's multi-person decoder (TensorFlow.js posenet
// decodeMultiplePoses). Keypoint scores are sigmoid(heatmaps); every cell
// that is a 3x3 local maximum of its keypoint's score and scores >=
// ScoreThreshold is a root candidate. Highest first, a candidate whose
// position (16*cell + short offset) lies within 20 input pixels of the same
// keypoint of an accepted pose is skipped; otherwise the pose is grown
// along the skeleton tree, backwards then forwards, each step moving by
// the edge's mid-range displacement and refining twice with the target
// keypoint's short offset. The pose score is the mean over the 17
// keypoints of those not within 20 pixels of an accepted pose's same
// keypoint; poses scoring below ScoreThreshold/2 are dropped, at most
// MaxDetections are kept.
//
// Box and mask: the person segmentation is sigmoid(segments) >
// MaskThreshold, sampled bilinearly at every source pixel. A person's
// region is the extent of its keypoints scoring >= ScoreThreshold
// expanded by a quarter of its larger side (at least one grid cell) on
// every side; Box is that keypoint extent joined with the extent of the
// mask pixels inside the region, and Mask the segmentation inside the
// region (whole-frame RLE). People whose regions overlap share pixels.
type bodyPix struct {
	o      Options
	lab    labeler
	r      raster
	scores []float32
	cands  []part
	poses  []pose
}

const (
	bpStride    = 16
	bpKeypoints = 17
	bpNMSRadius = 20
)

// bpEdges is PoseNet's pose chain (parent, child) in COCO keypoint indices.
var bpEdges = [16][2]int{
	{0, 1}, {1, 3}, {0, 2}, {2, 4}, {0, 5}, {5, 7}, {7, 9}, {5, 11},
	{11, 13}, {13, 15}, {0, 6}, {6, 8}, {8, 10}, {6, 12}, {12, 14}, {14, 16},
}

type part struct {
	score   float32
	x, y, k int
}

// pose holds keypoints in input pixels.
type pose struct {
	kp    [bpKeypoints]frame.Keypoint
	score float32
}

func newBodyPix(o Options) (Decoder, error) {
	o = withScore(o, DefaultScoreThreshold("bodypix"))
	return &bodyPix{o: o, lab: labeler{labels: o.Labels, def: "person"}}, nil
}

// nhwc is one batch item of an NHWC output.
type nhwc struct {
	data    []float32
	h, w, c int
}

func (t nhwc) at(y, x, c int) float32 { return t.data[(y*t.w+x)*t.c+c] }

func (d *bodyPix) Decode(dst []frame.Detection, outs []Tensor, b int, tf prep.Transform) ([]frame.Detection, error) {
	if err := checkTransform(tf); err != nil {
		return dst, err
	}
	names := []string{"heatmaps", "short_offsets", "displacement_fwd", "displacement_bwd", "segments"}
	chans := []int64{bpKeypoints, 2 * bpKeypoints, 2 * int64(len(bpEdges)), 2 * int64(len(bpEdges)), 1}
	var ts [5]nhwc
	var gh, gw int64 = -1, -1
	for i, name := range names {
		t, ok := findOutput(outs, name)
		if !ok {
			return dst, fmt.Errorf("decoding bodypix: no output named %q", name)
		}
		p, err := item(t, b, gh, gw, chans[i])
		if err != nil {
			return dst, err
		}
		gh, gw = t.Shape[1], t.Shape[2]
		ts[i] = nhwc{p, int(gh), int(gw), int(chans[i])}
	}
	if gh == 0 || gw == 0 {
		return dst, nil
	}
	heat, offs, fwd, bwd, seg := ts[0], ts[1], ts[2], ts[3], ts[4]

	// Keypoint scores.
	d.scores = d.scores[:0]
	for _, v := range heat.data {
		d.scores = append(d.scores, sigmoid(v))
	}
	sc := nhwc{d.scores, heat.h, heat.w, bpKeypoints}

	// Root candidates: local maxima above the threshold.
	th := d.o.ScoreThreshold
	d.cands = d.cands[:0]
	for y := range sc.h {
		for x := range sc.w {
			for k := range bpKeypoints {
				s := sc.at(y, x, k)
				if !(s >= th) || !localMax(sc, y, x, k, s) {
					continue
				}
				d.cands = append(d.cands, part{s, x, y, k})
			}
		}
	}
	slices.SortStableFunc(d.cands, func(a, b part) int { return cmp.Compare(b.score, a.score) })

	d.poses = d.poses[:0]
	for _, c := range d.cands {
		if len(d.poses) >= d.o.MaxDetections {
			break
		}
		rx := float32(c.x*bpStride) + offs.at(c.y, c.x, c.k+bpKeypoints)
		ry := float32(c.y*bpStride) + offs.at(c.y, c.x, c.k)
		if d.nearPose(c.k, rx, ry) {
			continue
		}
		var p pose
		var set [bpKeypoints]bool
		p.kp[c.k] = frame.Keypoint{X: rx, Y: ry, Score: c.score}
		set[c.k] = true
		for e := len(bpEdges) - 1; e >= 0; e-- {
			src, tgt := bpEdges[e][1], bpEdges[e][0]
			if set[src] && !set[tgt] {
				p.kp[tgt] = traverse(e, p.kp[src], tgt, sc, offs, bwd)
				set[tgt] = true
			}
		}
		for e := range bpEdges {
			src, tgt := bpEdges[e][0], bpEdges[e][1]
			if set[src] && !set[tgt] {
				p.kp[tgt] = traverse(e, p.kp[src], tgt, sc, offs, fwd)
				set[tgt] = true
			}
		}
		var sum float32
		for k, kp := range p.kp {
			if !d.nearPose(k, kp.X, kp.Y) {
				sum += kp.Score
			}
		}
		p.score = sum / bpKeypoints
		if p.score >= th/2 {
			d.poses = append(d.poses, p)
		}
	}

	// Segmentation over the source frame.
	segF := field{data: seg.data, w: seg.w, h: seg.h, rowStride: seg.w, colStride: 1}
	a := float32(1) / bpStride
	b0 := -0.5 / float32(bpStride)
	if _, _, _, err := d.r.render(segF, tf, d.o.InputW, d.o.InputH, a, b0, a, b0, logit(d.o.MaskThreshold)); err != nil {
		return dst, fmt.Errorf("decoding output %q: %w", "segments", err)
	}

	frameR := rect{0, 0, tf.SrcW, tf.SrcH}
	for _, p := range d.poses {
		det := frame.Detection{Class: 0, Label: d.lab.label(0), Score: p.score, Keypoints: make(frame.Keypoints, bpKeypoints)}
		kx0, ky0, kx1, ky1 := float32(tf.SrcW), float32(tf.SrcH), float32(0), float32(0)
		for k, kp := range p.kp {
			x, y := tf.ToSource(kp.X, kp.Y)
			det.Keypoints[k] = clampKeypoint(x, y, kp.Score, tf)
			if kp.Score >= th {
				q := det.Keypoints[k]
				kx0, ky0, kx1, ky1 = min(kx0, q.X), min(ky0, q.Y), max(kx1, q.X), max(ky1, q.Y)
			}
		}
		if kx1 < kx0 || ky1 < ky0 { // only possible with non-finite outputs
			continue
		}
		pad := max(max(kx1-kx0, ky1-ky0)/4, bpStride/tf.ScaleX, bpStride/tf.ScaleY)
		pad = min(pad, float32(tf.SrcW+tf.SrcH)) // a tiny scale must not overflow int
		reg := rect{int(kx0 - pad), int(ky0 - pad), int(kx1+pad) + 1, int(ky1+pad) + 1}.intersect(frameR)
		box := frame.Box{X1: kx0, Y1: ky0, X2: kx1, Y2: ky1}
		if m := d.r.extentIn(reg); !m.empty() {
			box.X1, box.Y1 = min(box.X1, float32(m.x0)), min(box.Y1, float32(m.y0))
			box.X2, box.Y2 = max(box.X2, float32(m.x1)), max(box.Y2, float32(m.y1))
		}
		if box.Area() <= 0 {
			continue
		}
		det.Box = box
		det.Mask = d.r.encode(reg)
		dst = append(dst, det)
	}
	return dst, nil
}

// nearPose reports whether (x, y) is within the NMS radius of keypoint k
// of an accepted pose.
func (d *bodyPix) nearPose(k int, x, y float32) bool {
	for i := range d.poses {
		q := d.poses[i].kp[k]
		dx, dy := q.X-x, q.Y-y
		if dx*dx+dy*dy <= bpNMSRadius*bpNMSRadius {
			return true
		}
	}
	return false
}

// localMax reports whether s at (y, x) is >= keypoint k's scores in the
// 3x3 window around it.
func localMax(sc nhwc, y, x, k int, s float32) bool {
	for ny := max(y-1, 0); ny <= min(y+1, sc.h-1); ny++ {
		for nx := max(x-1, 0); nx <= min(x+1, sc.w-1); nx++ {
			if sc.at(ny, nx, k) > s {
				return false
			}
		}
	}
	return true
}

// nearCell returns the grid cell nearest to input point (x, y).
func nearCell(x, y float32, h, w int) (int, int) {
	cx := roundClamp(x/bpStride, w-1)
	cy := roundClamp(y/bpStride, h-1)
	return cx, cy
}

func roundClamp(v float32, hi int) int {
	if !(v > 0) {
		return 0
	}
	if v >= float32(hi) {
		return hi
	}
	return int(v + 0.5)
}

// traverse follows skeleton edge e from keypoint src to keypoint tgt by
// the displacement at src's cell, then refines with tgt's short offsets.
func traverse(e int, src frame.Keypoint, tgt int, sc, offs, disp nhwc) frame.Keypoint {
	ne := len(bpEdges)
	cx, cy := nearCell(src.X, src.Y, sc.h, sc.w)
	x := src.X + disp.at(cy, cx, ne+e)
	y := src.Y + disp.at(cy, cx, e)
	for range 2 {
		cx, cy = nearCell(x, y, sc.h, sc.w)
		x = float32(cx*bpStride) + offs.at(cy, cx, tgt+bpKeypoints)
		y = float32(cy*bpStride) + offs.at(cy, cx, tgt)
	}
	cx, cy = nearCell(x, y, sc.h, sc.w)
	return frame.Keypoint{X: x, Y: y, Score: sc.at(cy, cx, tgt)}
}
