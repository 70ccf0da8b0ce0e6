// Package config holds the YAML configuration of `vigil serve`.
//
// YAML bytes or a file path go in (Parse, Load); a validated *Config comes
// out, with every key the file leaves out set to its default. Decoding is
// strict: an unknown key is an error that names the key and its line.
// Validation names the key path of each problem
// (`streams[2].url: scheme must be …`) and reports all of them at once.
// Watch polls a config file and hands over each new valid version, for hot
// reload. example.yaml documents every key.
package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole server configuration. A Config from Parse, Load or
// Default is validated and has its defaults set; one built in code gets them
// from ApplyDefaults. It is a plain value: not safe for concurrent mutation.
type Config struct {
	// Listen is the host:port of the HTTP server (API, metrics, viewer).
	// It defaults to "127.0.0.1:8080".
	Listen string `yaml:"listen" json:"listen"`
	// API guards the HTTP API and the viewer's WHEP endpoint.
	API API `yaml:"api" json:"api"`
	// Viewer configures the live overlay viewer (WebRTC playback).
	Viewer Viewer `yaml:"viewer" json:"viewer"`
	// ShutdownTimeout bounds the drain on shutdown: intake stops, queued
	// frames and sinks get this long to finish, then work is cancelled.
	// It defaults to 10s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout" json:"shutdown_timeout"`
	// Log configures the server's log on standard error.
	Log Log `yaml:"log" json:"log"`
	// Runtime chooses the default device and inference runtime.
	Runtime Runtime `yaml:"runtime" json:"runtime"`
	// Models are the model bundles streams can name. It defaults to none:
	// streams are decoded and tracked but not analysed.
	Models []Model `yaml:"models,omitempty" json:"models,omitempty"`
	// Batching configures the cross-stream batcher of each model.
	Batching Batching `yaml:"batching" json:"batching"`
	// Tracker configures the per-stream multi-object tracker.
	Tracker Tracker `yaml:"tracker" json:"tracker"`
	// Streams are the video sources to analyse. It defaults to none.
	Streams []Stream `yaml:"streams,omitempty" json:"streams,omitempty"`
	// Sinks are where results go.
	Sinks Sinks `yaml:"sinks" json:"sinks"`
	// HardFrames configures the hard-frame miner that feeds retraining.
	HardFrames HardFrames `yaml:"hard_frames" json:"hard_frames"`
	// Retrain schedules `vigil retrain` on the hard-frame store.
	Retrain Retrain `yaml:"retrain" json:"retrain"`
}

// Retrain runs `vigil retrain` in a separate process on the hard-frame
// store, at a time of day or when enough new hard frames were kept, and
// lets its gate decide: a candidate that passes is published to the
// model's registry and the server hot-reloads it.
type Retrain struct {
	// Enabled turns the schedule on. It defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Model names the configured model to retrain; its bundle must be a
	// model folder of a registry. Required when enabled.
	Model string `yaml:"model" json:"model"`
	// At is a local time of day, "HH:MM", to retrain every day; empty
	// means no daily run. It defaults to "".
	At string `yaml:"at" json:"at"`
	// MinNewFrames retrains as soon as the miners have kept this many
	// frames since the last run (or the start); 0 means never by count.
	// It defaults to 0.
	MinNewFrames int `yaml:"min_new_frames" json:"min_new_frames"`
	// CheckEvery is how often the schedule is looked at. It defaults to 1m.
	CheckEvery Duration `yaml:"check_every" json:"check_every"`
	// Labels chooses the store's labels: pre (self-training), corrected or
	// both. It defaults to "corrected".
	Labels string `yaml:"labels" json:"labels"`
	// Eval is the held-out data set with ground truth the candidate must
	// improve on (vigil retrain --eval). Required when enabled.
	Eval string `yaml:"eval" json:"eval"`
	// KeepEval is a held-out set the candidate must not get worse on
	// (--keep-eval). It defaults to "".
	KeepEval string `yaml:"keep_eval" json:"keep_eval"`
	// Replay are base-domain sources mixed into fine-tuning (--replay).
	Replay []string `yaml:"replay,omitempty" json:"replay,omitempty"`
	// Margin and MaxDrop are the gate (--margin, --max-drop). They default
	// to 0.02 each.
	Margin  float64 `yaml:"margin" json:"margin"`
	MaxDrop float64 `yaml:"max_drop" json:"max_drop"`
	// Steps is the number of fine-tuning steps. It defaults to 300.
	Steps int `yaml:"steps" json:"steps"`
	// Timeout ends a run that takes longer. It defaults to 2h.
	Timeout Duration `yaml:"timeout" json:"timeout"`
	// Dir keeps each run's candidate bundle and report. It defaults to
	// "retrain" (relative to the working directory).
	Dir string `yaml:"dir" json:"dir"`
}

