package inference

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Stages of a batch, for vigil_inference_duration_seconds.
const (
	stagePrep   = "prep"
	stageRun    = "run"
	stageDecode = "decode"
)

// metrics are the inference metrics of one Engine.
type metrics struct {
	batchSize *prometheus.HistogramVec
	queueWait *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	frames    *prometheus.CounterVec
	errors    *prometheus.CounterVec
	loadErrs  *prometheus.CounterVec
	rollbacks *prometheus.CounterVec
	info      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_inference_batch_size",
			Help:    "Images per model run.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16, 24, 32},
		}, []string{"model"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_inference_queue_wait_seconds",
			Help:    "Time a request waited in the model's batcher queue.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}, []string{"model"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_inference_duration_seconds",
			Help:    "Time per batch in each stage: prep (pre-processing), run (the runtime), decode (outputs to detections).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"model", "device", "stage"}),
		frames: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_inference_images_total",
			Help: "Images (frames or crops) run through a model.",
		}, []string{"model"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_inference_errors_total",
			Help: "Images a model failed to prepare, run or decode.",
		}, []string{"model"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_inference_model_rollbacks_total",
			Help: "Reloads undone because the new version's outputs were invalid (NaN or infinite); the replaced version serves again.",
		}, []string{"model"}),
		loadErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_inference_model_load_errors_total",
			Help: "Failed attempts to load a configured model (bad bundle or file, checksum mismatch, no runtime).",
		}, []string{"model"}),
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_inference_model_info",
			Help: "1 for each model served, with the bundle version, variant, device profile and runtime serving it.",
		}, []string{"model", "version", "variant", "device", "runtime"}),
	}
	if reg != nil {
		reg.MustRegister(m.batchSize, m.queueWait, m.duration, m.frames, m.errors, m.loadErrs, m.rollbacks, m.info)
	}
	return m
}

// modelMetrics are one model's children of the metric vectors.
type modelMetrics struct {
	batchSize prometheus.Observer
	queueWait prometheus.Observer
	duration  prometheus.ObserverVec
	frames    prometheus.Counter
	errors    prometheus.Counter
}

func (m *metrics) forModel(name, device string) *modelMetrics {
	return &modelMetrics{
		batchSize: m.batchSize.WithLabelValues(name),
		queueWait: m.queueWait.WithLabelValues(name),
		duration:  m.duration.MustCurryWith(prometheus.Labels{"model": name, "device": device}),
		frames:    m.frames.WithLabelValues(name),
		errors:    m.errors.WithLabelValues(name),
	}
}

// deleteModel removes a model's series.
func (m *metrics) deleteModel(name string) {
	l := prometheus.Labels{"model": name}
	m.batchSize.DeletePartialMatch(l)
	m.queueWait.DeletePartialMatch(l)
	m.duration.DeletePartialMatch(l)
	m.frames.DeletePartialMatch(l)
	m.errors.DeletePartialMatch(l)
	m.info.DeletePartialMatch(l)
}

// setModelInfo makes st the only vigil_inference_model_info series of its
// model, replacing the one of the version or variant it succeeds.
func (m *metrics) setModelInfo(st ModelStatus) {
	m.info.DeletePartialMatch(prometheus.Labels{"model": st.Name})
	m.info.WithLabelValues(st.Name, strconv.Itoa(st.Version), st.Variant, st.Device, string(st.Runtime)).Set(1)
}
