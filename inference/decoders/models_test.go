//go:build cgo

package decoders

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// Tests on real models through ONNX Runtime, on frames of vtest_h264.mp4.
// They skip when ONNX Runtime or the shared data is missing.

const frameW, frameH = 768, 576

var (
	framesMu sync.Mutex
	frames   = map[int]*frame.Frame{}
)

// videoFrame returns frame n of vtest_h264.mp4 as RGB24, decoded by the
// ffmpeg CLI once per test binary.
func videoFrame(tb testing.TB, n int) *frame.Frame {
	tb.Helper()
	framesMu.Lock()
	defer framesMu.Unlock()
	if f, ok := frames[n]; ok {
		return f
	}
	clip := shareddata.Path(tb, "video/vtest_h264.mp4")
	shareddata.NeedCommands(tb, "ffmpeg")
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", clip, "-vf", fmt.Sprintf(`select=eq(n\,%d)`, n),
		"-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(tb, err, stderr.String())
	require.Len(tb, out, frameW*frameH*3)
	f := &frame.Frame{Width: frameW, Height: frameH, Format: frame.PixelFormatRGB24,
		Planes: [3][]byte{out}, Strides: [3]int{frameW * 3}}
	frames[n] = f
	return f
}

// model is a real model with its input spec and decoder.
type model struct {
	s    *ort.Session
	spec prep.Spec
	dec  Decoder
}

func openModel(tb testing.TB, file string, spec prep.Spec, family string, o Options, shapes map[string][]int64) *model {
	tb.Helper()
	path := shareddata.Path(tb, "models/"+file)
	orttest.Init(tb)
	// Benchmarks use one thread, so that ONNX Runtime's spinning pool
	// threads do not take the CPU from the decoder being timed.
	threads := 2
	if _, ok := tb.(*testing.B); ok {
		threads = 1
	}
	s, err := ort.Open(path, ort.SessionOptions{IntraOpThreads: threads, InputShapes: shapes})
	require.NoError(tb, err)
	tb.Cleanup(func() { require.NoError(tb, s.Close()) })
	o.InputW, o.InputH = spec.Width, spec.Height
	dec, err := New(family, o)
	require.NoError(tb, err)
	return &model{s: s, spec: spec, dec: dec}
}

// outputs wraps the session's output buffers as Tensors.
func (m *model) outputs() []Tensor {
	var ts []Tensor
	for i, info := range m.s.Outputs() {
		ts = append(ts, Tensor{Name: info.Name, Shape: info.Shape, Data: m.s.Output(i)})
	}
	return ts
}

// detect runs the model on f (or the crop box of it when box is non-nil)
// and decodes the result.
func (m *model) detect(tb testing.TB, f *frame.Frame, box *frame.Box) []frame.Detection {
	tb.Helper()
	var tf prep.Transform
	var err error
	if box != nil {
		tf, err = prep.FillCrop(m.s.Input(0), f, *box, m.spec)
	} else {
		tf, err = prep.Fill(m.s.Input(0), f, m.spec)
	}
	require.NoError(tb, err)
	require.NoError(tb, m.s.Run())
	dets, err := m.dec.Decode(nil, m.outputs(), 0, tf)
	require.NoError(tb, err)
	for _, d := range dets {
		requireInside(tb, d.Box, f.Width, f.Height)
	}
	return dets
}

func requireInside(tb testing.TB, b frame.Box, w, h int) {
	tb.Helper()
	require.True(tb, finite(b.X1) && finite(b.Y1) && finite(b.X2) && finite(b.Y2), "box %+v", b)
	require.True(tb, b.X1 >= 0 && b.Y1 >= 0 && b.X2 <= float32(w) && b.Y2 <= float32(h) && b.X1 < b.X2 && b.Y1 < b.Y2,
		"box %+v outside %dx%d", b, w, h)
}

