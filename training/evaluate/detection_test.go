package evaluate

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/training/dataset"
)

func box(x, y, w, h float32) frame.Box { return frame.Box{X1: x, Y1: y, X2: x + w, Y2: y + h} }

func twoObjects() []dataset.Sample {
	return []dataset.Sample{{
		ID: "a",
		Objects: []dataset.Object{
			{Box: box(10, 10, 40, 40), Class: 0, Label: "person", Score: 1},
			{Box: box(55, 55, 40, 40), Class: 0, Label: "person", Score: 1},
		},
	}}
}

func TestDetectionPerfect(t *testing.T) {
	truth := []dataset.Sample{
		{ID: "a", Objects: []dataset.Object{
			{Box: box(10, 10, 40, 40), Class: 0, Label: "person"},
			{Box: box(100, 20, 30, 60), Class: 2, Label: "car"},
		}},
		{ID: "b", Objects: []dataset.Object{{Box: box(5, 5, 20, 20), Class: 2, Label: "car"}}},
		{ID: "c"},
	}
	var preds [][]frame.Detection
	for _, s := range truth {
		var ds []frame.Detection
		for _, o := range s.Objects {
			ds = append(ds, frame.Detection{Box: o.Box, Class: o.Class, Label: o.Label, Score: 0.9})
		}
		preds = append(preds, ds)
	}
	r, err := Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	for _, v := range []float64{r.AP, r.AP50, r.AP75, r.AR10, r.AR100} {
		require.InDelta(t, 1, v, 1e-12)
	}
	require.Len(t, r.PerClass, 2)
	require.Equal(t, ClassAP{Class: 0, Label: "person", Objects: 1, AP: r.PerClass[0].AP, AP50: r.PerClass[0].AP50, AP75: r.PerClass[0].AP75}, r.PerClass[0])
	require.Equal(t, "car", r.PerClass[1].Label)
	require.Equal(t, 2, r.PerClass[1].Objects)
	for _, c := range r.PerClass {
		require.InDelta(t, 1, c.AP, 1e-12)
		require.InDelta(t, 1, c.AP50, 1e-12)
	}
	for _, s := range r.PerImage {
		require.Equal(t, 1.0, s.F1, s.ID)
		require.Equal(t, 1.0, s.AP50, s.ID)
		require.Zero(t, s.FP+s.FN)
	}
}

func TestDetectionHandComputed(t *testing.T) {
	// The case of cocoeval's own TestHandComputed: a false positive
	// (0.9) above a perfect hit (0.8) on one of two objects. Cumulative
	// precision [0 .5] at recall [0 .5] interpolates to .5 for recall
	// thresholds 0..0.5 (51 of 101): AP = 25.5/101 at every IoU.
	truth := twoObjects()
	preds := [][]frame.Detection{{
		{Box: box(50, 0, 40, 40), Class: 0, Score: 0.9},
		{Box: box(10, 10, 40, 40), Class: 0, Score: 0.8},
	}}
	r, err := Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	ap := 25.5 / 101
	require.InDelta(t, ap, r.AP, 1e-12)
	require.InDelta(t, ap, r.AP50, 1e-12)
	require.InDelta(t, ap, r.AP75, 1e-12)
	require.InDelta(t, ap, r.PerClass[0].AP, 1e-12)
	require.Equal(t, 0.0, r.AR1)
	require.Equal(t, 0.5, r.AR100)
	// Per image at score >= 0.3: TP 1, FP 1, FN 1 -> F1 2/4. Ranked hits
	// [miss hit] of 2 objects: precision .5 from recall 0 to .5 -> .25.
	s := r.PerImage[0]
	require.Equal(t, ImageScore{Index: 0, ID: "a", Objects: 2, TP: 1, FP: 1, FN: 1, F1: 0.5, AP50: 0.25}, s)

	// A score threshold above 0.8 leaves only the false positive in the
	// counts; AP does not change.
	r, err = Detection(truth, preds, DetectionOptions{ScoreThreshold: 0.85})
	require.NoError(t, err)
	require.InDelta(t, ap, r.AP, 1e-12)
	require.Equal(t, ImageScore{Index: 0, ID: "a", Objects: 2, TP: 0, FP: 1, FN: 2, F1: 0, AP50: 0.25}, r.PerImage[0])

	// A prediction of another class hits nothing.
	preds[0][1].Class = 1
	r, err = Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	require.Equal(t, 0.0, r.AP)
	require.Equal(t, 0, r.PerImage[0].TP)
}

