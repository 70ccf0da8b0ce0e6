package cocoeval

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// The reference numbers below come from pycocotools' algorithm run with
// NumPy 1.24 (Debian python3-numpy): testdata/ref/reference.py is
// cocoapi's coco.py/cocoeval.py cut down, calling cocoapi's own C mask
// code (testdata/ref/maskApi.c) through ctypes; its output is
// testdata/ref/reference.out. That script reproduces the bbox values that
// shared/data/README.md gives for pycocotools itself to the last digit,
// and this package matched every number below bit for bit when they were
// made.
var (
	// pycocotools' own output, from shared/data/README.md.
	refBBox = []float64{0.5045806987249628, 0.6969727247299577, 0.5729816669904824, 0.5856257209410443, 0.5193996948036719, 0.5013978986347466, 0.38681277964578054, 0.5936795762842003, 0.595352982877607, 0.6398109626113442, 0.5664205978994309, 0.5642905982905982}
	// reference.py case 2: iouType segm with the bbox results file, whose
	// results become box polygons in loadRes.
	refSegmBoxPolygons = []float64{0.13216871724940724, 0.3488394479598221, 0.0745055408332098, 0.1674922164716513, 0.11125941873876223, 0.16918904731162443, 0.12508702602523036, 0.18018078559064407, 0.18123499804485652, 0.19562762244975038, 0.1330406911928651, 0.21853276353276355}
	// reference.py case 3: each result's box rasterised (frBbox at its
	// image's size) and sent as a compressed RLE without a bbox.
	refSegmRLE = []float64{0.13216871724940724, 0.3488394479598221, 0.0745055408332098, 0.16730033601038746, 0.11127703410528804, 0.16918904731162443, 0.12508702602523036, 0.18018078559064407, 0.18123499804485652, 0.19562762244975038, 0.1330406911928651, 0.21853276353276355}
	// reference.py case 4: keypoints_gt.json / keypoints_dt.json.
	refKeypoints = []float64{0.5048844884488449, 0.7227722772277227, 0.6336633663366337, 0.46633663366336636, 0.7504950495049505, 0.5181818181818182, 0.7272727272727273, 0.6363636363636364, 0.4666666666666666, 0.75}
)

func loadFixture(tb testing.TB, gtName, dtName string) (*Dataset, []Result) {
	tb.Helper()
	gt, err := Load(shareddata.Path(tb, filepath.Join("coco", gtName)))
	require.NoError(tb, err)
	dt, err := LoadResults(shareddata.Path(tb, filepath.Join("coco", dtName)))
	require.NoError(tb, err)
	return gt, dt
}

func requireStats(t *testing.T, want []float64, got Stats) {
	t.Helper()
	require.Len(t, got.Values, len(want))
	names := got.Names()
	for i := range want {
		require.InDelta(t, want[i], got.Values[i], 1e-9, "%s (stats[%d])", names[i], i)
	}
}

func TestFixtureBBox(t *testing.T) {
	gt, dt := loadFixture(t, "instances_val2014_100.json", "instances_val2014_fakebbox100_results.json")
	require.Len(t, gt.Images, 100)
	require.Len(t, gt.Annotations, 839)
	s, err := Evaluate(gt, dt, BBox)
	require.NoError(t, err)
	requireStats(t, refBBox, s)
}

func TestFixtureSegm(t *testing.T) {
	gt, dt := loadFixture(t, "instances_val2014_100.json", "instances_val2014_fakebbox100_results.json")
	t.Run("box polygons", func(t *testing.T) {
		s, err := Evaluate(gt, dt, Segm)
		require.NoError(t, err)
		requireStats(t, refSegmBoxPolygons, s)
	})
	t.Run("rle results", func(t *testing.T) {
		size := map[int64]Image{}
		for _, im := range gt.Images {
			size[im.ID] = im
		}
		rles := make([]Result, len(dt))
		for i, r := range dt {
			im := size[r.ImageID]
			m, err := frame.MaskFromBox(r.BBox[0], r.BBox[1], r.BBox[2], r.BBox[3], im.Width, im.Height)
			require.NoError(t, err)
			rles[i] = Result{ImageID: r.ImageID, CategoryID: r.CategoryID, Segmentation: &Segmentation{Mask: &m}, Score: r.Score}
		}
		// Through JSON, so the compressed strings are decoded as from a file.
		b, err := json.Marshal(rles)
		require.NoError(t, err)
		back, err := ParseResults(b)
		require.NoError(t, err)
		s, err := Evaluate(gt, back, Segm)
		require.NoError(t, err)
		requireStats(t, refSegmRLE, s)
	})
}

