package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/inference"
	"github.com/vigil-video/vigil/ingest/whip"
	"github.com/vigil-video/vigil/pipeline"
	"github.com/vigil-video/vigil/sinks/hardframe"
	"github.com/vigil-video/vigil/sinks/jsonl"
	kafkasink "github.com/vigil-video/vigil/sinks/kafka"
	"github.com/vigil-video/vigil/sinks/viewer"
	"github.com/vigil-video/vigil/tracking"
	"github.com/vigil-video/vigil/web"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vigil serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "YAML config `file` (default: the embedded default config)")
	listen := fs.String("listen", "", "HTTP listen `address`, overrides the config's listen (default 127.0.0.1:8080)")
	var devBroker devBrokerFlag
	fs.Var(&devBroker, "dev-broker", "start an in-process development Kafka broker (kfake, in memory) and send results to it; --dev-broker=ADDR sets its address (default "+defaultDevBroker+")")
	if err := parseFlags(fs, args); err != nil {
		return err
	}

	var cfg *config.Config
	if *cfgPath == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	log := newLogger(cfg.Log, stderr)
	if *cfgPath == "" {
		log.Info("no --config given: running the embedded default config")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var sinkList []pipeline.NamedSink
	if j := cfg.Sinks.JSONL; j.Enabled {
		w := &jsonl.Writer{Path: j.Path, MaxBytes: int64(j.MaxSizeMB) << 20, MaxBackups: j.MaxBackups, Stdout: stdout}
		if err := w.Open(); err != nil {
			return err
		}
		sinkList = append(sinkList, pipeline.NamedSink{Name: "jsonl", Sink: w})
	}
	if devBroker != "" {
		k := &cfg.Sinks.Kafka
		cluster, err := kafkasink.StartDevBroker(string(devBroker), []string{k.DetectionsTopic, k.TracksTopic})
		if err != nil {
			return err
		}
		// Deferred before the pipeline starts, so it stops after the Kafka
		// sink has flushed.
		defer cluster.Close()
		addr := cluster.ListenAddrs()[0]
		log.Warn("DEVELOPMENT KAFKA BROKER: in-process kfake; messages live in memory and are gone when vigil stops",
			"addr", addr, "topics", []string{k.DetectionsTopic, k.TracksTopic})
		k.Enabled, k.Brokers = true, []string{addr}
	}
	if k := cfg.Sinks.Kafka; k.Enabled {
		o := kafkasink.OptionsFromConfig(k)
		o.Logger = log
		s, err := kafkasink.Open(o, reg)
		if err != nil {
			return err
		}
		log.Info("kafka sink", "brokers", k.Brokers, "detections_topic", k.DetectionsTopic, "tracks_topic", k.TracksTopic, "spool_dir", k.SpoolDir)
		sinkList = append(sinkList, pipeline.NamedSink{Name: "kafka", Sink: s})
	}

	modelNames := make([]string, len(cfg.Models))
	for i, m := range cfg.Models {
		modelNames[i] = m.Name
	}
	var tracker *tracking.Options
	if cfg.Tracker.IsEnabled() && len(cfg.Models) > 0 {
		o := tracking.OptionsFromConfig(cfg.Tracker)
		tracker = &o
	}
	eng := inference.NewEngine(inference.EngineOptions{
		Runtime: cfg.Runtime, Batching: cfg.Batching, Registerer: reg, Logger: log,
		LowScoreFloor: lowScoreFloor(tracker),
	})
	defer eng.Close()
	for _, m := range cfg.Models {
		// A model that does not load is logged and counted; the server and
		// the other models carry on, and its streams get no detections from it.
		if err := eng.Load(m); err != nil {
			log.Error("model not loaded", "model", m.Name, "err", err)
		}
	}
	var analyzer pipeline.Analyzer
	if len(cfg.Models) > 0 {
		analyzer = eng
	}
	var observers []pipeline.FrameObserver
	var sched *retrainScheduler
	if cfg.HardFrames.Enabled {
		var classes []string
		for _, mc := range cfg.Models {
			if m, ok := eng.Model(mc.Name); ok && m.Bundle().Task == inference.TaskDetect {
				classes = m.Bundle().Labels
				break
			}
		}
		miner, err := hardframe.New(hardframe.Options{Config: cfg.HardFrames, Classes: classes, Variants: eng, Seed: cfg.HardFrames.Random.Seed, Registerer: reg, Logger: log})
		if err != nil {
			return err
		}
		// Deferred after the engine's Close, so it runs before it: the
		// miner's last quant_disagreement checks still find their models.
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
			defer cancel()
			if err := miner.Close(cctx); err != nil {
				log.Error("hard-frame store not closed cleanly", "err", err)
			}
		}()
		log.Info("mining hard frames", "dir", cfg.HardFrames.Dir, "miners", cfg.HardFrames.Miners)
		observers = append(observers, miner)
		if cfg.Retrain.Enabled {
			sched, err = newRetrainScheduler(cfg, func() uint64 { return miner.Store().Stats().Puts }, reg, log)
			if err != nil {
				return err
			}
		}
	}
	var p *pipeline.Pipeline
	var tap pipeline.MediaTap
	var hub *viewer.Hub
	if cfg.Viewer.IsEnabled() {
		hub = viewer.New(viewer.Options{
			Logger: log, Registerer: reg,
			MaxViewers:  cfg.Viewer.MaxViewers,
			Bitrate:     cfg.Viewer.BitrateKbps * 1000,
			KeyInterval: time.Duration(cfg.Viewer.KeyInterval),
			Describe: func(id string) (viewer.StreamInfo, bool) {
				sc, ok := p.StreamConfig(id)
				if !ok {
					return viewer.StreamInfo{}, false
				}
				return describeStream(eng, sc), true
			},
			RequestKeyFrame: whip.Default.RequestKeyFrame,
		})
		sinkList = append(sinkList, pipeline.NamedSink{Name: "viewer", Sink: hub})
		tap = hub
	}
	p, err := pipeline.New(pipeline.Options{
		Streams:         cfg.Streams,
		Models:          modelNames,
		Analyzer:        analyzer,
		Tracker:         tracker,
		Sinks:           sinkList,
		Registerer:      reg,
		Logger:          log,
		ShutdownTimeout: time.Duration(cfg.ShutdownTimeout),
		Tap:             tap,
		Observers:       observers,
	})
	if err != nil {
		if hub != nil {
			_ = hub.Close(ctx)
		}
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	base := "http://" + displayAddr(ln.Addr().String())
	fmt.Fprintf(stdout, "vigil serving\n  page:    %s/\n  api:     %s/api/streams\n  models:  %s/api/models\n  metrics: %s/metrics\n  whip:    %s/whip/{stream}\n  whep:    %s/whep/{stream}\n", base, base, base, base, base, base)
	token := cfg.API.Token
	if env := os.Getenv("VIGIL_API_TOKEN"); env != "" {
		token = env
	}
	if token == "" && !isLoopbackListen(ln.Addr()) {
		log.Warn("api.token is unset: the API and the viewer answer loopback clients only", "listen", cfg.Listen)
	}

	// WHIP publishers POST to /whip/{stream} of whip:// streams.
	whip.Default.SetLogger(log)
	fallback := http.NewServeMux()
	fallback.Handle("/whip/", whip.Default)
	fallback.Handle("/api/models", eng)
	fallback.Handle("/api/models/", eng)
	if hub != nil {
		fallback.Handle("/whep/", hub)
	}
	fallback.Handle("/", web.Handler())
	srv := &http.Server{
		Handler:           pipeline.Guard(token, reg, pipeline.Handler(p, reg, fallback)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving HTTP: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		err := p.Run(gctx)
		// The pipeline has drained; stop the HTTP server too.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return err
	})
	if sched != nil {
		g.Go(func() error {
			sched.run(gctx)
			return nil
		})
	}
	// Models configured by their registry folder follow `vigil models promote`.
	g.Go(func() error {
		eng.WatchRegistry(gctx, 2*time.Second)
		return nil
	})
	if *cfgPath != "" {
		g.Go(func() error {
			current := cfg
			config.Watch(gctx, *cfgPath, func(next *config.Config) {
				reload(gctx, log, p, eng, current, next)
				current = next
			}, func(err error) {
				log.Error("config not reloaded; keeping the running one", "err", err)
			})
			return nil
		})
	}
	err = g.Wait()
	log.Info("stopped")
	return err
}

