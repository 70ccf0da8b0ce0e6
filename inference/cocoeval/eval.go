// Package cocoeval scores detections, masks and keypoints against a COCO
// ground truth exactly as pycocotools' COCOeval does (evaluate, accumulate,
// summarize), so that Vigil's numbers can be compared with published ones.
//
// Ground truth enters as a Dataset (Load reads a COCO JSON file, or build
// one in memory), detections as []Result (LoadResults reads a COCO results
// file); Evaluate returns the 12 summary numbers (bbox, segm) or 10
// (keypoints) as Stats, which marshal to JSON by name. The package does no
// I/O beyond the two Load functions and starts no goroutines.
//
// Everything follows cocodataset/cocoapi's PythonAPI (coco.py loadRes and
// annToRLE, cocoeval.py) and common/maskApi.c, down to its quirks: the
// "ignore" field is overwritten by "iscrowd", the kind of the first result
// decides how all results are read, scores are sorted stably, thresholds
// are NumPy's linspace values and means use NumPy's pairwise summation.
// Where pycocotools would crash on bad input, this package returns an
// error naming the field. It accepts two things pycocotools rejects:
// an empty results list (all zeros) and segmentation results given as
// polygons or uncompressed RLE (rasterised at the image's size).
package cocoeval

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vigil-video/vigil/frame"
)

// IoU types.
const (
	BBox      = "bbox"
	Segm      = "segm"
	Keypoints = "keypoints"
)

// ErrIoUType reports an IoU type other than bbox, segm and keypoints.
var ErrIoUType = errors.New("unknown IoU type (want bbox, segm or keypoints)")

// eps is np.spacing(1).
const eps = 2.220446049250313e-16

// cocoSigmas are pycocotools' per-keypoint OKS constants times 10 for the
// 17 COCO person keypoints; Params divides them by 10 as NumPy does.
var cocoSigmas = [17]float64{.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89}

// Params are COCOeval's parameters. DefaultParams gives pycocotools'
// defaults; the summary (Stats) reads them the way summarize() does, so
// it is only meaningful for the default area labels and max detections.
type Params struct {
	IoUType string
	// ImageIDs and CategoryIDs restrict the evaluation; empty means all
	// images and categories of the ground truth.
	ImageIDs    []int64
	CategoryIDs []int64
	// IoUThresholds default to np.linspace(.5, .95, 10).
	IoUThresholds []float64
	// RecallThresholds default to np.linspace(0, 1, 101).
	RecallThresholds []float64
	// MaxDets default to [1 10 100] (keypoints: [20]).
	MaxDets []int
	// AreaRanges and AreaLabels default to all, small, medium, large
	// (keypoints: all, medium, large) with COCO's 32² and 96² bounds.
	AreaRanges [][2]float64
	AreaLabels []string
	// UseCats false pools all categories, as for proposals. pycocotools
	// computes no OKS then, so keypoints require UseCats.
	UseCats bool
	// KeypointSigmas are the OKS sigmas, one per keypoint; they default
	// to COCO's 17 person keypoints.
	KeypointSigmas []float64
}

// DefaultParams returns pycocotools' default Params for an IoU type.
func DefaultParams(iouType string) (Params, error) {
	p := Params{
		IoUType:          iouType,
		IoUThresholds:    linspace(.5, .95, 10),
		RecallThresholds: linspace(0, 1, 101),
		UseCats:          true,
	}
	switch iouType {
	case BBox, Segm:
		p.MaxDets = []int{1, 10, 100}
		p.AreaRanges = [][2]float64{{0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}}
		p.AreaLabels = []string{"all", "small", "medium", "large"}
	case Keypoints:
		p.MaxDets = []int{20}
		p.AreaRanges = [][2]float64{{0, 1e10}, {32 * 32, 96 * 96}, {96 * 96, 1e10}}
		p.AreaLabels = []string{"all", "medium", "large"}
		p.KeypointSigmas = make([]float64, len(cocoSigmas))
		ten := 10.0
		for i, s := range cocoSigmas {
			p.KeypointSigmas[i] = s / ten
		}
	default:
		return Params{}, fmt.Errorf("%w: %q", ErrIoUType, iouType)
	}
	return p, nil
}

