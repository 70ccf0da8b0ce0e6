package training

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/inference/prep"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/internal/shareddata"
	"github.com/vigil-video/vigil/training/augment"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/models"
)

// segSynth is a SynthSource of w x h frames of sequences seeds from
// seed, frames each.
func segSynth(t testing.TB, seed uint64, seqs, n, w, h int, domain synth.Domain) *dataset.SynthSource {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed, p.Domain = w, h, 8, seed, domain
	src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: seqs, Frames: n, Stride: 6, Skip: 5})
	require.NoError(t, err)
	return src
}

func smallSegOptions(steps int) SegmentOptions {
	return SegmentOptions{
		Model: models.UNetConfig{InputW: 48, InputH: 80, Widths: [7]int{8, 8, 16, 16, 16, 8, 8}},
		Seed:  3, Batch: 4, Steps: steps, EvalEvery: steps / 2,
	}
}

// TestCropTargets: a crop's instance target is the centred person's mask:
// it covers the crop's middle, lies inside the person's box, and the union
// target contains it.
func TestCropTargets(t *testing.T) {
	src := segSynth(t, 1, 1, 6, 320, 180, synth.Day)
	ps, err := persons(src, 24)
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	const w, h = 48, 80
	inst := &cropper{w: w, h: h, ow: w / 2, oh: h / 2}
	uni := &cropper{w: w, h: h, ow: w / 2, oh: h / 2, union: true}
	in := make([]float32, 3*w*h)
	m1, c1 := make([]float32, w*h/4), make([]float32, w*h/4)
	m2, c2 := make([]float32, w*h/4), make([]float32, w*h/4)
	for _, p := range ps {
		s, err := src.At(p.i)
		require.NoError(t, err)
		box := s.Objects[p.j].Box
		require.NoError(t, inst.crop(cropDst{in, m1, c1}, s, p.j, box, nil, nil))
		require.NoError(t, uni.crop(cropDst{in, m2, c2}, s, p.j, box, nil, nil))
		var area, outside float32
		region := inference.CropAround(box, float32(w)/h, s.Image.Rect.Dx(), s.Image.Rect.Dy())
		sx, sy := w/region.W(), h/region.H()
		inBox := frame.Box{X1: (box.X1 - region.X1) * sx, Y1: (box.Y1 - region.Y1) * sy, X2: (box.X2 - region.X1) * sx, Y2: (box.Y2 - region.Y1) * sy}
		for y := range h / 2 {
			for x := range w / 2 {
				v := m1[y*w/2+x]
				area += v
				cx, cy := float32(2*x+1), float32(2*y+1)
				if cx < inBox.X1-2 || cx > inBox.X2+2 || cy < inBox.Y1-2 || cy > inBox.Y2+2 {
					outside += v
				}
				require.Equal(t, float32(1), c1[y*w/2+x], "the instance target cares everywhere")
				require.GreaterOrEqual(t, m2[y*w/2+x], v, "the union contains the instance")
			}
		}
		require.Positive(t, area, "sample %s person %d", s.ID, p.j)
		require.Zero(t, outside, "the target lies in the person's box")
		require.InDelta(t, float32(s.Objects[p.j].Mask.Area())*sx*sy/4, area, float64(0.25*area+4), "the target's area is the mask's, scaled")
	}
	// An augmenter sees the crop and the mask follows it.
	s, err := src.At(ps[0].i)
	require.NoError(t, err)
	aug := func(s dataset.Sample, rng *rand.Rand, w, h int) (dataset.Sample, error) {
		a, _, err := augment.Letterbox(s, w, h)
		return a, err
	}
	m3, c3 := make([]float32, w*h/4), make([]float32, w*h/4)
	require.NoError(t, inst.crop(cropDst{in, m1, c1}, s, ps[0].j, s.Objects[ps[0].j].Box, nil, nil))
	require.NoError(t, inst.crop(cropDst{in, m3, c3}, s, ps[0].j, s.Objects[ps[0].j].Box, aug, rand.New(rand.NewPCG(1, 1))))
	var same, all float32
	for i := range m1 {
		if m1[i] > 0 || m3[i] > 0 {
			all++
			if (m1[i] > 0.5) == (m3[i] > 0.5) {
				same++
			}
		}
	}
	require.Greater(t, same/all, float32(0.6), "letterboxing a crop of the model's aspect changes little")
}

