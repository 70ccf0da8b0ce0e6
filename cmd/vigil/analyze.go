package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/pipeline"
	"github.com/vigil-video/vigil/sinks/jsonl"
	"github.com/vigil-video/vigil/sinks/mot"
	"github.com/vigil-video/vigil/tracking"
)

func runAnalyze(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil analyze", flag.ContinueOnError)
	fs.SetOutput(stderr)
	input := fs.String("input", "", "source `URL` (file:///clip.mp4, synth://?frames=100, rtsp://…)")
	out := fs.String("out", "-", "JSON lines output `file` (- for standard output)")
	frames := fs.Uint64("frames", 0, "stop after `N` analysed frames (0: until the source ends)")
	duration := fs.Duration("duration", 0, "stop after this long, for live sources (0: no limit)")
	inferFPS := fs.Float64("infer-fps", 0, "analyse this many frames per second of video (0: every frame)")
	decodeMode := fs.String("decode", "all", "decode all frames or only keyframes")
	threads := fs.Int("threads", 0, "decoder threads (0: automatic)")
	streamID := fs.String("stream", "", "stream `id` in the output (default: from the input's file name)")
	realtime := fs.Bool("realtime", false, "pace file input at its frame rate instead of as fast as possible")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	var models, families stringList
	fs.Var(&models, "model", "model `bundle` folder, registry model folder or .onnx file; repeat for more models (a detector, then an embedder)")
	fs.Var(&families, "family", "output decoder of the i-th --model when it is a plain .onnx file ("+strings.Join(inference.FamilyNames(), ", ")+")")
	variant := fs.String("variant", "", "force a variant (fp32, int8, fp16) instead of measuring")
	device := fs.String("device", "cpu", "device profile: cpu, purego, cuda:N or tensorrt:N")
	inferThreads := fs.Int("infer-threads", 0, "inference intra-op threads (0: the runtime's choice)")
	ortLib := fs.String("ort-library", "", "path of libonnxruntime.so (default: $VIGIL_ORT_LIB, then the built-in path)")
	scoreThreshold := fs.Float64("score-threshold", 0, "drop detections scoring below this (0: the model's default)")
	motOut := fs.String("mot-out", "", "also write tracked detections in MOTChallenge text format to this `file`")
	trackMode := fs.String("track", "deepsort", "tracker: deepsort, sort, or off")
	appearance := fs.String("appearance", "", "deepsort appearance memory: gallery or ema (default: the config default)")
	iouGate := fs.Bool("iou-appearance-gate", false, "deepsort: IoU matching refuses pairs whose appearance differs by more than the max cosine distance")
	maxCos := fs.Float64("max-cosine-distance", 0, "deepsort: largest appearance distance accepted, 0 to 2 (default: the config default, 0.2)")
	lowScore := fs.Float64("low-score", -1, "lowest score of detections for the tracker's second pass; 1 turns it off (default: the config default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(families) > len(models) {
		return fmt.Errorf("--family: %d given for %d --model", len(families), len(models))
	}
	if *input == "" {
		fmt.Fprintln(stderr, "vigil analyze: --input is required")
		fs.Usage()
		return errUsage
	}
	id := *streamID
	if id == "" {
		id = streamIDFor(*input)
	}
	cfg := config.Stream{ID: id, URL: *input, Decode: *decodeMode, DecodeThreads: *threads, Realtime: realtime}
	cfg.ApplyDefaults()
	if err := cfg.Validate("input", nil); err != nil {
		return err
	}
	if *inferFPS < 0 {
		return fmt.Errorf("--infer-fps: must be >= 0, got %g", *inferFPS)
	}
	cfg.InferFPS = *inferFPS // 0 (every frame) is valid here, unlike in a server config

	w := &jsonl.Writer{Path: *out, Stdout: stdout, Truncate: true}
	if err := w.Open(); err != nil {
		return err
	}
	log := newLogger(config.Log{Level: "warn"}, stderr)
	var tracker *tracking.Options
	switch *trackMode {
	case "off":
	case "deepsort", "sort":
		c := config.Default().Tracker
		c.Mode = *trackMode
		if *appearance != "" {
			c.Appearance = *appearance
		}
		c.IoUAppearanceGate = *iouGate
		if *maxCos > 0 {
			c.MaxCosineDistance = *maxCos
		}
		if *lowScore >= 0 {
			c.LowScoreThreshold = *lowScore
		}
		full := config.Default()
		full.Tracker = c
		if err := full.Validate(); err != nil {
			return fmt.Errorf("tracker flags: %w", err)
		}
		o := tracking.OptionsFromConfig(c)
		tracker = &o
	default:
		return fmt.Errorf("--track: must be deepsort, sort or off, got %q", *trackMode)
	}
	var analyzer pipeline.Analyzer
	if len(models) > 0 {
		eng := inference.NewEngine(inference.EngineOptions{
			Runtime:  config.Runtime{Device: *device, ORTLibrary: *ortLib, Threads: *inferThreads},
			Batching: config.Batching{MaxBatch: 8},
			Logger:   log,
			// Detectors return low-score candidates for the tracker.
			LowScoreFloor: lowScoreFloor(tracker),
		})
		defer eng.Close()
		for i, path := range models {
			mc := config.Model{Name: fmt.Sprintf("m%d", i), Bundle: path, Variant: *variant, MaxAccuracyLoss: 0.01, ScoreThreshold: *scoreThreshold}
			if i < len(families) {
				mc.Family = families[i]
			}
			if err := eng.Load(mc); err != nil {
				return err
			}
			cfg.Models = append(cfg.Models, mc.Name)
			if !*quiet {
				st, _ := eng.Model(mc.Name)
				s := st.Status()
				fmt.Fprintf(stderr, "model %s: %s %s v%d, variant %s on %s (%s)\n", path, s.Task, s.Family, s.Version, s.Variant, s.Device, s.Runtime)
			}
		}
		analyzer = eng
	}
	sinkList := []pipeline.NamedSink{{Name: "jsonl", Sink: w}}
	if *motOut != "" {
		mw, err := mot.Create(*motOut)
		if err != nil {
			return err
		}
		sinkList = append(sinkList, pipeline.NamedSink{Name: "mot", Sink: mw})
	}
	p, err := pipeline.New(pipeline.Options{
		Streams:   []config.Stream{cfg},
		Models:    cfg.Models,
		Tracker:   tracker,
		Sinks:     sinkList,
		Analyzer:  analyzer,
		Logger:    log,
		Offline:   true,
		MaxFrames: *frames,
	})
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	start := time.Now()
	done := make(chan struct{})
	if !*quiet {
		go progress(done, p, id, stderr)
	}
	err = p.Run(ctx)
	close(done)
	st, _ := p.Stream(id)
	if !*quiet {
		el := time.Since(start)
		fmt.Fprintf(stderr, "%s: %d frames analysed in %s (%.1f fps), %d decode errors\n",
			id, st.FramesAnalyzed, el.Round(time.Millisecond), float64(st.FramesAnalyzed)/el.Seconds(), st.DecodeErrors)
	}
	if err != nil {
		return err
	}
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctx.Err() // interrupted
	}
	return nil
}

func progress(done <-chan struct{}, p *pipeline.Pipeline, id string, w io.Writer) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if st, ok := p.Stream(id); ok {
				fmt.Fprintf(w, "%s: %s, %d frames analysed\n", id, st.State, st.FramesAnalyzed)
			}
		}
	}
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

var nonID = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// streamIDFor derives a stream ID from an input URL's file name.
func streamIDFor(u string) string {
	noQuery := strings.SplitN(u, "?", 2)[0]
	_, rest, _ := strings.Cut(noQuery, "://")
	base := path.Base(rest)
	base = strings.TrimSuffix(base, path.Ext(base))
	base = strings.Trim(nonID.ReplaceAllString(base, "-"), "-.")
	if rest == "" || base == "" {
		return "input"
	}
	if len(base) > 64 {
		base = base[:64]
	}
	return base
}