// linspace is np.linspace(start, stop, num): i*step + start, the last
// value set to stop. (i/100.0 would differ from NumPy in the last bit.)
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	step := (stop - start) / float64(num-1)
	for i := range y {
		y[i] = float64(float64(i)*step) + start
	}
	y[num-1] = stop
	return y
}

// Evaluate scores dets against gt with pycocotools' default parameters
// for iouType (bbox, segm or keypoints).
func Evaluate(gt *Dataset, dets []Result, iouType string) (Stats, error) {
	p, err := DefaultParams(iouType)
	if err != nil {
		return Stats{}, err
	}
	e, err := EvaluateParams(gt, dets, p)
	if err != nil {
		return Stats{}, err
	}
	return e.Stats(), nil
}

// Eval holds the accumulated precision and recall of one evaluation, as
// COCOeval.eval does after accumulate().
type Eval struct {
	Params Params
	// CategoryIDs are the evaluated categories, sorted (one -1 when
	// UseCats is false).
	CategoryIDs []int64
	// Precision[t][r][k][a][m] flattened in that order (T, R, K, A, M);
	// -1 where the setting has no ground truth.
	Precision []float64
	// Recall[t][k][a][m] flattened; -1 where there is no ground truth.
	Recall []float64
}

// gtObj and dtObj are the prepared annotations of one image and category.
type gtObj struct {
	id     int64
	area   float64
	crowd  bool
	ignore bool
	bbox   [4]float64
	mask   frame.Mask
	kp     []float64
	numKP  int
}

type dtObj struct {
	id    int64
	area  float64
	score float64
	bbox  [4]float64
	mask  frame.Mask
	kp    []float64
}

// evalImg is evaluateImg's result for one image, category and area range.
type evalImg struct {
	scores    []float64
	matched   []bool // T x D: dtMatches != 0
	dtIgnore  []bool // T x D
	gtIgnored []bool // G, sorted: not ignored first
}

// EvaluateParams evaluates and accumulates dets against gt with p, like COCOeval's
// evaluate() and accumulate().
func EvaluateParams(gt *Dataset, dets []Result, p Params) (*Eval, error) {
	if gt == nil {
		return nil, errors.New("no ground truth")
	}
	switch p.IoUType {
	case BBox, Segm:
	case Keypoints:
		if !p.UseCats {
			return nil, errors.New("keypoints evaluation needs UseCats: pycocotools computes no OKS without categories")
		}
		if len(p.KeypointSigmas) == 0 {
			return nil, errors.New("keypoints evaluation needs KeypointSigmas")
		}
	default:
		return nil, fmt.Errorf("%w: %q", ErrIoUType, p.IoUType)
	}
	if len(p.IoUThresholds) == 0 || len(p.RecallThresholds) == 0 || len(p.MaxDets) == 0 || len(p.AreaRanges) == 0 {
		return nil, errors.New("params need IoU and recall thresholds, max detections and area ranges")
	}
	if len(p.AreaLabels) != len(p.AreaRanges) {
		return nil, fmt.Errorf("params have %d area labels for %d area ranges", len(p.AreaLabels), len(p.AreaRanges))
	}
	ev := &evaluator{p: p, gt: gt}
	if err := ev.prepare(dets); err != nil {
		return nil, err
	}
	if err := ev.evaluate(); err != nil {
		return nil, err
	}
	return ev.accumulate(), nil
}

type evaluator struct {
	p      Params
	gt     *Dataset
	imgIDs []int64 // sorted, unique
	catIDs []int64 // sorted, unique (or [-1])
	imgs   map[int64]Image
	// gts and dts by image index * len(catIDs) + category index.
	gts     [][]gtObj
	dts     [][]dtObj
	maxDet  int
	evals   []*evalImg // by k, a, i like COCOeval.evalImgs
	nImages int
	nCats   int // category slots: len(catIDs), or 1 without UseCats
}