func TestDetectionIgnore(t *testing.T) {
	// Object 2 is an ignored region: a detection on it is neither a hit
	// nor a false positive, so the hit on object 1 alone gives AP 1
	// (up to pycocotools' 1/(1+eps)).
	truth := twoObjects()
	truth[0].Objects[1].Ignore = true
	preds := [][]frame.Detection{{
		{Box: box(60, 60, 20, 20), Class: 0, Score: 0.9},
		{Box: box(10, 10, 40, 40), Class: 0, Score: 0.8},
	}}
	r, err := Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	require.InDelta(t, 1, r.AP, 1e-12)
	require.Equal(t, 1, r.PerClass[0].Objects)
	// The 20x20 detection inside the 40x40 region has IoU .25 with it, so
	// per-image matching at .5 does count it as a false positive; at
	// IoU .2 it falls on the ignored region.
	require.Equal(t, 1, r.PerImage[0].FP)
	r, err = Detection(truth, preds, DetectionOptions{MatchIoU: 0.2})
	require.NoError(t, err)
	require.Equal(t, ImageScore{Index: 0, ID: "a", Objects: 1, TP: 1, F1: 1, AP50: 1}, r.PerImage[0])

	// Without the flag it is a false positive.
	truth[0].Objects[1].Ignore = false
	r, err = Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	require.Less(t, r.AP, 0.5)
}

func TestDetectionErrors(t *testing.T) {
	truth := twoObjects()
	_, err := Detection(truth, nil, DetectionOptions{})
	require.ErrorIs(t, err, ErrLength)
	_, err = Detection(truth, [][]frame.Detection{nil}, DetectionOptions{IoUType: "nope"})
	require.ErrorIs(t, err, cocoeval.ErrIoUType)
	_, err = Detection(truth, [][]frame.Detection{nil}, DetectionOptions{IoUType: cocoeval.Segm})
	require.ErrorContains(t, err, "no mask")
	_, err = Detection(truth, [][]frame.Detection{{{Class: 0, Score: float32(math.NaN())}}}, DetectionOptions{})
	require.ErrorContains(t, err, "NaN")
	truth[0].Objects[0].Class = -1
	_, err = Detection(truth, [][]frame.Detection{nil}, DetectionOptions{})
	require.ErrorContains(t, err, "negative class")
}

func TestDetectionSegm(t *testing.T) {
	// Masks: the truth is a 20x20 square; the prediction covers its left
	// half (IoU .5) with a box that matches perfectly. Segm AP50 is 1
	// (IoU .5 >= .5) and AP at .55 and above 0: AP = 1/10. Box AP is 1.
	const w, h = 64, 48
	sq := func(x0, y0, x1, y1 int) *frame.Mask {
		px := make([]byte, w*h)
		for y := y0; y < y1; y++ {
			for x := x0; x < x1; x++ {
				px[y*w+x] = 1
			}
		}
		m := frame.EncodeMask(px, w, h)
		return &m
	}
	truth := []dataset.Sample{{ID: "m", Objects: []dataset.Object{{Box: box(10, 10, 20, 20), Mask: sq(10, 10, 30, 30)}}}}
	preds := [][]frame.Detection{{{Box: box(10, 10, 20, 20), Mask: sq(10, 10, 20, 30), Score: 0.7}}}
	r, err := Detection(truth, preds, DetectionOptions{IoUType: cocoeval.Segm})
	require.NoError(t, err)
	require.InDelta(t, 0.1, r.AP, 1e-12)
	require.InDelta(t, 1, r.AP50, 1e-12)
	require.Equal(t, 0.0, r.AP75)
	r, err = Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	require.InDelta(t, 1, r.AP, 1e-12)
}

