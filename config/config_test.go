package config

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// validStream is the smallest valid stream, for tests that break one key.
const validStream = `
streams:
  - id: cam
    url: synth://
`

func TestParseEmptyGivesDefaults(t *testing.T) {
	// The expected values are the defaults the field comments promise, typed
	// out independently of ApplyDefaults.
	want := &Config{
		Listen:          "127.0.0.1:8080",
		ShutdownTimeout: Duration(10 * time.Second),
		Log:             Log{Level: "info", Format: "text"},
		Runtime:         Runtime{Device: "cpu", GraphOptimization: "all"},
		Batching:        Batching{MaxBatch: 8},
		Viewer:          Viewer{Enabled: ptr(true), MaxViewers: 16, KeyInterval: Duration(2 * time.Second)},
		Tracker: Tracker{
			Enabled: ptr(true), Mode: "deepsort", Appearance: "gallery", EMAAlpha: 0.9, MaxAge: 30, NInit: 3, MaxIoUDistance: 0.7,
			MaxCosineDistance: 0.2, NNBudget: 100, LowScoreThreshold: 0.1,
		},
		Sinks: Sinks{
			JSONL: JSONL{Path: "-", MaxSizeMB: 100, MaxBackups: 5},
			Kafka: Kafka{
				DetectionsTopic: "vigil.detections", TracksTopic: "vigil.tracks",
				Compression: "zstd", SpoolDir: "vigil-spool", SpoolMaxMB: 1024,
				SpoolFsync: "batch", BatchMessages: 1000, BatchBytes: 1 << 20,
				BatchTimeout: Duration(50 * time.Millisecond), BufferMB: 32, WriteAhead: ptr(true),
			},
		},
		Retrain: Retrain{
			CheckEvery: Duration(time.Minute), Labels: "corrected", Margin: 0.02, MaxDrop: 0.02, Steps: 300,
			Timeout: Duration(2 * time.Hour), Dir: "retrain",
		},
		HardFrames: HardFrames{
			Dir: "hardframes", MaxMB: 2048,
			Miners:             []string{"band", "flicker", "track_gap", "quant_disagreement", "random"},
			Band:               HardFramesBand{Low: 0.2, High: 0.45},
			Flicker:            HardFramesFlicker{Window: 1, MaxGap: 3, MinIoU: 0.5},
			TrackGap:           HardFramesTrackGap{Min: 1, Max: 3},
			QuantDisagreement:  HardFramesQuant{Every: 30, MinIoU: 0.5, MinF1: 0.8},
			Random:             HardFramesRandom{Rate: 0.01, Seed: 1},
			PerStreamPerMinute: 30, Burst: 5, DedupHamming: 6, QueueSize: 32,
		},
	}
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"comments only", "# nothing here\n"},
		{"empty document", "---\n"},
		{"null", "~\n"},
		{"empty mapping", "{}\n"},
		{"null sections", "log:\ntracker:\nsinks:\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, want, c)
			require.True(t, c.Tracker.IsEnabled())
		})
	}
	var zero Config
	zero.ApplyDefaults()
	require.Equal(t, want, &zero, "ApplyDefaults on a zero Config")
}

func TestParseStreamAndModelDefaults(t *testing.T) {
	c, err := Parse([]byte(`
models:
  - name: det
    bundle: models/det
streams:
  - id: cam
    url: rtsp://host/x
    models: [det]
`))
	require.NoError(t, err)
	require.Equal(t, []Model{{Name: "det", Bundle: "models/det", MaxAccuracyLoss: 0.01, ScoreThreshold: 0.3}}, c.Models)
	require.Equal(t, []Stream{{ID: "cam", URL: "rtsp://host/x", InferFPS: 5, Decode: "all", Models: []string{"det"}, Realtime: ptr(true), Transport: "auto", ReadTimeout: Duration(10 * time.Second), ReconnectMin: Duration(500 * time.Millisecond), ReconnectMax: Duration(30 * time.Second)}}, c.Streams)
	require.True(t, c.Streams[0].IsRealtime())
	require.False(t, c.Streams[0].KeyframesOnly())
}