// prepare does loadRes and _prepare: it picks the evaluated images and
// categories, converts results, and groups both by image and category.
func (ev *evaluator) prepare(dets []Result) error {
	p := &ev.p
	gt := ev.gt
	ev.imgs = make(map[int64]Image, len(gt.Images))
	for _, im := range gt.Images {
		ev.imgs[im.ID] = im
	}
	if len(p.ImageIDs) > 0 {
		ev.imgIDs = uniqueSorted(p.ImageIDs)
	} else {
		ev.imgIDs = make([]int64, 0, len(ev.imgs))
		for id := range ev.imgs {
			ev.imgIDs = append(ev.imgIDs, id)
		}
		slices.Sort(ev.imgIDs)
	}
	if len(p.CategoryIDs) > 0 {
		ev.catIDs = uniqueSorted(p.CategoryIDs)
	} else {
		ids := make([]int64, len(gt.Categories))
		for i, c := range gt.Categories {
			ids[i] = c.ID
		}
		ev.catIDs = uniqueSorted(ids)
	}
	p.MaxDets = slices.Clone(p.MaxDets)
	slices.Sort(p.MaxDets)
	ev.maxDet = p.MaxDets[len(p.MaxDets)-1]
	ev.nImages = len(ev.imgIDs)

	imgIdx := make(map[int64]int, len(ev.imgIDs))
	for i, id := range ev.imgIDs {
		imgIdx[id] = i
	}
	catIdx := make(map[int64]int, len(ev.catIDs))
	for k, id := range ev.catIDs {
		catIdx[id] = k
	}
	K := len(ev.catIDs)
	if !p.UseCats {
		K = 1
	}
	ev.nCats = K
	ev.gts = make([][]gtObj, len(ev.imgIDs)*K)
	ev.dts = make([][]dtObj, len(ev.imgIDs)*K)
	// group maps an annotation to its slot; with UseCats false all
	// categories of an image share one slot, in category order, as
	// pycocotools concatenates them.
	group := func(img, cat int64) (int, bool) {
		i, ok := imgIdx[img]
		if !ok {
			return 0, false
		}
		k, ok := catIdx[cat]
		if !ok {
			return 0, false
		}
		if !p.UseCats {
			return i, true
		}
		return i*K + k, true
	}

	// Ground truth. loadAnns looks annotations up by id, so with
	// duplicate ids the last one stands in for all of them.
	last := make(map[int64]int, len(gt.Annotations))
	for i, a := range gt.Annotations {
		last[a.ID] = i
	}
	type slotted struct {
		slot, cat int
		obj       gtObj
	}
	var gtList []slotted
	for _, a := range gt.Annotations {
		if _, ok := imgIdx[a.ImageID]; !ok {
			continue
		}
		if _, ok := catIdx[a.CategoryID]; !ok && p.UseCats {
			continue
		}
		li := last[a.ID]
		la := &gt.Annotations[li]
		slot, ok := group(la.ImageID, la.CategoryID)
		if !ok {
			continue
		}
		o, err := ev.gtObject(la)
		if err != nil {
			return fmt.Errorf("annotations[%d] (id %d): %w", li, la.ID, err)
		}
		gtList = append(gtList, slotted{slot, catIdx[la.CategoryID], o})
	}
	if !p.UseCats {
		// Concatenated per image in category order, file order within.
		slices.SortStableFunc(gtList, func(a, b slotted) int { return cmp.Compare(a.cat, b.cat) })
	}
	for _, s := range gtList {
		ev.gts[s.slot] = append(ev.gts[s.slot], s.obj)
	}

	// Results, as loadRes reads them.
	if len(dets) == 0 {
		return nil
	}
	kind := ""
	switch {
	case len(dets[0].BBox) > 0:
		kind = BBox
	case dets[0].Segmentation != nil:
		kind = Segm
	case dets[0].Keypoints != nil:
		kind = Keypoints
	default:
		return errors.New("results[0] has no bbox, segmentation or keypoints")
	}
	type dslotted struct {
		slot, cat int
		obj       dtObj
	}
	dtList := make([]dslotted, 0, len(dets))
	for i := range dets {
		r := &dets[i]
		if _, ok := ev.imgs[r.ImageID]; !ok {
			return fmt.Errorf("results[%d]: image_id %d is not in the ground truth", i, r.ImageID)
		}
		if math.IsNaN(r.Score) {
			return fmt.Errorf("results[%d]: score is NaN", i)
		}
		o, err := ev.dtObject(r, kind, int64(i+1))
		if err != nil {
			return fmt.Errorf("results[%d]: %w", i, err)
		}
		slot, ok := group(r.ImageID, r.CategoryID)
		if !ok {
			continue
		}
		dtList = append(dtList, dslotted{slot, catIdx[r.CategoryID], o})
	}
	if !p.UseCats {
		slices.SortStableFunc(dtList, func(a, b dslotted) int { return cmp.Compare(a.cat, b.cat) })
	}
	for _, s := range dtList {
		ev.dts[s.slot] = append(ev.dts[s.slot], s.obj)
	}
	return nil
}

