package inference

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/inference/ort"
)

// EngineOptions configure an Engine.
type EngineOptions struct {
	Runtime  config.Runtime
	Batching config.Batching
	// LowScoreFloor makes detectors also return detections scoring
	// between it and their threshold, marked Low, for the tracker's
	// low-score pass (see [ModelOptions]); 0 turns that off.
	LowScoreFloor float32
	// Registerer receives the inference metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Probation is how long a replaced model stays loaded after a reload,
	// ready to serve again if its successor's outputs turn out invalid. It
	// defaults to 30 seconds.
	Probation time.Duration
}

// Engine holds the loaded models and runs a stream's models on its frames
// (it is the pipeline's Analyzer). Loading, replacing and closing models
// are safe while streams analyse: a replaced model keeps serving until its
// successor has loaded and warmed up.
type Engine struct {
	opts    EngineOptions
	log     *slog.Logger
	metrics *metrics

	ortOnce sync.Once
	ortErr  error

	variants variantSet // side models of RunVariant (variant.go)

	mu     sync.RWMutex
	models map[string]*Model
	cfgs   map[string]config.Model // the config each model was loaded from
	tried  map[string]int          // registry version last tried per model (WatchRegistry)
	errLog map[string]time.Time    // last logged error per model, to log at most once a second
	// retired are the models replaced by a reload, on probation
	// (rollback.go).
	retired map[string]*retiredModel
}

// NewEngine makes an Engine with no models.
func NewEngine(o EngineOptions) *Engine {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Engine{
		opts: o, log: o.Logger, metrics: newMetrics(o.Registerer),
		models: map[string]*Model{}, cfgs: map[string]config.Model{}, tried: map[string]int{}, errLog: map[string]time.Time{},
		retired: map[string]*retiredModel{},
	}
}

// initORT loads ONNX Runtime once; its error says where it looked.
func (e *Engine) initORT() error {
	e.ortOnce.Do(func() {
		path, err := ort.FindLibrary(e.opts.Runtime.ORTLibrary)
		if err == nil {
			err = ort.Init(path)
		}
		if err != nil {
			e.mu.Lock()
			e.ortErr = err
			e.mu.Unlock()
			e.log.Warn("ONNX Runtime unavailable: models run on the pure-Go runtime where they can "+
				"(install the library with scripts/install-ort.sh, or set runtime.ort_library or VIGIL_ORT_LIB)", "error", err)
		}
	})
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.ortErr
}

// device resolves a model's device profile, falling back from cpu to
// purego when ONNX Runtime is missing.
func (e *Engine) device(name string) (Device, error) {
	if name == "" {
		name = e.opts.Runtime.Device
	}
	d, err := ParseDevice(name, e.opts.Runtime.Threads)
	if err != nil {
		return Device{}, err
	}
	d.GraphOptimization = e.opts.Runtime.GraphOptimization
	if d.Runtime == RuntimeORT {
		if err := e.initORT(); err != nil {
			if d.GPU() {
				return Device{}, fmt.Errorf("device %s needs ONNX Runtime: %w", name, err)
			}
			d.Runtime, d.Provider = RuntimePureGo, ""
		}
	}
	return d, nil
}

// Load loads (or reloads) the configured model and serves it under its
// name. On failure the model it would replace keeps serving, and the
// failure is counted in vigil_inference_model_load_errors_total.
func (e *Engine) Load(cfg config.Model) error {
	err := e.load(cfg)
	if err != nil {
		e.metrics.loadErrs.WithLabelValues(cfg.Name).Inc()
	}
	return err
}

func (e *Engine) load(cfg config.Model) error {
	b, err := OpenBundle(cfg.Bundle, cfg.Family)
	if err != nil {
		return fmt.Errorf("models: %s: %w", cfg.Name, err)
	}
	d, err := e.device(cfg.Device)
	if err != nil {
		return fmt.Errorf("models: %s: %w", cfg.Name, err)
	}
	m, err := LoadModel(b, ModelOptions{
		Name: cfg.Name, Device: d, Variant: cfg.Variant, MaxAccuracyLoss: cfg.MaxAccuracyLoss,
		ScoreThreshold: float32(cfg.ScoreThreshold), LowScoreFloor: e.opts.LowScoreFloor,
		MaxBatch: e.opts.Batching.MaxBatch, MaxWait: time.Duration(e.opts.Batching.MaxWait),
		Logger: e.log, metrics: e.metrics,
	})
	if err != nil {
		return fmt.Errorf("models: %w", err)
	}
	if err := probe(m); err != nil {
		m.Close()
		return fmt.Errorf("models: %s version %d: %w", cfg.Name, b.Version, err)
	}
	e.mu.Lock()
	old, oldCfg := e.models[cfg.Name], e.cfgs[cfg.Name]
	e.models[cfg.Name] = m
	e.cfgs[cfg.Name] = cfg
	// Under the lock, so that the series follows the model served when
	// two loads of one name race.
	e.metrics.setModelInfo(m.Status())
	e.mu.Unlock()
	if old != nil {
		e.retire(cfg.Name, old, oldCfg)
	}
	return nil
}

