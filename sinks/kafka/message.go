package kafka

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/sinks"
)

// Header keys every message carries.
const (
	// HeaderContentType is ContentType.
	HeaderContentType = "content-type"
	// HeaderSchemaVersion is sinks.SchemaVersion.
	HeaderSchemaVersion = "schema-version"
	// HeaderMessageID names the message for de-duplication: "<stream>/<seq>"
	// on the detections topic ("<stream>/<seq>/end" for a stream's
	// end-of-stream message, which repeats its last seq) and
	// "<stream>/<track_id>/<kind>" on the tracks topic. Delivery is at
	// least once, so a consumer may see an ID twice.
	HeaderMessageID = "message-id"
	// ContentType is the media type of every message value.
	ContentType = "application/json"
)

var (
	contentTypeValue   = []byte(ContentType)
	schemaVersionValue = []byte(sinks.SchemaVersion)
)

// TrackMessage is the JSON form of one track event on the tracks topic:
// the event's summary (sinks.MessageTrackEvent) and the frame it was
// reported at.
type TrackMessage struct {
	Schema string `json:"schema"`
	Stream string `json:"stream"`
	// Seq, PTS and Captured are those of the frame whose result reported
	// the event.
	Seq      uint64    `json:"seq"`
	PTS      float64   `json:"pts"`
	Captured time.Time `json:"captured"`
	sinks.MessageTrackEvent
}

// encodeResult returns r's Kafka messages: one on detectionsTopic, then one
// per track event on tracksTopic, each keyed by stream ID.
func encodeResult(r *frame.Result, detectionsTopic, tracksTopic string) ([]kafkago.Message, error) {
	key := []byte(r.StreamID)
	m := sinks.NewMessage(r)
	value, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encoding frame %d of %s: %w", r.Seq, r.StreamID, err)
	}
	msgs := make([]kafkago.Message, 0, 1+len(m.TrackEvents))
	id := r.StreamID + "/" + strconv.FormatUint(r.Seq, 10)
	if r.EndOfStream { // it repeats the last frame's seq
		id += "/end"
	}
	msgs = append(msgs, kafkago.Message{Topic: detectionsTopic, Key: key, Value: value, Headers: headers(id)})
	for _, e := range m.TrackEvents {
		value, err := json.Marshal(TrackMessage{
			Schema: sinks.SchemaVersion, Stream: m.Stream, Seq: m.Seq, PTS: m.PTS, Captured: m.Captured,
			MessageTrackEvent: e,
		})
		if err != nil {
			return nil, fmt.Errorf("encoding track %d event of %s: %w", e.TrackID, r.StreamID, err)
		}
		msgs = append(msgs, kafkago.Message{
			Topic: tracksTopic, Key: key, Value: value,
			Headers: headers(r.StreamID + "/" + strconv.FormatUint(e.TrackID, 10) + "/" + e.Kind),
		})
	}
	return msgs, nil
}

func headers(id string) []kafkago.Header {
	return []kafkago.Header{
		{Key: HeaderContentType, Value: contentTypeValue},
		{Key: HeaderSchemaVersion, Value: schemaVersionValue},
		{Key: HeaderMessageID, Value: []byte(id)},
	}
}

// messageSize approximates what a message takes in memory and in a batch.
func messageSize(m *kafkago.Message) int {
	n := len(m.Topic) + len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}