// TestDetectionMatchesCOCOJSON writes random samples and predictions as a
// COCO JSON pair by hand, runs cocoeval on the parsed files, and requires
// Detection's numbers to be the same.
func TestDetectionMatchesCOCOJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	labels := []string{"person", "bicycle", "car"}
	var truth []dataset.Sample
	var preds [][]frame.Detection
	type jimg struct {
		ID     int `json:"id"`
		Width  int `json:"width"`
		Height int `json:"height"`
	}
	type jann struct {
		ID       int       `json:"id"`
		ImageID  int       `json:"image_id"`
		Category int       `json:"category_id"`
		BBox     []float64 `json:"bbox"`
		Area     float64   `json:"area"`
		IsCrowd  int       `json:"iscrowd"`
	}
	type jcat struct {
		ID   int    `json:"id"`
		Name string `json:"name"`
	}
	type jres struct {
		ImageID  int       `json:"image_id"`
		Category int       `json:"category_id"`
		BBox     []float64 `json:"bbox"`
		Score    float64   `json:"score"`
	}
	var imgs []jimg
	var anns []jann
	var res []jres
	// Quarter-pixel coordinates and scores in 1/1024 are exact in float32.
	q := func(v float64) float32 { return float32(math.Round(v*4) / 4) }
	for i := range 40 {
		s := dataset.Sample{ID: string(rune('A' + i%26))}
		imgs = append(imgs, jimg{i + 1, 640, 480})
		var ds []frame.Detection
		for range rng.IntN(6) {
			x, y := q(rng.Float64()*500), q(rng.Float64()*350)
			bw, bh := q(4+rng.Float64()*130), q(4+rng.Float64()*120)
			c := rng.IntN(3)
			o := dataset.Object{Box: box(x, y, bw, bh), Class: c, Label: labels[c], Ignore: rng.IntN(15) == 0}
			s.Objects = append(s.Objects, o)
			crowd := 0
			if o.Ignore {
				crowd = 1
			}
			anns = append(anns, jann{len(anns) + 1, i + 1, c, []float64{float64(x), float64(y), float64(bw), float64(bh)}, float64(bw * bh), crowd})
			if rng.IntN(5) > 0 { // a jittered, sometimes mislabelled hit
				dc := c
				if rng.IntN(10) == 0 {
					dc = rng.IntN(3)
				}
				j := func() float32 { return q(rng.NormFloat64() * 4) }
				ds = append(ds, frame.Detection{Box: box(x+j(), y+j(), bw+j(), bh+j()), Class: dc, Score: float32(rng.IntN(1024)) / 1024})
			}
		}
		for range rng.IntN(3) { // false positives
			ds = append(ds, frame.Detection{Box: box(q(rng.Float64()*500), q(rng.Float64()*350), 30, 40), Class: rng.IntN(3), Score: float32(rng.IntN(1024)) / 1024})
		}
		for _, d := range ds {
			b := d.Box
			res = append(res, jres{i + 1, d.Class, []float64{float64(b.X1), float64(b.Y1), float64(b.X2 - b.X1), float64(b.Y2 - b.Y1)}, float64(d.Score)})
		}
		truth = append(truth, s)
		preds = append(preds, ds)
	}
	gtJSON, err := json.Marshal(map[string]any{
		"images": imgs, "annotations": anns,
		"categories": []jcat{{0, "person"}, {1, "bicycle"}, {2, "car"}},
	})
	require.NoError(t, err)
	resJSON, err := json.Marshal(res)
	require.NoError(t, err)
	gt, err := cocoeval.ParseDataset(gtJSON)
	require.NoError(t, err)
	dets, err := cocoeval.ParseResults(resJSON)
	require.NoError(t, err)
	want, err := cocoeval.Evaluate(gt, dets, cocoeval.BBox)
	require.NoError(t, err)

	r, err := Detection(truth, preds, DetectionOptions{})
	require.NoError(t, err)
	require.Equal(t, want.Values, r.Stats.Values)
	require.Greater(t, r.AP, 0.05)
	require.Less(t, r.AP, 0.9)

	// Per-class AP from Detection equals cocoeval restricted to the class.
	for _, c := range r.PerClass {
		p, err := cocoeval.DefaultParams(cocoeval.BBox)
		require.NoError(t, err)
		p.CategoryIDs = []int64{int64(c.Class)}
		ev, err := cocoeval.EvaluateParams(gt, dets, p)
		require.NoError(t, err)
		s := ev.Stats()
		require.InDelta(t, s.Values[0], c.AP, 1e-12, c.Label)
		require.InDelta(t, s.Values[1], c.AP50, 1e-12, c.Label)
		require.InDelta(t, s.Values[2], c.AP75, 1e-12, c.Label)
	}

	// The worst images come first and are really worse.
	w := Worst(r.PerImage, 5)
	require.Len(t, w, 5)
	for _, s := range w {
		require.LessOrEqual(t, s.F1, w[len(w)-1].F1)
	}
	rest := Worst(r.PerImage, -1)
	require.Len(t, rest, len(truth))
	require.True(t, slices.IsSortedFunc(rest, func(a, b ImageScore) int {
		switch {
		case a.F1 < b.F1:
			return -1
		case a.F1 > b.F1:
			return 1
		}
		return 0
	}))
}