// reload applies a changed config file: models that changed are reloaded
// (the old one serves until the new one is ready), streams are added,
// removed or restarted in place; other sections only take effect after a
// restart.
func reload(ctx context.Context, log *slog.Logger, p *pipeline.Pipeline, eng *inference.Engine, old, next *config.Config) {
	oldModels := map[string]config.Model{}
	for _, m := range old.Models {
		oldModels[m.Name] = m
	}
	for _, m := range next.Models {
		if prev, ok := oldModels[m.Name]; ok && reflect.DeepEqual(prev, m) {
			delete(oldModels, m.Name)
			if _, loaded := eng.Model(m.Name); loaded {
				continue
			} // else retry a model that did not load before
		}
		delete(oldModels, m.Name)
		if err := eng.Load(m); err != nil {
			log.Error("model not reloaded", "model", m.Name, "err", err)
		} else {
			log.Info("model reloaded", "model", m.Name)
		}
	}
	for name := range oldModels {
		eng.Unload(name)
		log.Info("model removed", "model", name)
	}
	names := make([]string, len(next.Models))
	for i, m := range next.Models {
		names[i] = m.Name
	}
	p.SetModels(names)
	added, removed, restarted, err := p.Reload(ctx, next.Streams)
	log.Info("config reloaded", "added", added, "removed", removed, "restarted", restarted)
	if err != nil {
		log.Error("some streams of the new config did not start", "err", err)
	}
	a, b := *old, *next
	a.Streams, b.Streams, a.Models, b.Models = nil, nil, nil, nil
	if !reflect.DeepEqual(a, b) {
		log.Warn("config changes outside streams take effect after a restart")
	}
}

