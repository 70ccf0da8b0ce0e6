package training

import (
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/training/dataset"
)

// scoreDetections computes COCO box mAP of preds against samples' objects
// for the given classes (matched by label; Ignore objects are crowd
// regions).
func scoreDetections(samples []dataset.Sample, preds [][]frame.Detection, classes []string) (detectStats, error) {
	gt := &cocoeval.Dataset{}
	for c, name := range classes {
		gt.Categories = append(gt.Categories, cocoeval.Category{ID: int64(c + 1), Name: name})
	}
	class := func(label string) int64 {
		for c, name := range classes {
			if name == label {
				return int64(c + 1)
			}
		}
		return 0
	}
	var dets []cocoeval.Result
	id := int64(0)
	for i, s := range samples {
		img := int64(i + 1)
		gt.Images = append(gt.Images, cocoeval.Image{ID: img, Width: s.Image.Rect.Dx(), Height: s.Image.Rect.Dy()})
		for _, o := range s.Objects {
			c := class(o.Label)
			if c == 0 {
				continue
			}
			id++
			crowd := 0
			if o.Ignore {
				crowd = 1
			}
			b := o.Box
			gt.Annotations = append(gt.Annotations, cocoeval.Annotation{ID: id, ImageID: img, CategoryID: c,
				BBox: []float64{float64(b.X1), float64(b.Y1), float64(b.W()), float64(b.H())}, Area: float64(b.W() * b.H()), IsCrowd: crowd})
		}
		for _, d := range preds[i] {
			c := class(d.Label)
			if c == 0 {
				continue
			}
			b := d.Box
			dets = append(dets, cocoeval.Result{ImageID: img, CategoryID: c, Score: float64(d.Score),
				BBox: []float64{float64(b.X1), float64(b.Y1), float64(b.W()), float64(b.H())}})
		}
	}
	st, err := cocoeval.Evaluate(gt, dets, cocoeval.BBox)
	if err != nil {
		return detectStats{}, err
	}
	ap, _ := st.Get("ap")
	ap50, _ := st.Get("ap50")
	return detectStats{map50: ap50, mAP: ap}, nil
}