// API guards /api/ and /whep/. The page, /metrics and the health checks
// stay open.
type API struct {
	// Token is the Bearer token clients must present. Empty (the default)
	// serves only clients on the loopback interface. The VIGIL_API_TOKEN
	// environment variable, when set, overrides it.
	Token string `yaml:"token" json:"-"`
}

// Viewer configures the live overlay viewer: browsers play streams over
// WebRTC (WHEP at /whep/{stream}) with the analysis drawn on top.
type Viewer struct {
	// Enabled turns the viewer on. It defaults to true.
	Enabled *bool `yaml:"enabled" json:"enabled"`
	// MaxViewers bounds the viewers of one stream. It defaults to 16.
	MaxViewers int `yaml:"max_viewers" json:"max_viewers"`
	// BitrateKbps is the target of the encoder that streams without H.264
	// (generated scenes, H.265 cameras) go through; 0 (the default) picks
	// about 0.1 bit per pixel. H.264 streams are forwarded untouched.
	BitrateKbps int `yaml:"bitrate_kbps" json:"bitrate_kbps"`
	// KeyInterval is that encoder's time between key frames, which is how
	// long a new viewer may wait for the picture. It defaults to 2s.
	KeyInterval Duration `yaml:"key_interval" json:"key_interval"`
}

// IsEnabled reports whether the viewer is on.
func (v Viewer) IsEnabled() bool { return v.Enabled == nil || *v.Enabled }

// Log configures logging.
type Log struct {
	// Level is the lowest level logged: debug, info, warn or error.
	// It defaults to "info".
	Level string `yaml:"level" json:"level"`
	// Format is text (logfmt-like key=value) or json. It defaults to "text".
	Format string `yaml:"format" json:"format"`
}

// Runtime chooses where models run unless a model says otherwise.
type Runtime struct {
	// Device is the device profile: cpu (ONNX Runtime on the CPU), purego
	// (the pure-Go runtime, no cgo), cuda:N or tensorrt:N (GPU N).
	// It defaults to "cpu".
	Device string `yaml:"device" json:"device"`
	// ORTLibrary is the path of libonnxruntime.so. It defaults to "": the
	// VIGIL_ORT_LIB environment variable, else the runtime's built-in path.
	ORTLibrary string `yaml:"ort_library" json:"ort_library"`
	// Threads is ONNX Runtime's intra-op thread count. It defaults to 0:
	// chosen by the runtime.
	Threads int `yaml:"threads" json:"threads"`
	// GraphOptimization is ONNX Runtime's graph optimisation level: all,
	// extended, basic or off. It defaults to "all".
	GraphOptimization string `yaml:"graph_optimization" json:"graph_optimization"`
}

