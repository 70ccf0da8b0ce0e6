package training

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/models"
)

func synthPersons(t testing.TB, seed uint64, seqs, frames, stride int, w, h int) *dataset.SynthSource {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed, p.Realtime = w, h, 8, seed, false
	src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: seqs, Frames: frames, Stride: stride, MinVisible: 0.5})
	require.NoError(t, err)
	return src
}

// streetScenes are textured day or night scenes with distractors.
func streetScenes(t testing.TB, seed uint64, night bool, seqs, frames, stride int) dataset.Source {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed, p.Realtime, p.Texture, p.Distractors = 640, 360, 8, seed, false, 0.5, 4
	if night {
		p.Domain = synth.Night
	}
	src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: seqs, Frames: frames, Stride: stride, MinVisible: 0.5})
	require.NoError(t, err)
	return src
}

// heldOutPersons is the validation set of the measurements: 16 scenes (12
// day, 4 night) of seeds no training run uses.
func heldOutPersons(t testing.TB) dataset.Source {
	return dataset.Concat(streetScenes(t, 9000, false, 12, 30, 8), streetScenes(t, 9500, true, 4, 30, 8))
}

// TestEmbedLongRun is the measured training run (minutes):
// VIGIL_EMBED_RUN=steps, VIGIL_EMBED_OUT=dir for the checkpoint and bundle.
func TestEmbedLongRun(t *testing.T) {
	steps, _ := strconv.Atoi(os.Getenv("VIGIL_EMBED_RUN"))
	if steps == 0 {
		t.Skip("set VIGIL_EMBED_RUN=steps")
	}
	train := dataset.Concat(streetScenes(t, 1000, false, 36, 40, 6), streetScenes(t, 2000, true, 12, 40, 6))
	val := heldOutPersons(t)
	out := os.Getenv("VIGIL_EMBED_OUT")
	if out == "" {
		out = t.TempDir()
	}
	began := time.Now()
	res, err := TrainEmbedder(context.Background(), EmbedOptions{
		Seed: 1, Steps: steps, EvalEvery: max(steps/10, 1), Augment: DefaultCropAugment, CheckpointDir: filepath.Join(out, "checkpoint"),
		Progress: func(p EmbedProgress) {
			if p.Step%20 == 0 {
				fmt.Printf("step %d loss %.4f active %.2f d+ %.3f d- %.3f lr %.2g %.1f crops/s %s\n", p.Step, p.Loss, p.Triplets.Active, p.Triplets.Pos, p.Triplets.Neg, p.LR, p.CropsPerSec, p.Elapsed.Round(time.Second))
			}
		},
	}, train, val)
	require.NoError(t, err)
	fmt.Printf("train %d ids %d crops; val %d ids %d crops %d frames\n", res.TrainIdentities, res.TrainCrops, res.ValIdentities, res.ValCrops, res.ValFrames)
	fmt.Printf("baseline %+v\n", *res.Baseline)
	for _, v := range res.Validations {
		fmt.Printf("val %+v\n", v)
	}
	fmt.Printf("best %+v, %.1f crops/s, %s (total %s), MACs %d\n", res.Best, res.CropsPerSec, res.Elapsed, time.Since(began), res.Model.MACs())
	require.NoError(t, WriteEmbedderBundle(filepath.Join(out, "bundle"), res))
}

func smallEmbedOptions(steps int) EmbedOptions {
	return EmbedOptions{
		Model: models.ReIDConfig{InputW: 32, InputH: 64, Widths: []int{8, 16, 32}, Dim: 32},
		Seed:  3, P: 4, K: 4, Steps: steps, EvalEvery: steps / 2, MinHeight: 24, LR: 3e-3,
		Augment: DefaultCropAugment,
	}
}

