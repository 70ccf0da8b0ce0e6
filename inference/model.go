package inference

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/decoders"
	"github.com/vigil-video/vigil/inference/prep"
)

// ModelOptions configure a loaded model.
type ModelOptions struct {
	// Name is how streams refer to the model (the config's name).
	Name   string
	Device Device
	// Variant forces a variant by name; "" chooses by measurement.
	Variant string
	// MaxAccuracyLoss is the largest recorded accuracy loss a variant
	// other than fp32 may have and still be chosen.
	MaxAccuracyLoss float64
	// ScoreThreshold and NMSIoU override the bundle's (0 keeps them).
	ScoreThreshold, NMSIoU float32
	// LowScoreFloor, when above 0 and below a detector's score threshold,
	// makes it also return the detections scoring in [LowScoreFloor,
	// threshold), marked Low, for the tracker's second pass.
	LowScoreFloor float32
	// MaxBatch caps a batch; MaxWait bounds how long a batch waits to
	// fill after its first request (0: derived from the request rate).
	MaxBatch int
	MaxWait  time.Duration
	// WarmupRuns and TimedRuns size the measurement of each variant at
	// load. They default to 2 and 8.
	WarmupRuns, TimedRuns int
	Logger                *slog.Logger
	metrics               *metrics
}

// VariantStatus is what loading found out about one variant.
type VariantStatus struct {
	Name      string    `json:"name"`
	Precision Precision `json:"precision"`
	// MeanMS is the measured time of one batch-1 run on the device, 0 if
	// the variant was not measured.
	MeanMS       float64 `json:"mean_ms,omitempty"`
	AccuracyLoss float64 `json:"accuracy_loss"`
	Serving      bool    `json:"serving"`
	// Skipped says why a variant was not measured or not chosen.
	Skipped string `json:"skipped,omitempty"`
}

// ModelStatus describes a loaded model for the API.
type ModelStatus struct {
	Name     string          `json:"name"`
	Bundle   string          `json:"bundle"`
	Version  int             `json:"version"`
	Task     Task            `json:"task"`
	Family   string          `json:"family"`
	Device   string          `json:"device"`
	Runtime  Runtime         `json:"runtime"`
	Variant  string          `json:"variant"`
	Batching string          `json:"batching"`
	MaxBatch int             `json:"max_batch"`
	Variants []VariantStatus `json:"variants"`
}

// Model is a bundle loaded on a device, serving one variant through its
// batcher goroutine, which owns the runners, the input tensors and the
// decoder: requests from all streams queue to it, and it pre-processes,
// runs and decodes them in batches.
type Model struct {
	opts    ModelOptions
	bundle  *Bundle
	variant Variant
	spec    prep.Spec
	status  ModelStatus
	log     *slog.Logger
	m       *modelMetrics

	// Owned by the batcher goroutine.
	runners  map[int]Runner
	dec      decoders.Decoder
	lowBelow float32    // detections scoring below this are marked Low
	preps    prep.Group // one Preparer per pre-processing worker
	outs     []decoders.Tensor
	fixed    bool // the model's batch dimension is fixed: one request per run
	input    graphInput
	lastSeen map[string]time.Time
	interval time.Duration // smoothed time between requests of one stream
	requests chan *request
	// closed refuses new requests once the batcher drains; submitting
	// counts submits in flight, which drain waits out.
	closed     atomic.Bool
	submitting atomic.Int64
	stop       context.CancelFunc
	done       chan struct{}
	closeOnce  sync.Once
}

// request is one image to run: a whole frame, or a crop of it; or, with
// bare > 0, a run of the runtime alone on a batch of that size.
type request struct {
	bare   int
	f      *frame.Frame
	crop   frame.Box
	isCrop bool
	enq    time.Time
	dets   []frame.Detection
	err    error
	done   chan struct{}
}