// describeStream tells the viewer's page about a stream's models.
func describeStream(eng *inference.Engine, sc config.Stream) viewer.StreamInfo {
	info := viewer.StreamInfo{InferFPS: sc.InferFPS}
	for _, name := range sc.Models {
		m, ok := eng.Model(name)
		if !ok {
			continue
		}
		b := m.Bundle()
		info.Models = append(info.Models, viewer.ModelInfo{
			Name: name, Task: string(b.Task), Labels: b.Labels, Keypoints: b.Keypoints, Skeleton: b.Skeleton,
		})
	}
	return info
}

// isLoopbackListen reports whether the server listens on a loopback
// address only.
func isLoopbackListen(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// defaultDevBroker is where --dev-broker without a value listens.
const defaultDevBroker = "127.0.0.1:9092"

// devBrokerFlag is --dev-broker[=ADDR]: alone it means defaultDevBroker.
type devBrokerFlag string

func (f *devBrokerFlag) String() string   { return string(*f) }
func (f *devBrokerFlag) IsBoolFlag() bool { return true }
func (f *devBrokerFlag) Set(v string) error {
	switch v {
	case "true":
		v = defaultDevBroker
	case "false":
		v = ""
	default:
		if _, _, err := net.SplitHostPort(v); err != nil {
			return fmt.Errorf("want host:port: %w", err)
		}
	}
	*f = devBrokerFlag(v)
	return nil
}

// displayAddr makes a listen address usable in a URL ("[::]:8080" -> "localhost:8080").
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// lowScoreFloor is the score down to which detectors return candidates for
// the tracker's low-score pass: 0 (none) without a tracker or the pass.
func lowScoreFloor(o *tracking.Options) float32 {
	if o == nil || o.LowScoreThreshold <= 0 || o.LowScoreThreshold >= 1 {
		return 0
	}
	return o.LowScoreThreshold
}
