package viewer

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-video/vigil/frame"
	"github.com/vigil-video/vigil/ingest/encode"
	"github.com/vigil-video/vigil/ingest/h264"
)

// accessUnit is one Annex-B H.264 access unit, shared read-only by every
// viewer of the stream.
type accessUnit struct {
	data []byte
	pts  time.Duration
	key  bool
}

// keyRequestInterval is the shortest time between two key frame requests
// of one stream.
const keyRequestInterval = 250 * time.Millisecond

// feed is one stream's fan-out to its viewers.
type feed struct {
	h  *Hub
	id string

	// viewers is copied on write under mu, so the taps read it without
	// locking.
	viewers     atomic.Pointer[[]*session]
	passthrough atomic.Bool // the stream's packets are H.264 that is forwarded

	mu         sync.Mutex
	paramSets  []byte // the stream's SPS and PPS, Annex-B, for key frames without them
	lengthSize int    // length prefix size of AVCC packets, 0 for Annex-B
	prevPTS    time.Duration
	enc        *encoder // running while the stream is encoded for viewers
	encFailed  bool     // the encoder could not start: do not retry per frame
	lastKeyReq time.Time
	width      int
	height     int

	// Counters for the stats message, written by the taps and Write.
	framesIn, analyzed           atomic.Uint64
	inferNS, latencyNS           atomic.Int64
	activeTracks                 atomic.Int64
	droppedVideo, droppedOverlay atomic.Uint64
	lastIn, lastAnalyzed         uint64 // owned by the stats loop
	lastInferNS, lastLatencyNS   int64
}

func newFeed(h *Hub, id string) *feed {
	f := &feed{h: h, id: id}
	f.viewers.Store(new([]*session))
	return f
}

func (f *feed) list() []*session { return *f.viewers.Load() }

func (f *feed) videoMode() string {
	if f.passthrough.Load() {
		return "passthrough"
	}
	return "encoded"
}

// params records the codec: H.264 is forwarded, anything else is encoded
// from the decoded frames.
func (f *feed) params(p frame.CodecParams) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paramSets, f.lengthSize = nil, 0
	if p.Codec != frame.CodecH264 {
		f.passthrough.Store(false)
		return
	}
	if h264.IsAVCC(p.Extradata) {
		c, err := h264.ParseDecoderConfig(p.Extradata)
		if err != nil {
			f.h.log.Warn("viewer: H.264 extradata not understood; encoding the stream for viewers instead", "stream", f.id, "err", err)
			f.passthrough.Store(false)
			return
		}
		f.lengthSize = c.LengthSize
		f.paramSets = h264.AppendAnnexB(nil, append(c.SPS, c.PPS...)...)
	} else {
		f.paramSets = slices.Clone(p.Extradata)
	}
	f.prevPTS = -1
	f.passthrough.Store(true)
}

// packet forwards an H.264 access unit to the viewers.
func (f *feed) packet(p *frame.Packet) {
	if len(f.list()) == 0 || !f.passthrough.Load() {
		return
	}
	f.mu.Lock()
	if !p.KeyFrame && p.PTS < f.prevPTS {
		// Frames out of presentation order (B-frames): WebRTC players
		// expect them in order, so encode this stream instead.
		f.passthrough.Store(false)
		f.mu.Unlock()
		f.h.log.Info("viewer: stream has B-frames; encoding it for viewers", "stream", f.id)
		return
	}
	f.prevPTS = p.PTS
	lengthSize, paramSets := f.lengthSize, f.paramSets
	f.mu.Unlock()

	var nals [][]byte
	var err error
	if lengthSize > 0 {
		nals, err = h264.SplitAVCC(nil, p.Data, lengthSize)
	} else {
		nals = h264.SplitAnnexB(nil, p.Data)
	}
	if err != nil || len(nals) == 0 {
		f.h.metrics.errors.WithLabelValues("bad_packet").Inc()
		return
	}
	hasSPS := false
	size := len(p.Data) + len(paramSets)
	for _, n := range nals {
		hasSPS = hasSPS || h264.TypeOf(n) == h264.NALUTypeSPS
		size += 4
	}
	data := make([]byte, 0, size)
	if p.KeyFrame && !hasSPS {
		data = append(data, paramSets...)
	}
	data = h264.AppendAnnexB(data, nals...)
	f.broadcast(accessUnit{data: data, pts: p.PTS, key: p.KeyFrame})
}

