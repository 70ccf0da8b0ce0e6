// Package pipeline wires Vigil together: one supervisor per stream (source,
// decoder, sampler, analysis), fan-out of results to the sinks, the HTTP API
// and the per-stream metrics.
//
// Streams enter through Options.Streams or Add (the API's POST /api/streams)
// and leave through Remove or the end of their source; every analysed frame
// leaves as a frame.Result to each configured sink.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/tracking"
)

// Analyzer fills a result's detections for one frame by running the named
// models (the stream's, from its config). It is called from the
// stream's analyze goroutine, possibly for several streams at once.
type Analyzer interface {
	Analyze(ctx context.Context, models []string, f *frame.Frame, r *frame.Result) error
}

// Options configure a Pipeline.
type Options struct {
	// Streams are started when Run starts.
	Streams []config.Stream
	// Models are the configured model names; streams may only name these.
	Models []string
	// Sinks receive every result.
	Sinks []NamedSink
	// Analyzer runs the models; nil means no model is configured and results
	// carry no detections.
	Analyzer Analyzer
	// Tracker, when set, gives every stream a tracker with these settings:
	// results then carry tracks, and detections their track IDs.
	Tracker *tracking.Options
	// Registerer receives the pipeline's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds the drain after Run's context ends. It defaults
	// to 10 seconds.
	ShutdownTimeout time.Duration
	// Offline processes recorded input: queues block instead of dropping,
	// failed streams are not restarted, and Run returns when every stream has
	// ended.
	Offline bool
	// MaxFrames ends each stream after this many analysed frames; 0 means no
	// limit.
	MaxFrames uint64
	// Tap, when set, sees every stream's media before analysis: the live
	// viewer forwards it to browsers.
	Tap MediaTap
	// Observers see every analysed frame with its result: the hard-frame
	// miner keeps the pixels of frames it may store.
	Observers []FrameObserver
}

// FrameObserver sees each analysed frame with its finished result (after
// tracking), before the frame goes back to its pool. ObserveFrame is called
// on the stream's analyze goroutine and must not block; it must not modify
// r or f, and to keep f past the call it must Retain it (and Release it
// later). The result is also published to the sinks, which may hold it.
type FrameObserver interface {
	ObserveFrame(r *frame.Result, f *frame.Frame)
}

// MediaTap receives a copy of each stream's media. Its methods are called
// on the stream's hot path and must not block: Params and Packet from the
// source's goroutine (p.Data is only valid during the call), Frame from the
// decoder's for every decoded or generated frame (Retain it to keep it).
type MediaTap interface {
	Params(stream string, p frame.CodecParams)
	Packet(stream string, p *frame.Packet)
	Frame(stream string, f *frame.Frame)
}

// ErrStreamExists and ErrStreamNotFound are returned by Add and Remove.
var (
	ErrStreamExists   = errors.New("stream already exists")
	ErrStreamNotFound = errors.New("stream not found")
	ErrNotRunning     = errors.New("pipeline is not running")
)

// Pipeline runs streams and delivers their results. Its methods are safe for
// concurrent use; Run must be called once.
type Pipeline struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	fan     *fanout

	cmds    chan func(intake, work context.Context)
	running atomic.Bool

	streamWG sync.WaitGroup // stream goroutines
	ended    chan *stream   // streams whose run returned, to Run

	mu      sync.RWMutex // guards streams; written only by Run's goroutine
	streams map[string]*stream
	order   []string
}

// New validates the options and makes a Pipeline.
func New(opts Options) (*Pipeline, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	p := &Pipeline{
		opts:    opts,
		log:     opts.Logger,
		cmds:    make(chan func(intake, work context.Context)),
		streams: map[string]*stream{},
		ended:   make(chan *stream),
	}
	seen := map[string]bool{}
	for i := range opts.Streams {
		s := &opts.Streams[i]
		if seen[s.ID] {
			return nil, fmt.Errorf("streams[%d].id: %w: %q", i, ErrStreamExists, s.ID)
		}
		seen[s.ID] = true
	}
	for _, cfg := range opts.Streams {
		p.newStream(cfg)
	}
	p.metrics = newMetrics(opts.Registerer, p)
	p.fan = newFanout(opts.Sinks, opts.Offline, p.metrics, p.log)
	return p, nil
}

// StreamConfig returns the configuration of the stream with the given ID.
func (p *Pipeline) StreamConfig(id string) (config.Stream, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	s, ok := p.streams[id]
	if !ok {
		return config.Stream{}, false
	}
	return s.cfg, true
}

// Ready reports whether Run is serving streams.
func (p *Pipeline) Ready() bool { return p.running.Load() }

