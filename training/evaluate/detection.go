// Package evaluate scores a trained model's predictions against labelled
// samples: COCO box and mask mAP and keypoint OKS AP (through the
// pycocotools-exact inference/cocoeval), per-image scores to find the worst
// images, semantic segmentation mIoU and pixel accuracy, and re-ID retrieval
// rank-k and mAP.
//
// Ground truth enters as []dataset.Sample (Truth reads a dataset.Source),
// predictions as one []frame.Detection per sample, one *image.Gray per sample
// for segmentation, or []Embedding for re-ID; results leave as plain structs
// that marshal to JSON. The package is pure computation: no goroutines, no
// I/O.
package evaluate

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/training/dataset"
)

// ErrLength reports predictions that do not pair up with the samples.
var ErrLength = errors.New("predictions and samples differ in number")

// Truth reads every sample of src for evaluation. It drops the images,
// which evaluation does not need, so a large validation set fits in memory;
// objects and segmentation maps are kept (they may share memory with src).
func Truth(src dataset.Source) ([]dataset.Sample, error) {
	if src == nil {
		return nil, errors.New("reading truth: nil source")
	}
	n := src.Len()
	out := make([]dataset.Sample, 0, max(n, 0))
	for i := range n {
		s, err := src.At(i)
		if err != nil {
			return nil, fmt.Errorf("reading sample %d: %w", i, err)
		}
		s.Image = nil
		out = append(out, s)
	}
	return out, nil
}

// DetectionOptions configure Detection. The zero value evaluates boxes.
type DetectionOptions struct {
	// IoUType is cocoeval.BBox (the default) or cocoeval.Segm; for Segm
	// every object and prediction needs a Mask.
	IoUType string
	// Labels name classes by index, for classes that have no ground
	// truth object to take a label from. Optional.
	Labels []string
	// MatchIoU is the IoU at which a prediction hits an object in the
	// per-image scores. It defaults to 0.5.
	MatchIoU float64
	// ScoreThreshold is the score below which predictions are left out
	// of the per-image counts and F1 (not of AP). It defaults to 0.3; a
	// negative value counts every prediction.
	ScoreThreshold float32
}

// DetectionResult is the outcome of Detection. COCO values are -1 where no
// ground truth exists for them, as in pycocotools.
type DetectionResult struct {
	// Stats are pycocotools' 12 summary numbers.
	Stats cocoeval.Stats `json:"stats"`
	// AP is mAP@[.5:.95], AP50 and AP75 at IoU .5 and .75; AR1, AR10 and
	// AR100 the recall at 1, 10 and 100 detections per image.
	AP    float64 `json:"ap"`
	AP50  float64 `json:"ap50"`
	AP75  float64 `json:"ap75"`
	AR1   float64 `json:"ar1"`
	AR10  float64 `json:"ar10"`
	AR100 float64 `json:"ar100"`
	// PerClass has one entry per evaluated class, by class index.
	PerClass []ClassAP `json:"per_class"`
	// PerImage has one entry per sample, in sample order.
	PerImage []ImageScore `json:"per_image"`
}

// ClassAP is the COCO precision of one class (all areas, 100 detections),
// -1 for a class without ground truth (one named only by Labels or a
// prediction).
type ClassAP struct {
	Class int    `json:"class"`
	Label string `json:"label"`
	// Objects counts the class's ground-truth objects, ignored ones
	// excepted.
	Objects int     `json:"objects"`
	AP      float64 `json:"ap"`
	AP50    float64 `json:"ap50"`
	AP75    float64 `json:"ap75"`
}

// ImageScore rates one image, to rank the worst.
type ImageScore struct {
	Index int    `json:"index"`
	ID    string `json:"id"`
	// Objects counts ground-truth objects that are not ignored. TP, FP and
	// FN are class-aware greedy matches at MatchIoU among predictions at or
	// above ScoreThreshold; a prediction on an ignored object counts as
	// neither.
	Objects int `json:"objects"`
	TP      int `json:"tp"`
	FP      int `json:"fp"`
	FN      int `json:"fn"`
	// F1 is 2TP/(2TP+FP+FN), 1 for an image with nothing to find and
	// nothing found.
	F1 float64 `json:"f1"`
	// AP50 is the all-point interpolated average precision of the
	// image's predictions at every score (VOC style, classes pooled,
	// matched per class): a proxy that also sees low-score hits. 1 when
	// there is nothing to find and nothing found, 0 when only one side is
	// empty.
	AP50 float64 `json:"ap50"`
}