// LoadModel opens bundle b on opts.Device, measures the variants the
// device can run, serves the fastest one within the accuracy bound, and
// starts the batcher. Close stops it.
func LoadModel(b *Bundle, opts ModelOptions) (*Model, error) {
	opts.MaxBatch = max(opts.MaxBatch, 1)
	if opts.WarmupRuns <= 0 {
		opts.WarmupRuns = 2
	}
	if opts.TimedRuns <= 0 {
		opts.TimedRuns = 8
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.metrics == nil {
		opts.metrics = newMetrics(nil)
	}
	m := &Model{
		opts: opts, bundle: b, spec: b.Input.Spec(),
		log:      opts.Logger.With("model", opts.Name),
		runners:  map[int]Runner{},
		lastSeen: map[string]time.Time{},
		requests: make(chan *request, 4*opts.MaxBatch),
		done:     make(chan struct{}),
	}
	m.m = opts.metrics.forModel(opts.Name, opts.Device.Name)
	// The checksum first: a damaged file is then named as such.
	if err := b.VerifyVariant(b.Variants[0]); err != nil {
		return nil, fmt.Errorf("loading model %s: %w", opts.Name, err)
	}
	var err error
	if m.input, err = readGraphInput(b.Path(b.Variants[0])); err != nil {
		return nil, fmt.Errorf("loading model %s: %w", opts.Name, err)
	}
	m.fixed = m.input.dims[0] > 0
	dopts := decoders.Options{
		InputW: m.spec.Width, InputH: m.spec.Height, Labels: b.Labels,
		ScoreThreshold: cmp.Or(opts.ScoreThreshold, b.ScoreThreshold), NMSIoU: cmp.Or(opts.NMSIoU, b.NMSIoU),
	}
	if th := cmp.Or(dopts.ScoreThreshold, decoders.DefaultScoreThreshold(b.Family)); b.Task == TaskDetect && opts.LowScoreFloor > 0 && opts.LowScoreFloor < th {
		// Decode down to the floor; NMS lets no weaker box suppress a
		// stronger one, so the detections above th are unchanged.
		dopts.ScoreThreshold, m.lowBelow = opts.LowScoreFloor, th
	}
	if m.dec, err = decoders.New(b.Family, dopts); err != nil {
		return nil, fmt.Errorf("loading model %s: %w", opts.Name, err)
	}
	// Pre-processing uses as many cores as the runtime may (its thread
	// setting, else every core Go has).
	workers := runtime.GOMAXPROCS(0)
	if opts.Device.Threads > 0 {
		workers = min(workers, opts.Device.Threads)
	}
	m.preps = prep.NewGroup(workers)
	if err := m.choose(); err != nil {
		m.closeRunners()
		return nil, fmt.Errorf("loading model %s (%s v%d) on %s: %w", opts.Name, b.Name, b.Version, opts.Device.Name, err)
	}
	m.status = ModelStatus{
		Name: opts.Name, Bundle: b.Dir, Version: b.Version, Task: b.Task, Family: b.Family,
		Device: opts.Device.Name, Runtime: opts.Device.Runtime, Variant: m.variant.Name,
		MaxBatch: m.maxBatch(), Variants: m.status.Variants,
	}
	m.status.Batching = "dynamic"
	if m.fixed {
		m.status.Batching = "fixed batch 1: request by request"
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	go m.run(ctx)
	return m, nil
}

// choose measures each variant the device can run and keeps the fastest
// within the accuracy bound, leaving its batch-1 runner in m.runners[1].
func (m *Model) choose() error {
	type cand struct {
		v  Variant
		r  Runner
		ms float64
	}
	var (
		cands []cand
		errs  []error
	)
	st := make([]VariantStatus, 0, len(m.bundle.Variants))
	for _, v := range m.bundle.Variants {
		s := VariantStatus{Name: v.Name, Precision: v.Precision, AccuracyLoss: v.Accuracy.Loss}
		switch {
		case m.opts.Variant != "" && v.Name != m.opts.Variant:
			s.Skipped = "not the configured variant"
		case !m.opts.Device.CanRun(v.Precision):
			s.Skipped = fmt.Sprintf("%s cannot run %s", m.opts.Device.Name, v.Precision)
		case m.opts.Variant == "" && v.Precision != FP32 && v.Accuracy.Loss > m.opts.MaxAccuracyLoss:
			s.Skipped = fmt.Sprintf("accuracy loss %.4f is over the bound %.4f", v.Accuracy.Loss, m.opts.MaxAccuracyLoss)
		case v.Precision == INT8 && m.opts.Device.Provider == "cpu" && !Int8Worthwhile():
			s.Skipped = "the CPU has no integer dot-product instructions"
		}
		if s.Skipped == "" {
			r, ms, err := m.measure(v)
			if err != nil {
				s.Skipped = err.Error()
				errs = append(errs, err)
			} else {
				s.MeanMS = ms
				cands = append(cands, cand{v, r, ms})
			}
		}
		st = append(st, s)
	}
	if m.opts.Variant != "" && !slices.ContainsFunc(m.bundle.Variants, func(v Variant) bool { return v.Name == m.opts.Variant }) {
		return fmt.Errorf("no variant %q in the bundle", m.opts.Variant)
	}
	if len(cands) == 0 {
		if len(errs) == 0 {
			errs = append(errs, errors.New("no variant can run on this device"))
		}
		return errors.Join(errs...)
	}
	best := slices.MinFunc(cands, func(a, b cand) int { return cmp.Compare(a.ms, b.ms) })
	for _, c := range cands {
		if c.v.Name != best.v.Name {
			c.r.Close()
		}
	}
	for i := range st {
		if st[i].Name == best.v.Name {
			st[i].Serving = true
		} else if st[i].Skipped == "" {
			st[i].Skipped = fmt.Sprintf("slower than %s", best.v.Name)
		}
	}
	m.variant, m.runners[1], m.status.Variants = best.v, best.r, st
	m.outs = make([]decoders.Tensor, len(best.r.Outputs()))
	m.log.Info("model loaded", "bundle", m.bundle.Name, "version", m.bundle.Version, "variant", best.v.Name,
		"device", m.opts.Device.Name, "ms", fmt.Sprintf("%.2f", best.ms), "max_batch", m.maxBatch())
	return nil
}

// measure verifies and opens variant v at batch 1 and times it.
func (m *Model) measure(v Variant) (Runner, float64, error) {
	if err := m.bundle.VerifyVariant(v); err != nil {
		return nil, 0, err
	}
	r, err := OpenRunner(m.bundle.Path(v), RunnerOptions{Device: m.opts.Device, BatchSize: 1, InputShapes: m.shapes(1)})
	if err != nil {
		return nil, 0, fmt.Errorf("variant %s: %w", v.Name, err)
	}
	if err := m.checkIO(r, v); err != nil {
		r.Close()
		return nil, 0, fmt.Errorf("variant %s: %w", v.Name, err)
	}
	opened := time.Now()
	for i := 0; i < m.opts.WarmupRuns && (i == 0 || time.Since(opened) < time.Second); i++ {
		if err := r.Run(); err != nil {
			r.Close()
			return nil, 0, fmt.Errorf("variant %s: warming up: %w", v.Name, err)
		}
	}
	// TimedRuns runs, or fewer if they take over a second: slow runtimes
	// must not hold up the load for long.
	start := time.Now()
	n := 0
	for n < m.opts.TimedRuns && (n == 0 || time.Since(start) < time.Second) {
		if err := r.Run(); err != nil {
			r.Close()
			return nil, 0, fmt.Errorf("variant %s: timing: %w", v.Name, err)
		}
		n++
	}
	return r, float64(time.Since(start).Microseconds()) / 1000 / float64(n), nil
}

// shapes returns the InputShapes for a batch size: models with a free
// spatial size (bodypix) take the bundle's.
func (m *Model) shapes(batch int) map[string][]int64 {
	if !m.input.freeSize {
		return nil
	}
	h, w := int64(m.spec.Height), int64(m.spec.Width)
	if m.spec.Layout == prep.NCHW {
		return map[string][]int64{m.input.name: {int64(batch), 3, h, w}}
	}
	return map[string][]int64{m.input.name: {int64(batch), h, w, 3}}
}

// checkIO checks that runner r (variant v) takes one image input of the
// bundle's size, and a uint8 input only with its quantization parameters.
func (m *Model) checkIO(r Runner, v Variant) error {
	in := r.Inputs()
	if len(in) != 1 {
		return fmt.Errorf("the model has %d inputs; Vigil feeds models with one image input", len(in))
	}
	want := []int64{in[0].Shape[0], 3, int64(m.spec.Height), int64(m.spec.Width)}
	if m.spec.Layout == prep.NHWC {
		want = []int64{in[0].Shape[0], int64(m.spec.Height), int64(m.spec.Width), 3}
	}
	if r.InputBytes(0) != nil && !(v.InputScale > 0) {
		return fmt.Errorf("input %q is uint8 but model.yaml gives the variant no input_scale", in[0].Name)
	}
	if !slices.Equal(in[0].Shape, want) {
		return fmt.Errorf("input %q has shape %v, model.yaml's input (%dx%d %s) needs %v",
			in[0].Name, in[0].Shape, m.spec.Width, m.spec.Height, m.spec.Layout, want)
	}
	return nil
}

// maxBatch is the largest batch the model runs.
func (m *Model) maxBatch() int {
	if m.fixed {
		return 1
	}
	return m.opts.MaxBatch
}
