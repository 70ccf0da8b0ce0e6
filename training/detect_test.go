package training

import (
	"context"
	"fmt"
	"image"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/models"
)

// frames is a small in-memory Source of synth frames.
type frames []dataset.Sample

func (f frames) Len() int                         { return len(f) }
func (f frames) At(i int) (dataset.Sample, error) { return f[i], nil }

func synthFrames(t testing.TB, seed uint64, n, w, h int) frames {
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed = w, h, 6, seed
	sc := synth.NewScene(p)
	var f frame.Frame
	var out frames
	for i := range n {
		for range 7 {
			sc.Step()
		}
		sc.Render(&f)
		img, err := synth.ToRGB(&f, &image.RGBA{})
		require.NoError(t, err)
		s := dataset.Sample{ID: fmt.Sprintf("s%d/%d", seed, i), Sequence: fmt.Sprint(seed), Image: img}
		for _, o := range sc.Truth() {
			s.Objects = append(s.Objects, dataset.Object{Box: o.Box, Class: o.Class, Label: o.Label, Keypoints: o.Keypoints, Score: 1,
				Ignore: o.Box.W() < 4 || o.Box.H() < 4 || o.Occlusion > 0.7})
		}
		out = append(out, s)
	}
	return out
}

func smallOptions(steps int) DetectOptions {
	return DetectOptions{
		Model: models.CenterNetConfig{InputW: 160, InputH: 96, Classes: []string{"person", "car"}, Keypoints: 17, Widths: [7]int{8, 16, 32, 32, 32, 16, 16}},
		Seed:  3, Batch: 4, Steps: steps, EvalEvery: steps / 2,
	}
}

// TestTrainDetector: a short run lowers the loss, validates, keeps its best
// weights, is deterministic, and resumes from its checkpoint.
func TestTrainDetector(t *testing.T) {
	train, val := synthFrames(t, 1, 24, 320, 180), synthFrames(t, 2, 4, 320, 180)
	opts := smallOptions(30)
	res, err := TrainDetector(context.Background(), opts, train, val)
	require.NoError(t, err)
	require.Equal(t, 30, res.Steps)
	require.Len(t, res.Validations, 2)
	require.Less(t, meanTail(res.Losses, 5), res.Losses[0]*0.6, "the loss falls")
	require.GreaterOrEqual(t, res.Best.MAP50, 0.0)
	t.Logf("loss %.2f -> %.2f, validations %+v, %.1f images/s", res.Losses[0], meanTail(res.Losses, 5), res.Validations, res.ImagesPerSec)

	again, err := TrainDetector(context.Background(), opts, train, val)
	require.NoError(t, err)
	require.Equal(t, res.Losses, again.Losses, "the same seed gives the same run")

	// Stop at 20 with a checkpoint, then resume to 40.
	dir := t.TempDir()
	first := opts
	first.Steps, first.CheckpointDir = 14, dir
	first.Schedule = Schedule{Kind: "cosine", Warmup: 2, Floor: 0.02}
	_, err = TrainDetector(context.Background(), first, train, val)
	require.NoError(t, err)
	resumed := first
	resumed.Steps, resumed.Resume = 30, true
	r2, err := TrainDetector(context.Background(), resumed, train, val)
	require.NoError(t, err)
	require.Equal(t, 30, r2.Steps)
	require.Len(t, r2.Losses, 30, "the history continues")
	require.Less(t, meanTail(r2.Losses, 5), r2.Losses[0]*0.6, "Adam restarts its moments on resume, the weights carry on")
}

func TestTrainDetectorBadOptions(t *testing.T) {
	val := synthFrames(t, 2, 1, 160, 96)
	for _, o := range []DetectOptions{
		{Steps: 0},
		{Steps: 10, Optimizer: "lbfgs"},
		{Steps: 10, LR: -1},
		{Steps: 10, Schedule: Schedule{Kind: "step"}},
	} {
		o.Model = smallOptions(1).Model
		_, err := TrainDetector(context.Background(), o, val, val)
		require.Error(t, err)
	}
	_, err := TrainDetector(context.Background(), smallOptions(2), frames{}, val)
	require.ErrorContains(t, err, "0 training")
}
