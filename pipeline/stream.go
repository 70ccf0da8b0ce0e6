package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/config"
	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest"
	"github.com/vigil-video/vigil/ingest/decode"
	"github.com/vigil-video/vigil/tracking"
)

// State is where a stream's supervisor is in its life.
type State string

// Stream states shown by the API and the vigil_ingest_stream_state metric.
const (
	StateConnecting State = "connecting"
	StateStreaming  State = "streaming"
	StateBackoff    State = "backoff"
	StateEnded      State = "ended"
	StateStopped    State = "stopped"
)

var allStates = []State{StateConnecting, StateStreaming, StateBackoff, StateEnded, StateStopped}

// backoffReset is how long a run must last for the reconnect delay to start
// again from its minimum.
const backoffReset = 30 * time.Second

// StreamStatus is a point-in-time view of one stream, as the API shows it.
type StreamStatus struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	State          State     `json:"state"`
	FramesIn       uint64    `json:"frames_in"`
	FramesAnalyzed uint64    `json:"frames_analyzed"`
	FramesDropped  uint64    `json:"frames_dropped"`
	DecodeErrors   uint64    `json:"decode_errors"`
	Restarts       uint64    `json:"restarts"`
	Stalls         uint64    `json:"stalls"`
	PacketsLost    uint64    `json:"packets_lost"`
	LastError      string    `json:"last_error"`
	NextRetry      time.Time `json:"next_retry,omitzero"`
}

// streamStats are written by the stream's goroutines and read by the API and
// the metrics collector.
type streamStats struct {
	packets, bytes, frames, analyzed, decodeErrors, restarts atomic.Uint64
	stalls, packetsLost                                      atomic.Uint64
	dropped                                                  [numDropReasons]atomic.Uint64
	decodeTime                                               durationHist
	tracks                                                   trackStats

	mu        sync.Mutex
	state     State
	lastErr   string
	nextRetry time.Time
}

// stream supervises one configured stream: it opens the source, restarts it
// with backoff, and runs the decode and analyze stages.
type stream struct {
	cfg   config.Stream
	p     *Pipeline
	log   *slog.Logger
	stats streamStats
	// lastRes (the last analysed frame's result, without detections) and
	// trackedAny are the tracker's, for the events at the stream's end.
	lastRes    frame.Result
	trackedAny bool
	// tracker follows the stream's detections; owned by the analyze
	// goroutine, kept across reconnects so that IDs are never reused.
	tracker *tracking.Tracker

	stop context.CancelFunc // ends the stream at once (removal)
	done chan struct{}      // closed when run returns
	err  error              // run's result, valid after done
}

func (s *stream) setState(st State, err error, next time.Time) {
	s.stats.mu.Lock()
	s.stats.state = st
	if err != nil {
		s.stats.lastErr = ingest.RedactError(err.Error(), s.cfg.URL)
	}
	s.stats.nextRetry = next
	s.stats.mu.Unlock()
}

func (s *stream) status() StreamStatus {
	st := &s.stats
	st.mu.Lock()
	out := StreamStatus{State: st.state, LastError: st.lastErr, NextRetry: st.nextRetry}
	st.mu.Unlock()
	out.ID = s.cfg.ID
	out.URL = ingest.Redact(s.cfg.URL)
	out.FramesIn = st.frames.Load()
	out.FramesAnalyzed = st.analyzed.Load()
	for i := range numDropReasons {
		out.FramesDropped += st.dropped[i].Load()
	}
	out.DecodeErrors = st.decodeErrors.Load()
	out.Restarts = st.restarts.Load()
	out.Stalls = st.stalls.Load()
	out.PacketsLost = st.packetsLost.Load()
	return out
}