// TestTrainEmbedder: a short run on generated persons lowers the loss,
// beats the untrained baseline, is deterministic, and resumes from its
// checkpoint with the same batches.
func TestTrainEmbedder(t *testing.T) {
	train := synthPersons(t, 1, 6, 12, 6, 480, 270)
	val := synthPersons(t, 50, 3, 9, 8, 480, 270)
	opts := smallEmbedOptions(20)
	// A constant rate after warm-up, so a shorter run takes the same steps.
	opts.Schedule = Schedule{Kind: "step", Warmup: 2, Every: 1000, Gamma: 1}
	res, err := TrainEmbedder(context.Background(), opts, train, val)
	require.NoError(t, err)
	require.Equal(t, 20, res.Steps)
	require.Len(t, res.Validations, 2)
	require.NotNil(t, res.Baseline)
	require.GreaterOrEqual(t, res.TrainIdentities, 20)
	require.GreaterOrEqual(t, res.ValIdentities, 5)
	require.Less(t, meanTail(res.Losses, 5), meanTail(res.Losses[:5], 5), "the loss falls")
	require.Contains(t, res.Validations, res.Best)
	require.Greater(t, res.Best.MAP, res.Baseline.MAP+0.1, "training beats the random network")
	t.Logf("loss %.3f -> %.3f; baseline rank-1 %.2f mAP %.2f; validations %+v; %.0f crops/s",
		meanTail(res.Losses[:5], 5), meanTail(res.Losses, 5), res.Baseline.Rank1, res.Baseline.MAP, res.Validations, res.CropsPerSec)

	// Stop at 10 with a checkpoint, then resume to 20.
	dir := t.TempDir()
	first := opts
	first.Steps, first.CheckpointDir = 10, dir
	r1, err := TrainEmbedder(context.Background(), first, train, val)
	require.NoError(t, err)
	require.Equal(t, res.Losses[:10], r1.Losses, "the same seed gives the same run")
	resumed := first
	resumed.Steps, resumed.Resume = 20, true
	r2, err := TrainEmbedder(context.Background(), resumed, train, val)
	require.NoError(t, err)
	require.Equal(t, 20, r2.Steps)
	require.Len(t, r2.Losses, 20, "the history continues")
	require.Equal(t, r1.Losses, r2.Losses[:10])
	require.GreaterOrEqual(t, r2.Best.MAP, r1.Best.MAP, "the best so far is kept across the resume")
	require.Less(t, meanTail(r2.Losses, 5), meanTail(r2.Losses[:5], 5), "Adam restarts its moments on resume, the weights carry on")
}

func TestTrainEmbedderBadOptions(t *testing.T) {
	val := synthPersons(t, 50, 2, 6, 8, 480, 270)
	for _, o := range []EmbedOptions{
		{Steps: 0},
		{Steps: 10, P: 1},
		{Steps: 10, Optimizer: "lbfgs"},
		{Steps: 10, LR: -1},
		{Steps: 10, Margin: -0.3},
		{Steps: 10, Augment: CropAugment{Shift: 2}},
		{Steps: 10, Schedule: Schedule{Kind: "step"}},
		{Steps: 10, Model: models.ReIDConfig{Dim: -1}},
	} {
		_, err := TrainEmbedder(context.Background(), o, val, val)
		require.Error(t, err, "%+v", o)
	}
	o := smallEmbedOptions(2)
	o.P = 100
	_, err := TrainEmbedder(context.Background(), o, val, val)
	require.ErrorContains(t, err, "a batch needs p = 100")
	_, err = TrainEmbedder(context.Background(), smallEmbedOptions(2), val, frames{})
	require.ErrorContains(t, err, "0 validation identities")
}

// TestCollectCrops: persons become crops grouped by (sequence, track);
// ignored, untracked, small and other objects and lone sightings do not.
func TestCollectCrops(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	person := func(id uint64, h float32) dataset.Object {
		return dataset.Object{Label: "person", TrackID: id, Box: frame.Box{X1: 10, Y1: 90 - h, X2: 30, Y2: 90}}
	}
	ignored := person(1, 50)
	ignored.Ignore = true
	car := person(1, 50)
	car.Label = "car"
	src := frames{
		{ID: "a/0", Sequence: "a", Image: img, Objects: []dataset.Object{person(1, 50), person(2, 50), person(3, 20), person(0, 50), ignored, car}},
		{ID: "a/1", Sequence: "a", Image: img, Objects: []dataset.Object{person(1, 40), person(3, 20)}},
		{ID: "b/0", Sequence: "b", Image: img, Objects: []dataset.Object{person(1, 60)}},
		{ID: "b/1", Sequence: "b", Image: img, Objects: []dataset.Object{person(1, 60), {Label: "person", TrackID: 1, Box: frame.Box{X1: 90, Y1: -20, X2: 120, Y2: 40}}}},
		{ID: "c/0", Sequence: "c"}, // no image
	}
	ids, nframes, err := collectCrops(context.Background(), src, 32)
	require.NoError(t, err)
	require.Equal(t, 4, nframes)
	require.Len(t, ids, 2, "a#1 and b#1; a#2 is seen once, a#3 is too small")
	require.Equal(t, "a#1", ids[0].key)
	require.Len(t, ids[0].crops, 2)
	require.Equal(t, "b#1", ids[1].key)
	require.Len(t, ids[1].crops, 3)
	require.Equal(t, frame.Box{X1: 90, Y1: 0, X2: 100, Y2: 40}, ids[1].crops[2].box, "clipped to the picture")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = collectCrops(ctx, src, 32)
	require.ErrorIs(t, err, context.Canceled)
}