func TestParseKeepsExplicitZeros(t *testing.T) {
	c, err := Parse([]byte(`
batching:
  max_wait: 0s
tracker:
  enabled: false
  low_score_threshold: 0
models:
  - name: det
    bundle: b
    max_accuracy_loss: 0
    score_threshold: 0
sinks:
  jsonl:
    max_size_mb: 0
    max_backups: 0
hard_frames:
  miners: []
streams:
  - id: cam
    url: file:///a.mp4
    realtime: false
`))
	require.NoError(t, err)
	require.Zero(t, c.Batching.MaxWait)
	require.False(t, c.Tracker.IsEnabled())
	require.Zero(t, c.Tracker.LowScoreThreshold)
	require.Zero(t, c.Models[0].MaxAccuracyLoss)
	require.Zero(t, c.Models[0].ScoreThreshold)
	require.Zero(t, c.Sinks.JSONL.MaxSizeMB)
	require.Zero(t, c.Sinks.JSONL.MaxBackups)
	require.Empty(t, c.HardFrames.Miners)
	require.False(t, c.Streams[0].IsRealtime())
}

func TestStreamHelpers(t *testing.T) {
	require.True(t, Stream{}.IsRealtime(), "unset realtime means true")
	require.True(t, Stream{Realtime: ptr(true)}.IsRealtime())
	require.False(t, Stream{Realtime: ptr(false)}.IsRealtime())
	require.True(t, Stream{Decode: "keyframes"}.KeyframesOnly())
	require.False(t, Stream{Decode: "all"}.KeyframesOnly())
	require.True(t, Tracker{}.IsEnabled(), "unset enabled means true")

	s := Stream{ID: "a", URL: "synth://", Realtime: ptr(false), InferFPS: 2}
	s.ApplyDefaults()
	require.Equal(t, Stream{ID: "a", URL: "synth://", Realtime: ptr(false), InferFPS: 2, Decode: "all", Transport: "auto", ReadTimeout: Duration(10 * time.Second), ReconnectMin: Duration(500 * time.Millisecond), ReconnectMax: Duration(30 * time.Second)}, s)
}