// Model is one model bundle the server loads.
type Model struct {
	// Name is how streams refer to the model; required and unique, made of
	// [A-Za-z0-9_.-], at most 64 characters.
	Name string `yaml:"name" json:"name"`
	// Bundle is the path of the bundle folder (model.yaml and one ONNX file
	// per variant), of a model's folder in a registry (its active version
	// is used), or of a plain ONNX file (then Family is required). Required.
	Bundle string `yaml:"bundle" json:"bundle"`
	// Family names the output decoder of a plain ONNX file: yolox,
	// fastestdet, nanodet, ultraface, bodypix, selfie, embedding or
	// centernet. Bundles say it in model.yaml. It defaults to "".
	Family string `yaml:"family,omitempty" json:"family,omitempty"`
	// Variant forces a variant (fp32, int8, fp16) instead of choosing the
	// fastest within max_accuracy_loss by measurement at load. It defaults
	// to "": measure and choose.
	Variant string `yaml:"variant,omitempty" json:"variant,omitempty"`
	// Device overrides runtime.device for this model. It defaults to "":
	// runtime.device.
	Device string `yaml:"device" json:"device"`
	// MaxAccuracyLoss is the largest accuracy loss, as a fraction of the
	// fp32 variant's accuracy, a faster variant (int8, fp16) may have and
	// still be chosen. 0 keeps fp32. It defaults to 0.01.
	MaxAccuracyLoss float64 `yaml:"max_accuracy_loss" json:"max_accuracy_loss"`
	// ScoreThreshold drops detections scoring below it, in [0, 1].
	// It defaults to 0.3.
	ScoreThreshold float64 `yaml:"score_threshold" json:"score_threshold"`
}

// Batching configures each model's batcher, shared by all streams.
type Batching struct {
	// MaxBatch is the most frames run in one model call. It defaults to 8.
	MaxBatch int `yaml:"max_batch" json:"max_batch"`
	// MaxWait is how long a batch waits to fill after its first frame. A
	// batch never waits for more frames than there are active streams.
	// It defaults to 0: derived from the streams' rates (a fifth of the
	// time between a stream's frames, at most 20ms).
	MaxWait Duration `yaml:"max_wait" json:"max_wait"`
}

// Tracker configures Deep SORT (Wojke et al. 2017) with a ByteTrack-style
// second pass on low-score detections.
type Tracker struct {
	// Enabled turns tracking on; nil means true. It defaults to true.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Mode is deepsort (motion and appearance) or sort (motion and IoU
	// only, no re-ID model needed). It defaults to "deepsort".
	Mode string `yaml:"mode" json:"mode"`
	// Appearance is how a track remembers its look in deepsort mode:
	// gallery (its last nn_budget embeddings, the nearest counts; Deep
	// SORT) or ema (one exponentially smoothed embedding; StrongSORT).
	// It defaults to "gallery".
	Appearance string `yaml:"appearance" json:"appearance"`
	// EMAAlpha is the weight of a track's old embedding in ema appearance,
	// in (0, 1). It defaults to 0.9.
	EMAAlpha float64 `yaml:"ema_alpha" json:"ema_alpha"`
	// IoUAppearanceGate makes IoU matching refuse a track and a detection
	// whose embeddings are further apart than max_cosine_distance (Deep
	// SORT's IoU matching ignores appearance). It helps when the re-ID
	// model separates people well at max_cosine_distance. It defaults to
	// false.
	IoUAppearanceGate bool `yaml:"iou_appearance_gate" json:"iou_appearance_gate"`
	// MaxAge is how many frames a track may miss before it is deleted.
	// It defaults to 30.
	MaxAge int `yaml:"max_age" json:"max_age"`
	// NInit is how many consecutive hits confirm a tentative track.
	// It defaults to 3.
	NInit int `yaml:"n_init" json:"n_init"`
	// MaxIoUDistance is the largest 1-IoU accepted in IoU matching, in
	// [0, 1]. It defaults to 0.7.
	MaxIoUDistance float64 `yaml:"max_iou_distance" json:"max_iou_distance"`
	// MaxCosineDistance is the largest appearance distance accepted in the
	// matching cascade, in [0, 2]. It defaults to 0.2.
	MaxCosineDistance float64 `yaml:"max_cosine_distance" json:"max_cosine_distance"`
	// NNBudget is how many recent embeddings each track's gallery keeps.
	// It defaults to 100.
	NNBudget int `yaml:"nn_budget" json:"nn_budget"`
	// LowScoreThreshold is the lowest detection score considered in the
	// second pass, which matches detections scoring below the model's
	// score_threshold to tracks left unmatched, in [0, 1]; 1 turns the pass
	// off. It defaults to 0.1.
	LowScoreThreshold float64 `yaml:"low_score_threshold" json:"low_score_threshold"`
}