// TestCropInput: a crop of a two-colour picture is stretched to the
// input, scaled to [0, 1] in RGB planes, and mirrored by flip.
func TestCropInput(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 40, 40))
	for y := range 40 {
		for x := range 40 {
			c := color.RGBA{200, 100, 50, 255}
			if x >= 20 {
				c = color.RGBA{0, 255, 10, 255}
			}
			img.SetRGBA(x, y, c)
		}
	}
	const w, h = 4, 8
	dst := make([]float32, 3*w*h)
	// The box's left half is one colour, its right half the other.
	cropInput(dst, img, frame.Box{X1: 12, Y1: 4, X2: 28, Y2: 36}, w, h, false)
	for y := range h {
		require.InDelta(t, 200.0/255, dst[y*w+0], 1e-6)
		require.InDelta(t, 100.0/255, dst[w*h+y*w+1], 1e-6)
		require.InDelta(t, 1, dst[w*h+y*w+3], 1e-6)
		require.InDelta(t, 10.0/255, dst[2*w*h+y*w+2], 1e-6)
	}
	flipped := make([]float32, 3*w*h)
	cropInput(flipped, img, frame.Box{X1: 12, Y1: 4, X2: 28, Y2: 36}, w, h, true)
	for c := range 3 {
		for y := range h {
			for x := range w {
				require.Equal(t, dst[c*w*h+y*w+x], flipped[c*w*h+y*w+w-1-x])
			}
		}
	}
	// Augmentation keeps values in range and is reproducible.
	a, b := make([]float32, 3*w*h), make([]float32, 3*w*h)
	c := personCrop{img: img, box: frame.Box{X1: 12, Y1: 4, X2: 28, Y2: 36}}
	augmentCrop(a, c, CropAugment{Flip: true, Shift: 0.5, Brightness: 1, Contrast: 1, Color: 1}, rand.New(rand.NewPCG(1, 2)), w, h)
	augmentCrop(b, c, CropAugment{Flip: true, Shift: 0.5, Brightness: 1, Contrast: 1, Color: 1}, rand.New(rand.NewPCG(1, 2)), w, h)
	require.Equal(t, a, b)
	for _, v := range a {
		require.True(t, v >= 0 && v <= 1)
	}
}

// TestPK: a batch holds p distinct identities with k crops each, drawn
// from the rng alone.
func TestPK(t *testing.T) {
	ids := make([]identityCrops, 10)
	for i := range ids {
		ids[i].key = fmt.Sprint(i)
		for j := range 2 + i { // identity 0 has 2 crops: drawn with replacement
			ids[i].crops = append(ids[i].crops, personCrop{frame: fmt.Sprint(j)})
		}
	}
	draw := func(seed uint64) []string {
		var out []string
		seen := map[int]int{}
		pk(rand.New(rand.NewPCG(seed, 0)), ids, 5, 3, func(b, id int, c personCrop) {
			require.Equal(t, len(out), b)
			seen[id]++
			out = append(out, fmt.Sprintf("%d/%s", id, c.frame))
		})
		require.Len(t, seen, 5)
		for _, n := range seen {
			require.Equal(t, 3, n)
		}
		return out
	}
	require.Equal(t, draw(1), draw(1))
	require.NotEqual(t, draw(1), draw(2))
}