// Unload stops serving model name.
func (e *Engine) Unload(name string) {
	e.mu.Lock()
	m := e.models[name]
	delete(e.models, name)
	delete(e.cfgs, name)
	e.mu.Unlock()
	e.endProbation(name)
	e.variants.close(name)
	if m != nil {
		m.Close()
		e.metrics.deleteModel(name)
		e.metrics.loadErrs.DeleteLabelValues(name)
	}
}

// Model returns the model served under name.
func (e *Engine) Model(name string) (*Model, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	m, ok := e.models[name]
	return m, ok
}

// Status describes every loaded model, by name.
func (e *Engine) Status() []ModelStatus {
	e.mu.RLock()
	out := make([]ModelStatus, 0, len(e.models))
	for _, m := range e.models {
		out = append(out, m.Status())
	}
	e.mu.RUnlock()
	slices.SortFunc(out, func(a, b ModelStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Close unloads every model.
func (e *Engine) Close() error {
	e.mu.Lock()
	ms := e.models
	e.models = map[string]*Model{}
	e.mu.Unlock()
	for name := range ms {
		e.endProbation(name)
	}
	for _, m := range ms {
		m.Close()
	}
	e.variants.close("")
	return nil
}

// Analyze runs the named models on f and fills r: detectors and keypoint
// models add their detections; embedders and segmenters then run on each
// person a detector found above its threshold (see perPerson), or on the whole frame when
// there is no detector. A model that fails on this frame is counted and logged at
// most once a second and adds nothing; only a cancelled ctx is an error.
func (e *Engine) Analyze(ctx context.Context, models []string, f *frame.Frame, r *frame.Result) error {
	var (
		perPerson []*Model // embedders and segmenters, run after the others
		detected  []int    // indices of r.Detections that come from detectors
	)
	for _, name := range models {
		m, ok := e.Model(name)
		if !ok {
			e.logError(name, fmt.Errorf("model %s is not loaded", name))
			continue
		}
		if m.bundle.Task == TaskEmbed || m.bundle.Task == TaskSegment {
			perPerson = append(perPerson, m)
			continue
		}
		dets, err := m.Infer(ctx, f)
		if errors.Is(err, ErrModelClosed) || (invalid(err) && e.rollback(name, m, err)) {
			// Replaced by a reload between lookup and submit, or rolled
			// back: ask the model now serving.
			if m, ok = e.Model(name); ok {
				dets, err = m.Infer(ctx, f)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.logError(name, err)
			continue
		}
		if r.Model == "" && m.bundle.Task == TaskDetect {
			r.Model, r.ModelVersion = m.bundle.Name, fmt.Sprintf("%d/%s", m.bundle.Version, m.variant.Name)
		}
		if m.bundle.Task == TaskDetect {
			for i := range dets {
				detected = append(detected, len(r.Detections)+i)
			}
		} else {
			for i := range dets {
				dets[i].Aux = true
			}
		}
		r.Detections = append(r.Detections, dets...)
	}
	for _, m := range perPerson {
		err := e.perPerson(ctx, m, f, r, detected)
		if errors.Is(err, ErrModelClosed) || (invalid(err) && e.rollback(m.opts.Name, m, err)) {
			if m, ok := e.Model(m.opts.Name); ok {
				err = e.perPerson(ctx, m, f, r, detected)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.logError(m.opts.Name, err)
		}
	}
	return nil
}

// perPerson runs an embedder or a segmenter on each person among
// r.Detections[i] for i in detected: an embedder on the person's box sets
// its embedding; a segmenter on a region around the person of the
// model's aspect ratio sets its mask (an instance mask from a semantic
// segmenter). An embedder with no detector before it embeds the whole
// frame as one detection.
func (e *Engine) perPerson(ctx context.Context, m *Model, f *frame.Frame, r *frame.Result, detected []int) error {
	if len(detected) == 0 {
		out, err := m.Infer(ctx, f)
		if err != nil {
			return err
		}
		r.Detections = append(r.Detections, out...)
		return nil
	}
	segment := m.bundle.Task == TaskSegment
	var (
		idx   []int
		boxes []frame.Box
	)
	for _, i := range detected {
		d := r.Detections[i]
		if d.Label != "person" || d.Low || d.Box.W() < 2 || d.Box.H() < 2 {
			continue
		}
		idx = append(idx, i)
		if segment {
			boxes = append(boxes, CropAround(d.Box, float32(m.spec.Width)/float32(m.spec.Height), f.Width, f.Height))
		} else {
			boxes = append(boxes, d.Box)
		}
	}
	if len(boxes) == 0 {
		return nil
	}
	outs, err := m.InferCrops(ctx, f, boxes)
	for k, o := range outs {
		if len(o) == 0 {
			continue
		}
		d := &r.Detections[idx[k]]
		if segment {
			d.Mask = o[0].Mask
		} else {
			d.Embedding = o[0].Embedding
		}
	}
	return err
}

// CropAround returns the region a segmenter runs on around a person b: a
// box of the given aspect ratio (width / height) centred on b that holds b
// grown by 1.2, clipped to the w x h frame. Trainers cut their crops with
// it too.
func CropAround(b frame.Box, aspect float32, w, h int) frame.Box {
	cx, cy := (b.X1+b.X2)/2, (b.Y1+b.Y2)/2
	bw, bh := b.W()*1.2, b.H()*1.2
	if bw/bh < aspect {
		bw = bh * aspect
	} else {
		bh = bw / aspect
	}
	return frame.Box{
		X1: max(0, cx-bw/2), Y1: max(0, cy-bh/2),
		X2: min(float32(w), cx+bw/2), Y2: min(float32(h), cy+bh/2),
	}
}

func (e *Engine) logError(model string, err error) {
	e.mu.Lock()
	last := e.errLog[model]
	now := time.Now()
	logIt := now.Sub(last) >= time.Second
	if logIt {
		e.errLog[model] = now
	}
	e.mu.Unlock()
	if logIt {
		e.log.Warn("inference failed", "model", model, "error", err)
	}
}

// ModelsReport is the JSON body of GET /api/models.
type ModelsReport struct {
	// CPUFeatures are the instruction-set extensions the variant choice
	// considers.
	CPUFeatures []string `json:"cpu_features"`
	// ONNXRuntime is "loaded", or why it is not.
	ONNXRuntime string        `json:"onnxruntime"`
	Models      []ModelStatus `json:"models"`
}

// Report describes the engine and its models.
func (e *Engine) Report() ModelsReport {
	rep := ModelsReport{CPUFeatures: CPUFeatures(), ONNXRuntime: "not needed yet", Models: e.Status()}
	if rep.CPUFeatures == nil {
		rep.CPUFeatures = []string{}
	}
	if path, ok := ort.Loaded(); ok {
		rep.ONNXRuntime = "loaded from " + path
	} else {
		e.mu.RLock()
		if e.ortErr != nil {
			rep.ONNXRuntime = e.ortErr.Error()
		}
		e.mu.RUnlock()
	}
	return rep
}

// ServeHTTP serves GET /api/models: the engine's Report as JSON, with
// each variant's measured time and the one serving; and POST
// /api/models/{name}/promote with {"version": N} (see Promote), which
// answers with the model's new status.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/api/models/"); ok {
		name, ok := strings.CutSuffix(rest, "/promote")
		if !ok || name == "" || strings.Contains(name, "/") {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		e.servePromote(w, r, name)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(e.Report())
}

// WatchRegistry checks every interval whether the active version of each
// model configured by its registry folder changed (vigil models promote),
// and loads the new version: it warms up next to the old one, which keeps
// serving until the swap, or for good if the new one fails to load (that
// version is not retried until the active version changes again). It
// returns when ctx ends.
func (e *Engine) WatchRegistry(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.checkRegistry()
		}
	}
}

// checkRegistry does one round of WatchRegistry.
func (e *Engine) checkRegistry() {
	type loaded struct {
		cfg     config.Model
		version int
	}
	var todo []loaded
	e.mu.RLock()
	for name, m := range e.models {
		if cfg := e.cfgs[name]; isRegistryModel(cfg.Bundle) {
			todo = append(todo, loaded{cfg, m.bundle.Version})
		}
	}
	e.mu.RUnlock()
	for _, l := range todo {
		reg, name := registryOf(l.cfg.Bundle)
		v, err := reg.Active(name)
		e.mu.Lock()
		retry := err == nil && v != l.version && e.tried[l.cfg.Name] != v
		if retry {
			e.tried[l.cfg.Name] = v
		}
		e.mu.Unlock()
		if !retry {
			continue
		}
		e.log.Info("model version changed in the registry: loading it", "model", l.cfg.Name, "from", l.version, "to", v)
		if err := e.Load(l.cfg); err != nil {
			e.log.Error("new model version not loaded; the old one keeps serving", "model", l.cfg.Name, "version", v, "err", err)
		}
	}
}
