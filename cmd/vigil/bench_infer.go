package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// benchInferReport is the JSON line `vigil bench infer` prints.
type benchInferReport struct {
	Model   string `json:"model"`
	Variant string `json:"variant"`
	Device  string `json:"device"`
	Batch   int    `json:"batch"`
	Threads int    `json:"threads"`
	// VigilMS is Vigil's time per image: pre-processing from the decoded
	// frame, the run, and decoding the outputs into detections, through
	// the model's batcher.
	VigilMS float64 `json:"vigil_ms"`
	// ORTMS is ONNX Runtime's own time per image: the same session run
	// alone on the input tensor Vigil prepared, with no pre-processing,
	// batching or decoding.
	ORTMS float64 `json:"ort_ms"`
	// Ratio is VigilMS / ORTMS: 1.15 means Vigil adds 15%.
	Ratio      float64 `json:"ratio"`
	Detections int     `json:"detections"`
}

func runBenchInfer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil bench infer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	model := fs.String("model", "", "model bundle, registry model folder or .onnx `file` (default: yolox_nano_416.onnx from ../shared/data)")
	family := fs.String("family", "yolox", "output decoder when --model is a plain .onnx file")
	variant := fs.String("variant", "fp32", "variant to time (fp32, int8, fp16)")
	batch := fs.Int("batch", 1, "images per run")
	threads := fs.Int("threads", 1, "intra-op threads for both")
	input := fs.String("input", "", "video `file` to take the frame from (default: vtest_h264.mp4 from ../shared/data)")
	index := fs.Int("frame", 300, "0-based `index` of the frame")
	runs := fs.Int("runs", 3, "rounds of --iters batches")
	iters := fs.Int("iters", 20, "batches per round; each Vigil batch is followed by a bare run of the same session, and the medians are compared")
	ortLib := fs.String("ort-library", "", "path of libonnxruntime.so")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *batch < 1 || *runs < 1 || *iters < 1 || *threads < 0 {
		return fmt.Errorf("--batch, --runs and --iters must be >= 1 and --threads >= 0")
	}
	if *model == "" {
		p, err := sharedFile("models/yolox_nano_416.onnx")
		if err != nil {
			return fmt.Errorf("--model not given and %w", err)
		}
		*model = p
		if *batch > 1 {
			if *model, err = sharedFile("models/yolox_nano_416_batchN.onnx"); err != nil {
				return err
			}
		}
	}
	if *input == "" {
		p, err := sharedFile("video/vtest_h264.mp4")
		if err != nil {
			return fmt.Errorf("--input not given and %w", err)
		}
		*input = p
	}
	src, err := decode.ReadFrames(*input, *index)
	if err != nil {
		return err
	}
	defer src[0].Release()
	frames := make([]*frame.Frame, *batch)
	for i := range frames {
		frames[i] = src[0].Share()
		frames[i].StreamID = fmt.Sprintf("bench-%d", i) // distinct streams batch together
	}

	eng := inference.NewEngine(inference.EngineOptions{
		Runtime:  config.Runtime{Device: "cpu", ORTLibrary: *ortLib, Threads: *threads},
		Batching: config.Batching{MaxBatch: *batch, MaxWait: config.Duration(50 * time.Millisecond)},
		Logger:   newLogger(config.Log{Level: "warn"}, stderr),
	})
	defer eng.Close()
	if err := eng.Load(config.Model{Name: "bench", Bundle: *model, Family: *family, Variant: *variant}); err != nil {
		return err
	}
	m, _ := eng.Model("bench")
	st := m.Status()
	if st.Runtime != inference.RuntimeORT {
		return fmt.Errorf("bench infer compares with ONNX Runtime, which is not available")
	}
	if *batch > 1 && st.MaxBatch < *batch {
		return fmt.Errorf("--batch %d: the model's batch dimension is fixed to %d (use a batch-capable copy)", *batch, st.MaxBatch)
	}

	rep := benchInferReport{Model: *model, Variant: m.Variant().Name, Device: st.Device, Batch: *batch, Threads: *threads}
	var dets [][]frame.Detection
	for range 2 { // warm up
		if dets, err = m.InferFrames(ctx, frames); err != nil {
			return err
		}
	}
	for _, d := range dets {
		rep.Detections += len(d)
	}
	// The bare runs use Vigil's own session, on the tensor its last batch
	// left in it: same options, same thread pool, same input. Alternating
	// one Vigil batch and one bare run lets both see the same machine load;
	// medians are compared.
	vs := make([]float64, 0, *runs**iters)
	bare := make([]float64, 0, *runs**iters)
	perImage := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 / float64(*batch) }
	for range *runs * *iters {
		start := time.Now()
		if _, err := m.InferFrames(ctx, frames); err != nil {
			return err
		}
		mid := time.Now()
		if err := m.RunBare(ctx, *batch); err != nil {
			return err
		}
		vs = append(vs, perImage(mid.Sub(start)))
		bare = append(bare, perImage(time.Since(mid)))
	}
	rep.VigilMS, rep.ORTMS = median(vs), median(bare)
	rep.Ratio = rep.VigilMS / rep.ORTMS
	return json.NewEncoder(stdout).Encode(rep)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// sharedFile finds a file of the reference data beside the repository.
func sharedFile(rel string) (string, error) {
	p := filepath.Join(shareddata.Dir(), rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s is not in ../shared/data (or $VIGIL_SHARED_DATA): %w", rel, err)
	}
	return p, nil
}