func TestFixtureKeypoints(t *testing.T) {
	gt, dt := loadFixture(t, "keypoints_gt.json", "keypoints_dt.json")
	s, err := Evaluate(gt, dt, Keypoints)
	require.NoError(t, err)
	requireStats(t, refKeypoints, s)

	// reference.py case 5: without the results' bbox, loadRes takes its
	// keypoints branch (area from the points' extent); same numbers.
	noBox := make([]Result, len(dt))
	for i, r := range dt {
		r.BBox = nil
		noBox[i] = r
	}
	s2, err := Evaluate(gt, noBox, Keypoints)
	require.NoError(t, err)
	requireStats(t, refKeypoints, s2)

	b, err := json.Marshal(s)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, "keypoints", m["iou_type"])
	require.Equal(t, refKeypoints[5], m["ar"])
	require.Len(t, m, 11)
}

// small is one 100x100 image, category 1, two 40x40 (medium) objects.
func small() *Dataset {
	return &Dataset{
		Images:     []Image{{ID: 7, Width: 100, Height: 100}},
		Categories: []Category{{ID: 1, Name: "thing"}, {ID: 2, Name: "other"}},
		Annotations: []Annotation{
			{ID: 1, ImageID: 7, CategoryID: 1, BBox: []float64{10, 10, 40, 40}, Area: 1600},
			{ID: 2, ImageID: 7, CategoryID: 1, BBox: []float64{55, 55, 40, 40}, Area: 1600},
		},
	}
}

func TestHandComputed(t *testing.T) {
	// A false positive (0.9) above a perfect hit (0.8) on one of two
	// objects: cumulative tp [0 1], fp [1 1], recall [0 .5], precision
	// [0 .5] -> interpolated [.5 .5]. Recall thresholds 0, .01, ... .5
	// (51 of 101) find precision .5, the rest 0: AP = 25.5/101 at every
	// IoU threshold. With one detection per image only the false positive
	// counts: AR1 = 0. Nothing is small or large: -1 there. Category 2
	// has no ground truth and drops out of every mean.
	dets := []Result{
		{ImageID: 7, CategoryID: 1, BBox: []float64{50, 0, 40, 40}, Score: 0.9},
		{ImageID: 7, CategoryID: 1, BBox: []float64{10, 10, 40, 40}, Score: 0.8},
	}
	s, err := Evaluate(small(), dets, BBox)
	require.NoError(t, err)
	ap := 25.5 / 101
	require.Equal(t, []float64{ap, ap, ap, -1, ap, -1, 0, .5, .5, -1, .5, -1}, s.Values)

	// Perfect detections: AP 1 and AR 1.
	perfect := []Result{
		{ImageID: 7, CategoryID: 1, BBox: []float64{10, 10, 40, 40}, Score: 0.5},
		{ImageID: 7, CategoryID: 1, BBox: []float64{55, 55, 40, 40}, Score: 0.5},
	}
	s, err = Evaluate(small(), perfect, BBox)
	require.NoError(t, err)
	require.Equal(t, []float64{1, 1, 1, -1, 1, -1, .5, 1, 1, -1, 1, -1}, s.Values)

	// No detections: 0 where there is ground truth.
	s, err = Evaluate(small(), nil, BBox)
	require.NoError(t, err)
	require.Equal(t, []float64{0, 0, 0, -1, 0, -1, 0, 0, 0, -1, 0, -1}, s.Values)
}