// IsEnabled reports whether tracking is on; an unset Enabled means true.
func (t Tracker) IsEnabled() bool { return t.Enabled == nil || *t.Enabled }

// Stream is one video source. The HTTP API decodes a POSTed stream into it
// from JSON with the same snake_case keys.
type Stream struct {
	// ID names the stream in metrics, results and the API; required and
	// unique, made of [A-Za-z0-9_.-], at most 64 characters.
	ID string `yaml:"id" json:"id"`
	// URL is the source; required. Its scheme chooses the source: rtsp,
	// rtsps, whip, file or synth.
	URL string `yaml:"url" json:"url"`
	// InferFPS is how many frames per second are analysed, in (0, 240];
	// frames in between are decoded as needed but not analysed.
	// It defaults to 5.
	InferFPS float64 `yaml:"infer_fps" json:"infer_fps"`
	// Decode is all (decode every frame) or keyframes (decode only IDR
	// frames: much cheaper, at most one analysed frame per GOP).
	// It defaults to "all".
	Decode string `yaml:"decode" json:"decode"`
	// DecodeThreads is the decoder's thread count, 0 to 64. It defaults
	// to 0: chosen by the decoder.
	DecodeThreads int `yaml:"decode_threads" json:"decode_threads"`
	// Models names the models, from the config's models, run on each
	// analysed frame. It defaults to none.
	Models []string `yaml:"models,omitempty" json:"models,omitempty"`
	// Realtime paces a file source at the file's frame rate, like a live
	// camera; false reads it as fast as the pipeline allows. Other sources
	// ignore it. nil means true. It defaults to true.
	Realtime *bool `yaml:"realtime,omitempty" json:"realtime,omitempty"`
	// Loop starts a file source over when it ends. It defaults to false.
	Loop bool `yaml:"loop" json:"loop"`
	// Transport is how an RTSP source receives media: tcp (interleaved in
	// the RTSP connection), udp, or auto (UDP, falling back to TCP). It
	// defaults to "auto".
	Transport string `yaml:"transport" json:"transport"`
	// ReadTimeout is how long a live source may send nothing before it is
	// considered stalled and reconnected. It defaults to 10s.
	ReadTimeout Duration `yaml:"read_timeout" json:"read_timeout"`
	// ReconnectMin and ReconnectMax bound the delay before reconnecting a
	// failed source; the delay doubles after each failure, with jitter.
	// They default to 500ms and 30s.
	ReconnectMin Duration `yaml:"reconnect_min" json:"reconnect_min"`
	ReconnectMax Duration `yaml:"reconnect_max" json:"reconnect_max"`
	// Token is the Bearer token a WHIP publisher must present for this
	// stream; empty accepts any publisher (only sensible on loopback). It is
	// never logged or shown by the API. It defaults to "".
	Token string `yaml:"token,omitempty" json:"token,omitempty"`
}

// KeyframesOnly reports whether the stream decodes only key frames.
func (s Stream) KeyframesOnly() bool { return s.Decode == DecodeKeyframes }

// IsRealtime reports whether a file source is paced at its frame rate; an
// unset Realtime means true.
func (s Stream) IsRealtime() bool { return s.Realtime == nil || *s.Realtime }

// Values of Stream.Decode.
const (
	DecodeAll       = "all"
	DecodeKeyframes = "keyframes"

	// RTSP transports for Stream.Transport.
	TransportAuto = "auto"
	TransportTCP  = "tcp"
	TransportUDP  = "udp"
)

// Sinks are the result sinks.
type Sinks struct {
	// JSONL writes one JSON result per line to a file or standard output.
	JSONL JSONL `yaml:"jsonl" json:"jsonl"`
	// Kafka produces results to Kafka topics.
	Kafka Kafka `yaml:"kafka" json:"kafka"`
}

// JSONL configures the JSON-lines sink.
type JSONL struct {
	// Enabled turns the sink on. It defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Path is the output file; "-" is standard output. It defaults to "-".
	Path string `yaml:"path" json:"path"`
	// MaxSizeMB rotates the file when it would grow past this many MiB;
	// 0 never rotates. Ignored for standard output. It defaults to 100.
	MaxSizeMB int `yaml:"max_size_mb" json:"max_size_mb"`
	// MaxBackups is how many rotated files are kept. It defaults to 5.
	MaxBackups int `yaml:"max_backups" json:"max_backups"`
}

