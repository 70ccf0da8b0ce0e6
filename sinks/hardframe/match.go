package hardframe

import (
	"cmp"
	"slices"

	"github.com/vigil-video/vigil/frame"
)

// matches reports whether two detections are the same object in
// neighbouring frames: the same track, or the same class overlapping by at
// least minIoU.
func matches(a, b *frame.Detection, minIoU float32) bool {
	if a.TrackID != 0 && a.TrackID == b.TrackID {
		return true
	}
	return a.Class == b.Class && a.Box.IoU(b.Box) >= minIoU
}

// matchesAny reports whether d matches one of dets.
func matchesAny(d *frame.Detection, dets []frame.Detection, minIoU float32) bool {
	for i := range dets {
		if matches(d, &dets[i], minIoU) {
			return true
		}
	}
	return false
}

// f1 scores how well two detection lists agree: detections of one class
// are paired greedily by decreasing IoU (at least minIoU), as COCO's
// matching does, and F1 = 2*pairs / (len(a)+len(b)). Two empty lists agree
// fully.
func f1(a, b []frame.Detection, minIoU float32) (score float64, pairs int) {
	if len(a)+len(b) == 0 {
		return 1, 0
	}
	type pair struct {
		i, j int
		iou  float32
	}
	var ps []pair
	for i := range a {
		for j := range b {
			if a[i].Class != b[j].Class {
				continue
			}
			if iou := a[i].Box.IoU(b[j].Box); iou >= minIoU {
				ps = append(ps, pair{i, j, iou})
			}
		}
	}
	slices.SortFunc(ps, func(x, y pair) int { return cmp.Compare(y.iou, x.iou) })
	usedA, usedB := make([]bool, len(a)), make([]bool, len(b))
	for _, p := range ps {
		if !usedA[p.i] && !usedB[p.j] {
			usedA[p.i], usedB[p.j] = true, true
			pairs++
		}
	}
	return 2 * float64(pairs) / float64(len(a)+len(b)), pairs
}

// lerpBox is the box a fraction t of the way from a to b.
func lerpBox(a, b frame.Box, t float32) frame.Box {
	l := func(x, y float32) float32 { return x + (y-x)*t }
	return frame.Box{X1: l(a.X1, b.X1), Y1: l(a.Y1, b.Y1), X2: l(a.X2, b.X2), Y2: l(a.Y2, b.Y2)}
}