// frame hands a decoded frame to the stream's encoder, if the stream is
// encoded and watched.
func (f *feed) frame(fr *frame.Frame) {
	f.framesIn.Add(1)
	if len(f.list()) == 0 || f.passthrough.Load() {
		return
	}
	f.mu.Lock()
	enc := f.enc
	if enc == nil && !f.encFailed {
		enc = f.startEncoder()
	}
	f.mu.Unlock()
	if enc != nil {
		enc.offer(fr)
	}
}

// broadcast queues au to every viewer; a viewer whose queue is full loses
// it and skips to the next key frame.
func (f *feed) broadcast(au accessUnit) {
	for _, s := range f.list() {
		if !s.queueVideo(au) {
			f.droppedVideo.Add(1)
			f.h.metrics.droppedVideo.WithLabelValues(f.id).Inc()
			f.requestKey()
		}
	}
}

// result records r in the stats and sends its overlay message to the
// viewers.
func (f *feed) result(r *frame.Result) {
	now := time.Now()
	if !r.EndOfStream {
		f.analyzed.Add(1)
		f.inferNS.Add(int64(r.Analysis))
		if !r.Captured.IsZero() {
			f.latencyNS.Add(int64(now.Sub(r.Captured)))
		}
		active := 0
		for _, t := range r.Tracks {
			if t.State == frame.TrackConfirmed && t.TimeSinceUpdate == 0 {
				active++
			}
		}
		f.activeTracks.Store(int64(active))
		f.mu.Lock()
		f.width, f.height = r.Width, r.Height
		f.mu.Unlock()
	}
	viewers := f.list()
	if len(viewers) == 0 {
		return
	}
	msg, err := encodeResult(r, now)
	if err != nil {
		f.h.metrics.errors.WithLabelValues("encode_overlay").Inc()
		return
	}
	for _, s := range viewers {
		f.queueOverlay(s, msg)
	}
}

func (f *feed) queueOverlay(s *session, msg []byte) {
	if !s.queueOverlay(msg) {
		f.droppedOverlay.Add(1)
		f.h.metrics.droppedOverlay.WithLabelValues(f.id).Inc()
	}
}

// sendStats sends the stats message of the last interval dt. It reports
// false when the stream is gone (its viewers are then closed).
func (f *feed) sendStats(dt time.Duration) bool {
	in, an := f.framesIn.Load(), f.analyzed.Load()
	inferNS, latNS := f.inferNS.Load(), f.latencyNS.Load()
	n := an - f.lastAnalyzed
	m := statsMessage{
		Type:           "stats",
		FPSIn:          float64(in-f.lastIn) / dt.Seconds(),
		FPSAnalyzed:    float64(n) / dt.Seconds(),
		ActiveTracks:   int(f.activeTracks.Load()),
		Viewers:        len(f.list()),
		Video:          f.videoMode(),
		DroppedVideo:   f.droppedVideo.Load(),
		DroppedOverlay: f.droppedOverlay.Load(),
	}
	if n > 0 {
		m.InferMS = ms(time.Duration(inferNS-f.lastInferNS)) / float64(n)
		m.LatencyMS = ms(time.Duration(latNS-f.lastLatencyNS)) / float64(n)
	}
	f.lastIn, f.lastAnalyzed, f.lastInferNS, f.lastLatencyNS = in, an, inferNS, latNS
	viewers := f.list()
	if d := f.h.opts.Describe; d != nil {
		if _, ok := d(f.id); !ok {
			for _, s := range viewers {
				s.close("stream removed")
			}
			return false
		}
	}
	if len(viewers) > 0 {
		msg := marshal(m)
		for _, s := range viewers {
			f.queueOverlay(s, msg)
		}
	}
	return true
}

// add and remove change the viewer list; the encoder runs while it is not
// empty.
func (f *feed) add(s *session) {
	f.mu.Lock()
	l := append(slices.Clone(f.list()), s)
	f.viewers.Store(&l)
	f.mu.Unlock()
	f.h.metrics.sessions.WithLabelValues(f.id).Set(float64(len(l)))
	f.requestKey()
}