// run supervises the stream until intake ends. Graceful stop cancels intake
// and lets queued frames drain; cancelling work abandons them.
func (s *stream) run(intake, work context.Context) error {
	backoffMin := max(time.Duration(s.cfg.ReconnectMin), time.Millisecond)
	backoffMax := max(time.Duration(s.cfg.ReconnectMax), backoffMin)
	backoff := backoffMin
	for {
		s.setState(StateConnecting, nil, time.Time{})
		started := time.Now()
		err := s.runOnce(intake, work)
		switch {
		case intake.Err() != nil || work.Err() != nil:
			s.setState(StateStopped, nil, time.Time{})
			return nil
		case errors.Is(err, errFrameLimit):
			s.setState(StateEnded, nil, time.Time{})
			return nil
		case errors.Is(err, io.EOF):
			s.setState(StateEnded, nil, time.Time{})
			s.log.Info("stream ended")
			return nil
		case s.p.opts.Offline:
			s.setState(StateStopped, err, time.Time{})
			return err
		}
		if time.Since(started) > backoffReset {
			backoff = backoffMin
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter in [backoff/2, backoff]
		s.stats.restarts.Add(1)
		s.setState(StateBackoff, err, time.Now().Add(wait))
		s.log.Warn("stream failed; retrying", "err", ingest.RedactError(err.Error(), s.cfg.URL), "retry_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-intake.Done():
			t.Stop()
			s.setState(StateStopped, nil, time.Time{})
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, backoffMax)
	}
}

var errFrameLimit = errors.New("frame limit reached")

// sourceOptions are the stream's settings that travel to its source.
func sourceOptions(cfg config.Stream) ingest.Options {
	return ingest.Options{
		Realtime:    cfg.IsRealtime(),
		Loop:        cfg.Loop,
		Transport:   cfg.Transport,
		ReadTimeout: time.Duration(cfg.ReadTimeout),
		Token:       cfg.Token,
	}
}

// unit is one item from the source to the decode stage.
type unit struct {
	params *frame.CodecParams
	pkt    *frame.Packet
	frm    *frame.Frame
	// gap marks a packet that follows packets dropped on a full queue: the
	// decoder must wait for a key frame.
	gap bool
}

// runOnce runs one session of the source: source -> decode -> analyze.
func (s *stream) runOnce(intake, work context.Context) error {
	src, err := ingest.Open(s.cfg.ID, s.cfg.URL, sourceOptions(s.cfg))
	if err != nil {
		return err
	}
	live := src.Live() && !s.p.opts.Offline
	srcCtx, stopSource := context.WithCancel(intake)
	defer stopSource()

	units := make(chan unit, 64)
	slot := newFrameQueue(live)
	out := &streamOutput{s: s, units: units, free: make(chan *frame.Packet, cap(units)+2), live: live, done: srcCtx.Done()}

	var wg sync.WaitGroup
	var srcErr, decErr, anErr error
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(units)
		srcErr = src.Run(srcCtx, out)
	}()
	go func() {
		defer wg.Done()
		defer slot.close()
		requestKey := func() {}
		if kr, ok := src.(ingest.KeyFrameRequester); ok {
			requestKey = kr.RequestKeyFrame
		}
		decErr = s.decodeLoop(work, units, out.free, slot, requestKey)
		if decErr != nil {
			stopSource()
			for u := range units {
				u.release()
			}
		}
	}()
	go func() {
		defer wg.Done()
		anErr = s.analyzeLoop(work, slot)
		if anErr != nil {
			stopSource()
			slot.drain()
		}
	}()
	wg.Wait()
	switch {
	case anErr != nil:
		return anErr
	case decErr != nil:
		return decErr
	case srcErr != nil && !errors.Is(srcErr, context.Canceled):
		return srcErr
	}
	return srcErr
}

func (u unit) release() {
	if u.frm != nil {
		u.frm.Release()
	}
}

// streamOutput receives the source's output on the source's goroutine.
type streamOutput struct {
	s     *stream
	units chan unit
	free  chan *frame.Packet // recycled packet buffers
	live  bool
	gap   bool // a packet was dropped since the last queued one
	done  <-chan struct{}
}

func (o *streamOutput) send(u unit) error {
	select {
	case o.units <- u:
		return nil
	case <-o.done:
		return context.Canceled
	}
}

// Params implements ingest.Output.
func (o *streamOutput) Params(p frame.CodecParams) error {
	p.Extradata = append([]byte(nil), p.Extradata...)
	if tap := o.s.p.opts.Tap; tap != nil {
		tap.Params(o.s.cfg.ID, p)
	}
	return o.send(unit{params: &p})
}