var (
	yoloxSpec = prep.Spec{Width: 416, Height: 416, Layout: prep.NCHW, Color: prep.BGR,
		Resize: prep.Letterbox, Interp: prep.Bilinear, Align: prep.TopLeft, Pad: 114}
	personSpec     = prep.Spec{Width: 192, Height: 192, Layout: prep.NCHW, Color: prep.BGR, Resize: prep.Letterbox, Interp: prep.Bilinear, Align: prep.TopLeft, Pad: 114}
	fastestDetSpec = prep.Spec{Width: 352, Height: 352, Layout: prep.NCHW, Color: prep.BGR, Resize: prep.Stretch, Interp: prep.Bilinear,
		Std: [3]float32{255, 255, 255}}
	nanoDetSpec = prep.Spec{Width: 320, Height: 320, Layout: prep.NCHW, Color: prep.BGR, Resize: prep.Stretch, Interp: prep.Bilinear,
		Mean: [3]float32{103.53, 116.28, 123.675}, Std: [3]float32{57.375, 57.12, 58.395}}
	ultraFaceSpec = prep.Spec{Width: 320, Height: 240, Layout: prep.NCHW, Color: prep.RGB, Resize: prep.Stretch, Interp: prep.Bilinear,
		Mean: [3]float32{127, 127, 127}, Std: [3]float32{128, 128, 128}}
	bodyPixSpec = prep.Spec{Width: 769, Height: 577, Layout: prep.NHWC, Color: prep.RGB, Resize: prep.Stretch, Interp: prep.Bilinear,
		Mean: [3]float32{127.5, 127.5, 127.5}, Std: [3]float32{127.5, 127.5, 127.5}}
	selfieSpec = prep.Spec{Width: 256, Height: 144, Layout: prep.NHWC, Color: prep.RGB, Resize: prep.Letterbox, Interp: prep.Bilinear,
		Align: prep.Center, Std: [3]float32{255, 255, 255}}
	reidSpec = prep.Spec{Width: 128, Height: 256, Layout: prep.NHWC, Color: prep.BGR, Resize: prep.Stretch, Interp: prep.Bilinear}
)

func cocoLabels(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(shareddata.Path(tb, "models/coco.names"))
	require.NoError(tb, err)
	var labels []string
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		labels = append(labels, string(bytes.TrimSpace(l)))
	}
	require.Len(tb, labels, 80)
	return labels
}

func yoloxPersons(tb testing.TB, n int) []frame.Detection {
	tb.Helper()
	m := openModel(tb, "yolox_nano_416.onnx", yoloxSpec, "yolox", Options{}, nil)
	var persons []frame.Detection
	for _, d := range m.detect(tb, videoFrame(tb, n), nil) {
		if d.Class == 0 {
			persons = append(persons, d)
		}
	}
	return persons
}

func count(dets []frame.Detection) map[string]int {
	c := map[string]int{}
	for _, d := range dets {
		c[d.Label]++
	}
	return c
}

// TestYOLOXFrame reproduces the reference counts of the shared data README
// (frame t=30 s: 8 persons, 2 cars, 1 truck at score 0.3, NMS 0.45).
func TestYOLOXFrame(t *testing.T) {
	m := openModel(t, "yolox_nano_416.onnx", yoloxSpec, "yolox", Options{Labels: cocoLabels(t)}, nil)
	dets := m.detect(t, videoFrame(t, 300), nil)
	t.Logf("yolox: %v", count(dets))
	require.Equal(t, map[string]int{"person": 8, "car": 2, "truck": 1}, count(dets))
	for i := 1; i < len(dets); i++ {
		require.GreaterOrEqual(t, dets[i-1].Score, dets[i].Score, "sorted by score")
	}
}

// matchPersons returns how many of dets (persons) overlap one of ref by
// IoU > 0.5.
func matchPersons(dets, ref []frame.Detection) int {
	n := 0
	for _, d := range dets {
		for _, r := range ref {
			if d.Box.IoU(r.Box) > 0.5 {
				n++
				break
			}
		}
	}
	return n
}