// COCO converts samples and per-sample predictions into a cocoeval ground
// truth and results, as a COCO JSON pair would hold them: image i has id
// i+1, object j of all objects id j+1, class c is category c. Ignored
// objects become iscrowd regions. The area that decides small, medium and
// large is the mask's area when an object has a mask, else the box's.
//
// iouType chooses what the results carry: cocoeval.BBox boxes,
// cocoeval.Segm masks, cocoeval.Keypoints the 17 keypoints of predictions
// that have them (ground truth without keypoints is then left out).
func COCO(truth []dataset.Sample, preds [][]frame.Detection, iouType string, labels []string) (*cocoeval.Dataset, []cocoeval.Result, error) {
	if len(truth) != len(preds) {
		return nil, nil, fmt.Errorf("%w: %d samples, %d prediction lists", ErrLength, len(truth), len(preds))
	}
	switch iouType {
	case cocoeval.BBox, cocoeval.Segm, cocoeval.Keypoints:
	default:
		return nil, nil, fmt.Errorf("%w: %q", cocoeval.ErrIoUType, iouType)
	}
	names := map[int]string{}
	for c, l := range labels {
		names[c] = l
	}
	gt := &cocoeval.Dataset{Images: make([]cocoeval.Image, len(truth))}
	var dets []cocoeval.Result
	annID := int64(0)
	for i := range truth {
		s := &truth[i]
		imgID := int64(i + 1)
		w, h := sampleSize(s)
		gt.Images[i] = cocoeval.Image{ID: imgID, Width: w, Height: h, FileName: s.ID}
		for j := range s.Objects {
			o := &s.Objects[j]
			if o.Class < 0 {
				return nil, nil, fmt.Errorf("sample %q object %d: negative class %d", s.ID, j, o.Class)
			}
			if _, ok := names[o.Class]; !ok || names[o.Class] == "" {
				names[o.Class] = o.Label
			}
			if iouType == cocoeval.Keypoints && o.Keypoints == nil {
				continue
			}
			annID++
			a := cocoeval.Annotation{
				ID: annID, ImageID: imgID, CategoryID: int64(o.Class),
				BBox: xywh(o.Box), Area: float64(o.Box.Area()),
			}
			if o.Ignore {
				a.IsCrowd = 1
			}
			if o.Mask != nil {
				m := *o.Mask
				a.Area = float64(m.Area())
				if iouType == cocoeval.Segm {
					a.Segmentation = &cocoeval.Segmentation{Mask: &m}
				}
			} else if iouType == cocoeval.Segm {
				return nil, nil, fmt.Errorf("sample %q object %d: no mask for segm evaluation", s.ID, j)
			}
			if iouType == cocoeval.Keypoints {
				a.Keypoints, a.NumKeypoints = keypoints(o.Keypoints, true)
			}
			gt.Annotations = append(gt.Annotations, a)
		}
		for j := range preds[i] {
			d := &preds[i][j]
			if d.Class < 0 {
				return nil, nil, fmt.Errorf("sample %q prediction %d: negative class %d", s.ID, j, d.Class)
			}
			if math.IsNaN(float64(d.Score)) {
				return nil, nil, fmt.Errorf("sample %q prediction %d: score is NaN", s.ID, j)
			}
			if _, ok := names[d.Class]; !ok {
				names[d.Class] = d.Label
			}
			r := cocoeval.Result{ImageID: imgID, CategoryID: int64(d.Class), Score: float64(d.Score)}
			switch iouType {
			case cocoeval.BBox:
				r.BBox = xywh(d.Box)
			case cocoeval.Segm:
				if d.Mask == nil {
					return nil, nil, fmt.Errorf("sample %q prediction %d: no mask for segm evaluation", s.ID, j)
				}
				m := *d.Mask
				r.Segmentation = &cocoeval.Segmentation{Mask: &m}
			case cocoeval.Keypoints:
				if d.Keypoints == nil {
					continue
				}
				r.Keypoints, _ = keypoints(d.Keypoints, false)
			}
			dets = append(dets, r)
		}
	}
	classes := make([]int, 0, len(names))
	for c := range names {
		classes = append(classes, c)
	}
	slices.Sort(classes)
	for _, c := range classes {
		gt.Categories = append(gt.Categories, cocoeval.Category{ID: int64(c), Name: names[c]})
	}
	return gt, dets, nil
}