// Kafka configures the Kafka sink. While brokers are unreachable, messages
// go to an on-disk spool and are replayed oldest first.
type Kafka struct {
	// Enabled turns the sink on. It defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Brokers are the bootstrap brokers, host:port each; required when
	// enabled. It defaults to none.
	Brokers []string `yaml:"brokers,omitempty" json:"brokers,omitempty"`
	// DetectionsTopic gets one message per analysed frame.
	// It defaults to "vigil.detections".
	DetectionsTopic string `yaml:"detections_topic" json:"detections_topic"`
	// TracksTopic gets one message per track event (started, ended).
	// It defaults to "vigil.tracks".
	TracksTopic string `yaml:"tracks_topic" json:"tracks_topic"`
	// Compression is zstd, gzip, snappy, lz4 or none. It defaults to "zstd".
	Compression string `yaml:"compression" json:"compression"`
	// SpoolDir holds messages while the brokers are unreachable.
	// It defaults to "vigil-spool" (relative to the working directory).
	SpoolDir string `yaml:"spool_dir" json:"spool_dir"`
	// SpoolMaxMB bounds the spool in MiB; past it the oldest messages are
	// dropped and counted. It defaults to 1024.
	SpoolMaxMB int `yaml:"spool_max_mb" json:"spool_max_mb"`
	// SpoolFsync is when spool writes are forced to disk: always (every
	// write), batch (at most once a second, on segment change and on close)
	// or never (left to the OS). It defaults to "batch".
	SpoolFsync string `yaml:"spool_fsync" json:"spool_fsync"`
	// BatchMessages caps the messages in one produce request.
	// It defaults to 1000.
	BatchMessages int `yaml:"batch_messages" json:"batch_messages"`
	// BatchBytes caps one produce request in bytes; a single message larger
	// than this is dropped and counted. It defaults to 1048576 (1 MiB, the
	// broker's default message.max.bytes).
	BatchBytes int `yaml:"batch_bytes" json:"batch_bytes"`
	// BatchTimeout is how long a partial batch waits for more messages.
	// It defaults to 50ms.
	BatchTimeout Duration `yaml:"batch_timeout" json:"batch_timeout"`
	// BufferMB bounds the messages held in memory while they wait for the
	// brokers, in MiB, when write_ahead is false; past it messages go to
	// the spool. It defaults to 32.
	BufferMB int `yaml:"buffer_mb" json:"buffer_mb"`
	// WriteAhead appends every message to the spool before the sink takes
	// the next result and acknowledges it there when the brokers do, so
	// results survive a killed process; false keeps messages in memory
	// until a write fails, which is faster but loses them on a kill. nil
	// means true. It defaults to true.
	WriteAhead *bool `yaml:"write_ahead,omitempty" json:"write_ahead,omitempty"`
}