func (f *feed) remove(s *session) {
	f.mu.Lock()
	l := slices.DeleteFunc(slices.Clone(f.list()), func(x *session) bool { return x == s })
	f.viewers.Store(&l)
	var enc *encoder
	if len(l) == 0 {
		enc, f.enc = f.enc, nil
		f.encFailed = false
	}
	f.mu.Unlock()
	f.h.metrics.sessions.WithLabelValues(f.id).Set(float64(len(l)))
	if enc != nil {
		enc.stop()
	}
}

// requestKey asks for a key frame: from the encoder, or from the source
// of a forwarded stream. Requests are rate-limited.
func (f *feed) requestKey() {
	f.mu.Lock()
	now := time.Now()
	if now.Sub(f.lastKeyReq) < keyRequestInterval {
		f.mu.Unlock()
		return
	}
	f.lastKeyReq = now
	enc := f.enc
	f.mu.Unlock()
	switch {
	case enc != nil:
		enc.forceKey.Store(true)
	case f.passthrough.Load() && f.h.opts.RequestKeyFrame != nil:
		f.h.opts.RequestKeyFrame(f.id)
	}
}

// encoder encodes one stream's frames with libx264 for its viewers.
type encoder struct {
	f        *feed
	in       chan *frame.Frame // one slot: the newest frame wins
	forceKey atomic.Bool
	cancel   context.CancelFunc
}

// startEncoder starts the stream's encoder; f.mu is held.
func (f *feed) startEncoder() *encoder {
	ctx, cancel := context.WithCancel(context.Background())
	e := &encoder{f: f, in: make(chan *frame.Frame, 1), cancel: cancel}
	f.enc = e
	f.h.wg.Add(1)
	go func() {
		defer f.h.wg.Done()
		e.run(ctx)
	}()
	return e
}

func (e *encoder) stop() { e.cancel() }

// offer queues fr, replacing a frame still waiting.
func (e *encoder) offer(fr *frame.Frame) {
	fr.Retain()
	for {
		select {
		case e.in <- fr:
			return
		default:
		}
		select {
		case old := <-e.in:
			old.Release()
			e.f.h.metrics.encoderSkipped.Inc()
		default:
		}
	}
}

func (e *encoder) run(ctx context.Context) {
	f := e.f
	var enc *encode.Encoder
	var encW, encH int
	defer func() {
		if enc != nil {
			enc.Close()
		}
		for {
			select {
			case fr := <-e.in:
				fr.Release()
			default:
				return
			}
		}
	}()
	var errLogged time.Time // encoding errors are logged once a minute
	emit := func(p *frame.Packet) {
		f.broadcast(accessUnit{data: slices.Clone(p.Data), pts: p.PTS, key: p.KeyFrame})
	}
	for {
		var fr *frame.Frame
		select {
		case <-ctx.Done():
			return
		case fr = <-e.in:
		}
		if enc != nil && (encW != fr.Width || encH != fr.Height) {
			enc.Close()
			enc = nil
		}
		if enc == nil {
			var err error
			enc, err = encode.NewH264(encode.Config{
				Width: fr.Width, Height: fr.Height,
				Bitrate: f.h.opts.Bitrate, KeyInterval: f.h.opts.KeyInterval,
			})
			if err != nil {
				fr.Release()
				f.h.metrics.errors.WithLabelValues("encoder_open").Inc()
				f.h.log.Error("viewer: cannot encode the stream for viewers", "stream", f.id, "err", err)
				f.mu.Lock()
				f.encFailed = true
				if f.enc == e {
					f.enc = nil
				}
				f.mu.Unlock()
				return
			}
			encW, encH = fr.Width, fr.Height
		}
		if e.forceKey.Swap(false) {
			enc.ForceKeyFrame()
		}
		start := time.Now()
		err := enc.Encode(fr, emit)
		f.h.metrics.encodeTime.Observe(time.Since(start).Seconds())
		fr.Release()
		if err != nil {
			f.h.metrics.errors.WithLabelValues("encode").Inc()
			if time.Since(errLogged) > time.Minute {
				f.h.log.Warn("viewer: encoding a frame failed", "stream", f.id, "err", err)
				errLogged = time.Now()
			}
		}
	}
}