func TestValidationMessages(t *testing.T) {
	const twoModels = `
models:
  - {name: a, bundle: a}
  - {name: b, bundle: b}
`
	for _, tc := range []struct {
		name, in string
		want     []string // each must appear in the error
	}{
		{"infer_fps zero", `
streams:
  - {id: a, url: "synth://"}
  - {id: b, url: "synth://", infer_fps: 0}
`, []string{"streams[1].infer_fps: must be > 0"}},
		{"infer_fps negative", `streams: [{id: a, url: "synth://", infer_fps: -1}]`, []string{"streams[0].infer_fps: must be > 0, got -1"}},
		{"infer_fps NaN", `streams: [{id: a, url: "synth://", infer_fps: .nan}]`, []string{"streams[0].infer_fps: must be > 0"}},
		{"infer_fps too high", `streams: [{id: a, url: "synth://", infer_fps: 241}]`, []string{"streams[0].infer_fps: must be <= 240, got 241"}},
		{"url scheme", `
streams:
  - {id: a, url: "synth://"}
  - {id: b, url: "synth://"}
  - {id: c, url: "http://cam/x"}
`, []string{`streams[2].url: scheme must be rtsp, rtsps, whip, file or synth, got "http"`}},
		{"url without scheme", `streams: [{id: a, url: "/videos/a.mp4"}]`, []string{"streams[0].url: scheme must be rtsp, rtsps, whip, file or synth"}},
		{"url required", `streams: [{id: a}]`, []string{"streams[0].url: required"}},
		{"url unparsable, password not echoed", `streams: [{id: a, url: "rtsp://u:secret@host:bad/x"}]`, []string{"streams[0].url: invalid URL"}},
		{"rtsp without host", `streams: [{id: a, url: "rtsp:///x"}]`, []string{"streams[0].url: rtsp URL needs a host"}},
		{"file without path", `streams: [{id: a, url: "file://"}]`, []string{"streams[0].url: file URL needs a path"}},
		{"duplicate id", `
streams:
  - {id: cam, url: "synth://"}
  - {id: b, url: "synth://"}
  - {id: c, url: "synth://"}
  - {id: cam, url: "synth://"}
`, []string{`streams[3].id: duplicate of streams[0].id "cam"`}},
		{"id required", `streams: [{url: "synth://"}]`, []string{"streams[0].id: required"}},
		{"id charset", `streams: [{id: "a b", url: "synth://"}]`, []string{`streams[0].id: must be 1 to 64 of A-Z a-z 0-9 _ . -, got "a b"`}},
		{"id too long", `streams: [{id: "` + strings.Repeat("x", 65) + `", url: "synth://"}]`, []string{"streams[0].id: must be 1 to 64"}},
		{"id dot-dot", `streams: [{id: "..", url: "synth://"}]`, []string{`streams[0].id: must not be ".."`}},
		{"unknown model", twoModels + `streams: [{id: a, url: "synth://", models: [det]}]`, []string{`streams[0].models[0]: unknown model "det" (models: a, b)`}},
		{"unknown model, none configured", `streams: [{id: a, url: "synth://", models: [det]}]`, []string{`streams[0].models[0]: unknown model "det" (models: none)`}},
		{"model listed twice", twoModels + `streams: [{id: a, url: "synth://", models: [a, a]}]`, []string{`streams[0].models[1]: duplicate of streams[0].models[0] "a"`}},
		{"decode", `streams: [{id: a, url: "synth://", decode: some}]`, []string{`streams[0].decode: must be all or keyframes, got "some"`}},
		{"decode_threads", `streams: [{id: a, url: "synth://", decode_threads: 65}]`, []string{"streams[0].decode_threads: must be between 0 and 64, got 65"}},
		{"listen no port", `listen: localhost`, []string{`listen: must be host:port with a numeric port, got "localhost"`}},
		{"listen bad port", `listen: ":http"`, []string{`listen: must be host:port`}},
		{"shutdown_timeout", `shutdown_timeout: 0s`, []string{"shutdown_timeout: must be > 0, got 0s"}},
		{"log.level", `log: {level: verbose}`, []string{`log.level: must be debug, info, warn or error, got "verbose"`}},
		{"log.format", `log: {format: xml}`, []string{`log.format: must be text or json, got "xml"`}},
		{"runtime.device", `runtime: {device: gpu}`, []string{`runtime.device: must be cpu, purego, cuda:N or tensorrt:N, got "gpu"`}},
		{"runtime.device index", `runtime: {device: "cuda:x"}`, []string{`runtime.device: must be cpu, purego, cuda:N or tensorrt:N, got "cuda:x"`}},
		{"runtime.threads", `runtime: {threads: -1}`, []string{"runtime.threads: must be >= 0, got -1"}},
		{"model name required", `models: [{bundle: b}]`, []string{"models[0].name: required"}},
		{"model bundle required", `models: [{name: a}]`, []string{"models[0].bundle: required"}},
		{"model onnx needs family", `models: [{name: a, bundle: a/b.onnx}]`, []string{"models[0].family: required for a plain ONNX file"}},
		{"model variant", `models: [{name: a, bundle: b, variant: int4}]`, []string{`models[0].variant: must be`}},
		{"model duplicate", twoModels + `  - {name: a, bundle: c}`, []string{`models[2].name: duplicate of models[0].name "a"`}},
		{"model device", `models: [{name: a, bundle: b, device: "tpu:0"}]`, []string{`models[0].device: must be cpu, purego, cuda:N or tensorrt:N, got "tpu:0"`}},
		{"model max_accuracy_loss", `models: [{name: a, bundle: b, max_accuracy_loss: 2}]`, []string{"models[0].max_accuracy_loss: must be between 0 and 1, got 2"}},
		{"model score_threshold", `models: [{name: a, bundle: b, score_threshold: -0.1}]`, []string{"models[0].score_threshold: must be between 0 and 1, got -0.1"}},
		{"batching.max_batch", `batching: {max_batch: 0}`, []string{"batching.max_batch: must be >= 1, got 0"}},
		{"batching.max_wait", `batching: {max_wait: -1ms}`, []string{"batching.max_wait: must be >= 0, got -1ms"}},
		{"tracker.mode", `tracker: {mode: bytetrack}`, []string{`tracker.mode: must be deepsort or sort, got "bytetrack"`}},
		{"tracker.appearance", `tracker: {appearance: bank}`, []string{`tracker.appearance: must be gallery or ema, got "bank"`}},
		{"tracker.ema_alpha", `tracker: {ema_alpha: 1}`, []string{"tracker.ema_alpha: must be in (0, 1), got 1"}},
		{"tracker.max_age", `tracker: {max_age: 0}`, []string{"tracker.max_age: must be >= 1, got 0"}},
		{"tracker.n_init", `tracker: {n_init: 0}`, []string{"tracker.n_init: must be >= 1, got 0"}},
		{"tracker.max_iou_distance", `tracker: {max_iou_distance: 1.5}`, []string{"tracker.max_iou_distance: must be between 0 and 1, got 1.5"}},
		{"tracker.max_cosine_distance", `tracker: {max_cosine_distance: 3}`, []string{"tracker.max_cosine_distance: must be between 0 and 2, got 3"}},
		{"tracker.nn_budget", `tracker: {nn_budget: 0}`, []string{"tracker.nn_budget: must be >= 1, got 0"}},
		{"tracker.low_score_threshold", `tracker: {low_score_threshold: .inf}`, []string{"tracker.low_score_threshold: must be between 0 and 1, got +Inf"}},
		{"jsonl path", `sinks: {jsonl: {enabled: true, path: ""}}`, []string{"sinks.jsonl.path: required when sinks.jsonl.enabled is true"}},
		{"jsonl sizes", `sinks: {jsonl: {max_size_mb: -1, max_backups: -1}}`, []string{
			"sinks.jsonl.max_size_mb: must be >= 0, got -1", "sinks.jsonl.max_backups: must be >= 0, got -1"}},
		{"kafka brokers", `sinks: {kafka: {enabled: true}}`, []string{"sinks.kafka.brokers: required when sinks.kafka.enabled is true"}},
		{"kafka broker address", `sinks: {kafka: {brokers: [kafka]}}`, []string{`sinks.kafka.brokers[0]: must be host:port with a numeric port, got "kafka"`}},
		{"kafka topics", `sinks: {kafka: {detections_topic: "a b", tracks_topic: ""}}`, []string{
			`sinks.kafka.detections_topic: must be 1 to 249 of A-Z a-z 0-9 . _ -, got "a b"`, "sinks.kafka.tracks_topic: required"}},
		{"kafka same topic", `sinks: {kafka: {detections_topic: t, tracks_topic: t}}`, []string{`sinks.kafka.tracks_topic: must differ from sinks.kafka.detections_topic "t"`}},
		{"kafka compression", `sinks: {kafka: {compression: brotli}}`, []string{`sinks.kafka.compression: must be zstd, gzip, snappy, lz4 or none, got "brotli"`}},
		{"kafka spool", `sinks: {kafka: {enabled: true, brokers: ["k:9092"], spool_dir: "", spool_max_mb: 0}}`, []string{
			"sinks.kafka.spool_dir: required when sinks.kafka.enabled is true", "sinks.kafka.spool_max_mb: must be >= 1, got 0"}},
		{"hard_frames", `hard_frames: {enabled: true, dir: "", max_mb: 0, miners: []}`, []string{
			"hard_frames.dir: required when hard_frames.enabled is true", "hard_frames.max_mb: must be >= 1, got 0",
			"hard_frames.miners: required when hard_frames.enabled is true"}},
		{"viewer", `viewer: {max_viewers: 0, bitrate_kbps: -1, key_interval: 10ms}`, []string{
			"viewer.max_viewers: must be >= 1, got 0", "viewer.bitrate_kbps: must be in [0, 100000], got -1",
			"viewer.key_interval: must be in [100ms, 1m], got 10ms"}},
		{"retrain", `retrain: {enabled: true, at: "25:00", labels: gold}`, []string{
			"retrain.model: required when retrain.enabled is true", "retrain.eval: required when retrain.enabled is true",
			"retrain.enabled: needs hard_frames.enabled", `retrain.at: must be HH:MM, got "25:00"`,
			`retrain.labels: must be pre, corrected or both, got "gold"`}},
		{"retrain model", twoModels + `hard_frames: {enabled: true}
retrain: {enabled: true, model: det, eval: "synth://", steps: 0}`, []string{
			`retrain.model: unknown model "det"`, "retrain: needs at or min_new_frames when enabled",
			"retrain: min_new_frames must be >= 0, steps >= 1"}},
		{"api.token", `api: {token: "short secret"}`, []string{"api.token: must be at least 16 characters without white space"}},
		{"hard_frames policies", `hard_frames: {band: {low: 0.5, high: 0.4}, flicker: {window: 0, max_gap: 9, min_iou: 0},
  track_gap: {min: 3, max: 2}, quant_disagreement: {every: 0, min_iou: 1.5, min_f1: 0}, random: {rate: 2},
  per_stream_per_minute: -1, burst: 0, dedup_hamming: 65, queue_size: 0}`, []string{
			"hard_frames.band: must have 0 <= low < high <= 1, got low 0.5, high 0.4",
			"hard_frames.flicker.window: must be in [1, 8], got 0",
			"hard_frames.flicker.max_gap: must be in [1, 8], got 9",
			"hard_frames.flicker.min_iou: must be in (0, 1], got 0",
			"hard_frames.track_gap: must have 1 <= min <= max <= 8, got min 3, max 2",
			"hard_frames.quant_disagreement.every: must be >= 1, got 0",
			"hard_frames.quant_disagreement.min_iou: must be in (0, 1], got 1.5",
			"hard_frames.quant_disagreement.min_f1: must be in (0, 1], got 0",
			"hard_frames.random.rate: must be in [0, 1], got 2",
			"hard_frames.per_stream_per_minute: must be >= 0, got -1",
			"hard_frames.burst: must be >= 1, got 0",
			"hard_frames.dedup_hamming: must be in [-1, 64], got 65",
			"hard_frames.queue_size: must be >= 1, got 0"}},
		{"hard_frames miners", `hard_frames: {miners: [band, blur, band]}`, []string{
			`hard_frames.miners[1]: must be band, flicker, track_gap, quant_disagreement or random, got "blur"`,
			`hard_frames.miners[2]: duplicate of hard_frames.miners[0] "band"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.in))
			require.Error(t, err)
			require.Nil(t, c)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
			require.NotContains(t, err.Error(), "secret", "URLs may hold credentials")
			require.Len(t, strings.Split(err.Error(), "\n"), len(tc.want), "one line per problem: %v", err)
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
listen: nope
log: {level: loud}
streams:
  - {id: a, url: "http://x", infer_fps: 0}
  - {id: a, url: "synth://", models: [m]}
sinks: {kafka: {enabled: true}}
`))
	require.Error(t, err)
	require.Equal(t, []string{
		`listen: must be host:port with a numeric port, got "nope"`,
		`log.level: must be debug, info, warn or error, got "loud"`,
		`streams[0].url: scheme must be rtsp, rtsps, whip, file or synth, got "http"`,
		`streams[0].infer_fps: must be > 0, got 0`,
		`streams[1].models[0]: unknown model "m" (models: none)`,
		`streams[1].id: duplicate of streams[0].id "a"`,
		`sinks.kafka.brokers: required when sinks.kafka.enabled is true`,
	}, strings.Split(err.Error(), "\n"))
}

func TestValidAccepted(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"rtsps with credentials", `streams: [{id: a, url: "rtsps://u:p@cam.local:322/live"}]`},
		{"scheme in capitals", `streams: [{id: a, url: "RTSP://cam/live"}]`},
		{"whip", `streams: [{id: door-1.main_cam, url: "whip://door"}]`},
		{"file", `streams: [{id: a, url: "file:///v/a.mp4", loop: true, realtime: false, decode: keyframes, infer_fps: 240}]`},
		{"listen ipv6", `listen: "[::1]:0"`},
		{"listen all interfaces", `listen: ":8080"`},
		{"devices", `
runtime: {device: "tensorrt:0"}
models: [{name: a, bundle: b, device: "cuda:1"}, {name: b, bundle: b, device: purego}]
streams: [{id: s, url: "synth://", models: [a, b]}]`},
		{"sinks on", `
sinks:
  jsonl: {enabled: true, path: /var/log/vigil.jsonl}
  kafka: {enabled: true, brokers: ["k1:9092", "[::1]:9093"], compression: none}
hard_frames: {enabled: true, miners: [random]}`},
		{"tracker sort", `tracker: {mode: sort, enabled: true}`},
		{"minimal stream", validStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.NoError(t, err)
		})
	}
}

func TestUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		{"top level", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{"line 2: field listen_addr not found"}},
		{"nested section", "log:\n  level: info\n  colour: true\n", []string{"line 3: field colour not found"}},
		{"in a stream", "streams:\n  - id: a\n    url: synth://\n    infer_fsp: 3\n", []string{"line 4: field infer_fsp not found"}},
		{"in a model", "models:\n  - name: a\n    bundle: b\n    threshold: 0.5\n", []string{"line 4: field threshold not found"}},
		{"in a sink", "sinks:\n  kafka:\n    topic: x\n", []string{"line 3: field topic not found"}},
		{"all reported", "a: 1\nstreams:\n  - id: x\n    b: 2\ntracker:\n  c: 3\n", []string{
			"line 1: field a not found", "line 4: field b not found", "line 6: field c not found"}},
		{"camelCase", "shutdownTimeout: 1s\n", []string{"line 1: field shutdownTimeout not found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.Error(t, err)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestMalformedYAML(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"syntax", "streams: [\n", "decoding config"},
		{"duplicate key", "listen: a:1\nlisten: b:2\n", `mapping key "listen" already defined`},
		{"wrong type", "batching:\n  max_batch: lots\n", "line 2: cannot unmarshal !!str `lots` into int"},
		{"scalar document", "hello\n", "cannot unmarshal"},
		{"two documents", "listen: a:1\n---\nlisten: b:2\n", "line 2: a second YAML document"},
		{"list of streams expected", "streams:\n  id: a\n", "line 2: cannot unmarshal !!map into []config.Stream"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestDurationYAML(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{`"250ms"`, 250 * time.Millisecond, ""},
		{`250ms`, 250 * time.Millisecond, ""},
		{`1m30s`, 90 * time.Second, ""},
		{`1.5s`, 1500 * time.Millisecond, ""},
		{`0s`, 0, ""},
		{`10`, 0, "line 2: invalid duration 10: must be a string with a unit"},
		{`1.5`, 0, "line 2: invalid duration 1.5: must be a string with a unit"},
		{`"10"`, 0, `line 2: invalid duration "10": must be a number with a unit`},
		{`soon`, 0, `line 2: invalid duration "soon"`},
		{`true`, 0, "line 2: invalid duration true"},
		{`[1s]`, 0, "line 2: invalid duration: must be a string"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c, err := Parse([]byte("batching:\n  max_wait: " + tc.in + "\n"))
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, Duration(tc.want), c.Batching.MaxWait)
		})
	}

	// Both bad durations and an unknown key are reported together.
	_, err := Parse([]byte("shutdown_timeout: 5\nbatching:\n  max_wait: x\n  extra: 1\n"))
	require.ErrorContains(t, err, "line 1: invalid duration 5")
	require.ErrorContains(t, err, `line 3: invalid duration "x"`)
	require.ErrorContains(t, err, "line 4: field extra not found")

	out, err := yaml.Marshal(struct{ D Duration }{Duration(1500 * time.Millisecond)})
	require.NoError(t, err)
	require.Equal(t, "d: 1.5s\n", string(out))
}

func TestDurationJSON(t *testing.T) {
	b, err := json.Marshal(Duration(250 * time.Millisecond))
	require.NoError(t, err)
	require.JSONEq(t, `"250ms"`, string(b))

	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`"2m"`), &d))
	require.Equal(t, Duration(2*time.Minute), d)
	require.ErrorContains(t, json.Unmarshal([]byte(`250`), &d), "invalid duration 250")
	require.ErrorContains(t, json.Unmarshal([]byte(`"fast"`), &d), `invalid duration "fast"`)
}