func (ev *evaluator) gtObject(a *Annotation) (gtObj, error) {
	o := gtObj{id: a.ID, area: a.Area, crowd: a.IsCrowd != 0, kp: a.Keypoints, numKP: a.NumKeypoints}
	// _prepare: ignore = iscrowd (the file's "ignore" is overwritten).
	o.ignore = o.crowd
	switch ev.p.IoUType {
	case BBox:
		if len(a.BBox) != 4 {
			return o, fmt.Errorf("bbox has %d numbers, want 4", len(a.BBox))
		}
		o.bbox = [4]float64(a.BBox)
	case Segm:
		m, err := ev.toMask(a.Segmentation, a.ImageID)
		if err != nil {
			return o, fmt.Errorf("segmentation: %w", err)
		}
		o.mask = m
	case Keypoints:
		if len(a.BBox) != 4 {
			return o, fmt.Errorf("bbox has %d numbers, want 4", len(a.BBox))
		}
		o.bbox = [4]float64(a.BBox)
		if len(a.Keypoints) != 3*len(ev.p.KeypointSigmas) {
			return o, fmt.Errorf("keypoints has %d numbers, want %d", len(a.Keypoints), 3*len(ev.p.KeypointSigmas))
		}
		o.ignore = a.NumKeypoints == 0 || o.ignore
	}
	return o, nil
}

// dtObject applies loadRes to one result: kind is the branch the first
// result chose.
func (ev *evaluator) dtObject(r *Result, kind string, id int64) (dtObj, error) {
	o := dtObj{id: id, score: r.Score, kp: r.Keypoints}
	switch kind {
	case BBox:
		if len(r.BBox) != 4 {
			return o, fmt.Errorf("bbox has %d numbers, want 4 (results[0] has a bbox)", len(r.BBox))
		}
		o.bbox = [4]float64(r.BBox)
		o.area = r.BBox[2] * r.BBox[3]
	case Segm:
		if r.Segmentation == nil {
			return o, errors.New("segmentation is missing (results[0] has one)")
		}
		m, err := ev.toMask(r.Segmentation, r.ImageID)
		if err != nil {
			return o, fmt.Errorf("segmentation: %w", err)
		}
		o.area = float64(m.Area())
		if len(r.BBox) == 4 {
			o.bbox = [4]float64(r.BBox)
		} else {
			o.bbox = m.BBox()
		}
		o.mask = m
	case Keypoints:
		if len(r.Keypoints) < 3 {
			return o, fmt.Errorf("keypoints has %d numbers, want x y v triples (results[0] has keypoints)", len(r.Keypoints))
		}
		x0, x1 := math.Inf(1), math.Inf(-1)
		y0, y1 := math.Inf(1), math.Inf(-1)
		for j := 0; j+1 < len(r.Keypoints); j += 3 {
			x, y := r.Keypoints[j], r.Keypoints[j+1]
			x0, x1 = math.Min(x0, x), math.Max(x1, x)
			y0, y1 = math.Min(y0, y), math.Max(y1, y)
		}
		o.area = (x1 - x0) * (y1 - y0)
		o.bbox = [4]float64{x0, y0, x1 - x0, y1 - y0}
	}
	switch ev.p.IoUType {
	case Segm:
		switch kind {
		case BBox:
			seg := r.Segmentation
			if seg == nil {
				b := r.BBox
				x1, x2, y1, y2 := b[0], b[0]+b[2], b[1], b[1]+b[3]
				seg = &Segmentation{Polygons: [][]float64{{x1, y1, x1, y2, x2, y2, x2, y1}}}
			}
			m, err := ev.toMask(seg, r.ImageID)
			if err != nil {
				return o, fmt.Errorf("segmentation: %w", err)
			}
			o.mask = m
		case Keypoints:
			return o, errors.New("segmentation is missing (keypoint results)")
		}
	case Keypoints:
		if len(r.Keypoints) != 3*len(ev.p.KeypointSigmas) {
			return o, fmt.Errorf("keypoints has %d numbers, want %d", len(r.Keypoints), 3*len(ev.p.KeypointSigmas))
		}
	}
	return o, nil
}

