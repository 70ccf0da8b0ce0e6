package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/ingest/synth"
	"github.com/vigil-video/vigil/training"
	"github.com/vigil-video/vigil/training/dataset"
	"github.com/vigil-video/vigil/training/evaluate"
	"github.com/vigil-video/vigil/training/store"
)

const evalDetectUsage = `usage: vigil eval detect --model BUNDLE --data SOURCE [--frames N] [--images DIR] [--variant V]

detect: runs a detector (a bundle, a registry model folder, or an .onnx file
with --family) over a labelled source and prints JSON: map (mAP@[.5:.95]),
map50, map75, per_class, frames, and oks_ap where the model has keypoints.
SOURCE is a generated scene (synth://?domain=night&seed=7&w=640&h=360), a COCO
JSON file (images from --images, default its folder) or a hard-frame store
folder. Classes are matched by label.
`

func runEvalDetect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval detect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), evalDetectUsage+"\nflags:\n")
		fs.PrintDefaults()
	}
	model := fs.String("model", "", "model bundle, registry model folder or .onnx file (required)")
	family := fs.String("family", "", "output decoder for a plain .onnx file")
	data := fs.String("data", "", "labelled source: synth:// URL, COCO JSON file or hard-frame store folder (required)")
	frames := fs.Int("frames", 100, "frames of a synth source (every 7th frame of the scene)")
	images := fs.String("images", "", "image folder of a COCO JSON file (default: the file's folder)")
	device := fs.String("device", "cpu", "device profile: cpu, purego, cuda:N or tensorrt:N")
	variant := fs.String("variant", "", "force a variant (fp32, int8, fp16) instead of the fastest within max accuracy loss")
	ortLib := fs.String("ort-library", "", "path of libonnxruntime.so")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := requireFlags(fs, "model", *model, "data", *data); err != nil {
		return err
	}
	src, err := openLabelled(*data, *frames, *images)
	if err != nil {
		return err
	}
	eng := inference.NewEngine(inference.EngineOptions{
		Runtime: config.Runtime{Device: *device, ORTLibrary: *ortLib}, Batching: config.Batching{MaxBatch: 1},
		Logger: newLogger(config.Log{Level: "warn"}, stderr),
	})
	defer eng.Close()
	if err := eng.Load(config.Model{Name: "m", Bundle: *model, Family: *family, Variant: *variant, MaxAccuracyLoss: 0.01}); err != nil {
		return err
	}
	m, _ := eng.Model("m")
	st := m.Status()
	if st.Task != inference.TaskDetect {
		return fmt.Errorf("--model %s: task %s, want detect", *model, st.Task)
	}
	var samples []dataset.Sample
	var preds [][]frame.Detection
	for i := range src.Len() {
		s, err := src.At(i)
		if err != nil {
			return fmt.Errorf("sample %d of %s: %w", i, *data, err)
		}
		f := rgbFrame(s.Image)
		r := &frame.Result{}
		if err := eng.Analyze(ctx, []string{"m"}, f, r); err != nil {
			return err
		}
		samples, preds = append(samples, s), append(preds, r.Detections)
	}
	b, err := inference.OpenBundle(*model, *family)
	if err != nil {
		return err
	}
	res, err := training.ScoreDetections(samples, preds, b.Labels)
	if err != nil {
		return err
	}
	out := map[string]any{"map": res.AP, "map50": res.AP50, "map75": res.AP75, "per_class": res.PerClass,
		"frames": len(samples), "model": st.Bundle, "variant": st.Variant}
	if len(b.Keypoints) > 0 {
		var persons [][]frame.Detection
		for _, ds := range preds {
			var ps []frame.Detection
			for _, d := range ds {
				if d.Label == "person" && d.Keypoints != nil {
					d.Class = 0
					ps = append(ps, d)
				}
			}
			persons = append(persons, ps)
		}
		kp, err := evaluate.Keypoints(keypointTruth(samples), persons)
		if err != nil {
			return fmt.Errorf("keypoint AP: %w", err)
		}
		out["oks_ap"] = kp.AP
	}
	return printJSON(stdout, out)
}

// keypointTruth keeps the persons (class 0, cocoeval's one keypoint
// category).
func keypointTruth(samples []dataset.Sample) []dataset.Sample {
	out := make([]dataset.Sample, len(samples))
	for i, s := range samples {
		objs := s.Objects
		s.Objects = nil
		for _, o := range objs {
			if o.Label == "person" {
				o.Class = 0
				s.Objects = append(s.Objects, o)
			}
		}
		out[i] = s
	}
	return out
}

// openLabelled opens a labelled source by its name.
func openLabelled(data string, frames int, images string) (dataset.Source, error) {
	switch {
	case strings.HasPrefix(data, "synth://"):
		u, err := url.Parse(data)
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", data, err)
		}
		p, err := synth.ParseParams(u.Query())
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", data, err)
		}
		return dataset.NewSynthSource(dataset.SynthOptions{Params: p, Frames: frames, Stride: 7, Skip: 30})
	case strings.HasSuffix(strings.ToLower(data), ".json"):
		if images == "" {
			images = filepath.Dir(data)
		}
		return dataset.LoadCOCO(data, images, dataset.COCOOptions{})
	}
	if _, err := os.Stat(filepath.Join(data, "manifest.json")); err == nil {
		st, err := store.Open(data, store.Options{ReadOnly: true})
		if err != nil {
			return nil, err
		}
		return dataset.NewStoreSource(st), nil
	}
	return nil, fmt.Errorf("--data %s: not a synth:// URL, a COCO .json file or a hard-frame store folder", data)
}

// rgbFrame wraps an RGBA image as an rgb24 frame for the engine.
func rgbFrame(img *image.RGBA) *frame.Frame {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	rgb := make([]byte, 3*w*h)
	for y := range h {
		for x := range w {
			o := img.PixOffset(x+img.Rect.Min.X, y+img.Rect.Min.Y)
			copy(rgb[3*(y*w+x):], img.Pix[o:o+3])
		}
	}
	return &frame.Frame{Width: w, Height: h, Format: frame.PixelFormatRGB24, Planes: [3][]byte{rgb}, Strides: [3]int{3 * w}}
}