func TestDefault(t *testing.T) {
	c := Default()
	require.NoError(t, c.Validate())
	require.Equal(t, "127.0.0.1:8080", c.Listen)
	require.Len(t, c.Models, 3)
	require.Equal(t, "builtin:detector", c.Models[0].Bundle, "Vigil's own detector, inside the binary")
	require.Equal(t, "builtin:segmenter", c.Models[1].Bundle)
	require.Equal(t, "builtin:embedder", c.Models[2].Bundle, "and its re-ID model for the tracker")
	require.Equal(t, "deepsort", c.Tracker.Mode)
	require.False(t, c.Sinks.JSONL.Enabled)
	require.False(t, c.Sinks.Kafka.Enabled)
	require.Equal(t, []Stream{{
		ID: "synth", URL: "synth://?objects=6&w=1280&h=720&fps=15&seed=1",
		InferFPS: 5, Decode: "all", Realtime: ptr(true), Models: []string{"detector", "segmenter", "reid"},
		Transport: "auto", ReadTimeout: Duration(10 * time.Second), ReconnectMin: Duration(500 * time.Millisecond), ReconnectMax: Duration(30 * time.Second),
	}}, c.Streams)

	// Each call is a fresh copy.
	c.Streams[0].ID = "changed"
	*c.Streams[0].Realtime = false
	*c.Tracker.Enabled = false
	d := Default()
	require.Equal(t, "synth", d.Streams[0].ID)
	require.True(t, d.Streams[0].IsRealtime())
	require.True(t, d.Tracker.IsEnabled())
}

