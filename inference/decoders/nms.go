package decoders

import (
	"cmp"
	"slices"

	"github.com/vigil-video/vigil/frame"
)

// NMS is greedy non-maximum suppression: it sorts dets by descending score
// and keeps a detection unless it overlaps a kept,
// higher-scored one by IoU > iou (of the same class when classAware). It
// works in place and returns the kept prefix of dets, at most max of them
// (max <= 0: no cap). A detection with a NaN score sorts last.
func NMS(dets []frame.Detection, iou float32, classAware bool, max int) []frame.Detection {
	sortByScore(dets)
	n := 0
	for i := range dets {
		if max > 0 && n >= max {
			break
		}
		d := dets[i]
		keep := true
		for j := range n {
			k := &dets[j]
			if classAware && k.Class != d.Class {
				continue
			}
			if k.Box.IoU(d.Box) > iou {
				keep = false
				break
			}
		}
		if keep {
			dets[n] = d
			n++
		}
	}
	return dets[:n]
}

// sortByScore sorts by descending score, with NaN last. The order of
// equal scores is unspecified but deterministic.
func sortByScore(dets []frame.Detection) {
	slices.SortFunc(dets, func(a, b frame.Detection) int {
		an, bn := a.Score != a.Score, b.Score != b.Score
		switch {
		case an && bn:
			return 0
		case an:
			return 1
		case bn:
			return -1
		}
		return cmp.Compare(b.Score, a.Score)
	})
}