// Run runs the streams until ctx ends (or, offline, until every stream has
// ended), then shuts down in two phases: it stops intake and lets queued
// frames drain and sinks flush within ShutdownTimeout, then cancels the rest.
func (p *Pipeline) Run(ctx context.Context) error {
	intake, stopIntake := context.WithCancel(context.Background())
	defer stopIntake()
	work, stopWork := context.WithCancel(context.Background())
	defer stopWork()

	var deadline atomic.Pointer[time.Time]
	closeCtx := func() context.Context {
		d := deadline.Load()
		if d == nil {
			return context.Background()
		}
		c, cancel := context.WithDeadline(context.Background(), *d)
		context.AfterFunc(c, cancel)
		return c
	}
	p.fan.start(work, closeCtx)

	for _, s := range p.snapshotStreams() {
		p.launch(s, intake, work)
	}
	if p.opts.Analyzer == nil {
		p.log.Info("no model configured: results carry no detections")
	}
	p.running.Store(true)
	defer p.running.Store(false)

	var runErr error
	live := len(p.opts.Streams)
loop:
	for {
		if p.opts.Offline && live == 0 {
			break
		}
		select {
		case <-ctx.Done():
			break loop
		case s := <-p.ended:
			if s.err != nil && runErr == nil {
				runErr = fmt.Errorf("stream %s: %w", s.cfg.ID, s.err)
			}
			live--
			if p.opts.Offline && runErr != nil {
				break loop
			}
		case cmd := <-p.cmds:
			cmd(intake, work)
		}
	}

	// Phase 1: stop intake, let the queues drain.
	p.running.Store(false)
	d := time.Now().Add(p.opts.ShutdownTimeout)
	deadline.Store(&d)
	stopIntake()
	drained := make(chan struct{})
	go func() {
		p.streamWG.Wait()
		close(drained)
	}()
	go func() { // keep the ended channel from blocking stream goroutines
		for {
			select {
			case <-p.ended:
			case <-drained:
				return
			}
		}
	}()
	timer := time.NewTimer(time.Until(d))
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		p.log.Warn("shutdown deadline passed; abandoning queued frames")
		// Phase 2: cancel what is left.
		stopWork()
		<-drained
	}
	p.fan.close()
	stopWork()
	return runErr
}

// newStream registers a stream that launch will start.
func (p *Pipeline) newStream(cfg config.Stream) *stream {
	s := &stream{
		cfg:  cfg,
		p:    p,
		log:  p.log.With("stream", cfg.ID),
		done: make(chan struct{}),
		stop: func() {},
	}
	if p.opts.Tracker != nil {
		s.tracker = tracking.New(*p.opts.Tracker)
	}
	s.stats.state = StateConnecting
	p.mu.Lock()
	p.streams[cfg.ID] = s
	p.order = append(p.order, cfg.ID)
	p.mu.Unlock()
	return s
}

// launch starts a stream's supervisor; it runs on Run's goroutine.
func (p *Pipeline) launch(s *stream, intake, work context.Context) {
	sctx, cancel := context.WithCancel(intake)
	wctx, cancelWork := context.WithCancel(work)
	s.stop = func() { cancel(); cancelWork() }
	p.streamWG.Go(func() {
		defer close(s.done)
		defer s.stop()
		s.err = s.run(sctx, wctx)
		// The stream's own contexts may be cancelled (frame limit,
		// removal); its tracks end unless the whole pipeline is stopping
		// without draining.
		if work.Err() == nil {
			s.endTracks(work)
		}
		select {
		case p.ended <- s:
		case <-work.Done():
		}
	})
}

// do runs cmd on Run's goroutine.
func (p *Pipeline) do(ctx context.Context, cmd func(intake, work context.Context)) error {
	if !p.running.Load() {
		return ErrNotRunning
	}
	done := make(chan struct{})
	wrapped := func(intake, work context.Context) {
		defer close(done)
		cmd(intake, work)
	}
	select {
	case p.cmds <- wrapped:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-done
	return nil
}

// SetModels replaces the model names streams may refer to, after a
// config reload changed the models.
func (p *Pipeline) SetModels(names []string) {
	p.mu.Lock()
	p.opts.Models = slices.Clone(names)
	p.mu.Unlock()
}

// Add validates cfg and starts the stream.
func (p *Pipeline) Add(ctx context.Context, cfg config.Stream) error {
	cfg.ApplyDefaults()
	p.mu.RLock()
	models := p.opts.Models
	p.mu.RUnlock()
	if err := cfg.Validate("stream", models); err != nil {
		return err
	}
	var err error
	derr := p.do(ctx, func(intake, work context.Context) {
		p.mu.RLock()
		_, exists := p.streams[cfg.ID]
		p.mu.RUnlock()
		if exists {
			err = fmt.Errorf("stream %q: %w", cfg.ID, ErrStreamExists)
			return
		}
		p.launch(p.newStream(cfg), intake, work)
	})
	if derr != nil {
		return derr
	}
	return err
}

// Remove stops a stream at once, waits for it to end, and forgets it and its
// metric series.
func (p *Pipeline) Remove(ctx context.Context, id string) error {
	var s *stream
	derr := p.do(ctx, func(context.Context, context.Context) {
		p.mu.Lock()
		defer p.mu.Unlock()
		s = p.streams[id]
		if s == nil {
			return
		}
		delete(p.streams, id)
		p.order = slices.DeleteFunc(p.order, func(x string) bool { return x == id })
		s.stop()
	})
	if derr != nil {
		return derr
	}
	if s == nil {
		return fmt.Errorf("stream %q: %w", id, ErrStreamNotFound)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Streams returns the status of every stream in the order they were added.
func (p *Pipeline) Streams() []StreamStatus {
	ss := p.snapshotStreams()
	out := make([]StreamStatus, len(ss))
	for i, s := range ss {
		out[i] = s.status()
	}
	return out
}

// Stream returns one stream's status.
func (p *Pipeline) Stream(id string) (StreamStatus, bool) {
	p.mu.RLock()
	s := p.streams[id]
	p.mu.RUnlock()
	if s == nil {
		return StreamStatus{}, false
	}
	return s.status(), true
}

func (p *Pipeline) snapshotStreams() []*stream {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]*stream, 0, len(p.order))
	for _, id := range p.order {
		out = append(out, p.streams[id])
	}
	return out
}

func (p *Pipeline) analyze(ctx context.Context, models []string, f *frame.Frame, r *frame.Result) error {
	if p.opts.Analyzer == nil {
		return nil
	}
	return p.opts.Analyzer.Analyze(ctx, models, f, r)
}