// TestTrainSegmenter: a short run lowers the loss, validates, keeps its
// best weights, is deterministic, and resumes from its checkpoint.
func TestTrainSegmenter(t *testing.T) {
	train, val := segSynth(t, 1, 2, 6, 320, 180, synth.Day), segSynth(t, 50, 1, 3, 320, 180, synth.Day)
	opts := smallSegOptions(20)
	res, err := TrainSegmenter(context.Background(), opts, train, val)
	require.NoError(t, err)
	require.Equal(t, 20, res.Steps)
	require.Len(t, res.Validations, 2)
	require.Less(t, meanTail(res.Losses, 5), res.Losses[0]*0.8, "the loss falls")
	require.Greater(t, res.Best.MeanIoU, 0.4)
	t.Logf("loss %.3f -> %.3f, %d/%d crops, validations %+v, %.1f crops/s", res.Losses[0], meanTail(res.Losses, 5), res.TrainCrops, res.ValCrops, res.Validations, res.ImagesPerSec)

	// The model keeps the best validation's weights.
	vp, err := persons(val, 24)
	require.NoError(t, err)
	ev, err := newSegEval(res.Model, 4, val, vp)
	require.NoError(t, err)
	defer ev.close()
	kept, err := ev.run(context.Background())
	require.NoError(t, err)
	require.Equal(t, res.Best.MeanIoU, kept.MeanIoU)

	again, err := TrainSegmenter(context.Background(), opts, train, val)
	require.NoError(t, err)
	require.Equal(t, res.Losses, again.Losses, "the same seed gives the same run")

	dir := t.TempDir()
	first := opts
	first.Steps, first.CheckpointDir = 10, dir
	first.Schedule = Schedule{Kind: "cosine", Warmup: 2, Floor: 0.02}
	first.Target = TargetUnion
	first.Augment = func(s dataset.Sample, rng *rand.Rand, w, h int) (dataset.Sample, error) {
		a, _, err := augment.Letterbox(s, w, h)
		return a, err
	}
	_, err = TrainSegmenter(context.Background(), first, train, val)
	require.NoError(t, err)
	resumed := first
	resumed.Steps, resumed.Resume = 20, true
	r2, err := TrainSegmenter(context.Background(), resumed, train, val)
	require.NoError(t, err)
	require.Len(t, r2.Losses, 20, "the history continues")
	require.Len(t, r2.Validations, 2)
}

func TestTrainSegmenterBadOptions(t *testing.T) {
	val := segSynth(t, 2, 1, 2, 320, 180, synth.Day)
	for _, o := range []SegmentOptions{
		{Steps: 0},
		{Steps: 10, Optimizer: "lbfgs"},
		{Steps: 10, Target: "crowd"},
		{Steps: 10, Jitter: 0.7},
		{Steps: 10, MinHeight: 1e6},
	} {
		o.Model = smallSegOptions(1).Model
		_, err := TrainSegmenter(context.Background(), o, val, val)
		require.Error(t, err, "%+v", o)
	}
	_, err := TrainSegmenter(context.Background(), smallSegOptions(2), frames{}, val)
	require.ErrorContains(t, err, "0 training")
}

// TestWriteSegmenterBundle: the bundle loads, ONNX Runtime runs it, the
// selfie decoder turns its output into the centred person's mask, and an
// engine runs it as a segmenter after a detector.
func TestWriteSegmenterBundle(t *testing.T) {
	orttest.Init(t)
	train, val := segSynth(t, 1, 2, 6, 320, 180, synth.Day), segSynth(t, 50, 1, 3, 320, 180, synth.Day)
	opts := smallSegOptions(40)
	res, err := TrainSegmenter(context.Background(), opts, train, val)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "seg")
	require.NoError(t, WriteSegmenterBundle(dir, res))
	b, err := inference.LoadBundle(dir)
	require.NoError(t, err)
	require.Equal(t, inference.TaskSegment, b.Task)
	require.Equal(t, "selfie", b.Family)
	require.Equal(t, 48, b.Input.Width)
	require.Equal(t, 80, b.Input.Height)
	require.Equal(t, "nchw", b.Input.Layout)
	require.Equal(t, "miou", b.Variants[0].Accuracy.Metric)
	require.NoError(t, b.VerifyVariant(b.Variants[0]))

	// One validation person, cut and run as the engine does.
	s, err := val.At(0)
	require.NoError(t, err)
	ps, err := persons(val, 24)
	require.NoError(t, err)
	p := ps[0]
	s, err = val.At(p.i)
	require.NoError(t, err)
	cr := &cropper{w: 48, h: 80}
	require.NoError(t, cr.setFrame(s.Image))
	box := inference.CropAround(s.Objects[p.j].Box, 48.0/80, s.Image.Rect.Dx(), s.Image.Rect.Dy())
	sess, err := ort.Open(b.Path(b.Variants[0]), ort.SessionOptions{BatchSize: 1, IntraOpThreads: 1})
	require.NoError(t, err)
	defer sess.Close()
	tf, err := prep.FillCrop(sess.Input(0), &cr.f, box, b.Input.Spec())
	require.NoError(t, err)
	require.NoError(t, sess.Run())
	dec, err := decoders.New("selfie", decoders.Options{InputW: 48, InputH: 80, Labels: b.Labels, MaskThreshold: 0.5})
	require.NoError(t, err)
	o := sess.Outputs()[0]
	dets, err := dec.Decode(nil, []decoders.Tensor{{Name: o.Name, Shape: []int64{1, 1, 40, 24}, Data: sess.Output(0)}}, 0, tf)
	require.NoError(t, err)
	require.Len(t, dets, 1)
	d := dets[0]
	require.Equal(t, "person", d.Label)
	require.NotNil(t, d.Mask)
	require.Equal(t, s.Image.Rect.Dx(), d.Mask.Width)
	truth := *s.Objects[p.j].Mask
	inter := frame.IntersectMasks(truth, *d.Mask).Area()
	iou := float64(inter) / float64(truth.Area()+d.Mask.Area()-inter)
	t.Logf("person %v: mask IoU %.2f with the truth (model mIoU %.2f)", s.Objects[p.j].Box, iou, res.Best.MeanIoU)
	require.Greater(t, iou, 0.1, "a mask of the person, if a rough one after 40 small steps")
	require.True(t, d.Box.X1 >= box.X1-1 && d.Box.X2 <= box.X2+1 && d.Box.Y1 >= box.Y1-1 && d.Box.Y2 <= box.Y2+1, "mask %v inside the crop %v", d.Box, box)

	// The engine runs it on the persons a detector finds.
	det := shareddata.Path(t, "models/yolox_nano_416.onnx")
	e := inference.NewEngine(inference.EngineOptions{Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 4}})
	defer e.Close()
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: det, Family: "yolox", ScoreThreshold: 0.3}))
	require.NoError(t, e.Load(config.Model{Name: "seg", Bundle: dir}))
	p2 := synth.DefaultParams()
	p2.Width, p2.Height, p2.Objects, p2.Seed = 640, 360, 8, 77
	var f frame.Frame
	synth.Snapshot(p2, 30, &f)
	r := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det", "seg"}, &f, r))
	masked, people := 0, 0
	for _, d := range r.Detections {
		if d.Label == "person" {
			people++
			if d.Mask != nil {
				masked++
			}
		}
	}
	t.Logf("engine: %d persons detected, %d with masks", people, masked)
	require.Positive(t, people, "the detector finds the synth frame's people")
	require.Positive(t, masked)
}

