package evaluate

import (
	"image"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/cocoeval"
	"github.com/vigil-video/vigil/training/dataset"
)

// cocoSigmas are cocoeval.py's keypoint sigmas (its values / 10).
var cocoSigmas = []float64{.026, .025, .025, .035, .035, .079, .079, .072, .072, .062, .062, .107, .107, .087, .087, .089, .089}

func pose(x0, y0 float32) frame.Keypoints {
	kp := make(frame.Keypoints, NumKeypoints)
	for i := range kp {
		kp[i] = frame.Keypoint{X: x0 + float32(i%4)*20, Y: y0 + float32(i)*10, Score: 1}
	}
	return kp
}

func TestKeypointsPerfectAndPartial(t *testing.T) {
	person := func(x, y float32) dataset.Object {
		return dataset.Object{Box: box(x, y, 100, 200), Class: 0, Label: "person", Keypoints: pose(x+10, y+10)}
	}
	truth := []dataset.Sample{{ID: "p", Objects: []dataset.Object{person(0, 0), person(300, 0)}}}
	det := func(o dataset.Object, s float32) frame.Detection {
		return frame.Detection{Box: o.Box, Class: 0, Score: s, Keypoints: append(frame.Keypoints(nil), o.Keypoints...)}
	}
	perfect := [][]frame.Detection{{det(truth[0].Objects[0], 0.9), det(truth[0].Objects[1], 0.8)}}
	r, err := Keypoints(truth, perfect)
	require.NoError(t, err)
	require.InDelta(t, 1, r.AP, 1e-12)
	require.InDelta(t, 1, r.AR, 1e-12)

	// One perfect pose (0.9) and one far from everybody (0.8): tp [1 1],
	// fp [0 1], precision [1 .5] at recall [.5 .5]: recall thresholds
	// 0..0.5 (51 of 101) find 1, AP = 51/101.
	far := det(truth[0].Objects[1], 0.8)
	for i := range far.Keypoints {
		far.Keypoints[i].Y += 1000
	}
	r, err = Keypoints(truth, [][]frame.Detection{{perfect[0][0], far}})
	require.NoError(t, err)
	require.InDelta(t, 51.0/101, r.AP, 1e-12)

	// Every point moved so that its OKS term is .62 (COCO: exp(-d²/(2
	// s² k²)) with s² the area, k = 2σ): OKS .62 passes the thresholds .5,
	// .55 and .6 of ten, so AP = .3, AP50 = 1, AP75 = 0.
	one := []dataset.Sample{{ID: "q", Objects: []dataset.Object{person(0, 0)}}}
	d := det(one[0].Objects[0], 0.9)
	area := 100.0 * 200
	for i := range d.Keypoints {
		k := 2 * cocoSigmas[i]
		d.Keypoints[i].X += float32(k * math.Sqrt(-2*area*math.Log(0.62)))
	}
	r, err = Keypoints(one, [][]frame.Detection{{d}})
	require.NoError(t, err)
	require.InDelta(t, 0.3, r.AP, 1e-12)
	require.InDelta(t, 1, r.AP50, 1e-12)
	require.Equal(t, 0.0, r.AP75)

	// The same through cocoeval on the COCO conversion.
	gt, dets, err := COCO(one, [][]frame.Detection{{d}}, cocoeval.Keypoints, nil)
	require.NoError(t, err)
	require.Equal(t, 17, gt.Annotations[0].NumKeypoints)
	st, err := cocoeval.Evaluate(gt, dets, cocoeval.Keypoints)
	require.NoError(t, err)
	require.Equal(t, st.Values, r.Stats.Values)

	// Invisible points do not count: with only the nose visible, moving
	// every other point far away still gives OKS 1.
	hidden := []dataset.Sample{{ID: "h", Objects: []dataset.Object{person(0, 0)}}}
	for i := 1; i < NumKeypoints; i++ {
		hidden[0].Objects[0].Keypoints[i].Score = 0
	}
	d = det(one[0].Objects[0], 0.9)
	for i := 1; i < NumKeypoints; i++ {
		d.Keypoints[i].X += 1000
	}
	r, err = Keypoints(hidden, [][]frame.Detection{{d}})
	require.NoError(t, err)
	require.InDelta(t, 1, r.AP, 1e-12)
	// Without hiding, the same pose misses.
	r, err = Keypoints(one, [][]frame.Detection{{d}})
	require.NoError(t, err)
	require.Equal(t, 0.0, r.AP)

	_, err = Keypoints(one, [][]frame.Detection{{{Keypoints: make(frame.Keypoints, 3)}}})
	require.ErrorContains(t, err, "keypoints")
}

func gray(w, h int, px ...uint8) *image.Gray {
	g := image.NewGray(image.Rect(0, 0, w, h))
	copy(g.Pix, px)
	return g
}

