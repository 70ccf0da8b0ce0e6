package inference

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/ort/orttest"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/internal/shareddata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frame300 returns frame 300 of the reference clip (768x576 yuv420p).
func frame300(tb testing.TB) *frame.Frame {
	tb.Helper()
	fs, err := decode.ReadFrames(shareddata.Path(tb, "video/vtest_h264.mp4"), 300)
	require.NoError(tb, err)
	tb.Cleanup(func() { fs[0].Release() })
	return fs[0]
}

func count(dets []frame.Detection) map[string]int {
	c := map[string]int{}
	for _, d := range dets {
		c[d.Label]++
	}
	return c
}

func TestParseDevice(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Device
		err  string
	}{
		{"", Device{Name: "cpu", Runtime: RuntimeORT, Provider: "cpu"}, ""},
		{"cpu", Device{Name: "cpu", Runtime: RuntimeORT, Provider: "cpu"}, ""},
		{"purego", Device{Name: "purego", Runtime: RuntimePureGo}, ""},
		{"cuda:1", Device{Name: "cuda:1", Runtime: RuntimeORT, Provider: "cuda", ID: 1}, ""},
		{"tensorrt:0", Device{Name: "tensorrt:0", Runtime: RuntimeORT, Provider: "tensorrt"}, ""},
		{"cuda", Device{}, "must be cpu, purego, cuda:N or tensorrt:N"},
		{"cuda:x", Device{}, "GPU index"},
		{"tpu:0", Device{}, "must be cpu"},
	} {
		d, err := ParseDevice(tc.in, 0)
		if tc.err != "" {
			require.ErrorContains(t, err, tc.err, tc.in)
			continue
		}
		require.NoError(t, err)
		require.Equal(t, tc.want, d)
	}
	cpu, _ := ParseDevice("cpu", 0)
	gpu, _ := ParseDevice("cuda:0", 0)
	pg, _ := ParseDevice("purego", 0)
	require.True(t, cpu.CanRun(INT8))
	require.False(t, cpu.CanRun(FP16))
	require.True(t, gpu.CanRun(FP16))
	require.False(t, pg.CanRun(INT8))
	require.True(t, pg.CanRun(FP32))
}

func TestRegistry(t *testing.T) {
	src := shareddata.Path(t, "models/yolox_nano_416.onnx")
	reg := Registry{Root: t.TempDir()}
	b, err := reg.Import(src, "yolox", "det")
	require.NoError(t, err)
	require.Equal(t, 1, b.Version)
	require.Equal(t, 416, b.Input.Width)
	require.Equal(t, "person", b.Labels[0])
	require.NoError(t, b.VerifyVariant(b.Variants[0]))

	b2, err := reg.Import(src, "yolox", "det")
	require.NoError(t, err)
	require.Equal(t, 2, b2.Version)

	entries, err := reg.List()
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, []int{1, 2}, entries[0].Versions)
	require.Equal(t, 2, entries[0].Active)

	require.NoError(t, reg.Promote("det", 1))
	got, err := OpenBundle(filepath.Join(reg.Root, "det"), "")
	require.NoError(t, err)
	require.Equal(t, 1, got.Version)
	require.ErrorContains(t, reg.Promote("det", 7), "no version 7")

	// A changed file fails its checksum.
	path := got.Path(got.Variants[0])
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o644))
	require.ErrorContains(t, got.VerifyVariant(got.Variants[0]), "file changed or corrupt")

	// model.yaml is strict.
	dir := filepath.Join(reg.Root, "det", "2")
	y, err := os.ReadFile(filepath.Join(dir, BundleFile))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, BundleFile), append(y, "colour: red\n"...), 0o644))
	_, err = LoadBundle(dir)
	require.ErrorContains(t, err, "colour")

	_, err = OpenBundle(src, "")
	require.ErrorContains(t, err, "needs a family")
	_, err = reg.Import(src, "yolo9000", "")
	require.ErrorContains(t, err, `unknown family "yolo9000"`)
	_, err = reg.Import(filepath.Join(t.TempDir(), "none.onnx"), "yolox", "")
	require.Error(t, err)
}

