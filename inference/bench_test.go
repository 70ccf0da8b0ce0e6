package inference

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/internal/shareddata"
)

// BenchmarkInferVsORT times Vigil's end-to-end inference of frame 300 with
// yolox_nano_416 (pre-processing from YUV, the batcher, the run, decoding
// and NMS) against the same ONNX Runtime session run bare (RunBare) on the
// tensor Vigil prepared, on
// 1 and 2 threads, alternating so both see the same machine load. It
// reports the ratio as x_ort (the target is at most 1.15).
func BenchmarkInferVsORT(b *testing.B) {
	for _, threads := range []int{1, 2} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) { benchmarkInferVsORT(b, threads) })
	}
}

func benchmarkInferVsORT(b *testing.B, threads int) {
	orttest.Init(b)
	f := frame300(b)
	path := shareddata.Path(b, "models/yolox_nano_416.onnx")
	bu, err := FromONNX(path, "yolox")
	if err != nil {
		b.Fatal(err)
	}
	dev, _ := ParseDevice("cpu", threads)
	m, err := LoadModel(bu, ModelOptions{Name: "det", Device: dev, MaxBatch: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	var vigil, bare time.Duration
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		if _, err := m.Infer(ctx, f); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := m.RunBare(ctx, 1); err != nil {
			b.Fatal(err)
		}
		vigil += t1.Sub(t0)
		bare += time.Since(t1)
	}
	b.ReportMetric(float64(vigil.Microseconds())/1000/float64(b.N), "vigil_ms")
	b.ReportMetric(float64(bare.Microseconds())/1000/float64(b.N), "ort_ms")
	b.ReportMetric(float64(vigil)/float64(bare), "x_ort")
	// Where Vigil's time goes, from the model's own histograms.
	for _, stage := range []string{stagePrep, stageRun, stageDecode} {
		h, err := collectHistogram(m.opts.metrics.duration.WithLabelValues("det", "cpu", stage).(prometheus.Histogram))
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(h.GetSampleSum()*1000/float64(h.GetSampleCount()), stage+"_ms")
	}
}