func TestSegmentation(t *testing.T) {
	// Truth [0 0 1; 1 2 255], prediction [0 1 1; 1 2 0], 255 ignored.
	// Class 0: 1 right, 2 true, 1 predicted -> 1/2. Class 1: 2 right, 2
	// true, 3 predicted -> 2/3. Class 2: 1/1. Class 3 absent. Pixel
	// accuracy 4/5.
	truth := []dataset.Sample{{ID: "s", Segmentation: gray(3, 2, 0, 0, 1, 1, 2, 255)}, {ID: "none"}}
	preds := []*image.Gray{gray(3, 2, 0, 1, 1, 1, 2, 0), nil}
	r, err := Segmentation(truth, preds, 4, 255)
	require.NoError(t, err)
	require.InDeltaSlice(t, []float64{0.5, 2.0 / 3, 1, -1}, r.IoU, 1e-12)
	require.InDelta(t, (0.5+2.0/3+1)/3, r.MeanIoU, 1e-12)
	require.InDelta(t, 0.8, r.PixelAccuracy, 1e-12)

	// Perfect.
	r, err = Segmentation(truth[:1], []*image.Gray{truth[0].Segmentation}, 3, 255)
	require.NoError(t, err)
	require.Equal(t, 1.0, r.MeanIoU)
	require.Equal(t, 1.0, r.PixelAccuracy)

	// Without an ignore value 255 is out of range.
	_, err = Segmentation(truth, preds, 4, -1)
	require.ErrorContains(t, err, "truth value 255")

	// A prediction outside the classes is wrong for its pixel's class and
	// adds to no other class.
	c, err := NewConfusion(2, -1)
	require.NoError(t, err)
	require.NoError(t, c.Add(gray(2, 1, 0, 1), gray(2, 1, 0, 9)))
	require.Equal(t, []float64{1, 0}, c.IoU())
	require.Equal(t, 0.5, c.PixelAccuracy())

	// Sub-images use their own stride.
	big := gray(4, 2, 1, 1, 0, 0, 1, 1, 0, 0)
	sub := big.SubImage(image.Rect(2, 0, 4, 2)).(*image.Gray)
	c, err = NewConfusion(2, -1)
	require.NoError(t, err)
	require.NoError(t, c.Add(sub, gray(2, 2)))
	require.Equal(t, 1.0, c.PixelAccuracy())

	_, err = Segmentation(truth, preds[:1], 4, 255)
	require.ErrorIs(t, err, ErrLength)
	_, err = Segmentation(truth, []*image.Gray{nil, nil}, 4, 255)
	require.ErrorContains(t, err, "no prediction")
	_, err = Segmentation(truth, []*image.Gray{gray(2, 2), nil}, 4, 255)
	require.ErrorContains(t, err, "3x2")
	_, err = NewConfusion(0, 255)
	require.Error(t, err)
}

func TestReID(t *testing.T) {
	e := func(id uint64, x, y float32) Embedding { return Embedding{Vector: []float32{x, y}, Identity: id} }
	gallery := []Embedding{e(2, 0.9, 0.1), e(1, 0.8, 0.3), e(1, 0, 1)}
	// Query 1 (1,0) ranks g0 (wrong), g1, g2 (right): first hit at rank
	// 2, AP (1/2 + 2/3)/2 = 7/12. Query 2 (0,1) ranks g2 (wrong, cos 1),
	// g1 (cos .35), g0 (right, cos .11): AP 1/3.
	r, err := ReID([]Embedding{e(1, 1, 0), e(2, 0, 1)}, gallery)
	require.NoError(t, err)
	require.Equal(t, 0.0, r.Rank1)
	require.Equal(t, 1.0, r.Rank5)
	require.InDelta(t, (7.0/12+1.0/3)/2, r.MAP, 1e-12)
	require.Equal(t, 2, r.Queries)

	// Perfect: each query's own identity ranks first.
	r, err = ReID([]Embedding{e(2, 9, 1), e(1, 0.1, 2)}, gallery)
	require.NoError(t, err)
	require.Equal(t, 1.0, r.Rank1)
	require.Equal(t, 1.0, r.MAP)

	// Excluding the query's frame drops g0 from query 1's ranking: hits
	// at ranks 1 and 2, AP 1.
	q := e(1, 1, 0)
	q.Frame = "f7"
	g := append([]Embedding(nil), gallery...)
	g[0].Frame = "f7"
	r, err = ReID([]Embedding{q}, g)
	require.NoError(t, err)
	require.Equal(t, 1.0, r.Rank1)
	require.Equal(t, 1.0, r.MAP)

	// Same identity and camera is junk: g1 goes, g2 at rank 2 -> AP 1/2.
	q.Frame, q.Camera = "", "c1"
	g = append([]Embedding(nil), gallery...)
	g[1].Camera = "c1"
	r, err = ReID([]Embedding{q}, g)
	require.NoError(t, err)
	require.Equal(t, 0.0, r.Rank1)
	require.InDelta(t, 0.5, r.MAP, 1e-12)

	// A query with no match is skipped.
	r, err = ReID([]Embedding{e(1, 1, 0), e(9, 1, 0)}, gallery)
	require.NoError(t, err)
	require.Equal(t, 1, r.Skipped)
	require.Equal(t, 1, r.Queries)

	_, err = ReID([]Embedding{e(9, 1, 0)}, gallery)
	require.ErrorContains(t, err, "no query")
	_, err = ReID(nil, gallery)
	require.Error(t, err)
	_, err = ReID([]Embedding{{Vector: []float32{1, 2, 3}, Identity: 1}}, gallery)
	require.ErrorContains(t, err, "dimensions")
	_, err = ReID([]Embedding{{Vector: []float32{float32(math.NaN()), 0}, Identity: 1}}, gallery)
	require.ErrorContains(t, err, "non-finite")
}