// HardFrames configures the hard-frame miner, which stores frames the
// models found hard for `vigil retrain`.
type HardFrames struct {
	// Enabled turns mining on. It defaults to false.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Dir is the hard-frame store. It defaults to "hardframes" (relative to
	// the working directory).
	Dir string `yaml:"dir" json:"dir"`
	// MaxMB bounds the store in MiB. It defaults to 2048.
	MaxMB int `yaml:"max_mb" json:"max_mb"`
	// Miners choose frames: band (scores near the threshold), flicker
	// (detections without neighbours in adjacent frames), track_gap (a
	// confirmed track's missed frames), quant_disagreement (int8 and fp32
	// disagree), random (a control sample). It defaults to all five.
	Miners []string `yaml:"miners" json:"miners"`
	// Band configures the band miner.
	Band HardFramesBand `yaml:"band" json:"band"`
	// Flicker configures the flicker miner.
	Flicker HardFramesFlicker `yaml:"flicker" json:"flicker"`
	// TrackGap configures the track_gap miner.
	TrackGap HardFramesTrackGap `yaml:"track_gap" json:"track_gap"`
	// QuantDisagreement configures the quant_disagreement miner.
	QuantDisagreement HardFramesQuant `yaml:"quant_disagreement" json:"quant_disagreement"`
	// Random configures the random miner.
	Random HardFramesRandom `yaml:"random" json:"random"`
	// PerStreamPerMinute caps the frames kept per stream and minute of
	// stream time (a token bucket); 0 means no cap. It defaults to 30.
	PerStreamPerMinute int `yaml:"per_stream_per_minute" json:"per_stream_per_minute"`
	// Burst is the token bucket's size: how many frames a stream may keep
	// at once after a quiet spell. It defaults to 5.
	Burst int `yaml:"burst" json:"burst"`
	// DedupHamming drops a frame whose 64-bit perceptual hash (dHash of the
	// luma) lies within this Hamming distance of one of the stream's last
	// 64 kept frames, 0-64; 0 drops only equal hashes, -1 keeps
	// near-duplicates (a plain sample). It defaults to 6.
	DedupHamming int `yaml:"dedup_hamming" json:"dedup_hamming"`
	// QueueSize bounds the frames waiting to be written; past it frames
	// are dropped and counted. It defaults to 32.
	QueueSize int `yaml:"queue_size" json:"queue_size"`
}

// HardFramesBand keeps frames with a detection scoring within [Low, High),
// a band around the detector's score threshold (detections below the
// threshold arrive when the tracker's low-score pass kept them).
type HardFramesBand struct {
	// Low and High bound the band, 0 <= Low < High <= 1. They default to
	// 0.2 and 0.45.
	Low  float64 `yaml:"low" json:"low"`
	High float64 `yaml:"high" json:"high"`
}

// HardFramesFlicker keeps frames where detections flicker: a detection
// with no match in the Window analysed frames before and after it (a
// likely false positive), or an object absent for 1 to MaxGap analysed
// frames between two matches (a likely miss; the gap frames are kept).
// Jin et al., "Unsupervised Hard Example Mining from Videos for Improved
// Object Detection", ECCV 2018.
type HardFramesFlicker struct {
	// Window is how many analysed frames on each side an isolated
	// detection has no match in, 1-8. It defaults to 1.
	Window int `yaml:"window" json:"window"`
	// MaxGap is the longest absence that counts as a flicker, 1-8. It
	// defaults to 3.
	MaxGap int `yaml:"max_gap" json:"max_gap"`
	// MinIoU is the overlap at which two detections of one class in
	// neighbouring frames match, in (0, 1]. It defaults to 0.5.
	MinIoU float64 `yaml:"min_iou" json:"min_iou"`
}

// HardFramesTrackGap keeps the frames a confirmed track missed when it is
// found again after Min to Max analysed frames, labelled with the track's
// box interpolated across the gap.
type HardFramesTrackGap struct {
	// Min and Max bound the gap in analysed frames, 1 <= Min <= Max <= 8.
	// They default to 1 and 3.
	Min int `yaml:"min" json:"min"`
	Max int `yaml:"max" json:"max"`
}

// HardFramesQuant runs the detector's other variant (fp32 beside int8, or
// int8 beside fp32) on sampled frames and keeps those where the two
// disagree: the F1 score of matching their detections is below MinF1.
type HardFramesQuant struct {
	// Every samples each stream's every Every-th analysed frame, >= 1. It
	// defaults to 30.
	Every int `yaml:"every" json:"every"`
	// Variant is the variant to compare with; "" (the default) takes the
	// bundle's first variant other than the serving one.
	Variant string `yaml:"variant" json:"variant"`
	// MinIoU is the overlap at which two detections of one class match,
	// in (0, 1]. It defaults to 0.5.
	MinIoU float64 `yaml:"min_iou" json:"min_iou"`
	// MinF1 is the agreement below which a frame is kept, in (0, 1]. It
	// defaults to 0.8.
	MinF1 float64 `yaml:"min_f1" json:"min_f1"`
}

// HardFramesRandom keeps a random sample of analysed frames as a control.
type HardFramesRandom struct {
	// Rate is the probability of keeping each analysed frame, 0-1. It
	// defaults to 0.01.
	Rate float64 `yaml:"rate" json:"rate"`
	// Seed picks the sample: the same seed keeps the same frames of a
	// replayed stream, another seed another sample. It defaults to 1.
	Seed uint64 `yaml:"seed" json:"seed"`
}