// sampleSize is the image size of a sample, from its image, its
// segmentation map or its first mask, in that order.
func sampleSize(s *dataset.Sample) (int, int) {
	switch {
	case s.Image != nil:
		b := s.Image.Bounds()
		return b.Dx(), b.Dy()
	case s.Segmentation != nil:
		b := s.Segmentation.Bounds()
		return b.Dx(), b.Dy()
	}
	for _, o := range s.Objects {
		if o.Mask != nil {
			return o.Mask.Width, o.Mask.Height
		}
	}
	return 0, 0
}

func xywh(b frame.Box) []float64 {
	return []float64{float64(b.X1), float64(b.Y1), float64(b.X2 - b.X1), float64(b.Y2 - b.Y1)}
}

// keypoints writes COCO's [x y v ...]: for ground truth v is 2 for a
// visible point and 0 otherwise; for predictions v is the point's score
// (cocoeval reads only the ground truth's visibility).
func keypoints(kps frame.Keypoints, truth bool) ([]float64, int) {
	out := make([]float64, 0, 3*len(kps))
	n := 0
	for _, k := range kps {
		v := float64(k.Score)
		if truth {
			if k.Score > 0 {
				v = 2
				n++
			} else {
				v = 0
			}
		}
		out = append(out, float64(k.X), float64(k.Y), v)
	}
	return out, n
}

// Detection scores per-sample predictions against the samples' objects
// with COCO's box (or mask) evaluation and per-image matching.
func Detection(truth []dataset.Sample, preds [][]frame.Detection, opt DetectionOptions) (*DetectionResult, error) {
	if opt.IoUType == "" {
		opt.IoUType = cocoeval.BBox
	}
	if opt.IoUType != cocoeval.BBox && opt.IoUType != cocoeval.Segm {
		return nil, fmt.Errorf("evaluating detections: %w: %q", cocoeval.ErrIoUType, opt.IoUType)
	}
	if opt.MatchIoU <= 0 {
		opt.MatchIoU = 0.5
	}
	if opt.ScoreThreshold == 0 {
		opt.ScoreThreshold = 0.3
	}
	gt, dets, err := COCO(truth, preds, opt.IoUType, opt.Labels)
	if err != nil {
		return nil, fmt.Errorf("evaluating detections: %w", err)
	}
	p, err := cocoeval.DefaultParams(opt.IoUType)
	if err != nil {
		return nil, fmt.Errorf("evaluating detections: %w", err)
	}
	ev, err := cocoeval.EvaluateParams(gt, dets, p)
	if err != nil {
		return nil, fmt.Errorf("evaluating detections: %w", err)
	}
	st := ev.Stats()
	res := &DetectionResult{Stats: st}
	for _, f := range []struct {
		dst  *float64
		name string
	}{{&res.AP, "ap"}, {&res.AP50, "ap50"}, {&res.AP75, "ap75"}, {&res.AR1, "ar1"}, {&res.AR10, "ar10"}, {&res.AR100, "ar100"}} {
		*f.dst, _ = st.Get(f.name)
	}
	objects := map[int64]int{}
	for _, a := range gt.Annotations {
		if a.IsCrowd == 0 {
			objects[a.CategoryID]++
		}
	}
	for k, c := range gt.Categories {
		res.PerClass = append(res.PerClass, ClassAP{
			Class: int(c.ID), Label: c.Name, Objects: objects[c.ID],
			AP:   classPrecision(ev, k, -1),
			AP50: classPrecision(ev, k, 0.5),
			AP75: classPrecision(ev, k, 0.75),
		})
	}
	res.PerImage = make([]ImageScore, len(truth))
	for i := range truth {
		res.PerImage[i] = imageScore(i, &truth[i], preds[i], opt)
	}
	return res, nil
}