// TestWriteEmbedderBundle: the bundle loads, and the inference engine runs
// it on person crops of a frame as an embedding model, giving the vectors
// of the gorgonia graph (normalised) on the trainer's own crops.
func TestWriteEmbedderBundle(t *testing.T) {
	orttest.Init(t)
	m, err := models.NewReID(models.ReIDConfig{InputW: 32, InputH: 64, Widths: []int{8, 16, 32}, Dim: 24}, 5)
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "reid")
	res := &EmbedResult{Model: m, Steps: 10, Best: EmbedValidation{Step: 10, Rank1: 0.75, MAP: 0.5}, ValFrames: 7}
	require.NoError(t, WriteEmbedderBundle(dir, res))
	b, err := inference.LoadBundle(dir)
	require.NoError(t, err)
	require.Equal(t, inference.TaskEmbed, b.Task)
	require.Equal(t, "embedding", b.Family)
	require.Equal(t, inference.InputSpec{Width: 32, Height: 64, Layout: "nchw", Color: "rgb", Resize: "stretch", Std: [3]float32{255, 255, 255}}, b.Input)
	require.Equal(t, []string{"person"}, b.Labels)
	require.Equal(t, inference.Accuracy{Metric: "rank1", Value: 0.75, Frames: 7}, b.Variants[0].Accuracy)
	require.NoError(t, b.VerifyVariant(b.Variants[0]))

	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed, p.Realtime = 480, 270, 8, 4, false
	sc := synth.NewScene(p)
	for range 30 {
		sc.Step()
	}
	var f frame.Frame
	sc.Render(&f)
	img, err := synth.ToRGB(&f, nil)
	require.NoError(t, err)
	var boxes []frame.Box
	for _, o := range sc.Truth() {
		if o.Label == "person" && o.Box.H() > 30 {
			boxes = append(boxes, o.Box)
		}
	}
	require.NotEmpty(t, boxes)

	e := inference.NewEngine(inference.EngineOptions{Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 4}})
	defer e.Close()
	require.NoError(t, e.Load(config.Model{Name: "reid", Bundle: dir}))
	em, ok := e.Model("reid")
	require.True(t, ok)
	outs, err := em.InferCrops(context.Background(), &f, boxes)
	require.NoError(t, err)

	gr, err := m.Build(1)
	require.NoError(t, err)
	in := make([]float32, 3*64*32)
	require.NoError(t, G.Let(gr.Input, tensor.New(tensor.WithShape(1, 3, 64, 32), tensor.WithBacking(in))))
	vm := G.NewTapeMachine(gr.G)
	defer vm.Close()
	for i, box := range boxes {
		require.Len(t, outs[i], 1)
		got := outs[i][0].Embedding
		require.Len(t, got, 24)
		cropInput(in, img, box, 32, 64, false)
		require.NoError(t, vm.RunAll())
		want := gr.Features.Value().Data().([]float32)
		var dot, nw float64
		for j, v := range want {
			dot += float64(v) * float64(got[j])
			nw += float64(v) * float64(v)
		}
		vm.Reset()
		require.InDelta(t, 1, dot/math.Sqrt(nw), 0.01, "crop %d: cosine of the served and the trained embedding", i)
	}
	require.Error(t, WriteEmbedderBundle(dir, &EmbedResult{}))
}

// TestEmbedCompare scores bundles through the inference engine (ONNX
// Runtime, the server's crop pre-processing) on the held-out persons of
// TestEmbedLongRun: VIGIL_EMBED_COMPARE=bundle-dir,other.onnx,...
func TestEmbedCompare(t *testing.T) {
	list := os.Getenv("VIGIL_EMBED_COMPARE")
	if list == "" {
		t.Skip("set VIGIL_EMBED_COMPARE")
	}
	orttest.Init(t)
	val := heldOutPersons(t)
	ids, _, err := collectCrops(context.Background(), val, 32)
	require.NoError(t, err)
	frames := map[*image.RGBA]*frame.Frame{}
	toFrame := func(img *image.RGBA) *frame.Frame {
		if f, ok := frames[img]; ok {
			return f
		}
		w, h := img.Rect.Dx(), img.Rect.Dy()
		rgb := make([]byte, 3*w*h)
		for i := range w * h {
			copy(rgb[3*i:3*i+3], img.Pix[4*i:4*i+3])
		}
		f := &frame.Frame{Width: w, Height: h, Format: frame.PixelFormatRGB24, Planes: [3][]byte{rgb}, Strides: [3]int{3 * w}}
		frames[img] = f
		return f
	}
	for i, path := range strings.Split(list, ",") {
		e := inference.NewEngine(inference.EngineOptions{Runtime: config.Runtime{Device: "cpu", Threads: 2}, Batching: config.Batching{MaxBatch: 8}})
		name := fmt.Sprint("m", i)
		require.NoError(t, e.Load(config.Model{Name: name, Bundle: path, Family: "embedding"}))
		m, _ := e.Model(name)
		began := time.Now()
		n := 0
		r, err := scoreReID(context.Background(), ids, 1, func(cs []personCrop) ([][]float32, error) {
			outs, err := m.InferCrops(context.Background(), toFrame(cs[0].img), []frame.Box{cs[0].box})
			if err != nil {
				return nil, err
			}
			n++
			return [][]float32{outs[0][0].Embedding}, nil
		})
		require.NoError(t, err)
		fmt.Printf("%s: rank-1 %.3f rank-5 %.3f mAP %.3f (%d queries), %.1f ms/crop\n", path, r.Rank1, r.Rank5, r.MAP, r.Queries, float64(time.Since(began).Milliseconds())/float64(n))
		e.Close()
	}
}