func TestSplit(t *testing.T) {
	var es []Embedding
	for i := range 7 {
		es = append(es, Embedding{Identity: uint64(i % 2), Camera: []string{"a", "b"}[i%3/2]})
	}
	// Identity 0: entries 0, 2, 4, 6 -> queries 0 and 6 (k=3); identity
	// 1: 1, 3, 5 -> query 1.
	q, g := SplitEvery(es, 3)
	require.Len(t, q, 3)
	require.Len(t, g, 4)
	q, g = SplitBy(es, func(e Embedding) bool { return e.Camera == "b" })
	require.Len(t, q, 2)
	require.Len(t, g, 5)
}

type sliceSource []dataset.Sample

func (s sliceSource) Len() int { return len(s) }
func (s sliceSource) At(i int) (dataset.Sample, error) {
	return s[i], nil
}

func TestTruth(t *testing.T) {
	src := sliceSource{{ID: "x", Image: image.NewRGBA(image.Rect(0, 0, 4, 4)), Objects: []dataset.Object{{Class: 1}}}}
	got, err := Truth(src)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Nil(t, got[0].Image)
	require.Equal(t, "x", got[0].ID)
	require.Len(t, got[0].Objects, 1)
	_, err = Truth(nil)
	require.Error(t, err)
}

func BenchmarkDetection(b *testing.B) {
	var truth []dataset.Sample
	var preds [][]frame.Detection
	for i := range 200 {
		var s dataset.Sample
		var ds []frame.Detection
		for j := range 8 {
			x := float32((i*37+j*71)%500) + 1
			o := dataset.Object{Box: box(x, x/2, 40, 80), Class: j % 3}
			s.Objects = append(s.Objects, o)
			ds = append(ds, frame.Detection{Box: box(x+2, x/2+1, 40, 78), Class: j % 3, Score: float32(j+1) / 10})
		}
		truth = append(truth, s)
		preds = append(preds, ds)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Detection(truth, preds, DetectionOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEmbeddings(t *testing.T) {
	truth := []dataset.Sample{{ID: "s1/0", Sequence: "s1", Objects: []dataset.Object{
		{Box: box(0, 0, 10, 20), TrackID: 7},
		{Box: box(50, 0, 10, 20), TrackID: 8},
		{Box: box(100, 0, 10, 20), TrackID: 9, Ignore: true},
		{Box: box(150, 0, 10, 20)}, // no identity
	}}}
	v := []float32{1, 0}
	preds := [][]frame.Detection{{
		{Box: box(1, 0, 10, 20), Score: 0.6, Embedding: v},            // track 7
		{Box: box(0, 1, 10, 20), Score: 0.9, Embedding: v},            // track 7 too, scores higher: wins
		{Box: box(50, 0, 10, 20), Score: 0.5},                         // no embedding
		{Box: box(100, 0, 10, 20), Score: 0.5, Embedding: v},          // ignored object
		{Box: box(150, 0, 10, 20), Score: 0.5, Embedding: v},          // object without identity
		{Box: box(52, 0, 10, 20), Score: 0.5, Embedding: v, Class: 1}, // wrong class
	}}
	es, err := Embeddings(truth, preds, 0)
	require.NoError(t, err)
	require.Equal(t, []Embedding{{Vector: v, Identity: 7, Camera: "s1", Frame: "s1/0"}}, es)
	_, err = Embeddings(truth, nil, 0)
	require.ErrorIs(t, err, ErrLength)
}

func BenchmarkConfusionAdd(b *testing.B) {
	const w, h = 640, 480
	truth, pred := image.NewGray(image.Rect(0, 0, w, h)), image.NewGray(image.Rect(0, 0, w, h))
	for i := range truth.Pix {
		truth.Pix[i] = uint8(i / 7 % 5)
		pred.Pix[i] = uint8(i / 5 % 5)
	}
	c, err := NewConfusion(5, 255)
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(w * h)
	for b.Loop() {
		if err := c.Add(truth, pred); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReID(b *testing.B) {
	mk := func(n, seed int) []Embedding {
		es := make([]Embedding, n)
		for i := range es {
			v := make([]float32, 128)
			for j := range v {
				v[j] = float32(math.Sin(float64(i%50*131 + j*7 + seed)))
			}
			es[i] = Embedding{Vector: v, Identity: uint64(i % 50)}
		}
		return es
	}
	q, g := mk(200, 1), mk(1000, 2)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReID(q, g); err != nil {
			b.Fatal(err)
		}
	}
}