// TestDetectorsAgreeWithYOLOX checks the other detectors against YOLOX's
// persons on the same frame: most YOLOX persons are found (IoU > 0.5) and
// most of their persons are YOLOX's (the rest are mostly real people
// YOLOX-nano misses at 0.3, such as the one at x=414..450).
func TestDetectorsAgreeWithYOLOX(t *testing.T) {
	ref := yoloxPersons(t, 300)
	require.Len(t, ref, 8)
	for _, tc := range []struct {
		name, file, family string
		spec               prep.Spec
		score              float32
		minFound           int // of the 8 YOLOX persons
	}{
		// FastestDet is weaker: at 0.3 it adds many low-score boxes; its
		// reference demo uses 0.65.
		{"fastestdet", "fastestdet_352.onnx", "fastestdet", fastestDetSpec, 0.5, 7},
		{"nanodet", "nanodet_m_320.onnx", "nanodet", nanoDetSpec, 0.3, 7},
		{"person_detector", "person_detector_192.onnx", "yolox", personSpec, 0.3, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := openModel(t, tc.file, tc.spec, tc.family, Options{ScoreThreshold: tc.score}, nil)
			var persons []frame.Detection
			dets := m.detect(t, videoFrame(t, 300), nil)
			for _, d := range dets {
				if d.Class == 0 {
					persons = append(persons, d)
				}
			}
			matched, found := matchPersons(persons, ref), matchPersons(ref, persons)
			t.Logf("%s at %.2f: %d persons, %d match a yolox person, %d of 8 yolox persons found (IoU > 0.5); all %v",
				tc.name, tc.score, len(persons), matched, found, count(dets))
			require.GreaterOrEqual(t, found, tc.minFound)
			require.GreaterOrEqual(t, matched*10, len(persons)*6, "most persons are yolox's")
		})
	}
}

// TestUltraFace runs the face detector on the whole frame (faces there are
// a few pixels: none is expected) and on crops around the heads of YOLOX's
// persons, where faces must be found inside the head region.
func TestUltraFace(t *testing.T) {
	m := openModel(t, "ultraface_rfb_320.onnx", ultraFaceSpec, "ultraface", Options{}, nil)
	f := videoFrame(t, 300)
	t.Logf("ultraface on the whole frame: %d faces", len(m.detect(t, f, nil)))
	faces := 0
	for _, p := range yoloxPersons(t, 300) {
		h := p.Box.H()
		crop := frame.Box{X1: p.Box.X1 - h*0.2, Y1: p.Box.Y1 - h*0.1, X2: p.Box.X2 + h*0.2, Y2: p.Box.Y1 + h*0.45}
		for _, d := range m.detect(t, f, &crop) {
			faces++
			t.Logf("face %.2f %+v in the head of person %+v", d.Score, d.Box, p.Box)
			require.Equal(t, "face", d.Label)
			require.GreaterOrEqual(t, d.Score, float32(0.7))
			c := frame.Box{X1: p.Box.X1 - 2, Y1: p.Box.Y1 - 2, X2: p.Box.X2 + 2, Y2: p.Box.Y1 + h*0.3}
			require.True(t, d.Box.X1 >= c.X1 && d.Box.X2 <= c.X2 && d.Box.Y1 >= c.Y1 && d.Box.Y2 <= c.Y2,
				"face %+v outside the head region %+v", d.Box, c)
		}
	}
	require.Positive(t, faces)
}