func TestExampleParses(t *testing.T) {
	c, err := Load("example.yaml")
	require.NoError(t, err)
	require.Len(t, c.Models, 2)
	require.Len(t, c.Streams, 4)
	require.Equal(t, "change-me", c.Streams[1].Token)
	require.True(t, c.Streams[2].KeyframesOnly())
	require.True(t, c.Streams[2].Loop)
	// The reference shows the defaults: apart from the lists it fills in, it
	// must match the defaults.
	want := &Config{}
	want.ApplyDefaults()
	c.Models, c.Streams, c.Sinks.Kafka.Brokers = nil, nil, nil
	require.Equal(t, want, c)
}

// TestExampleDocumentsEveryKey walks the Config type and checks that every
// yaml key appears in example.yaml, so the reference stays complete.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile("example.yaml")
	require.NoError(t, err)
	var root yaml.Node
	require.NoError(t, yaml.Unmarshal(data, &root))
	seen := map[string]bool{}
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				seen[n.Content[i].Value] = true
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&root)

	// Marshal a config with one of everything; its keys are all the keys.
	full := Default()
	full.Models = []Model{{Name: "m", Bundle: "b"}}
	full.Streams[0].Models = []string{"m"}
	full.Sinks.Kafka.Brokers = []string{"k:9092"}
	out, err := yaml.Marshal(full)
	require.NoError(t, err)
	var all yaml.Node
	require.NoError(t, yaml.Unmarshal(out, &all))
	want := map[string]bool{}
	var walkWant func(n *yaml.Node)
	walkWant = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				want[n.Content[i].Value] = true
			}
		}
		for _, c := range n.Content {
			walkWant(c)
		}
	}
	walkWant(&all)
	for k := range want {
		require.True(t, seen[k], "example.yaml does not show key %q", k)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"example.yaml", "default.yaml", "../deploy/vigil.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(name)
			require.NoError(t, err)

			out, err := yaml.Marshal(c)
			require.NoError(t, err)
			back, err := Parse(out)
			require.NoError(t, err, "re-parsing:\n%s", out)
			require.Equal(t, c, back)

			js, err := json.Marshal(c)
			require.NoError(t, err)
			var fromJSON Config
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&fromJSON))
			require.Equal(t, c, &fromJSON)
		})
	}
}

