package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training/dataset"
)

// TestTrainThenEvalDetect: vigil train writes a loadable centernet bundle
// with its report and summary, and vigil eval detect scores it on a
// generated scene through the serving engine.
func TestTrainThenEvalDetect(t *testing.T) {
	orttest.Init(t)
	out := filepath.Join(t.TempDir(), "det")
	var so, se bytes.Buffer
	code := run([]string{"train", "--task", "detect", "--out", out, "--steps", "4", "--batch", "2",
		"--train-sequences", "1", "--val-sequences", "1", "--frames", "3", "--eval-every", "2", "--int8-frames", "4"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	var sum map[string]float64
	require.NoError(t, json.Unmarshal(so.Bytes(), &sum), so.String())
	require.Equal(t, 4.0, sum["steps"])
	require.Contains(t, se.String(), "train detect: done 4 steps")
	for _, f := range []string{"model.yaml", "fp32.onnx", "summary.json", "report/loss.png", "report/validation.png", "report/worst.png", "report/worst/index.html", "checkpoint/checkpoint.bin"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
	b, err := inference.LoadBundle(out)
	require.NoError(t, err)
	require.Equal(t, "centernet", b.Family)
	_, ok := b.Variant("int8")
	require.True(t, ok, "the int8 variant is made too")
	require.Contains(t, se.String(), "int8 variant: f1_vs_fp32")
	require.Equal(t, []string{"person", "car"}, b.Labels)
	require.Len(t, b.Keypoints, 17)

	so.Reset()
	se.Reset()
	code = run([]string{"eval", "detect", "--model", out, "--data", "synth://?w=320&h=180&seed=11", "--frames", "3"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	var ev map[string]any
	require.NoError(t, json.Unmarshal(so.Bytes(), &ev), so.String())
	for _, k := range []string{"map", "map50", "map75", "oks_ap", "per_class"} {
		require.Contains(t, ev, k)
	}
	require.Equal(t, 3.0, ev["frames"])

	// From a labelled source instead of generated scenes: a COCO export.
	coco := filepath.Join(t.TempDir(), "coco")
	p := synth.DefaultParams()
	p.Width, p.Height, p.Objects, p.Seed = 320, 180, 4, 12
	src, err := dataset.NewSynthSource(dataset.SynthOptions{Params: p, Sequences: 3, Frames: 3, Stride: 7})
	require.NoError(t, err)
	require.NoError(t, dataset.WriteCOCO(src, coco, dataset.ExportOptions{}))
	so.Reset()
	se.Reset()
	out2 := filepath.Join(t.TempDir(), "det2")
	code = run([]string{"train", "--task", "detect", "--out", out2, "--steps", "2", "--batch", "2", "--eval-every", "2",
		"--data", filepath.Join(coco, "annotations.json"), "--int8-frames", "0"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	require.Contains(t, se.String(), "training and")

	// Cross-validation over the three scenes.
	so.Reset()
	se.Reset()
	code = run([]string{"train", "--task", "detect", "--out", filepath.Join(t.TempDir(), "kf"), "--steps", "2", "--batch", "2", "--eval-every", "2",
		"--data", filepath.Join(coco, "annotations.json"), "--int8-frames", "0", "--kfold", "3"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	require.Contains(t, se.String(), "fold 3/3: mAP@0.5")

	so.Reset()
	se.Reset()
	require.Equal(t, 2, run([]string{"train", "--task", "detect"}, &so, &se), "--out is required")
	require.Equal(t, 1, run([]string{"train", "--task", "classify", "--out", out}, &so, &se))
	require.Contains(t, se.String(), "must be detect, segment or embed")
	require.Equal(t, 1, run([]string{"train", "--task", "detect", "--out", out, "--augment", "maybe"}, &so, &se))
	require.Contains(t, se.String(), "--augment maybe: must be on, off or auto")
	require.Equal(t, 1, run([]string{"eval", "detect", "--model", out, "--data", "nowhere"}, &so, &se))
	require.Contains(t, se.String(), "not a synth:// URL")
}

// TestTrainEmbed: vigil train --task embed writes an embedding bundle the
// engine loads.
func TestTrainEmbed(t *testing.T) {
	orttest.Init(t)
	out := filepath.Join(t.TempDir(), "reid")
	var so, se bytes.Buffer
	code := run([]string{"train", "--task", "embed", "--out", out, "--steps", "4", "--batch", "4",
		"--train-sequences", "2", "--val-sequences", "2", "--frames", "6", "--eval-every", "2"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	var sum map[string]float64
	require.NoError(t, json.Unmarshal(so.Bytes(), &sum), so.String())
	require.Equal(t, 4.0, sum["steps"])
	require.Contains(t, sum, "rank1")
	b, err := inference.LoadBundle(out)
	require.NoError(t, err)
	require.Equal(t, "embedding", b.Family)
	for _, f := range []string{"summary.json", "report/loss.png", "report/validation.png"} {
		_, err := os.Stat(filepath.Join(out, f))
		require.NoError(t, err, f)
	}
}

// TestTrainSegment: vigil train --task segment writes a selfie-family
// bundle the engine loads.
func TestTrainSegment(t *testing.T) {
	orttest.Init(t)
	out := filepath.Join(t.TempDir(), "seg")
	var so, se bytes.Buffer
	code := run([]string{"train", "--task", "segment", "--out", out, "--steps", "4", "--batch", "4",
		"--train-sequences", "2", "--val-sequences", "1", "--frames", "4", "--eval-every", "2"}, &so, &se)
	require.Equal(t, 0, code, se.String())
	var sum map[string]float64
	require.NoError(t, json.Unmarshal(so.Bytes(), &sum), so.String())
	require.Equal(t, 4.0, sum["steps"])
	require.Contains(t, sum, "miou")
	b, err := inference.LoadBundle(out)
	require.NoError(t, err)
	require.Equal(t, "selfie", b.Family)
	require.Equal(t, inference.TaskSegment, b.Task)
}