func newEngine(t *testing.T, reg prometheus.Registerer, maxBatch int) *Engine {
	t.Helper()
	e := NewEngine(EngineOptions{Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: maxBatch}, Registerer: reg})
	t.Cleanup(func() { e.Close() })
	return e
}

func TestEngineYOLOX(t *testing.T) {
	orttest.Init(t)
	f := frame300(t)
	reg := prometheus.NewRegistry()
	e := newEngine(t, reg, 8)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416.onnx"), Family: "yolox", ScoreThreshold: 0.3}))
	st := e.Status()
	require.Len(t, st, 1)
	require.Equal(t, "fp32", st[0].Variant)
	require.Equal(t, 1, st[0].MaxBatch, "yolox_nano_416.onnx fixes its batch to 1")
	require.Positive(t, st[0].Variants[0].MeanMS)
	require.True(t, st[0].Variants[0].Serving)

	r := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det"}, f, r))
	require.Equal(t, map[string]int{"person": 8, "car": 2, "truck": 1}, count(r.Detections))
	for _, d := range r.Detections {
		require.True(t, d.Box.X1 >= 0 && d.Box.Y1 >= 0 && d.Box.X2 <= 768 && d.Box.Y2 <= 576 && d.Box.W() > 4, "box %v", d.Box)
	}
	require.Equal(t, "yolox_nano_416", r.Model)
	require.Equal(t, "1/fp32", r.ModelVersion)
	require.Equal(t, 2.0, testutil.ToFloat64(e.metrics.frames.WithLabelValues("det")), "the load's probe picture and the frame")
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems, "metric names")
}

// TestBatcher runs frames of several streams concurrently through a
// batch-capable model: they share runs, and each stream gets its own
// frame's result.
func TestBatcher(t *testing.T) {
	orttest.Init(t)
	src := frame300(t)
	e := newEngine(t, nil, 4)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416_batchN.onnx"), Family: "yolox", ScoreThreshold: 0.3}))
	m, _ := e.Model("det")
	require.Equal(t, 4, m.Status().MaxBatch)

	// Stream i sees the frame cropped by i*40 pixels from the left, so each
	// has a result of its own.
	single := make([][]frame.Detection, 4)
	frames := make([]*frame.Frame, 4)
	for i := range frames {
		c := src.Share()
		c.StreamID = fmt.Sprintf("s%d", i)
		c.Width = src.Width - 40*i
		frames[i] = c
		var err error
		single[i], err = m.Infer(context.Background(), c)
		require.NoError(t, err)
	}
	var wg sync.WaitGroup
	for i := range frames {
		wg.Go(func() {
			for range 5 {
				got, err := m.Infer(context.Background(), frames[i])
				require.NoError(t, err)
				require.Equal(t, len(single[i]), len(got), "stream %d", i)
				for k := range got {
					require.InDelta(t, single[i][k].Box.X1, got[k].Box.X1, 0.05)
					require.InDelta(t, single[i][k].Score, got[k].Score, 1e-3)
				}
			}
		})
	}
	wg.Wait()
	var hist = &struct{ sum, n float64 }{}
	mf, err := collectHistogram(e.metrics.batchSize.WithLabelValues("det").(prometheus.Histogram))
	require.NoError(t, err)
	hist.sum, hist.n = mf.GetSampleSum(), float64(mf.GetSampleCount())
	t.Logf("mean batch %.2f over %v runs", hist.sum/hist.n, hist.n)
	require.Greater(t, hist.sum/hist.n, 1.5, "concurrent streams share runs")
}

func collectHistogram(h prometheus.Histogram) (*dto.Histogram, error) {
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return nil, err
	}
	return m.GetHistogram(), nil
}