func TestJSONKeysAreSnakeCase(t *testing.T) {
	js, err := json.Marshal(Default())
	require.NoError(t, err)
	for _, k := range []string{`"shutdown_timeout":"10s"`, `"max_wait":"0s"`, `"hard_frames":`, `"infer_fps":5`,
		`"ort_library":""`, `"max_iou_distance":0.7`, `"spool_max_mb":1024`, `"max_size_mb":100`} {
		require.Contains(t, string(js), k)
	}
}

// TestStreamFromAPI decodes a stream the way the HTTP API does: JSON with
// unknown fields refused, then defaults, then Validate under the "stream"
// path.
func TestStreamFromAPI(t *testing.T) {
	decode := func(body string) (Stream, error) {
		var s Stream
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		err := dec.Decode(&s)
		return s, err
	}
	s, err := decode(`{"id":"cam","url":"rtsp://u:pw@h/x","infer_fps":2,"decode":"keyframes","decode_threads":2,"models":["det"],"realtime":false,"loop":true}`)
	require.NoError(t, err)
	s.ApplyDefaults()
	require.NoError(t, s.Validate("stream", []string{"det"}))
	require.Equal(t, Stream{ID: "cam", URL: "rtsp://u:pw@h/x", InferFPS: 2, Decode: "keyframes", DecodeThreads: 2,
		Models: []string{"det"}, Realtime: ptr(false), Loop: true, Transport: "auto", ReadTimeout: Duration(10 * time.Second), ReconnectMin: Duration(500 * time.Millisecond), ReconnectMax: Duration(30 * time.Second)}, s)

	_, err = decode(`{"id":"cam","url":"synth://","inferFps":2}`)
	require.ErrorContains(t, err, `unknown field "inferFps"`)

	s, err = decode(`{"id":"bad id","url":"ftp://x","models":["nope"]}`)
	require.NoError(t, err)
	s.ApplyDefaults()
	err = s.Validate("stream", nil)
	require.Equal(t, []string{
		`stream.id: must be 1 to 64 of A-Z a-z 0-9 _ . -, got "bad id"`,
		`stream.url: scheme must be rtsp, rtsps, whip, file or synth, got "ftp"`,
		`stream.models[0]: unknown model "nope" (models: none)`,
	}, strings.Split(err.Error(), "\n"))
}