// Packet implements ingest.Output. Live sources never block here: when the
// decoder falls behind, the packet is dropped and counted, and the decoder
// skips to the next key frame.
func (o *streamOutput) Packet(p *frame.Packet) error {
	st := &o.s.stats
	st.packets.Add(1)
	st.bytes.Add(uint64(len(p.Data)))
	if tap := o.s.p.opts.Tap; tap != nil {
		tap.Packet(o.s.cfg.ID, p)
	}
	var cp *frame.Packet
	select {
	case cp = <-o.free:
	default:
		cp = new(frame.Packet)
	}
	data := append(cp.Data[:0], p.Data...)
	*cp = *p
	cp.Data = data
	if o.live {
		select {
		case o.units <- unit{pkt: cp, gap: o.gap}:
			o.gap = false
		default:
			// The packets that follow reference the lost one: the decoder
			// skips to the next key frame.
			st.dropped[dropQueueFull].Add(1)
			o.recycle(cp)
			o.gap = true
		}
		return nil
	}
	return o.send(unit{pkt: cp})
}

func (o *streamOutput) recycle(p *frame.Packet) {
	select {
	case o.free <- p:
	default:
	}
}

// Count implements ingest.Output.
func (o *streamOutput) Count(e ingest.Event, n uint64) {
	switch e {
	case ingest.EventStall:
		o.s.stats.stalls.Add(n)
	case ingest.EventPacketsLost:
		o.s.stats.packetsLost.Add(n)
	}
}

// Frame implements ingest.Output.
func (o *streamOutput) Frame(f *frame.Frame) error {
	if o.live {
		select {
		case o.units <- unit{frm: f}:
		default:
			o.s.stats.dropped[dropQueueFull].Add(1)
			f.Release()
		}
		return nil
	}
	if err := o.send(unit{frm: f}); err != nil {
		f.Release()
		return err
	}
	return nil
}

// decodeLoop decodes packets, numbers frames, samples them at infer_fps and
// hands the sampled ones to the analyze stage. requestKey asks the sender for
// a key frame when decoding breaks.
func (s *stream) decodeLoop(ctx context.Context, units <-chan unit, free chan *frame.Packet, slot *frameQueue, requestKey func()) error {
	var (
		dec      *decode.Decoder
		seq      uint64
		samp     = sampler{interval: intervalOf(s.cfg.InferFPS)}
		waitKey  bool         // packets were lost upstream: skip to the next key frame
		seen     decode.Stats // the decoder's counters already added to the stream's
		errLog   = newErrorDumper(s.log, "decode errors")
		emitErr  error
		emitFunc func(*frame.Frame)
		emitted  time.Duration // time spent in emitFunc, left out of the decode time
	)
	defer func() {
		if dec != nil {
			dec.Close()
		}
		errLog.flush()
	}()
	emitFunc = func(f *frame.Frame) {
		defer func(t time.Time) { emitted += time.Since(t) }(time.Now())
		f.StreamID = s.cfg.ID
		f.Seq = seq
		seq++
		s.stats.frames.Add(1)
		if tap := s.p.opts.Tap; tap != nil {
			tap.Frame(s.cfg.ID, f)
		}
		if !f.Arrival.IsZero() {
			s.p.metrics.latency.WithLabelValues(stageDecode).Observe(time.Since(f.Arrival).Seconds())
		}
		if !samp.take(f.PTS) {
			f.Release()
			return
		}
		if err := slot.put(ctx, f, &s.stats); err != nil {
			emitErr = err
		}
	}
	firstUnit := true
	for u := range units {
		if firstUnit {
			firstUnit = false
			s.setState(StateStreaming, nil, time.Time{})
		}
		switch {
		case u.params != nil:
			if dec != nil {
				if err := dec.Flush(emitFunc); err != nil {
					errLog.add(err)
				}
				dec.Close()
			}
			var err error
			dec, err = decode.NewDecoder(decode.Config{
				StreamID:      s.cfg.ID,
				Params:        *u.params,
				Threads:       s.cfg.DecodeThreads,
				KeyframesOnly: s.cfg.KeyframesOnly(),
			})
			if err != nil {
				return fmt.Errorf("opening %s decoder for %s: %w", u.params.Codec, s.cfg.ID, err)
			}
			waitKey, seen = false, decode.Stats{}
		case u.pkt != nil:
			pkt := u.pkt
			if u.gap {
				waitKey = true
				requestKey()
			}
			switch {
			case dec == nil:
				errLog.add(fmt.Errorf("packet before codec parameters"))
			case waitKey && !pkt.KeyFrame:
				s.stats.dropped[dropQueueFull].Add(1)
			default:
				waitKey = false
				start := time.Now()
				emitted = 0
				err := dec.Decode(pkt, emitFunc)
				s.stats.decodeTime.observe(time.Since(start) - emitted)
				st := dec.Stats()
				// Rejected packets and frames decoded with concealed damage
				// are both decode errors.
				if n := st.CorruptPackets + st.CorruptFrames - seen.CorruptPackets - seen.CorruptFrames; n > 0 {
					s.stats.decodeErrors.Add(n)
					if err == nil {
						err = fmt.Errorf("frame %d of %s decoded with concealed damage", seq, s.cfg.ID)
					}
				}
				if err != nil {
					errLog.add(err)
					requestKey()
				}
				s.stats.dropped[dropDecodeError].Add(st.DroppedPackets - seen.DroppedPackets)
				seen = st
			}
			select {
			case free <- pkt:
			default:
			}
		case u.frm != nil:
			emitFunc(u.frm)
		}
		if emitErr != nil {
			return emitErr
		}
		errLog.maybeFlush()
	}
	if dec != nil {
		if err := dec.Flush(emitFunc); err != nil {
			errLog.add(err)
		}
	}
	return emitErr
}