// TestPureGoFallback: without ONNX Runtime the cpu profile runs models on
// the pure-Go runtime, and finds what ONNX Runtime finds.
func TestPureGoFallback(t *testing.T) {
	f := frame300(t)
	e := NewEngine(EngineOptions{Runtime: config.Runtime{Device: "cpu", ORTLibrary: filepath.Join(t.TempDir(), "libonnxruntime.so.1")}, Batching: config.Batching{MaxBatch: 1}})
	defer e.Close()
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416.onnx"), Family: "yolox", ScoreThreshold: 0.3}))
	st := e.Status()[0]
	require.Equal(t, RuntimePureGo, st.Runtime)
	require.Contains(t, e.Report().ONNXRuntime, "libonnxruntime.so.1")
	r := &frame.Result{}
	require.NoError(t, e.Analyze(context.Background(), []string{"det"}, f, r))
	require.Equal(t, map[string]int{"person": 8, "car": 2, "truck": 1}, count(r.Detections))
	t.Logf("pure-Go yolox_nano_416: %.1f ms per frame", st.Variants[0].MeanMS)
}

// TestReloadWhileAnalyzing replaces a model while a stream analyses: the
// stream keeps getting detections from the old model or the new one. It
// reports how long frames took before and during the reloads (not
// asserted: the machine is shared, and loading competes for its cores).
func TestReloadWhileAnalyzing(t *testing.T) {
	orttest.Init(t)
	f := frame300(t)
	e := newEngine(t, nil, 1)
	cfg := config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416.onnx"), Family: "yolox", ScoreThreshold: 0.3}
	require.NoError(t, e.Load(cfg))
	stop := make(chan struct{})
	const steady = 20 // frames analysed before the first reload
	var (
		wg     sync.WaitGroup
		took   []time.Duration
		empty  int
		warmed = make(chan struct{})
	)
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := &frame.Result{}
			start := time.Now()
			require.NoError(t, e.Analyze(context.Background(), []string{"det"}, f, r))
			took = append(took, time.Since(start))
			if len(took) == steady {
				close(warmed)
			}
			if len(r.Detections) == 0 {
				empty++
			}
		}
	})
	<-warmed
	for range 3 {
		require.NoError(t, e.Load(cfg))
	}
	close(stop)
	wg.Wait()
	before, during := slices.Clone(took[:steady]), slices.Clone(took[steady:])
	slices.Sort(before)
	slices.Sort(during)
	t.Logf("%d frames analysed across 3 reloads, %d without detections; per frame: median %v before, median %v and longest %v during the reloads",
		len(took), empty, before[steady/2], during[len(during)/2], during[len(during)-1])
	require.Positive(t, len(during))
	require.Zero(t, empty)
}

