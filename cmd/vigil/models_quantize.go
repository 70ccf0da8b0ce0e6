package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/inference/ort"
	"github.com/vigil-video/vigil/inference/quant"
	"github.com/vigil-video/vigil/pipeline"
)

func runModelsQuantize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil models quantize", flag.ContinueOnError)
	fs.SetOutput(stderr)
	calib := fs.String("calib", "", "source `URL` of calibration frames (file://, synth://, rtsp://…); required")
	frames := fs.Int("frames", 100, "calibration frames")
	holdout := fs.Int("holdout", 30, "held-out frames (after the calibration ones) to measure int8 against fp32")
	inferFPS := fs.Float64("infer-fps", 2, "take this many frames per second of video, to spread them over the clip")
	method := fs.String("method", "percentile", "activation ranges: minmax or percentile")
	percentile := fs.Float64("percentile", quant.DefaultPercentile, "percentile for --method percentile")
	exclude := fs.String("exclude", "", "comma-separated node names or op types to keep fp32")
	heads := fs.Bool("quantize-heads", false, "quantize the output heads too (they stay fp32 by default)")
	threads := fs.Int("threads", 0, "ONNX Runtime intra-op threads (0: its choice)")
	ortLib := fs.String("ort-library", "", "path of libonnxruntime.so")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	dir, rest := splitFirstArg(args)
	if err := parseFlags(fs, rest); err != nil {
		return err
	}
	if dir == "" || *calib == "" {
		fmt.Fprintln(stderr, "vigil models quantize: BUNDLE and --calib are required")
		fs.Usage()
		return errUsage
	}
	if *method != string(quant.MinMax) && *method != string(quant.Percentile) {
		return fmt.Errorf("--method: must be minmax or percentile, got %q", *method)
	}
	if *frames < 1 || *holdout < 1 || *inferFPS < 0 {
		return fmt.Errorf("--frames and --holdout must be >= 1, --infer-fps >= 0")
	}
	if strings.HasSuffix(dir, ".onnx") {
		return fmt.Errorf("%s is a plain ONNX file: import it first (vigil models import %s --family F)", dir, dir)
	}
	b, err := inference.OpenBundle(dir, "")
	if err != nil {
		return err
	}
	lib, err := ort.FindLibrary(*ortLib)
	if err != nil {
		return fmt.Errorf("quantizing needs ONNX Runtime: %w", err)
	}
	if err := ort.Init(lib); err != nil {
		return err
	}
	o := inference.QuantizeOptions{
		Method: quant.Method(*method), Percentile: *percentile, CalibFrames: *frames, HoldoutFrames: *holdout,
		Quant: quant.Options{QuantizeHeads: *heads}, Threads: *threads,
	}
	if *exclude != "" {
		o.Quant.Exclude = strings.Split(*exclude, ",")
	}
	q, err := inference.NewQuantizer(b, o)
	if err != nil {
		return err
	}
	defer q.Close()

	// Frames come through the pipeline, so any source URL works.
	stream := config.Stream{ID: "calib", URL: *calib, Realtime: new(bool)}
	stream.ApplyDefaults()
	if err := stream.Validate("calib", nil); err != nil {
		return err
	}
	stream.InferFPS = *inferFPS
	feed := &quantFeeder{q: q}
	p, err := pipeline.New(pipeline.Options{
		Streams: []config.Stream{stream}, Analyzer: feed, Offline: true,
		MaxFrames: uint64(*frames + *holdout), Logger: newLogger(config.Log{Level: "warn"}, stderr),
	})
	if err != nil {
		return err
	}
	start := time.Now()
	stop := make(chan struct{})
	if !*quiet {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					c, h := q.Progress()
					fmt.Fprintf(stderr, "calibrating %s: %d/%d frames, held out %d/%d\n", b.Name, c, *frames, h, *holdout)
				}
			}
		}()
	}
	err = p.Run(ctx)
	close(stop)
	if err != nil {
		return err
	}
	if feed.err != nil {
		return feed.err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if c, h := q.Progress(); !*quiet {
		fmt.Fprintf(stderr, "calibrated on %d frames, %d held out, in %s; quantizing\n", c, h, time.Since(start).Round(time.Second))
	}
	res, err := q.Finish()
	if err != nil {
		return err
	}
	r := res.Report
	fmt.Fprintf(stdout, "%s: int8 variant %s (%d nodes quantized, %d kept fp32 of which %d heads; opset %d->%d)\n",
		b.Name, filepath.Join(b.Dir, res.Variant.File), r.QuantizedNodes, r.FloatNodes, len(r.Heads), r.OpsetFrom, r.Opset)
	a := res.Variant.Accuracy
	fmt.Fprintf(stdout, "accuracy on %d held-out frames: %s %.4f (loss %.4f)\n", a.Frames, a.Metric, a.Value, a.Loss)
	for _, oa := range res.Outputs.Outputs {
		fmt.Fprintf(stdout, "  output %s: cosine %.5f, relative L2 error %.4f, max |error| %.4g\n", oa.Name, oa.Cosine, oa.Relative, oa.MaxAbs)
	}
	return nil
}

// quantFeeder hands the pipeline's frames to a Quantizer.
type quantFeeder struct {
	q   *inference.Quantizer
	err error // set on the analyze goroutine, read after Run
}

func (a *quantFeeder) Analyze(ctx context.Context, _ []string, f *frame.Frame, _ *frame.Result) error {
	if a.err != nil || a.q.Done() {
		return nil
	}
	if _, err := a.q.Add(f); err != nil {
		a.err = err
		return err
	}
	return nil
}
