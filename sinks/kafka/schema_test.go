package kafka

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSchemasAcceptSinkMessages(t *testing.T) {
	for _, seq := range []uint64{0, 3} {
		msgs, err := encodeResult(testResult("cam", seq), testDetections, testTracks)
		require.NoError(t, err)
		for _, m := range msgs {
			require.NoError(t, Validate(KindOf(m.Topic), m.Value), "%s", m.Value)
		}
	}
	// A frame without detections or a model.
	r := testResult("cam", 1)
	r.Detections, r.Model, r.ModelVersion = nil, "", ""
	msgs, err := encodeResult(r, testDetections, testTracks)
	require.NoError(t, err)
	require.NoError(t, Validate(KindDetections, msgs[0].Value), "%s", msgs[0].Value)

	r.EndOfStream = true
	msgs, err = encodeResult(r, testDetections, testTracks)
	require.NoError(t, err)
	require.NoError(t, Validate(KindDetections, msgs[0].Value), "%s", msgs[0].Value)
	require.Contains(t, string(msgs[0].Value), `"end_of_stream":true`)
	require.Equal(t, "cam/1/end", header(msgs[0], HeaderMessageID))
}

func TestSchemaRejectsNamingTheField(t *testing.T) {
	msgs, err := encodeResult(testResult("cam", 0), testDetections, testTracks)
	require.NoError(t, err)
	edit := func(value []byte, f func(map[string]any)) []byte {
		var m map[string]any
		require.NoError(t, json.Unmarshal(value, &m))
		f(m)
		b, err := json.Marshal(m)
		require.NoError(t, err)
		return b
	}
	det := func(m map[string]any) map[string]any { return m["detections"].([]any)[0].(map[string]any) }
	for _, tc := range []struct {
		name, kind string
		value      []byte
		want       string
	}{
		{"score above 1", KindDetections, edit(msgs[0].Value, func(m map[string]any) { det(m)["score"] = 1.5 }), "/detections/0/score"},
		{"box of 3", KindDetections, edit(msgs[0].Value, func(m map[string]any) { det(m)["box"] = []float64{1, 2, 3} }), "/detections/0/box"},
		{"seq a string", KindDetections, edit(msgs[0].Value, func(m map[string]any) { m["seq"] = "7" }), "/seq"},
		{"no stream", KindDetections, edit(msgs[0].Value, func(m map[string]any) { delete(m, "stream") }), "stream"},
		{"unknown field", KindDetections, edit(msgs[0].Value, func(m map[string]any) { m["colour"] = "red" }), "colour"},
		{"mask without counts", KindDetections, edit(msgs[0].Value, func(m map[string]any) {
			delete(det(m)["mask"].(map[string]any), "counts")
		}), "/detections/0/mask"},
		{"bad event kind", KindTracks, edit(msgs[1].Value, func(m map[string]any) { m["kind"] = "paused" }), "/kind"},
		{"negative frames", KindTracks, edit(msgs[1].Value, func(m map[string]any) { m["frames"] = -1 }), "/frames"},
		{"not json", KindTracks, []byte(`{"kind":`), "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.kind, tc.value)
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
		})
	}
	require.Error(t, Validate("weather", msgs[0].Value))
}

func TestKindOf(t *testing.T) {
	require.Equal(t, KindTracks, KindOf("vigil.tracks"))
	require.Equal(t, KindDetections, KindOf("vigil.detections"))
	require.Equal(t, KindDetections, KindOf("other"))
}