func TestBodyPixFrame(t *testing.T) {
	ref := yoloxPersons(t, 300)
	m := openModel(t, "bodypix_mnv1_050_s16.onnx", bodyPixSpec, "bodypix", Options{}, map[string][]int64{"input": {1, 577, 769, 3}})
	f := videoFrame(t, 300)
	dets := m.detect(t, f, nil)
	heat, _ := findOutput(m.outputs(), "heatmaps")
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range heat.Data {
		lo, hi = min(lo, v), max(hi, v)
	}
	require.Less(t, lo, float32(-1), "heatmaps are logits")
	t.Logf("bodypix heatmap range [%.2f, %.2f], %d people", lo, hi, len(dets))
	require.GreaterOrEqual(t, len(dets), 3)

	inside, total, matched := 0, 0, 0
	var union []byte
	for _, d := range dets {
		require.Len(t, d.Keypoints, 17)
		require.NotNil(t, d.Mask)
		require.Equal(t, frameW, d.Mask.Width)
		for _, k := range d.Keypoints {
			if k.Score < 0.3 {
				continue
			}
			total++
			if k.X >= d.Box.X1 && k.X <= d.Box.X2 && k.Y >= d.Box.Y1 && k.Y <= d.Box.Y2 {
				inside++
			}
		}
		for _, r := range ref {
			if d.Box.IoU(r.Box) > 0.3 {
				matched++
				break
			}
		}
		m := d.Mask.Decode(nil)
		if union == nil {
			union = m
		}
		for i, v := range m {
			union[i] |= v
		}
		t.Logf("person score %.2f box %+v mask area %d", d.Score, d.Box, d.Mask.Area())
	}
	require.Equal(t, total, inside, "confident keypoints lie inside their boxes")
	t.Logf("%d of %d bodypix people overlap a yolox person (IoU > 0.3)", matched, len(dets))
	require.GreaterOrEqual(t, matched*2, len(dets))

	// The mask covers part of most yolox persons.
	covered := 0
	for _, r := range ref {
		fg, n := 0, 0
		for y := int(r.Box.Y1); y < int(r.Box.Y2); y++ {
			for x := int(r.Box.X1); x < int(r.Box.X2); x++ {
				n++
				fg += int(union[y*frameW+x])
			}
		}
		if fg*10 > n {
			covered++
		}
	}
	t.Logf("mask covers >10%% of %d of %d yolox person boxes", covered, len(ref))
	require.GreaterOrEqual(t, covered*2, len(ref))
}

// TestSelfieFrame segments people on the whole frame (where they are too
// small for the landscape selfie model: its peak probability is about 0.3)
// and on a crop around two of them, mapped back to the frame.
func TestSelfieFrame(t *testing.T) {
	m := openModel(t, "selfie_segmentation_landscape.onnx", selfieSpec, "selfie", Options{}, nil)
	f := videoFrame(t, 300)
	whole := m.detect(t, f, nil)
	low := openModel(t, "selfie_segmentation_landscape.onnx", selfieSpec, "selfie", Options{MaskThreshold: 0.1}, nil)
	lowDets := low.detect(t, f, nil)
	require.Len(t, lowDets, 1, "people at a low threshold")
	t.Logf("whole frame: %d detections at 0.5, mask area %d at 0.1", len(whole), lowDets[0].Mask.Area())

	crop := frame.Box{X1: 560, Y1: 150, X2: 660, Y2: 240}
	dets := m.detect(t, f, &crop)
	require.Len(t, dets, 1)
	d := dets[0]
	t.Logf("crop: box %+v score %.2f mask area %d", d.Box, d.Score, d.Mask.Area())
	require.Equal(t, "person", d.Label)
	require.Greater(t, d.Mask.Area(), 500)
	require.True(t, d.Box.X1 >= crop.X1-1 && d.Box.Y1 >= crop.Y1-1 && d.Box.X2 <= crop.X2+1 && d.Box.Y2 <= crop.Y2+1, "inside the crop")
	// The two YOLOX persons in the crop are covered.
	fg := d.Mask.Decode(nil)
	for _, r := range yoloxPersons(t, 300)[:1] { // the one at x=580..612
		in, n := 0, 0
		for y := int(r.Box.Y1); y < int(r.Box.Y2); y++ {
			for x := int(r.Box.X1); x < int(r.Box.X2); x++ {
				n++
				in += int(fg[y*frameW+x])
			}
		}
		t.Logf("mask covers %d of %d pixels of yolox person %+v", in, n, r.Box)
		require.Greater(t, in*4, n)
	}
}