func TestLoadNamesThePath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	_, err := Load(missing)
	require.ErrorIs(t, err, os.ErrNotExist)
	require.ErrorContains(t, err, missing)

	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("streams:\n  - id: a\n    url: synth://\n    fps: 3\n"), 0o600))
	_, err = Load(bad)
	require.ErrorContains(t, err, bad)
	require.ErrorContains(t, err, "line 4: field fps not found")

	invalid := filepath.Join(dir, "invalid.yaml")
	require.NoError(t, os.WriteFile(invalid, []byte("log: {level: loud}\n"), 0o600))
	_, err = Load(invalid)
	require.ErrorContains(t, err, invalid)
	require.ErrorContains(t, err, "log.level:")
}

// TestHardFramesPartialSections: a hard_frames policy section that sets
// one key keeps the defaults of the others, and an explicit zero stays.
func TestHardFramesPartialSections(t *testing.T) {
	c, err := Parse([]byte(`
hard_frames:
  band: {low: 0.1}
  quant_disagreement: {variant: fp32}
  random: {rate: 0}
  per_stream_per_minute: 0
`))
	require.NoError(t, err)
	h := c.HardFrames
	require.Equal(t, HardFramesBand{Low: 0.1, High: 0.45}, h.Band)
	require.Equal(t, HardFramesQuant{Every: 30, Variant: "fp32", MinIoU: 0.5, MinF1: 0.8}, h.QuantDisagreement)
	require.Zero(t, h.Random.Rate)
	require.Zero(t, h.PerStreamPerMinute)
	require.Equal(t, 5, h.Burst)
}
