package augment

import (
	"math"

	"github.com/vigil-video/vigil/frame"
)

// Transform is the affine map from a sample's pixel coordinates to those of
// the sample Apply or Letterbox made from it:
//
//	x' = A*x + B*y + C
//	y' = D*x + E*y + F
//
// Coordinates are continuous: pixel (i, j) covers [i, i+1) x [j, j+1), as
// frame.Box takes them. Inverse maps the other way, so a prediction on the
// network input goes back to the original picture with
// t.Inverse().Box(pred).
type Transform struct {
	A, B, C, D, E, F float64
	// SrcW, SrcH and DstW, DstH are the sizes of the pictures it maps from
	// and to; Box clips to the destination.
	SrcW, SrcH, DstW, DstH int
}

// Point maps one point.
func (t Transform) Point(x, y float64) (float64, float64) {
	return t.A*x + t.B*y + t.C, t.D*x + t.E*y + t.F
}

// Det is the determinant of the linear part: the factor by which areas
// grow, negative when the map mirrors.
func (t Transform) Det() float64 { return t.A*t.E - t.B*t.D }

// Inverse returns the map back from the destination to the source. A
// degenerate Transform (Det 0) has no inverse; it returns the zero
// Transform then, which maps everything to (0, 0).
func (t Transform) Inverse() Transform {
	det := t.Det()
	if det == 0 || math.IsNaN(det) || math.IsInf(det, 0) {
		return Transform{SrcW: t.DstW, SrcH: t.DstH, DstW: t.SrcW, DstH: t.SrcH}
	}
	a, b, d, e := t.E/det, -t.B/det, -t.D/det, t.A/det
	return Transform{
		A: a, B: b, C: -(a*t.C + b*t.F),
		D: d, E: e, F: -(d*t.C + e*t.F),
		SrcW: t.DstW, SrcH: t.DstH, DstW: t.SrcW, DstH: t.SrcH,
	}
}

// Then returns the map that applies t and then u.
func (t Transform) Then(u Transform) Transform {
	return Transform{
		A: u.A*t.A + u.B*t.D, B: u.A*t.B + u.B*t.E, C: u.A*t.C + u.B*t.F + u.C,
		D: u.D*t.A + u.E*t.D, E: u.D*t.B + u.E*t.E, F: u.D*t.C + u.E*t.F + u.F,
		SrcW: t.SrcW, SrcH: t.SrcH, DstW: u.DstW, DstH: u.DstH,
	}
}

// BoxUnclipped maps a box's four corners and returns the rectangle around
// them. A rotation makes it larger than the object it held.
func (t Transform) BoxUnclipped(b frame.Box) frame.Box {
	x1, y1 := float64(b.X1), float64(b.Y1)
	x2, y2 := float64(b.X2), float64(b.Y2)
	lx, ly := math.Inf(1), math.Inf(1)
	hx, hy := math.Inf(-1), math.Inf(-1)
	for _, p := range [4][2]float64{{x1, y1}, {x2, y1}, {x1, y2}, {x2, y2}} {
		x, y := t.Point(p[0], p[1])
		lx, ly = min(lx, x), min(ly, y)
		hx, hy = max(hx, x), max(hy, y)
	}
	return frame.Box{X1: float32(lx), Y1: float32(ly), X2: float32(hx), Y2: float32(hy)}
}

// Box maps a box as BoxUnclipped does and clips it to the destination
// picture; a box wholly outside comes back empty (X1 == X2 or Y1 == Y2).
func (t Transform) Box(b frame.Box) frame.Box {
	return clipBox(t.BoxUnclipped(b), t.DstW, t.DstH)
}

// Keypoints maps each point; a point that lands outside the destination
// picture gets Score 0. It does not swap left and right after a mirror:
// see SwapLeftRight.
func (t Transform) Keypoints(k frame.Keypoints) frame.Keypoints {
	if k == nil {
		return nil
	}
	out := make(frame.Keypoints, len(k))
	for i, p := range k {
		x, y := t.Point(float64(p.X), float64(p.Y))
		out[i] = frame.Keypoint{X: float32(x), Y: float32(y), Score: p.Score}
		if !(x >= 0 && x < float64(t.DstW) && y >= 0 && y < float64(t.DstH)) {
			out[i].Score = 0
		}
	}
	return out
}

// COCOFlipPairs are the 0-based indices of COCO's 17 person keypoints that
// trade places in a mirror image: eyes, ears, shoulders, elbows, wrists,
// hips, knees and ankles.
var COCOFlipPairs = [8][2]int{{1, 2}, {3, 4}, {5, 6}, {7, 8}, {9, 10}, {11, 12}, {13, 14}, {15, 16}}

// SwapLeftRight swaps the left and right keypoints of a COCO person in
// place, as a horizontal flip requires (the left eye of a mirrored person
// is where the right eye was). Keypoints of another length are left alone.
func SwapLeftRight(k frame.Keypoints) {
	if len(k) != 17 {
		return
	}
	for _, p := range COCOFlipPairs {
		k[p[0]], k[p[1]] = k[p[1]], k[p[0]]
	}
}

func clipBox(b frame.Box, w, h int) frame.Box {
	fw, fh := float32(w), float32(h)
	b.X1 = min(max(b.X1, 0), fw)
	b.X2 = min(max(b.X2, 0), fw)
	b.Y1 = min(max(b.Y1, 0), fh)
	b.Y2 = min(max(b.Y2, 0), fh)
	b.X2 = max(b.X2, b.X1)
	b.Y2 = max(b.Y2, b.Y1)
	return b
}
