package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// idPattern is what stream IDs and model names are made of: they appear in
// URL paths, metric labels and file names.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// kafkaTopicPattern is Kafka's own rule for topic names.
var kafkaTopicPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,249}$`)

var (
	schemes            = []string{"rtsp", "rtsps", "whip", "file", "synth"}
	logLevels          = []string{"debug", "info", "warn", "error"}
	logFormats         = []string{"text", "json"}
	trackerModes       = []string{"deepsort", "sort"}
	trackerAppearances = []string{"gallery", "ema"}
	decodeModes        = []string{DecodeAll, DecodeKeyframes}
	transports         = []string{TransportAuto, TransportTCP, TransportUDP}
	compressions       = []string{"zstd", "gzip", "snappy", "lz4", "none"}
	spoolFsyncs        = []string{"always", "batch", "never"}
)

// maxInferFPS bounds infer_fps: well above any camera, low enough to catch
// a frame interval written in place of a rate.
const maxInferFPS = 240

// problems collects validation errors, each prefixed with its key path.
type problems []error

func (p *problems) add(path, msg string) { *p = append(*p, errors.New(path+": "+msg)) }

func (p *problems) addf(path, format string, args ...any) { p.add(path, fmt.Sprintf(format, args...)) }

func (p *problems) err() error { return errors.Join(*p...) }

// Validate checks the whole config and returns every problem it finds,
// joined with errors.Join; each names its key path, such as
// `streams[1].infer_fps: must be > 0, got 0`.
func (c *Config) Validate() error {
	var p problems
	checkHostPort(&p, "listen", c.Listen)
	if c.ShutdownTimeout <= 0 {
		p.addf("shutdown_timeout", "must be > 0, got %s", c.ShutdownTimeout)
	}
	checkOneOf(&p, "log.level", c.Log.Level, logLevels)
	checkOneOf(&p, "log.format", c.Log.Format, logFormats)
	checkDevice(&p, "runtime.device", c.Runtime.Device)
	checkOneOf(&p, "runtime.graph_optimization", c.Runtime.GraphOptimization, []string{"all", "extended", "basic", "off"})
	if c.Runtime.Threads < 0 {
		p.addf("runtime.threads", "must be >= 0, got %d", c.Runtime.Threads)
	}

	names := make([]string, 0, len(c.Models))
	firstModel := map[string]int{}
	for i, m := range c.Models {
		path := fmt.Sprintf("models[%d]", i)
		checkID(&p, path+".name", m.Name)
		if j, dup := firstModel[m.Name]; dup && m.Name != "" {
			p.addf(path+".name", "duplicate of models[%d].name %q", j, m.Name)
		} else {
			firstModel[m.Name] = i
		}
		names = append(names, m.Name)
		if m.Bundle == "" {
			p.add(path+".bundle", "required")
		}
		if strings.HasSuffix(strings.ToLower(m.Bundle), ".onnx") && m.Family == "" {
			p.add(path+".family", "required for a plain ONNX file")
		}
		checkOneOf(&p, path+".variant", m.Variant, []string{"", "fp32", "fp16", "int8"})
		if m.Device != "" {
			checkDevice(&p, path+".device", m.Device)
		}
		checkRange(&p, path+".max_accuracy_loss", m.MaxAccuracyLoss, 0, 1)
		checkRange(&p, path+".score_threshold", m.ScoreThreshold, 0, 1)
	}

	if c.Batching.MaxBatch < 1 {
		p.addf("batching.max_batch", "must be >= 1, got %d", c.Batching.MaxBatch)
	}
	if c.Batching.MaxWait < 0 {
		p.addf("batching.max_wait", "must be >= 0, got %s", c.Batching.MaxWait)
	}

	t := c.Tracker
	checkOneOf(&p, "tracker.mode", t.Mode, trackerModes)
	checkOneOf(&p, "tracker.appearance", t.Appearance, trackerAppearances)
	if !(t.EMAAlpha > 0 && t.EMAAlpha < 1) {
		p.addf("tracker.ema_alpha", "must be in (0, 1), got %g", t.EMAAlpha)
	}
	if t.MaxAge < 1 {
		p.addf("tracker.max_age", "must be >= 1, got %d", t.MaxAge)
	}
	if t.NInit < 1 {
		p.addf("tracker.n_init", "must be >= 1, got %d", t.NInit)
	}
	checkRange(&p, "tracker.max_iou_distance", t.MaxIoUDistance, 0, 1)
	checkRange(&p, "tracker.max_cosine_distance", t.MaxCosineDistance, 0, 2)
	if t.NNBudget < 1 {
		p.addf("tracker.nn_budget", "must be >= 1, got %d", t.NNBudget)
	}
	checkRange(&p, "tracker.low_score_threshold", t.LowScoreThreshold, 0, 1)

	firstStream := map[string]int{}
	for i := range c.Streams {
		s := &c.Streams[i]
		path := fmt.Sprintf("streams[%d]", i)
		if err := s.Validate(path, names); err != nil {
			p = append(p, err)
		}
		if j, dup := firstStream[s.ID]; dup && s.ID != "" {
			p.addf(path+".id", "duplicate of streams[%d].id %q", j, s.ID)
		} else {
			firstStream[s.ID] = i
		}
	}

	j := c.Sinks.JSONL
	if j.Enabled && j.Path == "" {
		p.add("sinks.jsonl.path", "required when sinks.jsonl.enabled is true")
	}
	if j.MaxSizeMB < 0 {
		p.addf("sinks.jsonl.max_size_mb", "must be >= 0, got %d", j.MaxSizeMB)
	}
	if j.MaxBackups < 0 {
		p.addf("sinks.jsonl.max_backups", "must be >= 0, got %d", j.MaxBackups)
	}

	k := c.Sinks.Kafka
	if k.Enabled && len(k.Brokers) == 0 {
		p.add("sinks.kafka.brokers", "required when sinks.kafka.enabled is true")
	}
	for i, b := range k.Brokers {
		checkHostPort(&p, fmt.Sprintf("sinks.kafka.brokers[%d]", i), b)
	}
	checkTopic(&p, "sinks.kafka.detections_topic", k.DetectionsTopic)
	checkTopic(&p, "sinks.kafka.tracks_topic", k.TracksTopic)
	if k.DetectionsTopic == k.TracksTopic && k.DetectionsTopic != "" {
		p.addf("sinks.kafka.tracks_topic", "must differ from sinks.kafka.detections_topic %q", k.DetectionsTopic)
	}
	checkOneOf(&p, "sinks.kafka.compression", k.Compression, compressions)
	if k.Enabled && k.SpoolDir == "" {
		p.add("sinks.kafka.spool_dir", "required when sinks.kafka.enabled is true")
	}
	if k.SpoolMaxMB < 1 {
		p.addf("sinks.kafka.spool_max_mb", "must be >= 1, got %d", k.SpoolMaxMB)
	}
	checkOneOf(&p, "sinks.kafka.spool_fsync", k.SpoolFsync, spoolFsyncs)
	if k.BatchMessages < 1 {
		p.addf("sinks.kafka.batch_messages", "must be >= 1, got %d", k.BatchMessages)
	}
	if k.BatchBytes < 1024 {
		p.addf("sinks.kafka.batch_bytes", "must be >= 1024, got %d", k.BatchBytes)
	}
	if k.BatchTimeout < 0 {
		p.addf("sinks.kafka.batch_timeout", "must be >= 0, got %s", k.BatchTimeout)
	}
	if k.BufferMB < 1 {
		p.addf("sinks.kafka.buffer_mb", "must be >= 1, got %d", k.BufferMB)
	}

	if v := c.Viewer; v.MaxViewers < 1 {
		p.addf("viewer.max_viewers", "must be >= 1, got %d", v.MaxViewers)
	}
	if v := c.Viewer; v.BitrateKbps < 0 || v.BitrateKbps > 100_000 {
		p.addf("viewer.bitrate_kbps", "must be in [0, 100000], got %d", v.BitrateKbps)
	}
	if v := c.Viewer; v.KeyInterval < Duration(100*time.Millisecond) || v.KeyInterval > Duration(time.Minute) {
		p.addf("viewer.key_interval", "must be in [100ms, 1m], got %s", time.Duration(v.KeyInterval))
	}
	if t := c.API.Token; t != "" && (len(t) < 16 || strings.ContainsAny(t, " \t\r\n")) {
		p.add("api.token", "must be at least 16 characters without white space")
	}
	if rt := c.Retrain; rt.Enabled {
		switch {
		case rt.Model == "":
			p.add("retrain.model", "required when retrain.enabled is true")
		case !slices.ContainsFunc(c.Models, func(m Model) bool { return m.Name == rt.Model }):
			p.addf("retrain.model", "unknown model %q", rt.Model)
		}
		if rt.Eval == "" {
			p.add("retrain.eval", "required when retrain.enabled is true")
		}
		if rt.At == "" && rt.MinNewFrames <= 0 {
			p.add("retrain", "needs at or min_new_frames when enabled")
		}
		if !c.HardFrames.Enabled {
			p.add("retrain.enabled", "needs hard_frames.enabled: it retrains on the hard-frame store")
		}
	}
	if rt := c.Retrain; rt.At != "" {
		if _, err := time.Parse("15:04", rt.At); err != nil {
			p.addf("retrain.at", "must be HH:MM, got %q", rt.At)
		}
	}
	if rt := c.Retrain; rt.MinNewFrames < 0 || rt.Steps < 1 || rt.CheckEvery <= 0 || rt.Timeout <= 0 {
		p.addf("retrain", "min_new_frames must be >= 0, steps >= 1, check_every and timeout > 0 (got %d, %d, %s, %s)",
			rt.MinNewFrames, rt.Steps, time.Duration(rt.CheckEvery), time.Duration(rt.Timeout))
	}
	checkOneOf(&p, "retrain.labels", c.Retrain.Labels, []string{"pre", "corrected", "both"})
	h := c.HardFrames
	if h.Enabled && h.Dir == "" {
		p.add("hard_frames.dir", "required when hard_frames.enabled is true")
	}
	if h.MaxMB < 1 {
		p.addf("hard_frames.max_mb", "must be >= 1, got %d", h.MaxMB)
	}
	if h.Enabled && len(h.Miners) == 0 {
		p.add("hard_frames.miners", "required when hard_frames.enabled is true")
	}
	for i, m := range h.Miners {
		path := fmt.Sprintf("hard_frames.miners[%d]", i)
		if !slices.Contains(allMiners, m) {
			p.addf(path, "must be %s, got %q", orList(allMiners), m)
		} else if j := slices.Index(h.Miners, m); j < i {
			p.addf(path, "duplicate of hard_frames.miners[%d] %q", j, m)
		}
	}
	if b := h.Band; !(b.Low >= 0 && b.Low < b.High && b.High <= 1) {
		p.addf("hard_frames.band", "must have 0 <= low < high <= 1, got low %g, high %g", b.Low, b.High)
	}
	if f := h.Flicker; f.Window < 1 || f.Window > 8 {
		p.addf("hard_frames.flicker.window", "must be in [1, 8], got %d", f.Window)
	}
	if f := h.Flicker; f.MaxGap < 1 || f.MaxGap > 8 {
		p.addf("hard_frames.flicker.max_gap", "must be in [1, 8], got %d", f.MaxGap)
	}
	if f := h.Flicker; !(f.MinIoU > 0 && f.MinIoU <= 1) {
		p.addf("hard_frames.flicker.min_iou", "must be in (0, 1], got %g", f.MinIoU)
	}
	if g := h.TrackGap; !(g.Min >= 1 && g.Min <= g.Max && g.Max <= 8) {
		p.addf("hard_frames.track_gap", "must have 1 <= min <= max <= 8, got min %d, max %d", g.Min, g.Max)
	}
	q := h.QuantDisagreement
	if q.Every < 1 {
		p.addf("hard_frames.quant_disagreement.every", "must be >= 1, got %d", q.Every)
	}
	if !(q.MinIoU > 0 && q.MinIoU <= 1) {
		p.addf("hard_frames.quant_disagreement.min_iou", "must be in (0, 1], got %g", q.MinIoU)
	}
	if !(q.MinF1 > 0 && q.MinF1 <= 1) {
		p.addf("hard_frames.quant_disagreement.min_f1", "must be in (0, 1], got %g", q.MinF1)
	}
	if r := h.Random.Rate; !(r >= 0 && r <= 1) {
		p.addf("hard_frames.random.rate", "must be in [0, 1], got %g", r)
	}
	if h.PerStreamPerMinute < 0 {
		p.addf("hard_frames.per_stream_per_minute", "must be >= 0, got %d", h.PerStreamPerMinute)
	}
	if h.Burst < 1 {
		p.addf("hard_frames.burst", "must be >= 1, got %d", h.Burst)
	}
	if h.DedupHamming < -1 || h.DedupHamming > 64 {
		p.addf("hard_frames.dedup_hamming", "must be in [-1, 64], got %d", h.DedupHamming)
	}
	if h.QueueSize < 1 {
		p.addf("hard_frames.queue_size", "must be >= 1, got %d", h.QueueSize)
	}
	return p.err()
}

// Validate checks one stream; path is its key path in messages ("streams[2]"
// in a config file, "stream" for the API), models the names of the models
// the stream may use. It returns every problem, joined with errors.Join.
// Messages never quote the URL, which may hold credentials.
func (s *Stream) Validate(path string, models []string) error {
	var p problems
	checkID(&p, path+".id", s.ID)
	checkStreamURL(&p, path+".url", s.URL)
	if !(s.InferFPS > 0) { // also catches NaN
		p.addf(path+".infer_fps", "must be > 0, got %g", s.InferFPS)
	} else if s.InferFPS > maxInferFPS {
		p.addf(path+".infer_fps", "must be <= %d, got %g", maxInferFPS, s.InferFPS)
	}
	checkOneOf(&p, path+".decode", s.Decode, decodeModes)
	if s.DecodeThreads < 0 || s.DecodeThreads > 64 {
		p.addf(path+".decode_threads", "must be between 0 and 64, got %d", s.DecodeThreads)
	}
	checkOneOf(&p, path+".transport", s.Transport, transports)
	if s.ReadTimeout < Duration(100*time.Millisecond) {
		p.addf(path+".read_timeout", "must be at least 100ms, got %s", s.ReadTimeout)
	}
	if s.ReconnectMin <= 0 {
		p.addf(path+".reconnect_min", "must be > 0, got %s", s.ReconnectMin)
	}
	if s.ReconnectMax < s.ReconnectMin {
		p.addf(path+".reconnect_max", "must be >= reconnect_min (%s), got %s", s.ReconnectMin, s.ReconnectMax)
	}
	for i, m := range s.Models {
		mp := fmt.Sprintf("%s.models[%d]", path, i)
		if !slices.Contains(models, m) {
			known := "none"
			if len(models) > 0 {
				known = strings.Join(models, ", ")
			}
			p.addf(mp, "unknown model %q (models: %s)", m, known)
		} else if j := slices.Index(s.Models, m); j < i {
			p.addf(mp, "duplicate of %s.models[%d] %q", path, j, m)
		}
	}
	return p.err()
}

func checkStreamURL(p *problems, path, raw string) {
	if raw == "" {
		p.add(path, "required")
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		p.addf(path, "invalid URL: %v", err)
		return
	}
	scheme := strings.ToLower(u.Scheme)
	if !slices.Contains(schemes, scheme) {
		got := ""
		if scheme != "" {
			got = fmt.Sprintf(", got %q", scheme)
		}
		p.addf(path, "scheme must be %s%s", orList(schemes), got)
		return
	}
	switch scheme {
	case "rtsp", "rtsps":
		if u.Host == "" {
			p.addf(path, "%s URL needs a host", scheme)
		}
	case "file":
		if u.Path == "" && u.Opaque == "" {
			p.add(path, "file URL needs a path, like file:///videos/clip.mp4")
		}
	}
}

func checkID(p *problems, path, id string) {
	switch {
	case id == "":
		p.add(path, "required")
	case id == "." || id == "..":
		p.addf(path, "must not be %q", id)
	case !idPattern.MatchString(id):
		p.addf(path, "must be 1 to 64 of A-Z a-z 0-9 _ . -, got %q", id)
	}
}

func checkHostPort(p *problems, path, v string) {
	if _, port, err := net.SplitHostPort(v); err == nil {
		if _, err := strconv.ParseUint(port, 10, 16); err == nil {
			return
		}
	}
	p.addf(path, "must be host:port with a numeric port, got %q", v)
}

func checkDevice(p *problems, path, d string) {
	if d == "cpu" || d == "purego" {
		return
	}
	kind, n, ok := strings.Cut(d, ":")
	if ok && (kind == "cuda" || kind == "tensorrt") {
		if _, err := strconv.ParseUint(n, 10, 8); err == nil {
			return
		}
	}
	p.addf(path, "must be cpu, purego, cuda:N or tensorrt:N, got %q", d)
}

func checkTopic(p *problems, path, topic string) {
	switch {
	case topic == "":
		p.add(path, "required")
	case topic == "." || topic == "..":
		p.addf(path, "must not be %q", topic)
	case !kafkaTopicPattern.MatchString(topic):
		p.addf(path, "must be 1 to 249 of A-Z a-z 0-9 . _ -, got %q", topic)
	}
}

func checkOneOf(p *problems, path, v string, allowed []string) {
	if !slices.Contains(allowed, v) {
		p.addf(path, "must be %s, got %q", orList(allowed), v)
	}
}

// checkRange checks lo <= v <= hi; NaN fails.
func checkRange(p *problems, path string, v, lo, hi float64) {
	if !(v >= lo && v <= hi) {
		p.addf(path, "must be between %g and %g, got %g", lo, hi, v)
	}
}

// orList formats a, b, c as "a, b or c".
func orList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}