// classPrecision is the mean of category k's precision over the recall
// thresholds and the IoU thresholds (iou < 0) or one of them, at area "all"
// and the largest max-detections, leaving out -1 as summarize() does.
func classPrecision(ev *cocoeval.Eval, k int, iou float64) float64 {
	p := ev.Params
	T, R, K, A, M := len(p.IoUThresholds), len(p.RecallThresholds), len(ev.CategoryIDs), len(p.AreaRanges), len(p.MaxDets)
	a := slices.Index(p.AreaLabels, "all")
	if a < 0 || k >= K {
		return -1
	}
	m := M - 1
	var sum float64
	n := 0
	for t := range T {
		if iou >= 0 && math.Abs(p.IoUThresholds[t]-iou) > 1e-9 {
			continue
		}
		for r := range R {
			v := ev.Precision[(((t*R+r)*K+k)*A+a)*M+m]
			if v > -1 {
				sum += v
				n++
			}
		}
	}
	if n == 0 {
		return -1
	}
	return sum / float64(n)
}

// imageScore matches one image's predictions greedily by score, class by
// class, to count hits and to compute a per-image AP50.
func imageScore(idx int, s *dataset.Sample, dets []frame.Detection, opt DetectionOptions) ImageScore {
	sc := ImageScore{Index: idx, ID: s.ID}
	for _, o := range s.Objects {
		if !o.Ignore {
			sc.Objects++
		}
	}
	order := make([]int, len(dets))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(dets[b].Score, dets[a].Score) })

	used := make([]bool, len(s.Objects))
	var hits []bool // per counted prediction, by falling score
	for _, di := range order {
		d := &dets[di]
		best, bestIoU := -1, opt.MatchIoU
		ignored := false
		for j := range s.Objects {
			o := &s.Objects[j]
			if o.Class != d.Class || used[j] {
				continue
			}
			iou := float64(d.Box.IoU(o.Box))
			if iou < opt.MatchIoU {
				continue
			}
			if o.Ignore {
				ignored = true
				continue
			}
			if best < 0 || iou > bestIoU {
				best, bestIoU = j, iou
			}
		}
		switch {
		case best >= 0:
			used[best] = true
			hits = append(hits, true)
			if d.Score >= opt.ScoreThreshold {
				sc.TP++
			}
		case ignored:
		default:
			hits = append(hits, false)
			if d.Score >= opt.ScoreThreshold {
				sc.FP++
			}
		}
	}
	sc.FN = sc.Objects - sc.TP
	if den := 2*sc.TP + sc.FP + sc.FN; den > 0 {
		sc.F1 = float64(2*sc.TP) / float64(den)
	} else {
		sc.F1 = 1
	}
	sc.AP50 = averagePrecision(hits, sc.Objects)
	return sc
}

// averagePrecision is the all-point interpolated area under the
// precision-recall curve of ranked hits against n positives.
func averagePrecision(hits []bool, n int) float64 {
	if n == 0 {
		if len(hits) == 0 {
			return 1
		}
		return 0
	}
	prec := make([]float64, len(hits))
	rec := make([]float64, len(hits))
	tp := 0
	for i, h := range hits {
		if h {
			tp++
		}
		prec[i] = float64(tp) / float64(i+1)
		rec[i] = float64(tp) / float64(n)
	}
	for i := len(prec) - 2; i >= 0; i-- {
		prec[i] = max(prec[i], prec[i+1])
	}
	ap, prev := 0.0, 0.0
	for i := range hits {
		if rec[i] > prev {
			ap += (rec[i] - prev) * prec[i]
			prev = rec[i]
		}
	}
	return ap
}

// Worst returns the n lowest-scoring images, by F1, then AP50, then the
// number of objects (more first), then index.
func Worst(scores []ImageScore, n int) []ImageScore {
	out := slices.Clone(scores)
	slices.SortStableFunc(out, func(a, b ImageScore) int {
		return cmp.Or(cmp.Compare(a.F1, b.F1), cmp.Compare(a.AP50, b.AP50), cmp.Compare(b.Objects, a.Objects), cmp.Compare(a.Index, b.Index))
	})
	if n >= 0 && n < len(out) {
		out = out[:n]
	}
	return out
}