func TestCrowdAndIgnore(t *testing.T) {
	gt := small()
	// Object 2 becomes a crowd region: a detection inside it is neither
	// a hit nor a false positive, so the hit on object 1 alone gives 1.
	gt.Annotations[1].IsCrowd = 1
	dets := []Result{
		{ImageID: 7, CategoryID: 1, BBox: []float64{60, 60, 20, 20}, Score: 0.9},
		{ImageID: 7, CategoryID: 1, BBox: []float64{10, 10, 40, 40}, Score: 0.8},
	}
	s, err := Evaluate(gt, dets, BBox)
	require.NoError(t, err)
	// One hit: precision 1/(1+eps), since pycocotools divides by
	// tp+fp+np.spacing(1).
	require.Equal(t, 1/(1+eps), s.Values[0])
	// Without the crowd flag the same detection is a false positive.
	gt.Annotations[1].IsCrowd = 0
	s, err = Evaluate(gt, dets, BBox)
	require.NoError(t, err)
	require.Less(t, s.Values[0], 0.5)
	// pycocotools overwrites "ignore" with "iscrowd": it changes nothing.
	gt.Annotations[1].Ignore = 1
	s2, err := Evaluate(gt, dets, BBox)
	require.NoError(t, err)
	require.Equal(t, s.Values, s2.Values)
}

func TestSegmPolygonsAndUncompressed(t *testing.T) {
	// The same square as a polygon in the ground truth and as an
	// uncompressed RLE in the result: IoU 1, AP 1.
	gt := small()
	gt.Annotations = gt.Annotations[:1]
	gt.Annotations[0].Segmentation = &Segmentation{Polygons: [][]float64{{10, 10, 10, 50, 50, 50, 50, 10}}}
	m, err := frame.MaskFromPolygon([]float64{10, 10, 10, 50, 50, 50, 50, 10}, 100, 100)
	require.NoError(t, err)
	doc := `[{"image_id":7,"category_id":1,"score":1,"segmentation":{"size":[100,100],"counts":` + mustJSON(t, m.Counts) + `}}]`
	dets, err := ParseResults([]byte(doc))
	require.NoError(t, err)
	s, err := Evaluate(gt, dets, Segm)
	require.NoError(t, err)
	require.Equal(t, 1/(1+eps), s.Values[0]) // see TestCrowdAndIgnore
}

func TestParamsVariants(t *testing.T) {
	p, err := DefaultParams(BBox)
	require.NoError(t, err)
	// NumPy's linspace values, not the decimal ones.
	require.Equal(t, 0.01*float64(3), p.RecallThresholds[3])
	require.Equal(t, 1.0, p.RecallThresholds[100])
	require.Equal(t, .75, p.IoUThresholds[5])
	require.Len(t, p.IoUThresholds, 10)

	// Pooled categories: a detection labelled with the wrong category
	// still finds its object.
	dets := []Result{{ImageID: 7, CategoryID: 2, BBox: []float64{10, 10, 40, 40}, Score: 1}}
	s, err := Evaluate(small(), dets, BBox)
	require.NoError(t, err)
	require.Equal(t, 0.0, s.Values[0])
	p.UseCats = false
	e, err := EvaluateParams(small(), dets, p)
	require.NoError(t, err)
	require.Equal(t, []int64{-1}, e.CategoryIDs)
	// One of two objects found, no false positive: precision 1 up to
	// recall .5, that is at 51 of the 101 recall thresholds.
	require.InDelta(t, 51.0/101, e.Stats().Values[0], 1e-15)
}

