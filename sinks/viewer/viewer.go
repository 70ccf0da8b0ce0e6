// Package viewer is Vigil's live overlay viewer: browsers play each stream
// over WebRTC (WHEP) and get the analysis of every frame on a data channel,
// to draw boxes, track IDs, keypoints and masks over the picture.
//
// Media enters through the taps the pipeline calls (Params, Packet, Frame);
// results enter through Write, as for any sink. H.264 access units of camera
// streams are forwarded untouched to every viewer (one fan-out per stream;
// a viewer that cannot keep up loses access units and waits for the next
// key frame rather than slowing anyone down). Streams without H.264 (generated
// scenes, H.265 cameras) are encoded once per stream with libx264, only while
// someone watches, and the same access units go to all their viewers.
//
// The protocol (see web/static for the page that speaks it):
//
//	POST   /whep/{stream}            SDP offer in (recvonly video and a data
//	                                 channel named "vigil"), 201 with the
//	                                 SDP answer and Location
//	DELETE /whep/{stream}/{session}  ends the session
//
// Every video frame's RTP timestamp is its presentation time on the 90 kHz
// clock (RTPTimestamp), and so is each overlay message's "rtp", so the page
// draws the analysis of exactly the frame it shows. Data channel messages
// are JSON: "hello" once (the stream's models, labels and skeleton),
// "result" per analysed frame (detections, tracks, timings), "stats" once a
// second (fps in and analysed, inference time, latency, active tracks).
package viewer

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-video/vigil/frame"
)

// Options configure a Hub. Zero values select the defaults in the comments.
type Options struct {
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Registerer receives the viewer's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// MaxViewers bounds the viewers of one stream. It defaults to 16.
	MaxViewers int
	// Bitrate is the encoder's target in bits/s for streams that are
	// encoded; 0 lets the encoder choose from the frame size.
	Bitrate int
	// KeyInterval is the encoder's time between key frames. It defaults to
	// 2 seconds.
	KeyInterval time.Duration
	// Describe says whether a stream exists and what the page should know
	// of it. nil accepts every stream ID, with no model information.
	Describe func(stream string) (StreamInfo, bool)
	// RequestKeyFrame asks a stream's source for a key frame (a WebRTC
	// publisher's PLI), for a viewer that joined or lost access units of a
	// forwarded stream. nil does nothing; the viewer waits for the next one.
	RequestKeyFrame func(stream string)
	// GatherTimeout bounds ICE gathering before the answer. It defaults to
	// 5 seconds.
	GatherTimeout time.Duration
	// IPFilter, if set, limits the local addresses ICE gathers on.
	IPFilter func(ip net.IP) bool
	// NAT1To1IPs, if set, are announced in host candidates instead of the
	// local addresses.
	NAT1To1IPs []string
	// ICEUDPPortMin and ICEUDPPortMax, if set, bound the local UDP ports.
	ICEUDPPortMin, ICEUDPPortMax uint16
}

// Hub is the viewer of every stream: media taps, results sink and WHEP
// endpoint. Its methods are safe for concurrent use.
type Hub struct {
	opts    Options
	log     *slog.Logger
	api     *webrtc.API
	metrics *metrics

	mu       sync.RWMutex
	closed   bool
	feeds    map[string]*feed
	sessions map[string]*session

	stop context.CancelFunc
	wg   sync.WaitGroup // stats loop, sessions and encoders
}

// New makes a Hub and starts its once-a-second stats loop; Close stops it.
func New(opts Options) *Hub {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxViewers <= 0 {
		opts.MaxViewers = 16
	}
	if opts.KeyInterval <= 0 {
		opts.KeyInterval = 2 * time.Second
	}
	if opts.GatherTimeout <= 0 {
		opts.GatherTimeout = 5 * time.Second
	}
	h := &Hub{
		opts:     opts,
		log:      opts.Logger,
		api:      newAPI(opts),
		metrics:  newMetrics(opts.Registerer),
		feeds:    map[string]*feed{},
		sessions: map[string]*session{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.stop = cancel
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.statsLoop(ctx)
	}()
	return h
}

// videoCodec is what the viewer sends: H.264 in packetization mode 1.
// Camera streams keep their own profile; browsers decode it whatever the
// profile-level-id says.
var videoCodec = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeH264, ClockRate: ClockRate,
	SDPFmtpLine:  "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
}