// TestSegmenterLong is a real training run of the default segmenter,
// measured: set VIGIL_SEG_STEPS (e.g. 800) to run it; VIGIL_SEG_TARGET
// picks instance or union; VIGIL_SEG_OUT writes the bundle there.
func TestSegmenterLong(t *testing.T) {
	steps, _ := strconv.Atoi(os.Getenv("VIGIL_SEG_STEPS"))
	if steps == 0 {
		t.Skip("set VIGIL_SEG_STEPS to run")
	}
	day := segSynth(t, 1, 10, 30, 640, 360, synth.Day)
	night := segSynth(t, 201, 4, 30, 640, 360, synth.Night)
	val := dataset.Concat(segSynth(t, 1001, 3, 20, 640, 360, synth.Day), segSynth(t, 1101, 1, 20, 640, 360, synth.Night))
	opts := SegmentOptions{Seed: 1, Steps: steps, EvalEvery: max(steps/8, 1), Target: os.Getenv("VIGIL_SEG_TARGET")}
	last := time.Now()
	opts.Progress = func(p Progress) {
		if time.Since(last) > 30*time.Second {
			last = time.Now()
			t.Logf("step %d/%d loss %.3f lr %.2g %.1f crops/s", p.Step, p.Steps, p.Loss, p.LR, p.ImagesPerSec)
		}
	}
	res, err := TrainSegmenter(context.Background(), opts, dataset.Concat(day, night), val)
	require.NoError(t, err)
	t.Logf("%d train / %d val crops, %.1f M MACs per crop, %.1f crops/s, %v", res.TrainCrops, res.ValCrops, float64(res.Model.MACs())/1e6, res.ImagesPerSec, res.Elapsed)
	for _, v := range res.Validations {
		t.Logf("step %d: mIoU %.3f person IoU %.3f loss %.3f", v.Step, v.MeanIoU, v.PersonIoU, v.Loss)
	}
	fmt.Printf("RESULT target=%s steps=%d best=%+v crops/s=%.1f\n", opts.Target, res.Steps, res.Best, res.ImagesPerSec)
	if out := os.Getenv("VIGIL_SEG_OUT"); out != "" {
		require.NoError(t, WriteSegmenterBundle(out, res))
	}
}

// BenchmarkCrop cuts one training crop with its target, as a step does
// for each of its crops.
func BenchmarkCrop(b *testing.B) {
	src := segSynth(b, 1, 1, 2, 640, 360, synth.Day)
	ps, err := persons(src, 24)
	require.NoError(b, err)
	const w, h = 96, 160
	c := &cropper{w: w, h: h, ow: w / 2, oh: h / 2}
	dst := cropDst{make([]float32, 3*w*h), make([]float32, w*h/4), make([]float32, w*h/4)}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p := ps[i%len(ps)]
		s, err := src.At(p.i)
		require.NoError(b, err)
		require.NoError(b, c.crop(dst, s, p.j, s.Objects[p.j].Box, nil, nil))
	}
}
