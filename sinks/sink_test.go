package sinks

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vigil-video/vigil/frame"
)

func TestMessageRoundTrip(t *testing.T) {
	r := &frame.Result{
		StreamID: "cam", Seq: 12, PTS: 1500 * time.Millisecond, Width: 640, Height: 480,
		Captured:   time.Date(2026, 11, 29, 1, 2, 3, 4000, time.FixedZone("x", 3600)),
		Detections: []frame.Detection{{Box: frame.Box{X1: 1, Y1: 2, X2: 3, Y2: 4}, Label: "car", Class: 2, Score: 0.5}},
	}
	b, err := AppendJSON(nil, r)
	require.NoError(t, err)
	require.Equal(t, byte('\n'), b[len(b)-1])
	var m Message
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, SchemaVersion, m.Schema)
	require.Equal(t, 1.5, m.PTS)
	require.Equal(t, "2026-11-29T00:02:03.000004Z", m.Captured.Format(time.RFC3339Nano), "captured is UTC")
	require.Equal(t, [4]float32{1, 2, 3, 4}, m.Detections[0].Box)
	require.Contains(t, string(b), `"detections":[{`)

	require.Contains(t, string(b), `"class_id":2,"label":"car"`)

	// Masks travel as COCO compressed RLE, embeddings as they are.
	mask := frame.EncodeMask([]byte{0, 1, 1, 0, 1, 1}, 3, 2)
	r.Detections[0].Mask = &mask
	r.Detections[0].Embedding = []float32{0.6, 0.8}
	b, err = AppendJSON(nil, r)
	require.NoError(t, err)
	m = Message{}
	require.NoError(t, json.Unmarshal(b, &m))
	require.Equal(t, [2]int{2, 3}, m.Detections[0].Mask.Size, "size is [height, width]")
	back, err := frame.MaskFromCOCOString(m.Detections[0].Mask.Counts, 3, 2)
	require.NoError(t, err)
	require.Equal(t, mask.Counts, back.Counts)
	require.Equal(t, []float32{0.6, 0.8}, m.Detections[0].Embedding)

	r.Events = []frame.TrackEvent{{Kind: "ended", TrackID: 7, Class: 2, Label: "car", First: time.Second, Last: 3 * time.Second, Frames: 20, MeanScore: 0.75}}
	b, err = AppendJSON(nil, r)
	require.NoError(t, err)
	require.Contains(t, string(b), `"track_events":[{"kind":"ended","track_id":7,"class_id":2,"label":"car","first":1,"last":3,"frames":20,"mean_score":0.75}]`)

	b, err = AppendJSON(nil, &frame.Result{StreamID: "empty"})
	require.NoError(t, err)
	require.Contains(t, string(b), `"detections":[]`, "no detections is an empty array, not null")
}

func BenchmarkAppendJSON(b *testing.B) {
	r := &frame.Result{StreamID: "cam", Seq: 1, Detections: make([]frame.Detection, 10)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendJSON(buf[:0], r)
	}
}
