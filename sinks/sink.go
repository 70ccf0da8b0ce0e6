// Package sinks defines where analysis results go and the JSON form they take
// there. A Sink receives each frame.Result from the pipeline's fan-out, which
// gives every sink its own goroutine and bounded queue; implementations live
// in subpackages (jsonl, later kafka, webrtc and hardframe).
package sinks

import (
	"context"
	"encoding/json"
	"time"

	"github.com/vigil-video/vigil/frame"
)

// Sink consumes results. Write and Close are called from one goroutine, so an
// implementation need not be safe for concurrent use.
type Sink interface {
	// Write delivers one result. The sink may keep r.
	Write(ctx context.Context, r *frame.Result) error
	// Close flushes what is buffered, within ctx's deadline, and releases
	// resources.
	Close(ctx context.Context) error
}

// SchemaVersion is the version of the JSON result message. It changes when a
// field changes meaning or goes away; added fields do not change it.
const SchemaVersion = "2"

// Message is the JSON form of one analysed frame, shared by the JSONL and
// Kafka sinks.
type Message struct {
	Schema     string             `json:"schema"`
	Stream     string             `json:"stream"`
	Seq        uint64             `json:"seq"`
	PTS        float64            `json:"pts"`
	Captured   time.Time          `json:"captured"`
	Width      int                `json:"width"`
	Height     int                `json:"height"`
	Model      string             `json:"model,omitempty"`
	Version    string             `json:"model_version,omitempty"`
	Detections []MessageDetection `json:"detections"`
	// TrackEvents are the tracks that started or ended at this frame.
	TrackEvents []MessageTrackEvent `json:"track_events,omitempty"`
	// EndOfStream marks the last message of a stream that ended (a file
	// or a source that finished): it repeats the last frame's seq, has no
	// detections and carries the ended events of the tracks still open.
	EndOfStream bool `json:"end_of_stream,omitempty"`
}

// MessageTrackEvent is a track's start or end; times are in seconds of
// stream time.
type MessageTrackEvent struct {
	Kind      string  `json:"kind"`
	TrackID   uint64  `json:"track_id"`
	Class     int     `json:"class_id"`
	Label     string  `json:"label,omitempty"`
	First     float64 `json:"first"`
	Last      float64 `json:"last"`
	Frames    int     `json:"frames"`
	MeanScore float32 `json:"mean_score"`
}

// MessageDetection is one detection inside a Message. Box is [x1, y1, x2, y2]
// in source pixels; Keypoints are [x, y, score] triples; Mask is COCO RLE
// over the whole frame; Embedding is an L2-normalised re-ID vector.
type MessageDetection struct {
	Box       [4]float32   `json:"box"`
	Class     int          `json:"class_id"`
	Label     string       `json:"label,omitempty"`
	Score     float32      `json:"score"`
	TrackID   uint64       `json:"track_id,omitempty"`
	Keypoints [][3]float32 `json:"keypoints,omitempty"`
	Mask      *MessageMask `json:"mask,omitempty"`
	Embedding []float32    `json:"embedding,omitempty"`
}

// MessageMask is a mask in COCO's compressed RLE form, as pycocotools
// writes it: size is [height, width], counts the compressed string.
type MessageMask struct {
	Size   [2]int `json:"size"`
	Counts string `json:"counts"`
}

// NewMessage converts a result to its JSON form.
func NewMessage(r *frame.Result) Message {
	m := Message{
		Schema:      SchemaVersion,
		Stream:      r.StreamID,
		Seq:         r.Seq,
		PTS:         r.PTS.Seconds(),
		Captured:    r.Captured.UTC(),
		Width:       r.Width,
		Height:      r.Height,
		Model:       r.Model,
		Version:     r.ModelVersion,
		Detections:  make([]MessageDetection, len(r.Detections)),
		EndOfStream: r.EndOfStream,
	}
	for i, d := range r.Detections {
		md := MessageDetection{
			Box:       [4]float32{d.Box.X1, d.Box.Y1, d.Box.X2, d.Box.Y2},
			Class:     d.Class,
			Label:     d.Label,
			Score:     d.Score,
			TrackID:   d.TrackID,
			Embedding: d.Embedding,
		}
		if d.Mask != nil {
			md.Mask = &MessageMask{Size: [2]int{d.Mask.Height, d.Mask.Width}, Counts: d.Mask.COCOString()}
		}
		if len(d.Keypoints) > 0 {
			md.Keypoints = make([][3]float32, len(d.Keypoints))
			for k, kp := range d.Keypoints {
				md.Keypoints[k] = [3]float32{kp.X, kp.Y, kp.Score}
			}
		}
		m.Detections[i] = md
	}
	for _, e := range r.Events {
		m.TrackEvents = append(m.TrackEvents, MessageTrackEvent{
			Kind: e.Kind, TrackID: e.TrackID, Class: e.Class, Label: e.Label,
			First: e.First.Seconds(), Last: e.Last.Seconds(), Frames: e.Frames, MeanScore: e.MeanScore,
		})
	}
	return m
}

// AppendJSON appends r's JSON message and a newline to buf.
func AppendJSON(buf []byte, r *frame.Result) ([]byte, error) {
	b, err := json.Marshal(NewMessage(r))
	if err != nil {
		return buf, err
	}
	buf = append(buf, b...)
	return append(buf, '\n'), nil
}