// toMask is annToRLE: polygons are rasterised at the image's size and
// merged; RLEs keep their own size.
func (ev *evaluator) toMask(s *Segmentation, imageID int64) (frame.Mask, error) {
	if s == nil {
		return frame.Mask{}, errors.New("missing")
	}
	if s.Mask != nil {
		return *s.Mask, nil
	}
	im, ok := ev.imgs[imageID]
	if !ok {
		return frame.Mask{}, fmt.Errorf("image %d is not in the ground truth", imageID)
	}
	if len(s.Polygons) == 0 {
		return frame.Mask{}, errors.New("no polygons")
	}
	// frPyObjects reads a list whose first element has 4 numbers as
	// [x y w h] boxes.
	boxes := len(s.Polygons[0]) == 4
	if !boxes && len(s.Polygons[0]) < 4 {
		return frame.Mask{}, fmt.Errorf("polygon 0 has %d numbers, want more than 4", len(s.Polygons[0]))
	}
	parts := make([]frame.Mask, len(s.Polygons))
	for i, poly := range s.Polygons {
		var err error
		if boxes {
			if len(poly) != 4 {
				return frame.Mask{}, fmt.Errorf("box %d has %d numbers, want 4", i, len(poly))
			}
			parts[i], err = frame.MaskFromBox(poly[0], poly[1], poly[2], poly[3], im.Width, im.Height)
		} else {
			parts[i], err = frame.MaskFromPolygon(poly, im.Width, im.Height)
		}
		if err != nil {
			return frame.Mask{}, fmt.Errorf("polygon %d: %w", i, err)
		}
	}
	return frame.MergeMasks(parts...), nil
}