func cosine(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func TestEmbeddingReID(t *testing.T) {
	a, b := yoloxPersons(t, 300), yoloxPersons(t, 305)
	m := openModel(t, "person_reid_0287.onnx", reidSpec, "embedding", Options{}, nil)
	embed := func(n int, d frame.Detection) []float32 {
		dets := m.detect(t, videoFrame(t, n), &d.Box)
		require.Len(t, dets, 1)
		e := dets[0].Embedding
		require.Len(t, e, 256)
		require.InDelta(t, 1, math.Sqrt(cosine(e, e)), 1e-5)
		require.InDelta(t, d.Box.X1, dets[0].Box.X1, 1)
		require.InDelta(t, d.Box.Y2, dets[0].Box.Y2, 1)
		return e
	}
	var ea, eb [][]float32
	for _, d := range a {
		ea = append(ea, embed(300, d))
	}
	for _, d := range b {
		eb = append(eb, embed(305, d))
	}
	// The same person is the nearest centre in the other frame, both ways,
	// within half a box height (people move about 20 px in 0.5 s here);
	// different people are pairs whose boxes do not overlap.
	nearest := func(d frame.Detection, in []frame.Detection) int {
		best, bj := float32(math.Inf(1)), -1
		for j, e := range in {
			dx := (d.Box.X1+d.Box.X2)/2 - (e.Box.X1+e.Box.X2)/2
			dy := (d.Box.Y1+d.Box.Y2)/2 - (e.Box.Y1+e.Box.Y2)/2
			if dist := float32(math.Hypot(float64(dx), float64(dy))); dist < best && dist < d.Box.H()/2 {
				best, bj = dist, j
			}
		}
		return bj
	}
	var same, diff []float64
	for i, da := range a {
		bj := nearest(da, b)
		if bj >= 0 && nearest(b[bj], a) != i {
			bj = -1
		}
		for j := range b {
			c := cosine(ea[i], eb[j])
			if j == bj {
				t.Logf("person %+v -> %+v: cosine %.3f", da.Box, b[j].Box, c)
				same = append(same, c)
			} else if da.Box.IoU(b[j].Box) == 0 {
				diff = append(diff, c)
			}
		}
	}
	mean := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s / float64(len(v))
	}
	t.Logf("re-ID cosine: same person %.3f (n=%d), different %.3f (n=%d)", mean(same), len(same), mean(diff), len(diff))
	require.GreaterOrEqual(t, len(same), 5)
	require.Greater(t, mean(same), 0.8)
	require.Less(t, mean(diff), mean(same)-0.3)
}

// BenchmarkYOLOXDecode decodes the real 1x3549x85 output of frame 300.
func BenchmarkYOLOXDecode(b *testing.B) {
	m := openModel(b, "yolox_nano_416.onnx", yoloxSpec, "yolox", Options{}, nil)
	tf, err := prep.Fill(m.s.Input(0), videoFrame(b, 300), m.spec)
	require.NoError(b, err)
	require.NoError(b, m.s.Run())
	outs := m.outputs()
	var dst []frame.Detection
	b.ReportAllocs()
	for b.Loop() {
		dst, err = m.dec.Decode(dst[:0], outs, 0, tf)
		if err != nil {
			b.Fatal(err)
		}
	}
	require.Len(b, dst, 11)
}

// BenchmarkMaskDecode decodes bodypix and selfie (pose + whole-frame masks).
func BenchmarkMaskDecode(b *testing.B) {
	for _, tc := range []struct {
		name, file, family string
		spec               prep.Spec
		shapes             map[string][]int64
	}{
		{"bodypix", "bodypix_mnv1_050_s16.onnx", "bodypix", bodyPixSpec, map[string][]int64{"input": {1, 577, 769, 3}}},
		{"selfie", "selfie_segmentation_landscape.onnx", "selfie", selfieSpec, nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := openModel(b, tc.file, tc.spec, tc.family, Options{}, tc.shapes)
			tf, err := prep.Fill(m.s.Input(0), videoFrame(b, 300), m.spec)
			require.NoError(b, err)
			require.NoError(b, m.s.Run())
			outs := m.outputs()
			var dst []frame.Detection
			b.ReportAllocs()
			for b.Loop() {
				dst, err = m.dec.Decode(dst[:0], outs, 0, tf)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