// analyzeLoop runs analysis on sampled frames and publishes the results.
func (s *stream) analyzeLoop(ctx context.Context, slot *frameQueue) error {
	limit := s.p.opts.MaxFrames
	for f := range slot.ch {
		if limit > 0 && s.stats.analyzed.Load() >= limit {
			s.stats.dropped[dropFrameLimit].Add(1)
			f.Release()
			continue
		}
		res := &frame.Result{
			StreamID: f.StreamID, Seq: f.Seq, PTS: f.PTS, Captured: f.Arrival,
			Width: f.Width, Height: f.Height,
		}
		start := time.Now()
		err := s.p.analyze(ctx, s.cfg.Models, f, res)
		res.Analysis = time.Since(start)
		if err != nil {
			f.Release()
			return fmt.Errorf("analyzing frame %d of %s: %w", res.Seq, s.cfg.ID, err)
		}
		if s.tracker != nil {
			s.track(res)
		}
		for _, o := range s.p.opts.Observers {
			o.ObserveFrame(res, f)
		}
		f.Release()
		if !res.Captured.IsZero() {
			s.p.metrics.latency.WithLabelValues(stageAnalyze).Observe(time.Since(res.Captured).Seconds())
		}
		if err := s.p.fan.publish(ctx, res); err != nil {
			return err
		}
		if n := s.stats.analyzed.Add(1); limit > 0 && n == limit {
			s.log.Info("frame limit reached", "frames", n)
			s.stop()
		}
	}
	if limit > 0 && s.stats.analyzed.Load() >= limit {
		return errFrameLimit
	}
	return nil
}

func intervalOf(fps float64) time.Duration {
	if fps <= 0 {
		return 0
	}
	return time.Duration(float64(time.Second) / fps)
}

// sampler picks frames at a target rate by presentation time.
type sampler struct {
	interval time.Duration // 0 takes every frame
	next     time.Duration
	last     time.Duration // previous frame's PTS, to learn the source's frame interval
	started  bool
}

func (s *sampler) take(pts time.Duration) bool {
	if s.interval == 0 {
		return true
	}
	if !s.started || pts < s.next-2*s.interval || pts > s.next+2*s.interval {
		// First frame, or a jump in time (loop, reconnect, gap): resync.
		s.started, s.last = true, pts
		s.next = pts + s.interval
		return true
	}
	// Take a frame up to half a source frame early, so that timestamp
	// jitter does not push every pick one frame late.
	tolerance := min(s.interval/4, (pts-s.last)/2)
	s.last = pts
	if pts+tolerance < s.next {
		return false
	}
	s.next += s.interval
	return true
}