// TestDetectionFixture converts cocoapi's 100-image val2014 sample and its
// fake results into samples and detections and requires pycocotools'
// published numbers (shared/data/README.md). Areas come from boxes here, not
// from the file's polygon areas, so only the all-area numbers are compared.
func TestDetectionFixture(t *testing.T) {
	gt, err := cocoeval.Load(shareddata.Path(t, "coco/instances_val2014_100.json"))
	require.NoError(t, err)
	dets, err := cocoeval.LoadResults(shareddata.Path(t, "coco/instances_val2014_fakebbox100_results.json"))
	require.NoError(t, err)
	imgs := slices.Clone(gt.Images)
	slices.SortFunc(imgs, func(a, b cocoeval.Image) int { return int(a.ID - b.ID) })
	idx := map[int64]int{}
	truth := make([]dataset.Sample, len(imgs))
	for i, im := range imgs {
		idx[im.ID] = i
		truth[i].ID = im.FileName
	}
	toBox := func(b []float64) frame.Box {
		return frame.Box{X1: float32(b[0]), Y1: float32(b[1]), X2: float32(b[0] + b[2]), Y2: float32(b[1] + b[3])}
	}
	for _, a := range gt.Annotations {
		i := idx[a.ImageID]
		truth[i].Objects = append(truth[i].Objects, dataset.Object{Box: toBox(a.BBox), Class: int(a.CategoryID), Ignore: a.IsCrowd != 0})
	}
	preds := make([][]frame.Detection, len(truth))
	for _, d := range dets {
		i := idx[d.ImageID]
		preds[i] = append(preds[i], frame.Detection{Box: toBox(d.BBox), Class: int(d.CategoryID), Score: float32(d.Score)})
	}
	var labels []string
	for _, c := range gt.Categories {
		for len(labels) <= int(c.ID) {
			labels = append(labels, "")
		}
		labels[c.ID] = c.Name
	}
	r, err := Detection(truth, preds, DetectionOptions{Labels: labels})
	require.NoError(t, err)
	// pycocotools: AP, AP50, AP75, AR1, AR10, AR100.
	// float32 boxes and scores change nothing here to 1e-9.
	require.InDelta(t, 0.5045806987249628, r.AP, 1e-9)
	require.InDelta(t, 0.6969727247299577, r.AP50, 1e-9)
	require.InDelta(t, 0.5729816669904824, r.AP75, 1e-9)
	require.InDelta(t, 0.38681277964578054, r.AR1, 1e-9)
	require.InDelta(t, 0.5936795762842003, r.AR10, 1e-9)
	require.InDelta(t, 0.595352982877607, r.AR100, 1e-9)
	t.Logf("AP %.10f AP50 %.10f AP75 %.10f AR100 %.10f", r.AP, r.AP50, r.AP75, r.AR100)
}

// TestDetectionSynth scores synth's own truth as predictions (boxes and
// masks: AP 1), then the same boxes moved 30% of their width (IoU
// 0.7/1.3 = 0.54 for full-width boxes): AP50 stays high and AP drops.
func TestDetectionSynth(t *testing.T) {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects = 320, 192, 8
	var truth []dataset.Sample
	var perfect, moved [][]frame.Detection
	for n := range 6 {
		objs := synth.Replay(p, uint64(n*15))
		s := dataset.Sample{ID: fmt.Sprintf("synth/%d", n), Sequence: "synth"}
		var pd, md []frame.Detection
		for _, o := range objs {
			if o.Box.Area() < 1 {
				continue
			}
			s.Objects = append(s.Objects, dataset.Object{Box: o.Box, Class: o.Class, Label: o.Label, TrackID: o.ID, Mask: o.Mask, Keypoints: o.Keypoints})
			d := frame.Detection{Box: o.Box, Class: o.Class, Label: o.Label, Score: 0.9, Mask: o.Mask, Keypoints: o.Keypoints}
			pd = append(pd, d)
			dx := 0.3 * o.Box.W()
			d.Box.X1 += dx
			d.Box.X2 += dx
			md = append(md, d)
		}
		truth = append(truth, s)
		perfect = append(perfect, pd)
		moved = append(moved, md)
	}
	objects := 0
	for _, s := range truth {
		objects += len(s.Objects)
	}
	require.Greater(t, objects, 20)
	for _, typ := range []string{cocoeval.BBox, cocoeval.Segm} {
		r, err := Detection(truth, perfect, DetectionOptions{IoUType: typ})
		require.NoError(t, err, typ)
		require.InDelta(t, 1, r.AP, 1e-12, typ)
	}
	kp, err := Keypoints(truth, perfect)
	require.NoError(t, err)
	require.InDelta(t, 1, kp.AP, 1e-12)

	r, err := Detection(truth, moved, DetectionOptions{})
	require.NoError(t, err)
	require.Greater(t, r.AP50, 0.9)
	require.Less(t, r.AP, 0.5)
}