// Miner names for HardFrames.Miners.
const (
	MinerBand              = "band"
	MinerFlicker           = "flicker"
	MinerTrackGap          = "track_gap"
	MinerQuantDisagreement = "quant_disagreement"
	MinerRandom            = "random"
)

var allMiners = []string{MinerBand, MinerFlicker, MinerTrackGap, MinerQuantDisagreement, MinerRandom}

//go:embed default.yaml
var defaultYAML []byte

// Default returns the embedded default config (default.yaml): one synthetic
// stream, no models, no sinks. Each call returns a new Config.
func Default() *Config {
	c, err := Parse(defaultYAML)
	if err != nil {
		panic("config: the embedded default.yaml is invalid: " + err.Error())
	}
	return c
}

// Parse decodes a YAML config strictly, sets the defaults of the keys it
// leaves out and validates it. Empty input gives the default config with no
// streams. Keys present in the input keep their value even when it is zero
// (max_backups: 0 keeps no backups), because decoding starts from the
// defaults rather than filling zeros afterwards.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	c.ApplyDefaults()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, fmt.Errorf("decoding config: %w", err)
		}
		return nil, fmt.Errorf("decoding config: line %d: a second YAML document; a config is one document", next.Line)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the config file at path and parses it with Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("loading config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("loading config %s: %w", path, err)
	}
	return c, nil
}

// ApplyDefaults sets every zero-valued field, in c and in each of its models
// and streams, to its default. For a config built in code; Parse has
// already set the defaults of what its input left out.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Listen, "127.0.0.1:8080")
	setDefault(&c.ShutdownTimeout, Duration(10*time.Second))
	if c.Viewer.Enabled == nil {
		c.Viewer.Enabled = ptr(true)
	}
	setDefault(&c.Viewer.MaxViewers, 16)
	setDefault(&c.Viewer.KeyInterval, Duration(2*time.Second))
	setDefault(&c.Log.Level, "info")
	setDefault(&c.Log.Format, "text")
	setDefault(&c.Runtime.Device, "cpu")
	for i := range c.Models {
		c.Models[i].applyDefaults()
	}
	setDefault(&c.Runtime.GraphOptimization, "all")
	setDefault(&c.Batching.MaxBatch, 8)
	t := &c.Tracker
	if t.Enabled == nil {
		t.Enabled = ptr(true)
	}
	setDefault(&t.Mode, "deepsort")
	setDefault(&t.Appearance, "gallery")
	setDefault(&t.EMAAlpha, 0.9)
	setDefault(&t.MaxAge, 30)
	setDefault(&t.NInit, 3)
	setDefault(&t.MaxIoUDistance, 0.7)
	setDefault(&t.MaxCosineDistance, 0.2)
	setDefault(&t.NNBudget, 100)
	setDefault(&t.LowScoreThreshold, 0.1)
	for i := range c.Streams {
		c.Streams[i].ApplyDefaults()
	}
	j := &c.Sinks.JSONL
	setDefault(&j.Path, "-")
	setDefault(&j.MaxSizeMB, 100)
	setDefault(&j.MaxBackups, 5)
	k := &c.Sinks.Kafka
	setDefault(&k.DetectionsTopic, "vigil.detections")
	setDefault(&k.TracksTopic, "vigil.tracks")
	setDefault(&k.Compression, "zstd")
	setDefault(&k.SpoolDir, "vigil-spool")
	setDefault(&k.SpoolMaxMB, 1024)
	setDefault(&k.SpoolFsync, "batch")
	setDefault(&k.BatchMessages, 1000)
	setDefault(&k.BatchBytes, 1<<20)
	setDefault(&k.BatchTimeout, Duration(50*time.Millisecond))
	setDefault(&k.BufferMB, 32)
	if k.WriteAhead == nil {
		k.WriteAhead = ptr(true)
	}
	h := &c.HardFrames
	setDefault(&h.Dir, "hardframes")
	setDefault(&h.MaxMB, 2048)
	if h.Miners == nil {
		h.Miners = append([]string(nil), allMiners...)
	}
	setDefault(&h.Band.Low, 0.2)
	setDefault(&h.Band.High, 0.45)
	setDefault(&h.Flicker.Window, 1)
	setDefault(&h.Flicker.MaxGap, 3)
	setDefault(&h.Flicker.MinIoU, 0.5)
	setDefault(&h.TrackGap.Min, 1)
	setDefault(&h.TrackGap.Max, 3)
	setDefault(&h.QuantDisagreement.Every, 30)
	setDefault(&h.QuantDisagreement.MinIoU, 0.5)
	setDefault(&h.QuantDisagreement.MinF1, 0.8)
	setDefault(&h.Random.Rate, 0.01)
	setDefault(&h.Random.Seed, 1)
	setDefault(&h.PerStreamPerMinute, 30)
	setDefault(&h.Burst, 5)
	setDefault(&h.DedupHamming, 6)
	setDefault(&h.QueueSize, 32)
	rt := &c.Retrain
	setDefault(&rt.CheckEvery, Duration(time.Minute))
	setDefault(&rt.Labels, "corrected")
	setDefault(&rt.Margin, 0.02)
	setDefault(&rt.MaxDrop, 0.02)
	setDefault(&rt.Steps, 300)
	setDefault(&rt.Timeout, Duration(2*time.Hour))
	setDefault(&rt.Dir, "retrain")
}