// frameQueue hands sampled frames to the analyze stage. Live streams use a
// one-slot "latest frame wins" queue: a newer frame replaces one still
// waiting, so latency stays bounded when inference is slow. Non-live streams
// block instead, so that no frame is lost.
type frameQueue struct {
	ch   chan *frame.Frame
	live bool
}

func newFrameQueue(live bool) *frameQueue {
	n := 2
	if live {
		n = 1
	}
	return &frameQueue{ch: make(chan *frame.Frame, n), live: live}
}

// put is called by the single producer.
func (q *frameQueue) put(ctx context.Context, f *frame.Frame, st *streamStats) error {
	if !q.live {
		select {
		case q.ch <- f:
			return nil
		case <-ctx.Done():
			f.Release()
			return ctx.Err()
		}
	}
	select {
	case q.ch <- f:
		return nil
	default:
	}
	select {
	case old := <-q.ch:
		old.Release()
		st.dropped[dropInferenceBusy].Add(1)
	default:
	}
	q.ch <- f // one producer: the slot is free now
	return nil
}

func (q *frameQueue) close() { close(q.ch) }

func (q *frameQueue) drain() {
	for f := range q.ch {
		f.Release()
	}
}

// errorDumper summarises hot-path errors at most once a second instead of
// logging each one.
type errorDumper struct {
	log   *slog.Logger
	what  string
	count int
	last  error
	next  time.Time
}

func newErrorDumper(log *slog.Logger, what string) *errorDumper {
	return &errorDumper{log: log, what: what}
}

func (e *errorDumper) add(err error) {
	e.count++
	e.last = err
	e.maybeFlush()
}

func (e *errorDumper) maybeFlush() {
	if e.count == 0 || time.Now().Before(e.next) {
		return
	}
	e.flush()
}

func (e *errorDumper) flush() {
	if e.count == 0 {
		return
	}
	e.log.Warn(e.what, "count", e.count, "last", e.last)
	e.count, e.last = 0, nil
	e.next = time.Now().Add(time.Second)
}

// track runs the stream's tracker on the result's detections from
// detectors (keypoint models' people, marked Aux, are the same people
// again) and sets their track IDs and the result's tracks.
func (s *stream) track(res *frame.Result) {
	var idx []int
	var dets []frame.Detection
	for i, d := range res.Detections {
		if !d.Aux {
			idx = append(idx, i)
			dets = append(dets, d)
		}
	}
	tracks, events := s.tracker.Update(dets, res.PTS)
	for k, i := range idx {
		res.Detections[i].TrackID = dets[k].TrackID
	}
	// Low-score detections were only candidates for the tracker's second
	// pass: those that extended no track go.
	res.Detections = slices.DeleteFunc(res.Detections, func(d frame.Detection) bool { return d.Low && d.TrackID == 0 })
	// The tracker reuses its slices; sinks keep results.
	res.Tracks, res.Events = slices.Clone(tracks), slices.Clone(events)
	s.stats.tracks.record(tracks, events)
	s.lastRes = frame.Result{StreamID: res.StreamID, Seq: res.Seq, PTS: res.PTS, Captured: res.Captured, Width: res.Width, Height: res.Height, Model: res.Model, ModelVersion: res.ModelVersion}
	s.trackedAny = true
}

// endTracks ends the stream's open tracks when the stream ends for good and
// publishes their ended events in a final result with EndOfStream set.
func (s *stream) endTracks(ctx context.Context) {
	if s.tracker == nil || !s.trackedAny {
		return
	}
	events := s.tracker.Flush()
	s.stats.tracks.record(nil, events)
	if len(events) == 0 {
		return
	}
	res := s.lastRes
	res.EndOfStream, res.Events = true, slices.Clone(events)
	if err := s.p.fan.publish(ctx, &res); err != nil {
		s.log.Warn("track end events not published", "err", err)
	}
}
