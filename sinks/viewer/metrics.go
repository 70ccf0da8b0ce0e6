package viewer

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sessions       *prometheus.GaugeVec
	droppedVideo   *prometheus.CounterVec
	droppedOverlay *prometheus.CounterVec
	errors         *prometheus.CounterVec
	encodeTime     prometheus.Histogram
	encoderSkipped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		sessions: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_viewer_sessions", Help: "Live viewer sessions (WHEP) per stream.",
		}, []string{"stream"}),
		droppedVideo: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_viewer_video_dropped_total", Help: "Video access units a slow viewer lost (it then waits for a key frame), per stream.",
		}, []string{"stream"}),
		droppedOverlay: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_viewer_overlay_dropped_total", Help: "Overlay messages a slow viewer lost, per stream.",
		}, []string{"stream"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_viewer_errors_total", Help: "Viewer errors by reason.",
		}, []string{"reason"}),
		encodeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_viewer_encode_duration_seconds", Help: "Time to encode one frame for the viewers of a stream without H.264.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 12),
		}),
		encoderSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_viewer_encoder_skipped_total", Help: "Frames the viewer's encoder skipped because it was still busy with the previous one.",
		}),
	}
	for _, r := range []string{"bad_request", "rejected", "bad_packet", "encode_overlay", "encoder_open", "encode", "write_rtp", "send_overlay"} {
		m.errors.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.sessions, m.droppedVideo, m.droppedOverlay, m.errors, m.encodeTime, m.encoderSkipped)
	}
	return m
}