func (m *Model) applyDefaults() {
	setDefault(&m.MaxAccuracyLoss, 0.01)
	setDefault(&m.ScoreThreshold, 0.3)
}

// ApplyDefaults sets every zero-valued field of s to its default. For a
// stream built in code or decoded from JSON by the API.
func (s *Stream) ApplyDefaults() {
	setDefault(&s.InferFPS, 5)
	setDefault(&s.Decode, DecodeAll)
	setDefault(&s.Transport, TransportAuto)
	setDefault(&s.ReadTimeout, Duration(10*time.Second))
	setDefault(&s.ReconnectMin, Duration(500*time.Millisecond))
	setDefault(&s.ReconnectMax, Duration(30*time.Second))
	if s.Realtime == nil {
		s.Realtime = ptr(true)
	}
}

// UnmarshalYAML decodes a model onto its defaults, so a key written as 0
// stays 0. It uses yaml's older callback interface because that one keeps
// the decoder's KnownFields setting; Node.Decode would drop it.
func (m *Model) UnmarshalYAML(unmarshal func(any) error) error {
	type model Model // no methods: no recursion
	var v Model
	v.applyDefaults()
	if err := unmarshal((*model)(&v)); err != nil {
		return err
	}
	*m = v
	return nil
}

// UnmarshalYAML decodes a stream onto its defaults, so a key written as 0
// stays 0 (and infer_fps: 0 is reported rather than replaced). See
// Model.UnmarshalYAML for the interface.
func (s *Stream) UnmarshalYAML(unmarshal func(any) error) error {
	type stream Stream
	var v Stream
	v.ApplyDefaults()
	if err := unmarshal((*stream)(&v)); err != nil {
		return err
	}
	*s = v
	return nil
}

// Duration is a time.Duration written in YAML and JSON as a string that
// time.ParseDuration reads, such as "250ms" or "1m30s". Bare numbers are
// rejected: a unit-less 10 could mean seconds or nanoseconds.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string. A malformed value is reported as a
// yaml.TypeError with its line, so decoding goes on and reports every
// problem in the file at once.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: invalid duration: must be a string with a unit, like \"250ms\"", n.Line)}}
	}
	if n.ShortTag() != "!!str" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: invalid duration %s: must be a string with a unit, like \"250ms\"", n.Line, n.Value)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: invalid duration %q: must be a number with a unit, like \"250ms\"", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes d as a JSON duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("invalid duration %s: must be a string with a unit, like \"250ms\"", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %s: must be a number with a unit, like \"250ms\"", strconv.Quote(s))
	}
	*d = Duration(v)
	return nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func ptr[T any](v T) *T { return &v }