func newAPI(opts Options) *webrtc.API {
	me := &webrtc.MediaEngine{}
	// Registration only fails for an unknown codec type.
	_ = me.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCodec, PayloadType: 102}, webrtc.RTPCodecTypeVideo)
	ir := &interceptor.Registry{}
	// NACK answers retransmission requests from a send buffer; RTCP reports
	// let the browser see loss and jitter.
	_ = webrtc.ConfigureNack(me, ir)
	_ = webrtc.ConfigureRTCPReports(ir)
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// A viewer that vanishes without DELETE (a closed tab) is gone after
	// about 10 s.
	se.SetICETimeouts(4*time.Second, 10*time.Second, time.Second)
	if opts.IPFilter != nil {
		se.SetIPFilter(opts.IPFilter)
	}
	if len(opts.NAT1To1IPs) > 0 {
		se.SetNAT1To1IPs(opts.NAT1To1IPs, webrtc.ICECandidateTypeHost)
	}
	if opts.ICEUDPPortMin > 0 || opts.ICEUDPPortMax > 0 {
		_ = se.SetEphemeralUDPPortRange(opts.ICEUDPPortMin, opts.ICEUDPPortMax)
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
}

// feed returns the stream's feed, made on first use.
func (h *Hub) feed(stream string) *feed {
	h.mu.RLock()
	f := h.feeds[stream]
	h.mu.RUnlock()
	if f != nil {
		return f
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f = h.feeds[stream]; f == nil {
		f = newFeed(h, stream)
		h.feeds[stream] = f
	}
	return f
}

// Params is the pipeline's tap for a stream's codec parameters, called
// before its first packet and whenever the codec changes.
func (h *Hub) Params(stream string, p frame.CodecParams) { h.feed(stream).params(p) }

// Packet is the pipeline's tap for a compressed access unit. It does not
// block and does not keep p.
func (h *Hub) Packet(stream string, p *frame.Packet) { h.feed(stream).packet(p) }

// Frame is the pipeline's tap for every decoded or generated frame. It does
// not block; it retains f only while the stream is being encoded for
// viewers.
func (h *Hub) Frame(stream string, f *frame.Frame) { h.feed(stream).frame(f) }

// Write sends r to the stream's viewers (a sink's Write).
func (h *Hub) Write(_ context.Context, r *frame.Result) error {
	h.feed(r.StreamID).result(r)
	return nil
}

// Close ends every session and encoder and stops the stats loop.
func (h *Hub) Close(context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	sessions := make([]*session, 0, len(h.sessions))
	for _, s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	h.stop()
	for _, s := range sessions {
		s.close("server closed")
	}
	h.wg.Wait()
	return nil
}

// Sessions returns the number of live viewer sessions.
func (h *Hub) Sessions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.sessions)
}

func (h *Hub) statsLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			h.mu.RLock()
			feeds := make([]*feed, 0, len(h.feeds))
			for _, f := range h.feeds {
				feeds = append(feeds, f)
			}
			h.mu.RUnlock()
			for _, f := range feeds {
				if !f.sendStats(now.Sub(last)) {
					h.forget(f)
				}
			}
			last = now
		}
	}
}

// forget drops the feed of a stream that is gone, and its metric series;
// a stream added again under the same ID gets a fresh one.
func (h *Hub) forget(f *feed) {
	h.mu.Lock()
	if h.feeds[f.id] == f {
		delete(h.feeds, f.id)
	}
	h.mu.Unlock()
	h.metrics.sessions.DeleteLabelValues(f.id)
	h.metrics.droppedVideo.DeleteLabelValues(f.id)
	h.metrics.droppedOverlay.DeleteLabelValues(f.id)
}

func marshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed message types are marshalled
	}
	return b
}