// TestCloseWhileInferring closes a model under load: every request is
// answered, with a result or ErrModelClosed, and no caller hangs.
func TestCloseWhileInferring(t *testing.T) {
	orttest.Init(t)
	f := frame300(t)
	b, err := FromONNX(shareddata.Path(t, "models/yolox_nano_416_batchN.onnx"), "yolox")
	require.NoError(t, err)
	dev, _ := ParseDevice("cpu", 1)
	m, err := LoadModel(b, ModelOptions{Name: "det", Device: dev, MaxBatch: 4, TimedRuns: 1, WarmupRuns: 1})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	results := map[string]int{}
	for i := range 6 {
		wg.Go(func() {
			c := f.Share()
			c.StreamID = fmt.Sprintf("s%d", i)
			for {
				_, err := m.Infer(context.Background(), c)
				mu.Lock()
				if err != nil {
					require.ErrorIs(t, err, ErrModelClosed)
					results["closed"]++
					mu.Unlock()
					return
				}
				results["ok"]++
				mu.Unlock()
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	require.NoError(t, m.Close())
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("callers still waiting 10 s after Close")
	}
	t.Logf("results: %v", results)
	require.Equal(t, 6, results["closed"])
	require.Positive(t, results["ok"])
}

// TestPromoteReloads: promoting another version in the registry makes the
// engine serve it; a version that does not load leaves the old one serving.
func TestPromoteReloads(t *testing.T) {
	orttest.Init(t)
	src := shareddata.Path(t, "models/yolox_nano_416.onnx")
	reg := Registry{Root: t.TempDir()}
	for range 3 {
		_, err := reg.Import(src, "yolox", "det")
		require.NoError(t, err)
	}
	// Version 3's file is damaged after import.
	require.NoError(t, os.WriteFile(filepath.Join(reg.Root, "det", "3", "fp32.onnx"), []byte("damaged"), 0o644))
	require.NoError(t, reg.Promote("det", 2))

	e := newEngine(t, nil, 1)
	require.NoError(t, e.Load(config.Model{Name: "det", Bundle: filepath.Join(reg.Root, "det"), ScoreThreshold: 0.3}))
	require.Equal(t, 2, e.Status()[0].Version)

	require.NoError(t, reg.Promote("det", 1))
	e.checkRegistry()
	require.Equal(t, 1, e.Status()[0].Version)

	require.NoError(t, reg.Promote("det", 3))
	e.checkRegistry()
	require.Equal(t, 1, e.Status()[0].Version, "a version that fails its checksum is not served")
	e.checkRegistry() // not retried
	require.Equal(t, 1.0, testutil.ToFloat64(e.metrics.loadErrs.WithLabelValues("det")))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.WatchRegistry(ctx, 10*time.Millisecond); close(done) }()
	require.NoError(t, reg.Promote("det", 2))
	require.Eventually(t, func() bool { return e.Status()[0].Version == 2 }, 10*time.Second, 20*time.Millisecond)
	cancel()
	<-done
}

// TestEngineLowScoreFloor: with a floor for the tracker's low-score pass,
// a detector returns the same detections above its threshold plus weaker
// ones marked Low, and the embedder skips those.
func TestEngineLowScoreFloor(t *testing.T) {
	orttest.Init(t)
	f := frame300(t)
	plain := newEngine(t, nil, 1)
	require.NoError(t, plain.Load(config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416.onnx"), Family: "yolox", ScoreThreshold: 0.5}))
	low := NewEngine(EngineOptions{Runtime: config.Runtime{Device: "cpu", Threads: 1}, Batching: config.Batching{MaxBatch: 1}, LowScoreFloor: 0.1})
	t.Cleanup(func() { low.Close() })
	require.NoError(t, low.Load(config.Model{Name: "det", Bundle: shareddata.Path(t, "models/yolox_nano_416.onnx"), Family: "yolox", ScoreThreshold: 0.5}))
	require.NoError(t, low.Load(config.Model{Name: "reid", Bundle: shareddata.Path(t, "models/person_reid_0287.onnx"), Family: "embedding"}))

	want, got := &frame.Result{}, &frame.Result{}
	require.NoError(t, plain.Analyze(context.Background(), []string{"det"}, f, want))
	require.NoError(t, low.Analyze(context.Background(), []string{"det", "reid"}, f, got))
	var high []frame.Detection
	nLow := 0
	for _, d := range got.Detections {
		if d.Low {
			nLow++
			require.True(t, d.Score >= 0.1 && d.Score < 0.5, "low score %v", d.Score)
			require.Nil(t, d.Embedding, "low-score detections are not embedded")
			continue
		}
		require.GreaterOrEqual(t, d.Score, float32(0.5))
		if d.Label == "person" {
			require.Len(t, d.Embedding, 256)
		}
		d.Embedding = nil
		high = append(high, d)
	}
	require.Positive(t, nLow, "the picture has weak detections")
	require.Equal(t, want.Detections, high, "the detections above the threshold do not change")
}
