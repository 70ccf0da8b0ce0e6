package viewer

import (
	"encoding/json"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

// ClockRate is the RTP clock of the video track.
const ClockRate = 90000

// RTPTimestamp is the RTP timestamp of the video frame presented at pts:
// the stream's presentation time on the 90 kHz clock, modulo 2^32. Overlay
// messages carry the same value, so a page matches them to the displayed
// frame exactly.
func RTPTimestamp(pts time.Duration) uint32 {
	return uint32((int64(pts)*9 + 50_000) / 100_000)
}

// ModelInfo describes a model to the page: its labels, and for keypoint
// models the keypoint names and the skeleton to draw.
type ModelInfo struct {
	Name      string   `json:"name"`
	Task      string   `json:"task"`
	Labels    []string `json:"labels,omitempty"`
	Keypoints []string `json:"keypoints,omitempty"`
	Skeleton  [][2]int `json:"skeleton,omitempty"`
}

// StreamInfo is what the viewer knows of a stream from its configuration.
type StreamInfo struct {
	// InferFPS is the stream's analysis rate, 0 for every frame.
	InferFPS float64
	// Models are the stream's models, in analysis order.
	Models []ModelInfo
}

type helloMessage struct {
	Type      string      `json:"type"`
	Stream    string      `json:"stream"`
	Width     int         `json:"width"`
	Height    int         `json:"height"`
	FPS       float64     `json:"fps"`
	InferFPS  float64     `json:"infer_fps"`
	ClockRate int         `json:"clock_rate"`
	Video     string      `json:"video"`
	Models    []ModelInfo `json:"models"`
}

type trackMessage struct {
	ID    uint64     `json:"id"`
	Box   [4]float32 `json:"box"`
	State string     `json:"state"`
}

// resultMessage is one analysed frame for the page: the sinks' JSON form
// without embeddings, plus the frame's RTP timestamp and timings.
type resultMessage struct {
	Type string `json:"type"`
	sinks.Message
	RTP        uint32         `json:"rtp"`
	CapturedMS float64        `json:"captured_ms"`
	SentMS     float64        `json:"sent_ms"`
	InferMS    float64        `json:"infer_ms"`
	LatencyMS  float64        `json:"latency_ms"`
	Tracks     []trackMessage `json:"tracks"`
}

type statsMessage struct {
	Type           string  `json:"type"`
	FPSIn          float64 `json:"fps_in"`
	FPSAnalyzed    float64 `json:"fps_analyzed"`
	InferMS        float64 `json:"infer_ms"`
	LatencyMS      float64 `json:"latency_ms"`
	ActiveTracks   int     `json:"active_tracks"`
	Viewers        int     `json:"viewers"`
	Video          string  `json:"video"`
	DroppedVideo   uint64  `json:"dropped_video"`
	DroppedOverlay uint64  `json:"dropped_overlay"`
}

func unixMS(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro()) / 1000
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

var trackStates = [...]string{frame.TrackTentative: "tentative", frame.TrackConfirmed: "confirmed", frame.TrackDeleted: "deleted"}

// encodeResult makes r's overlay message, once for all of a stream's
// viewers.
func encodeResult(r *frame.Result, now time.Time) ([]byte, error) {
	m := resultMessage{
		Type:       "result",
		Message:    sinks.NewMessage(r),
		RTP:        RTPTimestamp(r.PTS),
		CapturedMS: unixMS(r.Captured),
		SentMS:     unixMS(now),
		InferMS:    ms(r.Analysis),
		Tracks:     make([]trackMessage, 0, len(r.Tracks)),
	}
	if !r.Captured.IsZero() {
		m.LatencyMS = ms(now.Sub(r.Captured))
	}
	for i := range m.Detections {
		m.Detections[i].Embedding = nil // 1 KB each, of no use to the page
	}
	for _, t := range r.Tracks {
		state := "unknown"
		if int(t.State) < len(trackStates) {
			state = trackStates[t.State]
		}
		m.Tracks = append(m.Tracks, trackMessage{ID: t.ID, Box: [4]float32{t.Box.X1, t.Box.Y1, t.Box.X2, t.Box.Y2}, State: state})
	}
	return json.Marshal(m)
}