func TestErrors(t *testing.T) {
	gt := small()
	_, err := Evaluate(gt, nil, "mask")
	require.ErrorIs(t, err, ErrIoUType)
	_, err = Evaluate(gt, []Result{{ImageID: 99, CategoryID: 1, BBox: []float64{0, 0, 1, 1}}}, BBox)
	require.ErrorContains(t, err, "image_id 99")
	_, err = Evaluate(gt, []Result{{ImageID: 7, CategoryID: 1, BBox: []float64{0, 0, 1, 1}}, {ImageID: 7, CategoryID: 1}}, BBox)
	require.ErrorContains(t, err, "results[1]: bbox")
	_, err = Evaluate(gt, []Result{{ImageID: 7, CategoryID: 1, Keypoints: make([]float64, 51)}}, Segm)
	require.ErrorContains(t, err, "segmentation")
	_, err = Evaluate(gt, []Result{{ImageID: 7, CategoryID: 1, Keypoints: make([]float64, 51)}}, Keypoints)
	require.ErrorContains(t, err, "annotations[0] (id 1): keypoints has 0 numbers")

	for _, tc := range []struct{ name, doc, want string }{
		{"not an array", `{}`, "JSON array"},
		{"no score", `[{"image_id":1,"category_id":1,"bbox":[0,0,1,1]}]`, "[0]: score is missing"},
		{"fractional id", `[{"image_id":1.5,"category_id":1,"score":1}]`, "image_id is 1.5"},
		{"bad rle", `[{"image_id":1,"category_id":1,"score":1,"segmentation":{"size":[4,4],"counts":"0X"}}]`, "cut short"},
		{"bad size", `[{"image_id":1,"category_id":1,"score":1,"segmentation":{"size":[4],"counts":"0"}}]`, "size has 1"},
		{"null entry", `[null]`, "[0]: want a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseResults([]byte(tc.doc))
			require.ErrorContains(t, err, tc.want)
		})
	}
	_, err = ParseResults([]byte(`[{"image_id":1.0,"category_id":3,"score":0.5,"bbox":[1,2,3,4]}]`))
	require.NoError(t, err)

	_, err = ParseDataset([]byte(`{"images":[{"id":1,"width":10,"height":10}],"annotations":[{"id":1,"image_id":1,"category_id":1,"bbox":[1,2,3]}]}`))
	require.ErrorContains(t, err, "annotations[0]: bbox has 3 numbers")
	dir := t.TempDir()
	p := filepath.Join(dir, "gt.json")
	require.NoError(t, os.WriteFile(p, []byte(`{"images":[{"id":"x"}]}`), 0o644))
	_, err = Load(p)
	require.ErrorContains(t, err, p)
	_, err = LoadResults(filepath.Join(dir, "missing.json"))
	require.ErrorContains(t, err, "missing.json")
}

func TestDatasetJSONRoundTrip(t *testing.T) {
	gt := small()
	m, err := frame.MaskFromBox(1, 2, 3, 4, 100, 100)
	require.NoError(t, err)
	gt.Annotations[0].Segmentation = &Segmentation{Mask: &m}
	gt.Annotations[1].Segmentation = &Segmentation{Polygons: [][]float64{{1, 2, 3, 4, 5, 6}}}
	b, err := json.Marshal(gt)
	require.NoError(t, err)
	back, err := ParseDataset(b)
	require.NoError(t, err)
	require.Equal(t, gt, back)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func FuzzParseResults(f *testing.F) {
	for _, s := range []string{
		`[{"image_id":7,"category_id":1,"bbox":[10,10,40,40],"score":0.9}]`,
		`[{"image_id":7,"category_id":1,"segmentation":{"size":[100,100],"counts":"To1n0V2000000000000000000000000000000000000000000000000000000000dk4"},"score":0.9}]`,
		`[{"image_id":7,"category_id":1,"segmentation":[[10,10,10,50,50,50,50,10]],"score":0.9}]`,
		`[{"image_id":7,"category_id":1,"keypoints":[1,2,1,3,4,1],"score":0.9}]`,
		`[{"image_id":7.0,"category_id":1,"segmentation":{"size":[100,100],"counts":[0,5,9995]},"score":1}]`,
		`[]`, `{}`, `[null]`,
	} {
		f.Add([]byte(s))
	}
	gt := small()
	gt.Annotations[0].Segmentation = &Segmentation{Polygons: [][]float64{{10, 10, 10, 50, 50, 50, 50, 10}}}
	gt.Annotations[1].Segmentation = &Segmentation{Polygons: [][]float64{{55, 55, 55, 95, 95, 95}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ParseResults(b)
		if err != nil {
			return
		}
		for _, typ := range []string{BBox, Segm} {
			s, err := Evaluate(gt, rs, typ)
			if err != nil {
				continue
			}
			for _, v := range s.Values {
				require.True(t, v == -1 || (v >= 0 && v <= 1), "stat %v out of range", v)
			}
		}
	})
}

func BenchmarkEvaluateBBox(b *testing.B) {
	gt, dt := loadFixture(b, "instances_val2014_100.json", "instances_val2014_fakebbox100_results.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(gt, dt, BBox); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEvaluateSegm(b *testing.B) {
	gt, dt := loadFixture(b, "instances_val2014_100.json", "instances_val2014_fakebbox100_results.json")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Evaluate(gt, dt, Segm); err != nil {
			b.Fatal(err)
		}
	}
}