// sortDets returns the detections in a slot ordered by descending score,
// ties in input order (np.argsort(-score, kind='mergesort')), at most n.
func sortDets(dts []dtObj, n int) []dtObj {
	s := slices.Clone(dts)
	slices.SortStableFunc(s, func(a, b dtObj) int { return cmp.Compare(b.score, a.score) })
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// evaluate is COCOeval.evaluate: IoUs per image and category, then
// evaluateImg per category, area range and image.
func (ev *evaluator) evaluate() error {
	p := &ev.p
	K := ev.nCats
	A := len(p.AreaRanges)
	ev.evals = make([]*evalImg, K*A*ev.nImages)
	for i := range ev.nImages {
		for k := range K {
			slot := i*K + k
			gts := ev.gts[slot]
			dts := sortDets(ev.dts[slot], ev.maxDet)
			if len(gts) == 0 && len(dts) == 0 {
				continue
			}
			var ious []float64 // D x G, row-major; nil like pycocotools' []
			if len(gts) > 0 && len(dts) > 0 {
				ious = ev.computeIoU(gts, dts)
			}
			for a, rng := range p.AreaRanges {
				ev.evals[(k*A+a)*ev.nImages+i] = ev.evaluateImg(gts, dts, ious, rng)
			}
		}
	}
	return nil
}

func (ev *evaluator) computeIoU(gts []gtObj, dts []dtObj) []float64 {
	G, D := len(gts), len(dts)
	ious := make([]float64, D*G)
	switch ev.p.IoUType {
	case BBox:
		for d := range dts {
			for g := range gts {
				ious[d*G+g] = frame.BoxIoU(dts[d].bbox, gts[g].bbox, gts[g].crowd)
			}
		}
	case Segm:
		for d := range dts {
			for g := range gts {
				ious[d*G+g] = frame.MaskIoU(dts[d].mask, gts[g].mask, gts[g].crowd)
			}
		}
	case Keypoints:
		ev.computeOKS(gts, dts, ious)
	}
	return ious
}

// computeOKS is COCOeval.computeOks, in the same order of operations.
func (ev *evaluator) computeOKS(gts []gtObj, dts []dtObj, ious []float64) {
	sig := ev.p.KeypointSigmas
	k := len(sig)
	vars := make([]float64, k)
	for i, s := range sig {
		v := s * 2
		vars[i] = v * v
	}
	e := make([]float64, 0, k)
	G := len(gts)
	for j, gt := range gts {
		xg := gt.kp
		k1 := 0
		for i := range k {
			if xg[3*i+2] > 0 {
				k1++
			}
		}
		bb := gt.bbox
		// float64() keeps Go from fusing into an FMA, which NumPy never does.
		x0, x1 := bb[0]-bb[2], bb[0]+float64(bb[2]*2)
		y0, y1 := bb[1]-bb[3], bb[1]+float64(bb[3]*2)
		for i, dt := range dts {
			e = e[:0]
			for n := range k {
				xd, yd := dt.kp[3*n], dt.kp[3*n+1]
				var dx, dy float64
				if k1 > 0 {
					if xg[3*n+2] <= 0 {
						continue
					}
					dx, dy = xd-xg[3*n], yd-xg[3*n+1]
				} else {
					dx = math.Max(0, x0-xd) + math.Max(0, xd-x1)
					dy = math.Max(0, y0-yd) + math.Max(0, yd-y1)
				}
				v := float64(dx*dx) + float64(dy*dy)
				v = v / vars[n] / (gt.area + eps) / 2
				e = append(e, math.Exp(-v))
			}
			ious[i*G+j] = pairwiseSum(e) / float64(len(e))
		}
	}
}

// evaluateImg is COCOeval.evaluateImg for one image and category.
func (ev *evaluator) evaluateImg(gts []gtObj, dts []dtObj, ious []float64, rng [2]float64) *evalImg {
	p := &ev.p
	G, D, T := len(gts), len(dts), len(p.IoUThresholds)
	// Sort ground truth: not ignored first, stably.
	gtIg := make([]bool, G)
	order := make([]int, 0, G)
	for g, o := range gts {
		gtIg[g] = o.ignore || o.area < rng[0] || o.area > rng[1]
		if !gtIg[g] {
			order = append(order, g)
		}
	}
	for g := range gts {
		if gtIg[g] {
			order = append(order, g)
		}
	}
	e := &evalImg{
		scores:    make([]float64, D),
		matched:   make([]bool, T*D),
		dtIgnore:  make([]bool, T*D),
		gtIgnored: make([]bool, G),
	}
	for d := range dts {
		e.scores[d] = dts[d].score
	}
	for j, g := range order {
		e.gtIgnored[j] = gtIg[g]
	}
	if ious != nil {
		gtm := make([]bool, G) // per threshold: matched to a detection
		for t, thr := range p.IoUThresholds {
			clear(gtm)
			for d := range dts {
				best := math.Min(thr, 1-1e-10)
				m := -1
				for j, g := range order {
					if gtm[j] && !gts[g].crowd {
						continue
					}
					if m > -1 && !e.gtIgnored[m] && e.gtIgnored[j] {
						break
					}
					iou := ious[d*G+g]
					if iou < best {
						continue
					}
					best = iou
					m = j
				}
				if m == -1 {
					continue
				}
				e.dtIgnore[t*D+d] = e.gtIgnored[m]
				// dtMatches holds the gt id; accumulate reads it as a
				// truth value, so an id of 0 counts as unmatched.
				e.matched[t*D+d] = gts[order[m]].id != 0
				gtm[m] = true // dt ids start at 1
			}
		}
	}
	for d := range dts {
		out := dts[d].area < rng[0] || dts[d].area > rng[1]
		if !out {
			continue
		}
		for t := range T {
			if !e.matched[t*D+d] {
				e.dtIgnore[t*D+d] = true
			}
		}
	}
	return e
}

// accumulate is COCOeval.accumulate.
func (ev *evaluator) accumulate() *Eval {
	p := ev.p
	T, R, A, M := len(p.IoUThresholds), len(p.RecallThresholds), len(p.AreaRanges), len(p.MaxDets)
	K := len(ev.catIDs)
	cats := slices.Clone(ev.catIDs)
	if !p.UseCats {
		K, cats = 1, []int64{-1}
	}
	out := &Eval{Params: p, CategoryIDs: cats}
	out.Precision = make([]float64, T*R*K*A*M)
	out.Recall = make([]float64, T*K*A*M)
	for i := range out.Precision {
		out.Precision[i] = -1
	}
	for i := range out.Recall {
		out.Recall[i] = -1
	}
	if ev.nImages == 0 {
		return out
	}
	type det struct {
		score float64
		e     *evalImg
		d, D  int
	}
	var all []det
	var tps, fps, rc, pr []float64
	for k := range K {
		for a := range A {
			for m, maxDet := range p.MaxDets {
				all = all[:0]
				npig := 0
				found := false
				for i := range ev.nImages {
					e := ev.evals[(k*A+a)*ev.nImages+i]
					if e == nil {
						continue
					}
					found = true
					D := len(e.scores)
					for d := range min(D, maxDet) {
						all = append(all, det{e.scores[d], e, d, D})
					}
					for _, ig := range e.gtIgnored {
						if !ig {
							npig++
						}
					}
				}
				if !found || npig == 0 {
					continue
				}
				slices.SortStableFunc(all, func(x, y det) int { return cmp.Compare(y.score, x.score) })
				nd := len(all)
				for t := range T {
					tps, fps = tps[:0], fps[:0]
					var tp, fp float64
					for _, x := range all {
						if x.e.dtIgnore[t*x.D+x.d] {
						} else if x.e.matched[t*x.D+x.d] {
							tp++
						} else {
							fp++
						}
						tps = append(tps, tp)
						fps = append(fps, fp)
					}
					rc, pr = rc[:0], pr[:0]
					for j := range nd {
						rc = append(rc, tps[j]/float64(npig))
						pr = append(pr, tps[j]/(fps[j]+tps[j]+eps))
					}
					ri := ((t*K+k)*A+a)*M + m
					if nd > 0 {
						out.Recall[ri] = rc[nd-1]
					} else {
						out.Recall[ri] = 0
					}
					for j := nd - 1; j > 0; j-- {
						if pr[j] > pr[j-1] {
							pr[j-1] = pr[j]
						}
					}
					// searchsorted(rc, recThrs, side='left'); thresholds
					// past the last recall keep precision 0.
					for r, thr := range p.RecallThresholds {
						pi, _ := slices.BinarySearch(rc, thr)
						q := 0.0
						if pi < nd {
							q = pr[pi]
						}
						out.Precision[(((t*R+r)*K+k)*A+a)*M+m] = q
					}
				}
			}
		}
	}
	return out
}

// pairwiseSum is NumPy's float64 add.reduce over a contiguous array:
// blocks of 8192 (the ufunc buffer) each summed pairwise with 8-way
// unrolling below 128 elements, the block sums added in order.
func pairwiseSum(a []float64) float64 {
	s := 0.0
	for len(a) > 0 {
		n := min(len(a), 8192)
		s += pairwiseBlock(a[:n])
		a = a[n:]
	}
	return s
}

func pairwiseBlock(a []float64) float64 {
	n := len(a)
	switch {
	case n < 8:
		s := 0.0
		for _, v := range a {
			s += v
		}
		return s
	case n <= 128:
		var r [8]float64
		copy(r[:], a[:8])
		i := 8
		for ; i < n-n%8; i += 8 {
			for j := range 8 {
				r[j] += a[i+j]
			}
		}
		s := ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
		for ; i < n; i++ {
			s += a[i]
		}
		return s
	default:
		n2 := n / 2
		n2 -= n2 % 8
		return pairwiseBlock(a[:n2]) + pairwiseBlock(a[n2:])
	}
}

func uniqueSorted(ids []int64) []int64 {
	s := slices.Clone(ids)
	slices.Sort(s)
	return slices.Compact(s)
}
